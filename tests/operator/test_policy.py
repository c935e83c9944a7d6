"""Tables for the operator's scaling policy (policy.decide): schedule bounds in several time zones and
across midnight and a DST change, overlapping windows, ceiling below floor, CPU fallback with its
delay, no CPU tier, pre-warm shown only vs acting. Pure: every `now` is given."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from tts_operator import triggers
from tts_operator.forecast import Forecast
from tts_operator.policy import Observation, decide
from tts_operator.spec import Schedule, TTSServiceSpec

TIERS = {"gpu": {"maxReplicas": 4}, "cpu": {"maxReplicas": 6}}


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


def make_spec(tiers: dict | None = None, **autoscaling) -> TTSServiceSpec:
    return TTSServiceSpec.model_validate({
        "engine": "baker", "model": {"source": "builtin", "id": "baker"},
        "tiers": tiers if tiers is not None else TIERS,
        "autoscaling": {"enabled": True, **autoscaling},
    })  # fmt: skip


def window(name: str, start: str, end: str, zone: str = "UTC", tier: str = "gpu", **bounds) -> dict:
    return {"name": name, "start": start, "end": end, "timezone": zone, "tier": tier, **bounds}


NIGHT_SHANGHAI = window("night", "0 1 * * *", "0 7 * * *", "Asia/Shanghai", warmFloor=0)  # 17:00-23:00 UTC
CAP_OVER_MIDNIGHT = window("cap", "0 22 * * *", "0 6 * * *", maxReplicas=2)
BERLIN_NIGHT = window("night", "0 1 * * *", "0 7 * * *", "Europe/Berlin", warmFloor=0)


# (schedules, now, expected bounds per tier (floor, ceiling))
BOUNDS = [
    ("no window", [], "2026-11-20T12:00", {"gpu": (2, 4), "cpu": (1, 6)}),
    ("Shanghai night, 01:30 local", [NIGHT_SHANGHAI], "2026-11-20T17:30", {"gpu": (0, 4), "cpu": (1, 6)}),
    ("Shanghai night, start minute is inside", [NIGHT_SHANGHAI], "2026-11-20T17:00", {"gpu": (0, 4)}),
    ("Shanghai night, 07:00 local: end minute is outside", [NIGHT_SHANGHAI], "2026-11-20T23:00",
     {"gpu": (2, 4)}),
    ("Shanghai night, 00:59 local", [NIGHT_SHANGHAI], "2026-11-20T16:59", {"gpu": (2, 4)}),
    ("over midnight, before it", [CAP_OVER_MIDNIGHT], "2026-11-20T23:10", {"gpu": (2, 2)}),
    ("over midnight, after it", [CAP_OVER_MIDNIGHT], "2026-11-21T05:59", {"gpu": (2, 2)}),
    ("over midnight, closed", [CAP_OVER_MIDNIGHT], "2026-11-21T06:00", {"gpu": (2, 4)}),
    ("over midnight, not yet", [CAP_OVER_MIDNIGHT], "2026-11-20T21:59", {"gpu": (2, 4)}),
    ("window of the other tier", [window("c", "0 0 * * *", "0 23 * * *", tier="cpu", warmFloor=3)],
     "2026-11-20T12:00", {"gpu": (2, 4), "cpu": (3, 6)}),
    ("overlap: lowest lowered floor", [window("a", "0 0 * * *", "0 23 * * *", warmFloor=1),
                                       window("b", "0 6 * * *", "0 18 * * *", warmFloor=0)],
     "2026-11-20T12:00", {"gpu": (0, 4)}),
    ("overlap: a raise beats a lowering", [window("a", "0 0 * * *", "0 23 * * *", warmFloor=3),
                                           window("b", "0 6 * * *", "0 18 * * *", warmFloor=0)],
     "2026-11-20T12:00", {"gpu": (3, 4)}),
    ("overlap: lowest ceiling", [window("a", "0 0 * * *", "0 23 * * *", maxReplicas=3),
                                 window("b", "0 6 * * *", "0 18 * * *", maxReplicas=2)],
     "2026-11-20T12:00", {"gpu": (2, 2)}),
    ("ceiling below the floor is raised to it", [window("a", "0 0 * * *", "0 23 * * *", maxReplicas=1)],
     "2026-11-20T12:00", {"gpu": (2, 2)}),
    ("an open minReplicas window beats a lower ceiling",
     [window("a", "0 0 * * *", "0 23 * * *", maxReplicas=2), window("b", "0 6 * * *", "0 18 * * *",
                                                                    minReplicas=3)],
     "2026-11-20T12:00", {"gpu": (2, 3)}),
    ("floor and ceiling in one window", [window("a", "0 0 * * *", "0 23 * * *", warmFloor=1, maxReplicas=1)],
     "2026-11-20T12:00", {"gpu": (1, 1)}),
    ("weekday window on a Saturday", [window("wk", "0 8 * * 1-5", "0 18 * * 1-5", warmFloor=4)],
     "2026-11-21T12:00", {"gpu": (2, 4)}),
    ("weekday window on a Friday", [window("wk", "0 8 * * 1-5", "0 18 * * 1-5", warmFloor=4)],
     "2026-11-20T12:00", {"gpu": (4, 4)}),
    # 2026-03-29: Berlin jumps from 02:00 CET (+1) to 03:00 CEST (+2).
    ("DST night, 06:30 CEST", [BERLIN_NIGHT], "2026-03-29T04:30", {"gpu": (0, 4)}),
    ("DST night, 07:00 CEST", [BERLIN_NIGHT], "2026-03-29T05:00", {"gpu": (2, 4)}),
    ("DST night, 06:30 CET the day before", [BERLIN_NIGHT], "2026-03-28T05:30", {"gpu": (0, 4)}),
]  # fmt: skip


@pytest.mark.parametrize(("case", "schedules", "now", "expected"), BOUNDS, ids=[b[0] for b in BOUNDS])
def test_schedule_bounds(case, schedules, now, expected):
    plan = decide(make_spec(schedules=schedules), utc(now), Observation())
    assert {t: b for t, b in plan.bounds().items() if t in expected} == expected, case


def test_lowered_floor_is_a_decision_with_the_window_in_words():
    plan = decide(make_spec(schedules=[NIGHT_SHANGHAI]), utc("2026-11-20T17:30"), Observation())
    assert plan.decisions == ({
        "time": "2026-11-20T17:30:00Z", "tier": "gpu", "source": "operator", "action": "floor 2 -> 0",
        "reason": "window night (01:00-07:00 Asia/Shanghai) lowers the gpu floor",
    },)  # fmt: skip
    # Re-deciding with those bounds in force records nothing new.
    again = decide(make_spec(schedules=[NIGHT_SHANGHAI]), utc("2026-11-20T17:31"),
                   Observation(previous=plan.bounds()))  # fmt: skip
    assert again.decisions == ()
    # The window closes: back to the warm floor, said so.
    closed = decide(make_spec(schedules=[NIGHT_SHANGHAI]), utc("2026-11-20T23:00"),
                    Observation(previous=plan.bounds()))  # fmt: skip
    assert [(d["tier"], d["action"]) for d in closed.decisions] == [("gpu", "floor 0 -> 2")]
    assert "back to the warm floor" in closed.decisions[0]["reason"]


def test_ceiling_raised_to_the_floor_says_why():
    plan = decide(make_spec(schedules=[window("a", "0 0 * * *", "0 23 * * *", maxReplicas=1)]),
                  utc("2026-11-20T12:00"), Observation())  # fmt: skip
    assert plan.decisions[0]["action"] == "ceiling 4 -> 2"
    assert "lowers the gpu ceiling" in plan.decisions[0]["reason"]
    assert "raised to the floor" in plan.decisions[0]["reason"]


@pytest.mark.parametrize(
    ("schedules", "now", "expected"),
    [
        ([NIGHT_SHANGHAI], "2026-11-20T12:00", "2026-11-20T17:00"),  # opens 01:00 Shanghai
        ([NIGHT_SHANGHAI], "2026-11-20T17:30", "2026-11-20T23:00"),  # closes 07:00 Shanghai
        ([NIGHT_SHANGHAI, CAP_OVER_MIDNIGHT], "2026-11-20T17:30", "2026-11-20T22:00"),  # the earlier edge
        ([CAP_OVER_MIDNIGHT], "2026-11-20T23:59:30", "2026-11-21T06:00"),
        ([window("wk", "0 8 * * 1-5", "0 18 * * 1-5", warmFloor=4)], "2026-11-20T19:00", "2026-11-23T08:00"),
        ([BERLIN_NIGHT], "2026-03-28T23:30", "2026-03-29T00:00"),  # 01:00 CET
        ([BERLIN_NIGHT], "2026-03-29T01:00", "2026-03-29T05:00"),  # 07:00 CEST
        # 02:30 does not exist that night: the window opens when the clocks jump (03:00 CEST).
        ([window("gap", "30 2 * * *", "0 5 * * *", "Europe/Berlin", warmFloor=0)], "2026-03-28T23:30",
         "2026-03-29T01:00"),
        ([], "2026-11-20T12:00", None),
    ],
)  # fmt: skip
def test_next_change_is_the_next_window_edge(schedules, now, expected):
    plan = decide(make_spec(schedules=schedules), utc(now), Observation())
    assert plan.next_change == (utc(expected) if expected else None)


@pytest.mark.parametrize(
    ("bounds", "expected"),
    [
        (window("night", "0 1 * * *", "0 7 * * *", "Asia/Shanghai", warmFloor=0),
         "night (01:00-07:00 Asia/Shanghai)"),
        (window("wk", "0 8 * * 1-5", "30 18 * * 1-5", "Europe/Berlin", maxReplicas=2),
         "wk ('0 8 * * 1-5' to '30 18 * * 1-5' Europe/Berlin)"),
    ],
)  # fmt: skip
def test_windows_are_described_in_words(bounds, expected):
    assert triggers.describe(Schedule.model_validate(bounds)) == expected


def test_window_open_agrees_with_the_gap_edge():
    gap = Schedule.model_validate(window("gap", "30 2 * * *", "0 5 * * *", "Europe/Berlin", warmFloor=0))
    assert not triggers.window_open(gap, utc("2026-03-29T00:59"))  # 01:59 CET
    assert triggers.window_open(gap, utc("2026-03-29T01:00"))  # 03:00 CEST


# ---- CPU fallback -------------------------------------------------------------------------------------

T0 = utc("2026-11-20T12:00")


@pytest.mark.parametrize(
    ("case", "tiers", "fallback", "pending", "waited", "cpu_floor"),
    [
        ("delay not over", TIERS, {"afterSeconds": 120}, 2, 119, 1),
        ("delay over: one CPU replica per stuck GPU pod", TIERS, {"afterSeconds": 120}, 2, 120, 3),
        ("bounded by the CPU maximum", {"gpu": {"maxReplicas": 8}, "cpu": {"maxReplicas": 2}}, {}, 3, 600, 2),
        ("disabled", TIERS, {"enabled": False}, 2, 600, 1),
        ("nothing pending", TIERS, {}, 0, 600, 1),
        ("no delay", TIERS, {"afterSeconds": 0}, 1, 0, 2),
    ],
)  # fmt: skip
def test_cpu_fallback(case, tiers, fallback, pending, waited, cpu_floor):
    spec = make_spec(tiers, cpuFallback=fallback)
    seen = Observation(gpu_unschedulable=pending, gpu_unschedulable_since=T0)
    plan = decide(spec, T0 + timedelta(seconds=waited), seen)
    assert plan.tiers["cpu"].min_replicas == cpu_floor, case
    assert plan.bounds()["gpu"] == (2, tiers["gpu"]["maxReplicas"])


def test_fallback_waits_then_acts_then_undoes():
    spec = make_spec(cpuFallback={"afterSeconds": 120})
    stuck = Observation(gpu_unschedulable=2, gpu_unschedulable_since=T0)
    early = decide(spec, T0 + timedelta(seconds=30), stuck)
    assert early.decisions == () and early.next_change == T0 + timedelta(seconds=120)
    acting = decide(spec, T0 + timedelta(seconds=120), stuck)
    assert acting.bounds()["cpu"] == (3, 6)
    (decision,) = acting.decisions
    assert (decision["tier"], decision["action"]) == ("cpu", "floor 1 -> 3")
    assert decision["reason"] == "CPU fallback: 2 gpu pod(s) unschedulable for 120 s (afterSeconds 120)"
    scheduled = decide(spec, T0 + timedelta(seconds=300), Observation(previous=acting.bounds()))
    assert scheduled.bounds()["cpu"] == (1, 6)
    assert [d["action"] for d in scheduled.decisions] == ["floor 3 -> 1"]


def test_no_cpu_tier_no_fallback():
    spec = make_spec({"gpu": {"maxReplicas": 4}})
    plan = decide(spec, T0 + timedelta(hours=1), Observation(gpu_unschedulable=3, gpu_unschedulable_since=T0))
    assert plan.bounds() == {"gpu": (2, 4)} and plan.decisions == () and plan.next_change is None


def test_fallback_raises_the_ceiling_of_a_capped_cpu_tier():
    spec = make_spec(schedules=[window("cap", "0 0 * * *", "0 23 * * *", tier="cpu", maxReplicas=1)],
                     cpuFallback={"afterSeconds": 0})  # fmt: skip
    plan = decide(spec, T0, Observation(gpu_unschedulable=2, gpu_unschedulable_since=T0))
    assert plan.bounds()["cpu"] == (3, 3)


# ---- without KEDA -------------------------------------------------------------------------------------


def test_without_keda_replicas_follow_floor_and_open_min_windows():
    spec = make_spec(schedules=[window("peak", "0 8 * * *", "0 9 * * *", minReplicas=3),
                                window("night", "0 22 * * *", "0 6 * * *", warmFloor=0)])  # fmt: skip
    assert decide(spec, utc("2026-11-20T08:30"), Observation()).tiers["gpu"].replicas == 3
    assert decide(spec, utc("2026-11-20T23:00"), Observation()).tiers["gpu"].replicas == 0
    assert decide(spec, utc("2026-11-20T12:00"), Observation()).tiers["gpu"].replicas == 2


def test_autoscaling_off_plans_nothing():
    spec = TTSServiceSpec.model_validate({"engine": "baker", "model": {"source": "builtin", "id": "b"},
                                          "tiers": TIERS})  # fmt: skip
    assert decide(spec, T0, Observation()).tiers == {}


# ---- pre-warm -----------------------------------------------------------------------------------------

PEAK = Forecast(made_at=T0, peak=40.0, peak_at=T0 + timedelta(minutes=50), days=7, message="7 days")


@pytest.mark.parametrize(
    ("enabled", "gpu_floor", "acting"), [(False, 2, False), (True, 4, True)], ids=["shown only", "acting"]
)
def test_prewarm_shown_only_or_acting(enabled, gpu_floor, acting):
    spec = make_spec(prewarm={"enabled": enabled}, queueDepthTarget=8)
    plan = decide(spec, T0, Observation(forecast=PEAK))
    # 40 queued / 8 per replica = 5 replicas: 4 on the GPU tier (its maximum), 1 on the CPU tier.
    assert plan.prewarm is not None
    assert plan.prewarm["recommendedFloor"] == {"gpu": 4, "cpu": 1}
    assert plan.prewarm["forecastQueueDepth"] == 40.0
    assert plan.prewarm["peakAt"] == "2026-11-20T12:50:00Z"
    assert plan.prewarm["acting"] is acting
    assert plan.bounds() == {"gpu": (gpu_floor, 4), "cpu": (1, 6)}
    if acting:
        assert plan.decisions[0]["reason"].startswith("pre-warm: queue depth 40 forecast at 12:50 UTC")
    else:
        assert plan.decisions == () and plan.prewarm["message"].startswith("shown only")


def test_prewarm_wakes_a_sleeping_gpu_tier_and_no_forecast_changes_nothing():
    night = [window("night", "0 0 * * *", "0 23 * * *", warmFloor=0)]
    spec = make_spec(schedules=night, prewarm={"enabled": True}, queueDepthTarget=20)
    assert decide(spec, T0, Observation(forecast=PEAK)).bounds()["gpu"] == (2, 4)
    quiet = Forecast(made_at=T0, peak=0.0, peak_at=T0 + timedelta(minutes=1), days=7, message="7 days")
    plan = decide(spec, T0, Observation(forecast=quiet))
    assert plan.bounds()["gpu"] == (0, 4) and plan.prewarm is not None and plan.prewarm["acting"] is False
    none = Forecast(made_at=T0, peak=None, peak_at=None, days=1, message="1 day(s) of queue history")
    plan = decide(spec, T0, Observation(forecast=none))
    assert plan.prewarm == {"acting": False, "message": "1 day(s) of queue history", "recommendedFloor": {}}
