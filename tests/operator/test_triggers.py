"""Table-driven tests of PromQL composition, KEDA trigger blocks and cron windows (pure, no cluster)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from pydantic import ValidationError
from tts_operator import triggers as t
from tts_operator.spec import DCGMLabels, Schedule, TTSServiceSpec


@pytest.mark.parametrize(
    ("tiers", "window", "expected"),
    [
        (("gpu",), 120,
         'min_over_time(sum(tts_queue_depth{namespace="team-a",pod=~"voice-gpu-[a-z0-9]+-[a-z0-9]+"})[2m:15s])'),
        (("cpu",), 45,
         'min_over_time(sum(tts_queue_depth{namespace="team-a",pod=~"voice-cpu-[a-z0-9]+-[a-z0-9]+"})[45s:15s])'),
        (("gpu", "cpu"), 300,
         'min_over_time(sum(tts_queue_depth{namespace="team-a",pod=~"voice-(gpu|cpu)-[a-z0-9]+-[a-z0-9]+"})'
         "[5m:15s])"),
    ],
)  # fmt: skip
def test_queue_depth_query(tiers, window, expected):
    assert t.queue_depth_query("team-a", "voice", tiers, window) == expected


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        (DCGMLabels(),
         "sum(avg by (exported_namespace, exported_pod) (avg_over_time(DCGM_FI_DEV_GPU_UTIL{"
         'exported_namespace="team-a",exported_pod=~"voice-gpu-[a-z0-9]+-[a-z0-9]+"}[3m])))'),
        (DCGMLabels(pod="pod", namespace="namespace"),
         "sum(avg by (namespace, pod) (avg_over_time(DCGM_FI_DEV_GPU_UTIL{"
         'namespace="team-a",pod=~"voice-gpu-[a-z0-9]+-[a-z0-9]+"}[3m])))'),
    ],
)  # fmt: skip
def test_gpu_utilization_query_uses_configured_labels(labels, expected):
    assert t.gpu_utilization_query("team-a", "voice", labels, 180) == expected


def test_time_to_first_audio_query_guards_nan():
    query = t.time_to_first_audio_p95_query("team-a", "voice", "cpu", 120)
    assert query == (
        "(histogram_quantile(0.95, sum by (le) (rate(tts_time_to_first_audio_seconds_bucket{"
        'namespace="team-a",pod=~"voice-cpu-[a-z0-9]+-[a-z0-9]+"}[2m]))) >= 0) or vector(0)'
    )


@pytest.mark.parametrize("bad", ['a"}or{x="', "Team", "", "a b", "ns\n"])
def test_queries_refuse_names_that_are_not_dns_labels(bad):
    with pytest.raises(ValueError, match="not a DNS label"):
        t.queue_depth_query(bad, "voice", ("gpu",), 60)
    with pytest.raises(ValueError, match="not a DNS label"):
        t.gpu_utilization_query("team-a", bad, DCGMLabels(), 60)


@pytest.mark.parametrize(
    ("pod", "matches"),
    [
        ("voice-gpu-7d9f8b6c5-x2x4z", True),
        ("voice-gpu-abc-12345", True),
        ("voice-gpu-extra-7d9f8b6c5-x2x4z", False),  # Deployment "voice-gpu-extra": not ours
        ("voice-cpu-7d9f8b6c5-x2x4z", False),
        ("other-voice-gpu-7d9f8b6c5-x2x4z", False),
        ("voice-gpu-7d9f8b6c5", False),
    ],
)
def test_pod_regex_matches_only_the_tier_deployment(pod, matches):
    import re

    # PromQL regex matchers are fully anchored, as fullmatch is.
    assert bool(re.fullmatch(t.pod_regex("voice", ("gpu",)), pod)) is matches


@pytest.mark.parametrize(
    ("kwargs", "metadata"),
    [
        ({}, {"threshold": "20"}),
        ({"fail_on_empty": True}, {"threshold": "20", "ignoreNullValues": "false"}),
        ({"activation_threshold": 0}, {"threshold": "20", "activationThreshold": "0"}),
    ],
)
def test_prometheus_trigger_block(kwargs, metadata):
    block = t.prometheus_trigger("queue-depth", "http://prom:9090", "up", 20, "AverageValue", **kwargs)
    assert block == {
        "type": "prometheus",
        "name": "queue-depth",
        "metricType": "AverageValue",
        "useCachedMetrics": True,
        "metadata": {"serverAddress": "http://prom:9090", "query": "up", **metadata},
    }


@pytest.mark.parametrize(("value", "text"), [(75, "75"), (1.5, "1.5"), (0.25, "0.25"), (20.0, "20")])
def test_threshold_numbers(value, text):
    assert t.number(value) == text


def test_cron_trigger_carries_time_zone():
    schedule = Schedule(name="morning", start="50 7 * * *", end="0 9 * * *", timezone="Asia/Shanghai",
                        min_replicas=5)  # fmt: skip
    assert t.cron_trigger(schedule) == {
        "type": "cron",
        "name": "schedule-morning",
        "metadata": {"timezone": "Asia/Shanghai", "start": "50 7 * * *", "end": "0 9 * * *",
                     "desiredReplicas": "5"},
    }  # fmt: skip


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


# 2026-11-20 is a Friday. Asia/Shanghai is UTC+8 all year; Europe/Berlin is UTC+1 in November.
WINDOWS = [
    # (start, end, zone, instant in UTC, open?)
    ("50 7 * * *", "0 9 * * *", "Asia/Shanghai", "2026-11-19T23:50", True),  # 07:50 local: start is in
    ("50 7 * * *", "0 9 * * *", "Asia/Shanghai", "2026-11-19T23:49", False),
    ("50 7 * * *", "0 9 * * *", "Asia/Shanghai", "2026-11-20T00:59", True),
    ("50 7 * * *", "0 9 * * *", "Asia/Shanghai", "2026-11-20T01:00", False),  # 09:00 local: end is out
    ("50 7 * * *", "0 9 * * *", "UTC", "2026-11-19T23:50", False),  # same instant, other zone
    ("50 7 * * *", "0 9 * * *", "UTC", "2026-11-20T08:00", True),
    # crossing midnight: 22:00-06:00 local
    ("0 22 * * *", "0 6 * * *", "Europe/Berlin", "2026-11-20T22:30", True),  # 23:30 local
    ("0 22 * * *", "0 6 * * *", "Europe/Berlin", "2026-11-20T23:30", True),  # 00:30 local, next day
    ("0 22 * * *", "0 6 * * *", "Europe/Berlin", "2026-11-21T04:59", True),  # 05:59 local
    ("0 22 * * *", "0 6 * * *", "Europe/Berlin", "2026-11-21T05:00", False),  # 06:00 local
    ("0 22 * * *", "0 6 * * *", "Europe/Berlin", "2026-11-20T12:00", False),
    # Friday-night window: starts Friday 22:00, ends Saturday 06:00 (local)
    ("0 22 * * 5", "0 6 * * 6", "Asia/Shanghai", "2026-11-20T16:00", True),  # Sat 00:00 local
    ("0 22 * * 5", "0 6 * * 6", "Asia/Shanghai", "2026-11-19T16:00", False),  # Fri 00:00 local
    ("0 22 * * 5", "0 6 * * 6", "Asia/Shanghai", "2026-11-21T16:00", False),  # Sun 00:00 local
    # weekday windows: 1-5 is Monday-Friday; 2026-11-22 is a Sunday
    ("0 8 * * 1-5", "0 19 * * 1-5", "UTC", "2026-11-20T12:00", True),
    ("0 8 * * 1-5", "0 19 * * 1-5", "UTC", "2026-11-22T12:00", False),
    # the low window that lowers the floor overnight, 01:00-07:00 local
    ("0 1 * * *", "0 7 * * *", "Asia/Shanghai", "2026-11-20T17:30", True),  # 01:30 local
    ("0 1 * * *", "0 7 * * *", "Asia/Shanghai", "2026-11-20T23:30", False),  # 07:30 local
]


@pytest.mark.parametrize(("start", "end", "zone", "at", "is_open"), WINDOWS)
def test_window_open(start, end, zone, at, is_open):
    schedule = Schedule(name="w", start=start, end=end, timezone=zone, min_replicas=1)
    assert t.window_open(schedule, utc(at)) is is_open


@pytest.mark.parametrize(
    ("expr", "minute", "hour", "weekday"),
    [
        ("*/15 * * * *", {0, 15, 30, 45}, set(range(24)), set(range(7))),
        ("0 8-18/2 * * 1-5", {0}, {8, 10, 12, 14, 16, 18}, {1, 2, 3, 4, 5}),
        ("5,35 0 * * 7", {5, 35}, {0}, {0}),  # 7 is Sunday, as 0
        ("30 23 * * 0,6", {30}, {23}, {0, 6}),
        ("10/20 * * * *", {10, 30, 50}, set(range(24)), set(range(7))),
    ],
)
def test_parse_cron(expr, minute, hour, weekday):
    cron = t.parse_cron(expr)
    assert (set(cron.minutes), set(cron.hours), set(cron.weekdays)) == (minute, hour, weekday)


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("0 8 * *", "needs 5 fields"),
        ("60 8 * * *", "minute: '60' is outside 0-59"),
        ("0 24 * * *", "hour: '24' is outside 0-23"),
        ("0 8 0 * *", "day of month: '0' is outside 1-31"),
        ("0 8 * 13 *", "month: '13' is outside 1-12"),
        ("0 8 * * 8", "day of week: '8' is outside 0-7"),
        ("0 9-8 * * *", "outside"),
        ("*/0 * * * *", "step must be at least 1"),
    ],
)
def test_parse_cron_rejects(expr, message):
    with pytest.raises(ValueError, match=message):
        t.parse_cron(expr)


@pytest.mark.parametrize(
    ("schedule", "message"),
    [
        ({"start": "0 8 * * *", "end": "0 8 * * *"}, "start and end must differ"),
        ({"start": "0 8 * * *", "end": "0 9 * * *", "timezone": "Mars/Olympus"}, "unknown IANA time zone"),
        ({"start": "0 25 * * *", "end": "0 9 * * *"}, "outside 0-23"),
        ({"start": "@daily", "end": "0 9 * * *"}, "String should match pattern"),
        ({"start": "0 8 * * *", "end": "0 9 * * *", "minReplicas": 0}, "greater than or equal to 1"),
    ],
)
def test_schedule_validation(schedule, message):
    with pytest.raises(ValidationError, match=message):
        Schedule.model_validate({"name": "w", **schedule})


@pytest.mark.parametrize(
    ("tiers", "schedule_tier", "replicas", "ok"),
    [
        ({"gpu": {"maxReplicas": 6}}, "gpu", 5, True),
        ({"gpu": {"maxReplicas": 4}}, "gpu", 5, False),
        ({"gpu": {}}, "cpu", 1, False),  # the window's tier does not exist
        ({"gpu": {}, "cpu": {"maxReplicas": 3}}, "cpu", 3, True),
    ],
)
def test_schedules_must_fit_their_tier(tiers, schedule_tier, replicas, ok):
    body = {
        "engine": "baker", "model": {"source": "builtin", "id": "x"}, "tiers": tiers,
        "autoscaling": {"enabled": True, "schedules": [
            {"name": "w", "start": "0 8 * * *", "end": "0 9 * * *", "tier": schedule_tier,
             "minReplicas": replicas}]},
    }  # fmt: skip
    if ok:
        TTSServiceSpec.model_validate(body)
    else:
        with pytest.raises(ValidationError, match="needs its tier"):
            TTSServiceSpec.model_validate(body)
