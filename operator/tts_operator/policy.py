"""The operator's own scaling policy: what KEDA alone cannot do. Pure: no I/O, `now` is passed in.

KEDA picks replicas between a ScaledObject's minReplicaCount and maxReplicaCount; this module picks
those two numbers per tier, from things KEDA cannot express (it has no per-window min/max: kedacore/
keda#6796, keda-docs#1208) or cannot see (pods the scheduler cannot place, last week's peaks).

Rules, per tier, in this order:

1. Base: floor = ``autoscaling.warmFloor.<tier>``, ceiling = the tier's ``maxReplicas``.
2. Schedule windows of the tier that are open now (each in its own time zone, crossing midnight
   allowed). ``warmFloor`` windows replace the floor: when any open window raises it above the base,
   the highest raising window wins (keeping replicas warm beats saving them); otherwise the lowest
   wins. ``maxReplicas`` windows: the lowest open ceiling wins. ``minReplicas`` windows are KEDA cron
   triggers and need nothing here while KEDA runs.
3. Raises on top, each only upward: pre-warm (when ``prewarm.enabled``) to the replicas KEDA would
   run at the forecast peak, GPU tier first and the rest on the CPU tier; CPU fallback (when
   ``cpuFallback.enabled`` and both tiers exist) adds one CPU replica per GPU pod that has been
   unschedulable for at least ``afterSeconds``.
4. Everything is capped at the tier's ``maxReplicas``, and the ceiling is never below the floor or an
   open ``minReplicas`` window: a raise beats a window's lowered ceiling (serving beats saving).
5. Without KEDA nothing scales between the bounds, so the Deployment runs at ``max(floor, open
   minReplicas windows)`` (the cron windows act through the operator instead).

A decision is recorded whenever a tier's floor or ceiling differs from what was in force before
(``Observation.previous``, read from status), with the rules that made it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from tts_operator import triggers
from tts_operator.forecast import Forecast, replicas_for
from tts_operator.render.common import TierName
from tts_operator.render.scaledobject import TierBounds, warm_floor
from tts_operator.spec import Schedule, TTSServiceSpec

Bounds = tuple[int, int]  # (floor, ceiling) = (minReplicaCount, maxReplicaCount)


@dataclass(frozen=True)
class Observation:
    """What the policy needs to know beyond the spec and the time."""

    # GPU pods the scheduler cannot place, and since when (the oldest such pod's PodScheduled=False).
    gpu_unschedulable: int = 0
    gpu_unschedulable_since: datetime | None = None
    forecast: Forecast | None = None
    # Bounds in force before this decision, per tier (status.tiers[*].minReplicas/maxReplicas).
    previous: Mapping[TierName, Bounds] = field(default_factory=dict)


@dataclass(frozen=True)
class Plan:
    tiers: Mapping[TierName, TierBounds]
    decisions: tuple[dict[str, Any], ...] = ()
    # The next instant a window opens or closes or the fallback delay runs out: decide again then.
    next_change: datetime | None = None
    # status.prewarm, or None when no forecast has been made.
    prewarm: dict[str, Any] | None = None

    def bounds(self) -> dict[TierName, Bounds]:
        return {tier: (plan.min_replicas, plan.max_replicas) for tier, plan in self.tiers.items()}


def _tiers(spec: TTSServiceSpec) -> list[TierName]:
    return [t for t in ("gpu", "cpu") if getattr(spec.tiers, t) is not None]  # type: ignore[misc]


def _max(spec: TTSServiceSpec, tier: TierName) -> int:
    tier_spec = spec.tiers.gpu if tier == "gpu" else spec.tiers.cpu
    assert tier_spec is not None
    return tier_spec.max_replicas


def _rfc3339(t: datetime) -> str:
    return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class _Work:
    floor: int
    ceiling: int
    floor_why: list[str]
    ceiling_why: list[str]
    cron_min: int = 0


def _windows(spec: TTSServiceSpec, tier: TierName, now: datetime, work: _Work) -> None:
    base = work.floor
    open_ = [s for s in spec.autoscaling.schedules if s.tier == tier and triggers.window_open(s, now)]
    floors = [s for s in open_ if s.warm_floor is not None]
    raising = [s for s in floors if (s.warm_floor or 0) > base]
    if raising or floors:
        chosen: Schedule = (max(raising, key=lambda s: s.warm_floor or 0) if raising
                            else min(floors, key=lambda s: s.warm_floor or 0))  # fmt: skip
        assert chosen.warm_floor is not None
        work.floor = min(chosen.warm_floor, _max(spec, tier))
        verb = "raises" if chosen.warm_floor > base else "lowers" if chosen.warm_floor < base else "keeps"
        work.floor_why.append(f"window {triggers.describe(chosen)} {verb} the {tier} floor")
    ceilings = [s for s in open_ if s.max_replicas is not None]
    if ceilings:
        chosen = min(ceilings, key=lambda s: s.max_replicas or 0)
        assert chosen.max_replicas is not None
        if chosen.max_replicas < work.ceiling:
            work.ceiling = chosen.max_replicas
            work.ceiling_why.append(f"window {triggers.describe(chosen)} lowers the {tier} ceiling")
    work.cron_min = max((s.min_replicas or 0 for s in open_), default=0)


def _prewarm(spec: TTSServiceSpec, forecast: Forecast | None, work: dict[TierName, _Work]) -> dict | None:
    """status.prewarm, raising floors when enabled."""
    if forecast is None:
        return None
    prewarm = spec.autoscaling.prewarm
    status: dict[str, Any] = {"acting": False, "message": forecast.message, "recommendedFloor": {}}
    if forecast.peak is None:
        return status
    status["forecastQueueDepth"] = round(forecast.peak, 3)
    if forecast.peak_at is not None:
        status["peakAt"] = _rfc3339(forecast.peak_at)
    needed = replicas_for(forecast.peak, spec.autoscaling.queue_depth_target)
    recommended: dict[TierName, int] = {}
    for tier in _tiers(spec):  # GPU first: the forecast is for the service, the GPU tier serves first
        share = min(needed, _max(spec, tier))
        recommended[tier] = share
        needed -= share
    status["recommendedFloor"] = dict(recommended)
    when = forecast.peak_at.strftime("%H:%M UTC") if forecast.peak_at else "soon"
    for tier, floor in recommended.items():
        if prewarm.enabled and floor > work[tier].floor:
            work[tier].floor = floor
            work[tier].floor_why.append(
                f"pre-warm: queue depth {forecast.peak:g} forecast at {when} needs {floor} {tier} replica(s)"
            )
            status["acting"] = True
    if not prewarm.enabled:
        status["message"] = "shown only (prewarm.enabled is false); " + status["message"]
    return status


def _fallback(spec: TTSServiceSpec, now: datetime, seen: Observation, work: dict[TierName, _Work]) -> (
        datetime | None):  # fmt: skip
    """Raise the CPU floor for GPU pods stuck Pending; returns when the delay runs out, if still ahead."""
    settings = spec.autoscaling.cpu_fallback
    if not settings.enabled or "cpu" not in work or "gpu" not in work:
        return None
    if seen.gpu_unschedulable <= 0 or seen.gpu_unschedulable_since is None:
        return None
    due = seen.gpu_unschedulable_since + timedelta(seconds=settings.after_seconds)
    if now < due:
        return due
    cpu = work["cpu"]
    raised = min(cpu.floor + seen.gpu_unschedulable, _max(spec, "cpu"))
    if raised > cpu.floor:
        waited = int((now - seen.gpu_unschedulable_since).total_seconds())
        cpu.floor_why.append(
            f"CPU fallback: {seen.gpu_unschedulable} gpu pod(s) unschedulable for {waited} s "
            f"(afterSeconds {settings.after_seconds})"
        )
        cpu.floor = raised
    return None


def decide(spec: TTSServiceSpec, now: datetime, seen: Observation) -> Plan:
    """Bounds per tier in force at `now`, the decisions that changed them, and when to look again."""
    if not spec.autoscaling.enabled:
        return Plan(tiers={})
    work: dict[TierName, _Work] = {}
    for tier in _tiers(spec):
        work[tier] = _Work(warm_floor(spec, tier), _max(spec, tier), [], [])
        _windows(spec, tier, now, work[tier])
    prewarm = _prewarm(spec, seen.forecast, work)
    fallback_due = _fallback(spec, now, seen, work)

    tiers: dict[TierName, TierBounds] = {}
    decisions: list[dict[str, Any]] = []
    for tier, w in work.items():
        top = _max(spec, tier)
        floor = min(w.floor, top)
        ceiling = min(max(w.ceiling, floor, w.cron_min), top)
        if ceiling > w.ceiling:
            w.ceiling_why.append(
                "raised to the floor in force or an open minReplicas window "
                "(a raise beats a window's ceiling)"
            )
        ceiling = max(ceiling, 1)  # KEDA and the HPA need maxReplicaCount >= 1
        tiers[tier] = TierBounds(floor, ceiling, min(max(floor, w.cron_min), ceiling))
        base = (warm_floor(spec, tier), top)
        before = seen.previous.get(tier, base)
        for what, old, new, why, back in (
            ("floor", before[0], floor, w.floor_why, "the warm floor"),
            ("ceiling", before[1], ceiling, w.ceiling_why, "the tier's maxReplicas"),
        ):
            if old != new:
                reason = "; ".join(why) or f"no window, fallback or pre-warm in force: back to {back}"
                decisions.append({"time": _rfc3339(now), "tier": tier, "source": "operator",
                                  "action": f"{what} {old} -> {new}", "reason": reason[:1024]})  # fmt: skip

    edges = [triggers.next_edge(s, now) for s in spec.autoscaling.schedules if s.tier in work]
    candidates = [e for e in (*edges, fallback_due) if e is not None]
    return Plan(tiers=tiers, decisions=tuple(decisions), next_change=min(candidates, default=None),
                prewarm=prewarm)  # fmt: skip
