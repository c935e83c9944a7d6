"""PromQL and KEDA trigger blocks for a TTSService tier: pure functions, no I/O.

Tenants never write PromQL. Every query is composed here from the TTSService's own namespace and name,
so a tenant can only ever scale on its own pods' series: the namespace is an exact matcher and the pod
matcher is an anchored regex of the tier's Deployment (`<name>-<tier>-<pod-template-hash>-<suffix>`;
PromQL regexes are fully anchored, and neither segment may contain a dash, so another Deployment whose
name merely starts with ours cannot match).

How KEDA turns a query into replicas (it hands the value to the HPA as an External metric):

* ``metricType: AverageValue`` (KEDA's default): the HPA divides the metric by the number of pods itself,
  ``desired = ceil(value / threshold)``, independent of how many pods run now. The query must therefore
  return a **sum** over the tier: "20 queued per replica" with 100 queued in total means 5 replicas,
  whether 1 or 9 pods run at the moment.
* ``metricType: Value``: ``desired = ceil(current_replicas * value / threshold)``. The query must return
  an **average** (or another per-pod quantity such as a latency percentile): a value twice the threshold
  doubles the replicas. Feeding a sum here would scale quadratically with the pod count.

Several triggers on one ScaledObject each yield a replica count and the HPA takes the highest, so the
queue (fast, tracks load), GPU utilization (slow: dcgm-exporter samples every 30 s, then scrape, KEDA and
HPA delays), the latency guard and cron floors combine as "whoever asks for most wins".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from tts_operator.render.common import TierName
from tts_operator.spec import DCGMLabels, Schedule

# Labels our server's series carry when Prometheus discovers pods (kubernetes_sd "pod" role relabelled
# the usual way, or a PodMonitor): the pod's namespace and name.
SERVER_NAMESPACE_LABEL = "namespace"
SERVER_POD_LABEL = "pod"
QUEUE_DEPTH_METRIC = "tts_queue_depth"
TTFA_METRIC = "tts_time_to_first_audio_seconds"
GPU_UTIL_METRIC = "DCGM_FI_DEV_GPU_UTIL"
# Resolution of the "held for N minutes" subquery: the server's gauge changes per request, scrapes are
# 5-15 s apart, so a finer step only re-reads the same samples.
SUBQUERY_STEP = "15s"
TRIGGER_QUEUE = "queue-depth"
TRIGGER_GPU = "gpu-utilization"
TRIGGER_TTFA = "time-to-first-audio-p95"
SCHEDULE_PREFIX = "schedule-"


def duration(seconds: int) -> str:
    """A PromQL duration, in minutes when exact (``2m`` reads better than ``120s`` in dashboards)."""
    return f"{seconds // 60}m" if seconds % 60 == 0 else f"{seconds}s"


def number(value: float) -> str:
    """KEDA thresholds are strings; write 75 as "75", 1.5 as "1.5"."""
    return f"{value:g}"


def pod_regex(name: str, tiers: tuple[TierName, ...]) -> str:
    """Pods of the tiers' Deployments, e.g. ``foo-gpu-[a-z0-9]+-[a-z0-9]+``."""
    tier = tiers[0] if len(tiers) == 1 else "(" + "|".join(tiers) + ")"
    return f"{name}-{tier}-[a-z0-9]+-[a-z0-9]+"


def _selector(namespace_label: str, pod_label: str, namespace: str, name: str,
              tiers: tuple[TierName, ...]) -> str:  # fmt: skip
    # Names are DNS labels (the CRD and Kubernetes enforce it), so nothing here needs quoting; refuse
    # anything else rather than build a query a crafted name could break out of.
    for part in (namespace, name):
        if not part or not all(ch.isalnum() or ch == "-" for ch in part) or part != part.lower():
            raise ValueError(f"not a DNS label: {part!r}")
    return f'{namespace_label}="{namespace}",{pod_label}=~"{pod_regex(name, tiers)}"'


def queue_depth_query(namespace: str, name: str, tiers: tuple[TierName, ...], window_seconds: int) -> str:
    """Requests queued over the tiers' pods, the lowest total seen in the window (for AverageValue).

    A sum, because AverageValue divides by the pod count itself. ``min_over_time`` of the sum means
    "above target for the whole window": one burst does not buy a GPU pod, a sustained queue does.
    """
    selector = _selector(SERVER_NAMESPACE_LABEL, SERVER_POD_LABEL, namespace, name, tiers)
    return (
        f"min_over_time(sum({QUEUE_DEPTH_METRIC}{{{selector}}})"
        f"[{duration(window_seconds)}:{SUBQUERY_STEP}])"
    )


def gpu_utilization_query(namespace: str, name: str, labels: DCGMLabels, window_seconds: int) -> str:
    """Sum over the GPU tier's pods of each pod's GPU utilization (%), averaged over the window.

    Per pod first (``avg by`` pod: a pod with 2 GPUs counts once, at their mean), then a sum, because
    this feeds an AverageValue trigger: 3 pods at 90 % = 270, target 75 -> ceil(3.6) = 4 replicas.
    """
    selector = _selector(labels.namespace, labels.pod, namespace, name, ("gpu",))
    return (
        f"sum(avg by ({labels.namespace}, {labels.pod}) "
        f"(avg_over_time({GPU_UTIL_METRIC}{{{selector}}}[{duration(window_seconds)}])))"
    )


def time_to_first_audio_p95_query(namespace: str, name: str, tier: TierName, window_seconds: int) -> str:
    """p95 time to first audio (seconds) of the tier over the window, for a Value trigger.

    A percentile is per-request, not additive, so it is a Value metric: twice the target doubles the
    replicas. Without traffic ``histogram_quantile`` yields NaN (0/0 rates), which KEDA cannot use;
    ``>= 0`` drops NaN and ``or vector(0)`` turns "no traffic" into "no latency problem".
    """
    return f"({_time_to_first_audio_p95(namespace, name, tier, window_seconds)}) or vector(0)"


def _time_to_first_audio_p95(namespace: str, name: str, tier: TierName, window_seconds: int) -> str:
    selector = _selector(SERVER_NAMESPACE_LABEL, SERVER_POD_LABEL, namespace, name, (tier,))
    return (
        f"histogram_quantile(0.95, sum by (le) (rate({TTFA_METRIC}_bucket{{{selector}}}"
        f"[{duration(window_seconds)}]))) >= 0"
    )


# ---- the same signals as the status shows them (read by observe.py, never by KEDA) ----------------------


def queue_depth_now_query(namespace: str, name: str, tiers: tuple[TierName, ...]) -> str:
    """Requests queued over the tiers' pods at the instant of evaluation (the trigger holds it for a
    window; status shows what is queued now). Empty when Prometheus has no series of those pods."""
    selector = _selector(SERVER_NAMESPACE_LABEL, SERVER_POD_LABEL, namespace, name, tiers)
    return f"sum({QUEUE_DEPTH_METRIC}{{{selector}}})"


def gpu_utilization_mean_query(namespace: str, name: str, labels: DCGMLabels) -> str:
    """Mean GPU utilization (%) of the GPU tier's pods at the latest DCGM sample: per pod over its GPUs,
    then over the pods (the trigger's sum divided by the pod count, without its window)."""
    selector = _selector(labels.namespace, labels.pod, namespace, name, ("gpu",))
    return f"avg(avg by ({labels.namespace}, {labels.pod}) ({GPU_UTIL_METRIC}{{{selector}}}))"


def time_to_first_audio_p95_observed_query(
    namespace: str, name: str, tier: TierName, window_seconds: int
) -> str:
    """The trigger's p95 without ``or vector(0)``: empty when nothing was served in the window, so the
    status shows no latency rather than a latency of 0."""
    return _time_to_first_audio_p95(namespace, name, tier, window_seconds)


def prometheus_trigger(
    name: str,
    server_address: str,
    query: str,
    threshold: float,
    metric_type: str,
    *,
    fail_on_empty: bool = False,
    activation_threshold: float | None = None,
) -> dict[str, Any]:
    """A KEDA prometheus trigger.

    ``useCachedMetrics``: the HPA asks KEDA every 15 s per metric; the cache answers from the value
    fetched every pollingInterval instead of querying Prometheus again. ``fail_on_empty`` sets
    ``ignoreNullValues: "false"``: an empty result is an error (and errors trigger the fallback) instead
    of a silent 0 that would let the HPA scale down, which is what a missing DCGM pod attribution looks
    like. KEDA's default (true) is left out. ``activationThreshold`` only matters when the tier may sit
    at 0 replicas (KEDA ignores it otherwise), so callers pass it only then.
    """
    metadata = {"serverAddress": server_address, "query": query, "threshold": number(threshold)}
    if fail_on_empty:
        metadata["ignoreNullValues"] = "false"
    if activation_threshold is not None:
        metadata["activationThreshold"] = number(activation_threshold)
    return {
        "type": "prometheus",
        "name": name,
        "metricType": metric_type,
        "useCachedMetrics": True,
        "metadata": metadata,
    }


def cron_trigger(schedule: Schedule) -> dict[str, Any]:
    """A KEDA cron trigger: ``desiredReplicas`` inside [start, end) in the time zone, 0 outside.

    KEDA's cron scaler reports a metric of desiredReplicas with target 1, i.e. "at least this many"
    while the window is open; other triggers may still ask for more. Windows crossing midnight need
    nothing special: KEDA compares the latest start with the latest end.
    """
    if schedule.min_replicas is None:
        raise ValueError(f"schedule {schedule.name} has no minReplicas; its bounds are the operator's")
    return {
        "type": "cron",
        "name": SCHEDULE_PREFIX + schedule.name,
        "metadata": {
            "timezone": schedule.timezone,
            "start": schedule.start,
            "end": schedule.end,
            "desiredReplicas": str(schedule.min_replicas),
        },
    }


# ---- cron: validation and "is this window open now" (for validation, tests and status) ---------------

_FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12),
           ("day of week", 0, 7))  # fmt: skip


@dataclass(frozen=True)
class Cron:
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    any_day: bool  # day of month is '*'
    any_weekday: bool  # day of week is '*'

    def matches(self, t: datetime) -> bool:
        if t.minute not in self.minutes or t.hour not in self.hours or t.month not in self.months:
            return False
        day_ok, weekday_ok = t.day in self.days, (t.isoweekday() % 7) in self.weekdays
        # Standard cron (and robfig/cron, which KEDA uses): when both day fields are restricted, a
        # time matches if either does.
        if self.any_day or self.any_weekday:
            return day_ok and weekday_ok
        return day_ok or weekday_ok


def _parse_field(text: str, what: str, low: int, high: int) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        span, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if step < 1:
            raise ValueError(f"cron {what}: step must be at least 1 in {part!r}")
        if span == "*":
            first, last = low, high
        elif "-" in span:
            a, _, b = span.partition("-")
            first, last = int(a), int(b)
        else:
            first = int(span)
            last = high if step_text else first
        if not low <= first <= last <= high:
            raise ValueError(f"cron {what}: {part!r} is outside {low}-{high}")
        values.update(range(first, last + 1, step))
    return frozenset(values)


def parse_cron(expr: str) -> Cron:
    """Parse a 5-field cron expression (digits, '*', ',', '-', '/'); ValueError says what is wrong."""
    parts = expr.split()
    if len(parts) != 5:
        raise ValueError(f"cron {expr!r} needs 5 fields (minute hour day-of-month month day-of-week)")
    try:
        fields = [_parse_field(p, *spec) for p, spec in zip(parts, _FIELDS, strict=True)]
    except ValueError as error:
        if "cron" in str(error):
            raise
        raise ValueError(f"cron {expr!r}: {error}") from error
    return Cron(*fields[:4], frozenset(d % 7 for d in fields[4]), parts[2] == "*", parts[4] == "*")


def _day_matches(cron: Cron, t: datetime) -> bool:
    return cron.matches(t.replace(minute=min(cron.minutes), hour=min(cron.hours)))


def _latest(cron: Cron, now: datetime, horizon: timedelta) -> datetime | None:
    """The latest wall-clock minute at or before `now` that matches, within `horizon` (else None).

    Walks back in local wall-clock time (aware datetimes in one ZoneInfo add and subtract as wall
    clocks), skipping whole days and hours that cannot match, so an 8-day horizon costs little.
    """
    t = now.replace(second=0, microsecond=0)
    stop = t - horizon
    while t > stop:
        if not _day_matches(cron, t):
            t = t.replace(hour=0, minute=0) - timedelta(minutes=1)
        elif t.hour not in cron.hours:
            t = t.replace(minute=0) - timedelta(minutes=1)
        elif t.minute in cron.minutes:
            return t
        else:
            t -= timedelta(minutes=1)
    return None


def _next(cron: Cron, now: datetime, horizon: timedelta) -> datetime | None:
    """The first wall-clock minute strictly after `now` that matches, within `horizon` (else None)."""
    t = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
    stop = t + horizon
    while t < stop:
        if not _day_matches(cron, t):
            t = t.replace(hour=0, minute=0) + timedelta(days=1)
        elif t.hour not in cron.hours:
            t = t.replace(minute=0) + timedelta(hours=1)
        elif t.minute in cron.minutes:
            return t
        else:
            t += timedelta(minutes=1)
    return None


# Weekly windows need a week; a day more covers the window that opened just before the week began.
_HORIZON = timedelta(days=8)


def window_open(schedule: Schedule, now: datetime) -> bool:
    """Is the schedule's window open at `now` (aware datetime)? Same rule as KEDA's cron scaler.

    Open when the latest start (in the schedule's time zone, within 8 days, enough for weekly windows)
    is not older than the latest end: the start minute is inside, the end minute is outside.
    """
    local = now.astimezone(ZoneInfo(schedule.timezone))
    start = _latest(parse_cron(schedule.start), local, _HORIZON)
    if start is None:
        return False
    end = _latest(parse_cron(schedule.end), local, _HORIZON)
    return end is None or start > end


def _instant(wall: datetime) -> datetime:
    """The UTC instant of a local wall-clock minute; a minute inside a spring-forward gap (02:30 on the
    night clocks jump from 02:00 to 03:00) does not exist and becomes the jump itself (03:00)."""
    for _ in range(24 * 60):
        utc = wall.astimezone(timezone.utc)
        if utc.astimezone(wall.tzinfo).replace(tzinfo=None) == wall.replace(tzinfo=None):
            return utc
        wall += timedelta(minutes=1)
    raise ValueError(f"no such local time near {wall}")


def next_edge(schedule: Schedule, now: datetime) -> datetime | None:
    """The next instant (UTC) after `now` at which the window opens or closes, within 8 days.

    Edges are wall-clock minutes in the schedule's time zone; one that falls into a spring-forward gap
    takes effect when the clocks jump, which is also when `window_open` (comparing wall clocks) first
    sees the change.
    """
    local = now.astimezone(ZoneInfo(schedule.timezone))
    edges = [e for e in (_next(parse_cron(schedule.start), local, _HORIZON),
                         _next(parse_cron(schedule.end), local, _HORIZON)) if e is not None]  # fmt: skip
    return min((_instant(e) for e in edges), default=None)


def describe(schedule: Schedule) -> str:
    """'night (01:00-07:00 Asia/Shanghai)' for daily windows, else the cron expressions."""

    def clock(expr: str) -> str | None:
        minute, hour, *rest = expr.split()
        if rest == ["*", "*", "*"] and minute.isdigit() and hour.isdigit():
            return f"{int(hour):02d}:{int(minute):02d}"
        return None

    start, end = clock(schedule.start), clock(schedule.end)
    span = f"{start}-{end}" if start and end else f"'{schedule.start}' to '{schedule.end}'"
    return f"{schedule.name} ({span} {schedule.timezone})"
