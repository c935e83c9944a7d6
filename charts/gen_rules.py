"""Write the chart's PrometheusRule template: recording rules for the operator's scaling queries.

One rule set serves every TTSService: each rule aggregates per (namespace, ttsservice, tier), deriving
the TTSService name and tier from the pod name with the convention triggers.py relies on
(``<name>-<tier>-<pod-template-hash>-<suffix>``, via ``triggers.pod_regex``). Metric names, the server's
namespace/pod labels, the subquery step and the default windows come from triggers.py and spec.py, so
a rule recorded at a default window is the same number as the KEDA trigger the operator composes for
one service. The DCGM label names stay Helm values (``monitoring.prometheusRule.dcgmLabels``).

    .venv/bin/python charts/gen_rules.py          # rewrite charts/voicefleet/templates/prometheusrule.yaml
    .venv/bin/python charts/gen_rules.py --check  # exit 1 when the template is stale
    .venv/bin/python charts/gen_rules.py --table  # the rules as a Markdown table (for the chart's README)
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

from tts_operator import triggers as t
from tts_operator.spec import Autoscaling

TEMPLATE = Path(__file__).resolve().parent / "voicefleet" / "templates" / "prometheusrule.yaml"

SERVICE_LABEL = "ttsservice"
TIER_LABEL = "tier"
GROUP = (t.SERVER_NAMESPACE_LABEL, SERVICE_LABEL, TIER_LABEL)
IN_FLIGHT_METRIC = "tts_requests_in_flight"
RTF_METRIC = "tts_real_time_factor"
REQUESTS_METRIC = "tts_requests_total"
# Every tier's pods, with the TTSService name as $1 and the tier as $2; and the GPU tier's pods only.
POD_RE = t.pod_regex("(.+)", ("gpu", "cpu"))
GPU_POD_RE = t.pod_regex("(.+)", ("gpu",))
# Stand-ins for the DCGM label names, replaced by Helm variables in the template.
DCGM_POD, DCGM_NAMESPACE = "__DCGM_POD__", "__DCGM_NAMESPACE__"
_HELM_VARS = {DCGM_POD: "{{ $dcgmPod }}", DCGM_NAMESPACE: "{{ $dcgmNamespace }}"}


def _default(field: str) -> int:
    return int(Autoscaling.model_fields[field].default)


QUEUE_WINDOW = t.duration(_default("queue_depth_window_seconds"))
GPU_WINDOW = t.duration(_default("gpu_utilization_window_seconds"))


@dataclass(frozen=True)
class Rule:
    record: str
    expr: str
    help: str  # documents the rule in the template and in the chart's README


def _by(*labels: str) -> str:
    return ", ".join(labels)


def attributed(expr: str, pod_label: str = t.SERVER_POD_LABEL) -> str:
    """`expr` with the TTSService name and tier copied out of its pod label."""
    inner = f'label_replace({expr}, "{SERVICE_LABEL}", "$1", "{pod_label}", "{POD_RE}")'
    return f'label_replace({inner}, "{TIER_LABEL}", "$2", "{pod_label}", "{POD_RE}")'


def _server(metric: str) -> str:
    # Only pods that follow the naming convention: nothing else gets a tier, so nothing else is summed.
    return f'{metric}{{{t.SERVER_POD_LABEL}=~"{POD_RE}"}}'


def _gpu_per_pod(inner: str) -> str:
    """Per pod, the mean over its GPUs, relabelled to namespace/pod whatever DCGM's label names are."""
    mean = f"avg by ({DCGM_NAMESPACE}, {DCGM_POD}) ({inner})"
    as_pod = f'label_replace({mean}, "{t.SERVER_POD_LABEL}", "$1", "{DCGM_POD}", "(.*)")'
    as_ns = f'label_replace({as_pod}, "{t.SERVER_NAMESPACE_LABEL}", "$1", "{DCGM_NAMESPACE}", "(.*)")'
    return f"avg by ({_by(*GROUP, t.SERVER_POD_LABEL)}) ({attributed(as_ns)})"


def rules() -> list[Rule]:
    dcgm = f'{t.GPU_UTIL_METRIC}{{ {DCGM_POD}=~"{GPU_POD_RE}"}}'
    sum_by = f"sum by ({_by(*GROUP)})"
    bucket_rate = f'rate({t.TTFA_METRIC}_bucket{{{t.SERVER_POD_LABEL}=~"{POD_RE}"}}[{QUEUE_WINDOW}])'

    def rate(metric: str) -> str:
        return f'rate({metric}{{{t.SERVER_POD_LABEL}=~"{POD_RE}"}}[{QUEUE_WINDOW}])'

    return [
        Rule("tts:queue_depth:sum", f"{sum_by} ({attributed(_server(t.QUEUE_DEPTH_METRIC))})",
             "Requests queued over the tier's pods."),
        Rule(f"tts:queue_depth:sum_min{QUEUE_WINDOW}",
             f"min_over_time({sum_by} ({attributed(_server(t.QUEUE_DEPTH_METRIC))})"
             f"[{QUEUE_WINDOW}:{t.SUBQUERY_STEP}])",
             "The queue trigger's value at the default window: the lowest total queue over it."),
        Rule("tts:requests_in_flight:sum", f"{sum_by} ({attributed(_server(IN_FLIGHT_METRIC))})",
             "Requests being synthesized over the tier's pods."),
        Rule(f"tts:time_to_first_audio_seconds:p95_{QUEUE_WINDOW}",
             f"histogram_quantile(0.95, sum by ({_by(*GROUP, 'le')}) ({attributed(bucket_rate)})) >= 0",
             "p95 time to first audio (the latency trigger's value); absent without traffic."),
        Rule(f"tts:real_time_factor:mean_{QUEUE_WINDOW}",
             f"{sum_by} ({attributed(rate(RTF_METRIC + '_sum'))}) / {sum_by} "
             f"({attributed(rate(RTF_METRIC + '_count'))})",
             "Mean real-time factor (synthesis time / audio time) per engine call; below 1 is faster "
             "than real time."),
        Rule(f"tts:requests:rate{QUEUE_WINDOW}",
             f"sum by ({_by(*GROUP, 'code')}) ({attributed(rate(REQUESTS_METRIC))})",
             "HTTP requests per second by status code (label code)."),
        Rule("tts:gpu_utilization_pod:avg", _gpu_per_pod(dcgm),
             "Per GPU pod (label pod), the mean utilization (%) over its GPUs."),
        Rule("tts:gpu_utilization:avg",
             f"avg by ({_by(*GROUP)}) ({_gpu_per_pod(dcgm)})",
             "Mean GPU utilization (%) over the GPU tier's pods."),
        Rule(f"tts:gpu_utilization:sum_avg{GPU_WINDOW}",
             f"{sum_by} ({_gpu_per_pod(f'avg_over_time({dcgm}[{GPU_WINDOW}])')})",
             "The GPU trigger's value at the default window: per pod utilization averaged over it, "
             "summed over the tier."),
    ]  # fmt: skip


_HEAD = """\
{{- /* Generated by charts/gen_rules.py from operator/tts_operator/triggers.py; do not edit. */}}
{{- with .Values.monitoring.prometheusRule }}
{{- if .enabled }}
{{- $dcgmPod := .dcgmLabels.pod }}
{{- $dcgmNamespace := .dcgmLabels.namespace }}
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: {{ include "voicefleet.fullname" $ }}-tts
  namespace: {{ default $.Release.Namespace .namespace | quote }}
  labels:
    {{- include "voicefleet.labels" $ | nindent 4 }}
    {{- with .labels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  groups:
    - name: voicefleet-tts
      {{- with .interval }}
      interval: {{ . }}
      {{- end }}
      rules:
"""


def render() -> str:
    body = []
    for rule in rules():
        expr = rule.expr
        if "{{" in expr or "}}" in expr:
            raise ValueError(f"{rule.record}: '{{{{' or '}}}}' would be read by Helm as a template action")
        for marker, helm in _HELM_VARS.items():
            expr = expr.replace(marker, helm)
        body.append(f"        # {rule.help}\n        - record: {rule.record}\n          expr: |-\n"
                    f"            {expr}\n")  # fmt: skip
    return _HEAD + "".join(body) + "{{- end }}\n{{- end }}\n"


def table() -> str:
    rows = [f"| `{r.record}` | {r.help} |" for r in rules()]
    head = f"| Recorded series (labels: {', '.join(GROUP)}) | Meaning |\n|---|---|\n"
    return head + "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 when stale")
    parser.add_argument("--table", action="store_true", help="print the rules as a Markdown table")
    args = parser.parse_args(argv)
    if args.table:
        sys.stdout.write(table())
        return 0
    text = render()
    if args.check:
        if not TEMPLATE.exists() or TEMPLATE.read_text() != text:
            sys.stderr.write(f"{TEMPLATE} is stale: run charts/gen_rules.py\n")
            return 1
        return 0
    TEMPLATE.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
