"""Pre-warm forecast: the pure seasonal forecast on tables, then end to end against a real Prometheus
holding 8 days of backfilled queue-depth history (promtool tsdb create-blocks-from openmetrics) with a
daily peak at 08:00 Asia/Shanghai, read through prometheus-api-client with the operator's own query."""

from __future__ import annotations

import random
import subprocess
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import requests
from tts_operator.forecast import JITTER_MINUTES, fetch_history, forecast, history_query, replicas_for
from tts_operator.policy import Observation, decide
from tts_operator.spec import TTSServiceSpec

from tests.operator.conftest import tts, wait_for
from tests.operator.test_autoscaling import scaled_objects
from tests.promstack import running_prometheus

SHANGHAI = ZoneInfo("Asia/Shanghai")
DAY = 24 * 3600


def daily_peak(
    now: datetime, days: int, peak: float, skip_days: tuple[int, ...] = (),
    local_start: tuple[int, int] = (8, 0), minutes: int = 40,
) -> list[tuple[float, float]]:  # fmt: skip
    """One sample a minute for `days` days before `now`: `peak` for `minutes` from 08:00 Shanghai, else 0."""
    out = []
    start = int(now.timestamp()) // 60 * 60 - days * DAY
    for ts in range(start, int(now.timestamp()), 60):
        local = datetime.fromtimestamp(ts, SHANGHAI)
        opened = local.replace(hour=local_start[0], minute=local_start[1], second=0)
        back = (now.date() - local.date()).days
        inside = opened <= local < opened + timedelta(minutes=minutes) and back not in skip_days
        out.append((float(ts), peak if inside else 0.0))
    return out


def at_shanghai(day: str, hhmm: str) -> datetime:
    return datetime.fromisoformat(f"{day}T{hhmm}").replace(tzinfo=SHANGHAI)


def test_daily_peak_is_forecast_within_the_hour():
    now = at_shanghai("2026-11-20", "07:10")
    fc = forecast(daily_peak(now, 7, 40.0), now, lookback_days=7, horizon_minutes=60)
    assert fc.peak == 40.0 and fc.days == 7
    assert fc.peak_at is not None
    # The jitter makes the forecast peak start up to JITTER_MINUTES early: ahead of it, not after.
    assert at_shanghai("2026-11-20", "08:00") - timedelta(minutes=JITTER_MINUTES) == fc.peak_at


@pytest.mark.parametrize(
    ("hhmm", "horizon", "peak"),
    [("14:00", 60, 0.0), ("06:55", 60, 40.0), ("06:54", 60, 0.0), ("07:25", 30, 40.0), ("07:24", 30, 0.0),
     ("08:50", 60, 0.0), ("08:20", 60, 40.0)],
)
def test_horizon(hhmm, horizon, peak):
    now = at_shanghai("2026-11-20", hhmm)
    assert forecast(daily_peak(now, 7, 40.0), now, 7, horizon).peak == peak


@pytest.mark.parametrize(
    ("skip", "forecast_peak"),
    [
        ((), 40.0),
        ((1, 2), 40.0),  # a weekend without the peak: 5 of 7 days still make it recurring
        ((1, 2, 3), 40.0),  # 4 of 7: the upper median
        ((1, 2, 3, 4), 0.0),  # 3 of 7: not recurring
        ((2, 3, 4, 5, 6, 7), 0.0),  # only yesterday: a one-off
    ],
)
def test_only_recurring_peaks_count(skip, forecast_peak):
    now = at_shanghai("2026-11-20", "07:30")
    assert forecast(daily_peak(now, 7, 40.0, skip_days=skip), now, 7, 60).peak == forecast_peak


def test_peak_that_wanders_a_few_minutes_is_still_one_peak():
    now = at_shanghai("2026-11-20", "07:10")
    rng = random.Random(7)
    samples = []
    for back in range(1, 8):
        minute = rng.randint(-4, 4)
        day = daily_peak(now, 7, 40.0, skip_days=tuple(d for d in range(1, 8) if d != back),
                         local_start=(8 if minute >= 0 else 7, minute % 60), minutes=10)  # fmt: skip
        samples.extend(day)
    assert forecast(samples, now, 7, 60).peak == 40.0


def test_too_little_history_means_no_forecast():
    now = at_shanghai("2026-11-20", "07:10")
    fc = forecast(daily_peak(now, 1, 40.0), now, 7, 60)
    assert fc.peak is None and fc.peak_at is None
    assert fc.message == "1 day(s) of queue history in the last 7; need 2"


def test_nan_samples_are_ignored_and_replicas_round_up():
    now = at_shanghai("2026-11-20", "07:10")
    samples = [*daily_peak(now, 3, 17.0), (now.timestamp() - DAY + 50 * 60, float("nan"))]
    assert forecast(samples, now, 3, 60).peak == 17.0
    assert (replicas_for(17.0, 8), replicas_for(16.0, 8), replicas_for(0.0, 8)) == (3, 2, 0)


# ---- end to end: real Prometheus with backfilled history ----------------------------------------------

NAMESPACE, NAME = "tenant-a", "fc"
SERIES = [  # (namespace, pod, share of the peak): both tiers of ours, and two that must not be counted
    (NAMESPACE, "fc-gpu-7d9f8c6b5-x2k4p", 30.0),
    (NAMESPACE, "fc-cpu-5c7d9b8f4-abcde", 10.0),
    (NAMESPACE, "fc2-gpu-7d9f8c6b5-zzzzz", 500.0),  # another service whose name starts with ours
    ("tenant-b", "fc-gpu-7d9f8c6b5-x2k4p", 500.0),  # same name, another namespace
]


def openmetrics(end: datetime, days: int) -> str:
    lines = ["# TYPE tts_queue_depth gauge"]
    for namespace, pod, share in SERIES:
        for ts, value in daily_peak(end, days, share, skip_days=(3,)):
            lines.append(f'tts_queue_depth{{namespace="{namespace}",pod="{pod}"}} {value:g} {ts:.0f}')
    return "\n".join(lines) + "\n# EOF\n"


def backfill(root: Path, text: str) -> None:
    """Write OpenMetrics `text` as TSDB blocks into root/data, where running_prometheus keeps its TSDB."""
    source = root / "history.om"
    source.write_text(text)
    subprocess.run(["promtool", "tsdb", "create-blocks-from", "openmetrics", "-q", str(source),
                    str(root / "data")], check=True, capture_output=True, timeout=300)  # fmt: skip


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, datetime]]:
    """A real Prometheus whose TSDB holds 8 days of history up to the present minute."""
    root = tmp_path_factory.mktemp("prom-history")
    end = datetime.now(timezone.utc).replace(second=0, microsecond=0)
    backfill(root, openmetrics(end, 8))
    with running_prometheus(root, [], timeout=120) as prom:
        yield prom.url, end


def latest(end: datetime, hhmm: str) -> datetime:
    """The latest `hhmm` Shanghai time at least an hour before `end` (so the horizon is history too)."""
    hour, minute = map(int, hhmm.split(":"))
    local = (end - timedelta(hours=1)).astimezone(SHANGHAI)
    candidate = local.replace(hour=hour, minute=minute, second=0, microsecond=0)
    return candidate if candidate <= local else candidate - timedelta(days=1)


def spec(prewarm: bool) -> TTSServiceSpec:
    return TTSServiceSpec.model_validate({
        "engine": "baker", "model": {"source": "builtin", "id": "baker"},
        "tiers": {"gpu": {"maxReplicas": 8}, "cpu": {"maxReplicas": 4}},
        "autoscaling": {"enabled": True, "queueDepthTarget": 8, "warmFloor": {"gpu": 0, "cpu": 1},
                        "prewarm": {"enabled": prewarm}},
    })  # fmt: skip


def read_forecast(url: str, now: datetime, spec_: TTSServiceSpec):
    query = history_query(NAMESPACE, NAME, spec_.autoscaling.queue_depth_window_seconds)
    samples = fetch_history(url, query, now, spec_.autoscaling.prewarm.lookback_days)
    prewarm = spec_.autoscaling.prewarm
    return forecast(samples, now, prewarm.lookback_days, prewarm.horizon_minutes)


def test_forecast_from_prometheus_raises_the_floor_before_the_peak_only_when_enabled(history):
    url, end = history
    now = latest(end, "07:10")
    fc = read_forecast(url, now, spec(False))
    # Our two pods only (30 + 10), not the other service or namespace; 6 of 7 days had the peak.
    assert fc.peak == 40.0 and fc.days == 7
    assert fc.peak_at is not None
    assert now < fc.peak_at <= now.replace(hour=8, minute=0) and fc.peak_at - now <= timedelta(minutes=60)

    shown = decide(spec(False), now, Observation(forecast=fc))
    assert shown.bounds() == {"gpu": (0, 8), "cpu": (1, 4)}
    assert shown.prewarm is not None and shown.prewarm["acting"] is False
    assert shown.prewarm["recommendedFloor"] == {"gpu": 5, "cpu": 0}  # ceil(40 / 8)

    acting = decide(spec(True), now, Observation(forecast=fc))
    assert acting.bounds() == {"gpu": (5, 8), "cpu": (1, 4)}
    assert acting.prewarm is not None and acting.prewarm["acting"] is True
    assert [(d["tier"], d["action"]) for d in acting.decisions] == [("gpu", "floor 0 -> 5")]


def test_no_peak_forecast_in_the_afternoon(history):
    url, end = history
    now = latest(end, "14:00")
    fc = read_forecast(url, now, spec(True))
    assert fc.peak == 0.0 and fc.days == 7
    plan = decide(spec(True), now, Observation(forecast=fc))
    assert plan.bounds() == {"gpu": (0, 8), "cpu": (1, 4)} and plan.decisions == ()
    assert plan.prewarm is not None and plan.prewarm["acting"] is False


def test_unreachable_prometheus_is_an_error_the_caller_sees():
    with pytest.raises(requests.ConnectionError):
        fetch_history("http://127.0.0.1:9", "up", datetime.now(timezone.utc), 1)


# ---- the operator: forecast in status, acting once enabled --------------------------------------------


def test_operator_shows_the_forecast_and_prewarms_when_enabled(kube, operator, tmp_path):
    """A peak recurs every day at (now + 30 min): the operator reads it from a real Prometheus (the
    TTSService's prometheusAddress), shows it in status.prewarm, and raises the GPU floor once enabled."""
    end = datetime.now(timezone.utc).replace(second=0, microsecond=0)
    peak_starts = [end + timedelta(minutes=30) - timedelta(days=d) for d in range(1, 8)]
    lines = ["# TYPE tts_queue_depth gauge"]
    for pod, share in (("pw-gpu-7d9f8c6b5-x2k4p", 30.0), ("pw-cpu-5c7d9b8f4-abcde", 10.0)):
        for ts in range(int((end - timedelta(days=8)).timestamp()), int(end.timestamp()), 60):
            at = datetime.fromtimestamp(ts, timezone.utc)
            value = share if any(s <= at < s + timedelta(minutes=20) for s in peak_starts) else 0.0
            lines.append(f'tts_queue_depth{{namespace="{kube.namespace}",pod="{pod}"}} {value:g} {ts}')
    backfill(tmp_path, "\n".join(lines) + "\n# EOF\n")
    with running_prometheus(tmp_path, [], timeout=120) as prom:
        autoscaling = {"enabled": True, "prometheusAddress": prom.url, "queueDepthTarget": 8,
                       "warmFloor": {"gpu": 0, "cpu": 1}}  # fmt: skip
        tiers = {"gpu": {"maxReplicas": 8}, "cpu": {"maxReplicas": 4}}
        kube.apply(tts("pw", tiers=tiers, autoscaling=autoscaling))

        def prewarm() -> dict:
            return kube.get("tts", "pw").get("status", {}).get("prewarm") or {}

        shown = wait_for(lambda: (p := prewarm()).get("forecastQueueDepth") is not None and p, timeout=60,
                         interval=0.5, what="forecast in status")  # fmt: skip
        assert shown["forecastQueueDepth"] == 40.0 and shown["acting"] is False
        assert shown["recommendedFloor"] == {"gpu": 5, "cpu": 0}
        assert shown["message"].startswith("shown only")
        peak_at = datetime.fromisoformat(shown["peakAt"].replace("Z", "+00:00"))
        assert end < peak_at <= end + timedelta(minutes=30)
        assert scaled_objects(kube, "pw")["pw-gpu"]["spec"]["minReplicaCount"] == 0

        kube.apply(tts("pw", tiers=tiers, autoscaling={**autoscaling, "prewarm": {"enabled": True}}))
        wait_for(lambda: scaled_objects(kube, "pw")["pw-gpu"]["spec"]["minReplicaCount"] == 5, timeout=60,
                 interval=0.5, what="GPU floor raised ahead of the peak")  # fmt: skip
        wait_for(lambda: prewarm().get("acting") is True, timeout=10, what="status.prewarm.acting")
        decisions = kube.get("tts", "pw")["status"]["decisions"]
        assert (decisions[-1]["tier"], decisions[-1]["action"]) == ("gpu", "floor 0 -> 5")
        assert decisions[-1]["reason"].startswith("pre-warm: queue depth 40 forecast at")
