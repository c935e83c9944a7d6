"""The chart's recording rules and Grafana dashboard, run by a real Prometheus (Debian's `prometheus`)
scraping a real tts-server process under load and the DCGM stand-in.

The rules are the chart's own: `helm template` renders the PrometheusRule, its spec.groups become the
rule file Prometheus loads. Every recorded series must equal, at the rule's evaluation time, the query
the operator composes for one TTSService (triggers.py), and nothing from another namespace, another
TTSService or a Deployment outside the naming convention may leak into it. The server is scraped under
several identities (static target labels stand in for Kubernetes service discovery), each carrying the
same real values, so a leak shows as a multiple of the expected number.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from tts_operator import triggers as t
from tts_operator.spec import DCGMLabels

from tests.cluster.build import ensure_binaries
from tests.operator.conftest import wait_for
from tests.promstack import Prometheus, running_prometheus, static_job
from tests.server.conftest import ServerProcess

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "voicefleet"
DASHBOARD = CHART / "files" / "voicefleet-tts-dashboard.json"
POD = "voice-cpu-7d9f8b6c5-x2x4z"
IDENTITIES = {  # job -> target labels of the one real server
    "tts-ours": {"namespace": "team-a", "pod": POD},
    "tts-other-namespace": {"namespace": "team-b", "pod": POD},
    "tts-other-workload": {"namespace": "team-a", "pod": "voice-cpu-extra-7d9f8b6c5-x2x4z"},  # not ours
    "tts-other-service": {"namespace": "team-a", "pod": "voice-extra-cpu-7d9f8b6c5-x2x4z"},
    "tts-gpu-tier": {"namespace": "team-a", "pod": "voice-gpu-5c7d9-klmno"},
}
# Series the rules must produce from those identities: (namespace, ttsservice, tier).
EXPECTED_SERVICES = {
    ("team-a", "voice", "cpu"),
    ("team-b", "voice", "cpu"),
    ("team-a", "voice-extra", "cpu"),
    ("team-a", "voice", "gpu"),
}
# DCGM_FI_DEV_GPU_UTIL per (namespace, pod, gpu): pod 1 has two GPUs (mean 70), pod 2 one (90).
GPU_SERIES = [
    ("team-a", "voice-gpu-5c7d9-abcde", "0", 80),
    ("team-a", "voice-gpu-5c7d9-abcde", "1", 60),
    ("team-a", "voice-gpu-5c7d9-fghij", "2", 90),
    ("team-b", "voice-gpu-5c7d9-abcde", "3", 100),  # same pod name, other namespace
    ("team-a", "voice-gpu-big-5c7d9-abcde", "4", 100),  # other Deployment, our prefix
    ("team-a", "voice-cpu-5c7d9-abcde", "5", 100),  # our CPU tier has no business here
]
EXPECTED_GPU_PODS = {
    ("team-a", "voice", "voice-gpu-5c7d9-abcde"): 70.0,
    ("team-a", "voice", "voice-gpu-5c7d9-fghij"): 90.0,
    ("team-b", "voice", "voice-gpu-5c7d9-abcde"): 100.0,
}
SENTENCE = "我们正在测试离线中文语音合成的速度和质量，请大家多多指教。"
# Share of recorded samples that must equal the direct query exactly: a scrape that lands after a rule
# evaluation but carries an earlier timestamp changes the direct answer afterwards (scrape jitter).
EXACT_SHARE = 0.9


def _gen_rules() -> Any:
    spec = importlib.util.spec_from_file_location("gen_rules", ROOT / "charts" / "gen_rules.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def render_rules(path: Path, *values: str) -> Path:
    """The chart's PrometheusRule as a Prometheus rule file (its spec.groups)."""
    out = subprocess.run(
        [
            str(ensure_binaries().helm),
            "template",
            "rel",
            str(CHART),
            "--set",
            "monitoring.prometheusRule.enabled=true",
            "--show-only",
            "templates/prometheusrule.yaml",
            *values,
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    [rule] = [d for d in yaml.safe_load_all(out) if d]
    assert rule["kind"] == "PrometheusRule"
    path.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    return path


def series(prom: Prometheus, promql: str, at: float | None = None) -> dict[tuple[str, ...], float]:
    """{(namespace, ttsservice, tier[, pod]): value} of an instant query."""
    out = {}
    for item in prom.query(promql, at):
        m = item["metric"]
        key = tuple(m[k] for k in ("namespace", "ttsservice", "tier", "pod") if k in m)
        out[key] = float(item["value"][1])
    return out


def recorded_samples(
    prom: Prometheus, selector: str, seconds: int, at: float | None = None
) -> list[tuple[float, float]]:
    """The raw samples a rule wrote (timestamp = its evaluation time) in the `seconds` before `at`."""
    [item] = prom.query(f"{selector}[{seconds}s]", at if at is not None else time.time())
    return [(float(ts), float(value)) for ts, value in item["values"]]


def compare(
    prom: Prometheus, samples: list[tuple[float, float]], direct: str
) -> list[tuple[float, float, float | None]]:
    """(timestamp, recorded, direct at that timestamp) for every sample that differs."""
    return [(ts, value, d) for ts, value in samples if (d := prom.scalar(direct, ts)) != value]


@pytest.fixture(scope="module")
def rule_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return render_rules(tmp_path_factory.mktemp("rules") / "voicefleet.rules.yml")


@pytest.fixture(scope="module")
def prometheus(
    tmp_path_factory: pytest.TempPathFactory, tts_server: ServerProcess, dcgm: str, rule_file: Path
) -> Iterator[Prometheus]:
    target = tts_server.url.removeprefix("http://")
    jobs = [static_job(job, target, labels) for job, labels in IDENTITIES.items()]
    # Behind an operator-style scrape the exporter's namespace/pod become exported_* (the chart's
    # default dcgmLabels); the direct scrape's series lack exported_pod, so the rules must ignore them.
    jobs.append(
        static_job(
            "dcgm-behind-operator", dcgm, {"namespace": "gpu-operator", "pod": "nvidia-dcgm-exporter-abcde"}
        )
    )
    jobs.append(static_job("dcgm-direct", dcgm))
    with running_prometheus(tmp_path_factory.mktemp("prometheus"), jobs, rule_files=[rule_file]) as prom:
        yield prom


@dataclass
class Load:
    started: float
    finished: float


@pytest.fixture(scope="module")
def load(prometheus: Prometheus, tts_server: ServerProcess) -> Load:
    """Real traffic: requests that queue behind one worker; returns when all were answered."""
    # The windowed rule needs a 15 s-aligned subquery step with data: up to 15 s after Prometheus starts.
    ours = 'tts:queue_depth:sum_min2m{namespace="team-a",ttsservice="voice",tier="cpu"}'
    wait_for(
        lambda: prometheus.scalar(ours, time.time()) == 0,
        timeout=45,
        interval=0.5,
        what="the idle queue recorded as 0",
    )
    started = time.time()

    async def run() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=tts_server.url, timeout=300) as client:
            return await asyncio.gather(*(client.post("/tts", json={"text": SENTENCE * 4}) for _ in range(4)))

    responses = asyncio.run(run())
    assert [r.status_code for r in responses] == [200] * 4, [r.text[:200] for r in responses]
    time.sleep(3)  # the last scrape and evaluation after the queue drained
    return Load(started, time.time())


def test_promtool_accepts_the_rendered_rules(rule_file: Path) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool comes with Debian's prometheus package"
    proc = subprocess.run(
        [promtool, "check", "rules", str(rule_file)], capture_output=True, text=True, check=False, timeout=60
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(_gen_rules().rules())} rules found" in proc.stdout, proc.stdout


def test_template_is_what_the_generator_writes() -> None:
    gen = _gen_rules()
    assert gen.TEMPLATE.read_text() == gen.render()
    assert gen.main(["--check"]) == 0


def test_rules_follow_the_triggers_conventions() -> None:
    gen = _gen_rules()
    records = {r.record for r in gen.rules()}
    # The default windows are in the names of the rules that equal a trigger at its default window.
    assert {
        "tts:queue_depth:sum",
        "tts:queue_depth:sum_min2m",
        "tts:requests_in_flight:sum",
        "tts:time_to_first_audio_seconds:p95_2m",
        "tts:gpu_utilization:sum_avg3m",
    } <= records
    # The capture regex is the triggers' own pod regex with the name left open.
    assert re.fullmatch(gen.POD_RE, POD).groups() == ("voice", "cpu")
    assert re.fullmatch(gen.POD_RE, "a-gpu-cpu-5c7d9-abcde").groups() == ("a-gpu", "cpu")
    assert re.fullmatch(gen.POD_RE, "voice-cpu-extra-7d9f8b6c5-x2x4z") is None


def test_every_rule_evaluates_without_error(prometheus: Prometheus, load: Load) -> None:
    body = httpx.get(f"{prometheus.url}/api/v1/rules", timeout=10).json()
    [group] = body["data"]["groups"]
    health = {rule["name"]: (rule["health"], rule.get("lastError", "")) for rule in group["rules"]}
    assert health == {r.record: ("ok", "") for r in _gen_rules().rules()}


def test_gpu_rules_equal_the_trigger_query(prometheus: Prometheus) -> None:
    trigger = t.gpu_utilization_query("team-a", "voice", DCGMLabels(), 180)
    recorded = 'tts:gpu_utilization:sum_avg3m{namespace="team-a",ttsservice="voice",tier="gpu"}'
    # Constant values: once both exist they are exactly equal.
    wait_for(
        lambda: prometheus.scalar(recorded, time.time()) == prometheus.scalar(trigger, time.time()) == 160,
        timeout=15,
        interval=0.5,
        what=f"{recorded} == {trigger} == 160",
    )
    at = time.time()
    assert series(prometheus, "tts:gpu_utilization_pod:avg", at) == {
        (ns, svc, "gpu", pod): value for (ns, svc, pod), value in EXPECTED_GPU_PODS.items()
    }
    # The mean the operator's status shows (observe.py) is the same number.
    assert (
        series(prometheus, "tts:gpu_utilization:avg", at)
        == {
            (ns, "voice", "gpu"): prometheus.scalar(
                t.gpu_utilization_mean_query(ns, "voice", DCGMLabels()), at
            )
            for ns in ("team-a", "team-b")
        }
        == {("team-a", "voice", "gpu"): 80.0, ("team-b", "voice", "gpu"): 100.0}
    )
    other = t.gpu_utilization_query("team-b", "voice", DCGMLabels(), 180)
    assert series(prometheus, "tts:gpu_utilization:sum_avg3m", at) == {
        ("team-a", "voice", "gpu"): prometheus.scalar(trigger, at),
        ("team-b", "voice", "gpu"): prometheus.scalar(other, at),
    }


def test_gpu_rules_with_direct_dcgm_labels(tmp_path: Path, dcgm: str) -> None:
    # dcgm-exporter scraped directly (or with honorLabels): the labels are plain pod/namespace.
    rules = render_rules(
        tmp_path / "direct.rules.yml",
        "--set",
        "monitoring.prometheusRule.dcgmLabels.pod=pod",
        "--set",
        "monitoring.prometheusRule.dcgmLabels.namespace=namespace",
    )
    jobs = [
        static_job(
            "dcgm-behind-operator", dcgm, {"namespace": "gpu-operator", "pod": "nvidia-dcgm-exporter-abcde"}
        ),
        static_job("dcgm-direct", dcgm),
    ]
    labels = DCGMLabels(pod="pod", namespace="namespace")
    with running_prometheus(tmp_path / "prometheus", jobs, rule_files=[rules]) as prom:
        trigger = t.gpu_utilization_query("team-a", "voice", labels, 180)
        recorded = 'tts:gpu_utilization:sum_avg3m{namespace="team-a",ttsservice="voice",tier="gpu"}'
        wait_for(
            lambda: prom.scalar(recorded, time.time()) == prom.scalar(trigger, time.time()) == 160,
            timeout=15,
            interval=0.5,
            what=f"{recorded} == {trigger} == 160",
        )
        assert series(prom, "tts:gpu_utilization_pod:avg", time.time()) == {
            (ns, svc, "gpu", pod): value for (ns, svc, pod), value in EXPECTED_GPU_PODS.items()
        }


def test_server_rules_equal_the_trigger_queries_under_load(prometheus: Prometheus, load: Load) -> None:
    at = load.finished  # one fixed window: the load and the idle seconds after it
    seconds = int(at - load.started) + 2
    ours = 'namespace="team-a",ttsservice="voice",tier="cpu"'
    selector = f'namespace="team-a",pod=~"{t.pod_regex("voice", ("cpu",))}"'
    checks: list[tuple[str, str]] = [
        # The queue the operator's status shows (observe.py).
        (f"tts:queue_depth:sum{{{ours}}}", t.queue_depth_now_query("team-a", "voice", ("cpu",))),
        (f"tts:queue_depth:sum_min2m{{{ours}}}", t.queue_depth_query("team-a", "voice", ("cpu",), 120)),
        (f"tts:requests_in_flight:sum{{{ours}}}", f"sum(tts_requests_in_flight{{{selector}}})"),
    ]
    seen: dict[str, list[tuple[float, float]]] = {}
    for recorded, direct in checks:
        samples = seen[recorded] = recorded_samples(prometheus, recorded, seconds, at)
        assert len(samples) >= seconds // 2, (recorded, samples)
        differ = compare(prometheus, samples, direct)
        print(f"{recorded}: {len(samples)} samples, max {max(v for _, v in samples):g}, {len(differ)} differ")
        assert len(differ) <= (1 - EXACT_SHARE) * len(samples), (recorded, differ)
        # The same real server seen as one identity: no other namespace or workload summed in.
        assert selector in direct
        reference = direct.replace(selector, 'job="tts-ours"')
        assert len(compare(prometheus, samples, reference)) <= (1 - EXACT_SHARE) * len(samples), recorded
    queued = seen[f"tts:queue_depth:sum{{{ours}}}"]
    assert max(v for _, v in queued) >= 2, f"the load never queued: {queued}"
    in_flight = seen[f"tts:requests_in_flight:sum{{{ours}}}"]
    assert max(v for _, v in in_flight) == 1, in_flight  # one worker thread


def test_traffic_rules_equal_direct_queries_after_load(prometheus: Prometheus, load: Load) -> None:
    ours = 'namespace="team-a",ttsservice="voice",tier="cpu"'
    ttfa = f"tts:time_to_first_audio_seconds:p95_2m{{{ours}}}"
    at, value = recorded_samples(prometheus, ttfa, 5)[-1]
    assert value > 0
    assert value == prometheus.scalar(t.time_to_first_audio_p95_query("team-a", "voice", "cpu", 120), at)
    assert value == prometheus.scalar(
        t.time_to_first_audio_p95_observed_query("team-a", "voice", "cpu", 120), at
    )
    print(f"recorded p95 time to first audio: {value:.3f} s")
    rtf_direct = (
        "sum(rate(tts_real_time_factor_sum{job='tts-ours'}[2m])) / "
        "sum(rate(tts_real_time_factor_count{job='tts-ours'}[2m]))"
    )
    at, rtf = recorded_samples(prometheus, f"tts:real_time_factor:mean_2m{{{ours}}}", 5)[-1]
    assert 0 < rtf == prometheus.scalar(rtf_direct, at)
    print(f"recorded mean real-time factor: {rtf:.4f}")
    at, rate = recorded_samples(prometheus, f'tts:requests:rate2m{{{ours},code="200"}}', 5)[-1]
    assert rate > 0 and rate == prometheus.scalar(
        "sum(rate(tts_requests_total{job='tts-ours',code='200'}[2m]))", at
    )
    # Every identity that follows the convention has its own series; the decoy Deployment has none.
    for record in (
        "tts:queue_depth:sum",
        "tts:requests_in_flight:sum",
        "tts:time_to_first_audio_seconds:p95_2m",
        "tts:real_time_factor:mean_2m",
    ):
        assert set(series(prometheus, record, time.time())) == EXPECTED_SERVICES, record


# ---- the Grafana dashboard ------------------------------------------------------------------------

VARIABLES = {"namespace": "team-a", "service": "voice", "tier": "(gpu|cpu)"}  # tier: multi-value, all


def substitute(expr: str) -> str:
    return re.sub(r"\$(\w+)", lambda m: VARIABLES[m.group(1)], expr)


def dashboard_targets() -> list[tuple[str, str]]:
    board = json.loads(DASHBOARD.read_text())
    return [(panel["title"], target["expr"]) for panel in board["panels"] for target in panel["targets"]]


def test_dashboard_reads_only_recorded_series_the_rules_define() -> None:
    records = {r.record for r in _gen_rules().rules()}
    used = {name for _, expr in dashboard_targets() for name in re.findall(r"\btts:[\w:]+", expr)}
    assert used and used <= records, used - records


def test_dashboard_variables_list_what_prometheus_recorded(prometheus: Prometheus, load: Load) -> None:
    board = json.loads(DASHBOARD.read_text())
    found: dict[str, set[str]] = {}
    for var in board["templating"]["list"]:
        if var["type"] != "query":
            continue
        metric, label = re.fullmatch(r"label_values\((.+), (\w+)\)", var["query"]["query"]).groups()
        values = {
            item["metric"].get(label, "")
            for item in prometheus.query(f"group by ({label}) ({substitute(metric)})")
        }
        found[var["name"]] = values
    assert found == {
        "namespace": {"team-a", "team-b"},
        "service": {"voice", "voice-extra"},
        "tier": {"gpu", "cpu"},
    }


@pytest.mark.parametrize(("title", "expr"), dashboard_targets())
def test_dashboard_query_runs(prometheus: Prometheus, load: Load, title: str, expr: str) -> None:
    # Prometheus.query asserts status "success": the PromQL parses and evaluates.
    result = prometheus.query(substitute(expr), time.time())
    if "tts:" in expr:  # our own series: data from the real server (and the DCGM stand-in)
        assert result, f"{title}: {substitute(expr)} returned nothing"
    else:  # kube-state-metrics / KEDA series do not exist here; the query must still be valid
        assert result == [], result


def test_dashboard_configmap_carries_the_file() -> None:
    out = subprocess.run(
        [
            str(ensure_binaries().helm),
            "template",
            "rel",
            str(CHART),
            "--set",
            "monitoring.dashboard.enabled=true",
            "--show-only",
            "templates/dashboard.yaml",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    [config_map] = [d for d in yaml.safe_load_all(out) if d]
    assert json.loads(config_map["data"]["voicefleet-tts.json"]) == json.loads(DASHBOARD.read_text())
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
