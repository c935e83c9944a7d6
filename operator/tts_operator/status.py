"""TTSService status as a pure function of what the operator observed (no I/O)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tts_operator import conditions as c
from tts_operator.observe import LiveMetrics
from tts_operator.render import Owner, tiers_of
from tts_operator.render.common import TierName
from tts_operator.render.scaledobject import warm_floor
from tts_operator.render.service import endpoint
from tts_operator.spec import TTSServiceSpec

if TYPE_CHECKING:
    from tts_operator.policy import Plan


@dataclass(frozen=True)
class DeploymentState:
    """The parts of a Deployment's spec and status that status is computed from."""

    replicas: int
    generation: int
    observed_generation: int
    ready: int
    updated: int
    total: int

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> DeploymentState:
        spec, status, meta = body.get("spec") or {}, body.get("status") or {}, body.get("metadata") or {}
        return cls(
            replicas=int(spec.get("replicas", 1)),
            generation=int(meta.get("generation", 0)),
            observed_generation=int(status.get("observedGeneration", 0)),
            ready=int(status.get("readyReplicas", 0)),
            updated=int(status.get("updatedReplicas", 0)),
            total=int(status.get("replicas", 0)),
        )

    @property
    def rolled_out(self) -> bool:
        return (
            self.observed_generation >= self.generation
            and self.updated >= self.replicas
            and self.total <= self.replicas
        )


@dataclass(frozen=True)
class Observed:
    generation: int
    applied_generation: int | None
    deployments: dict[TierName, DeploymentState] = field(default_factory=dict)
    # tier -> scheduler messages of pods that cannot be placed
    unschedulable: dict[TierName, list[str]] = field(default_factory=dict)
    # (reason, message) of the last failed reconcile, if it failed
    error: tuple[str, str] | None = None
    # Whether the API server serves KEDA's ScaledObjects (its CRDs are installed).
    keda_available: bool = True


def _condition(kind: str, status: bool, reason: str, message: str, generation: int) -> dict[str, Any]:
    return {
        "type": kind,
        "status": "True" if status else "False",
        "reason": reason,
        "message": message,
        "observedGeneration": generation,
    }


def _degraded(spec: TTSServiceSpec, observed: Observed) -> tuple[bool, str, str]:
    if observed.error is not None:
        return True, observed.error[0], observed.error[1]
    gpu_resource = spec.tiers.gpu.resource_name if spec.tiers.gpu else "nvidia.com/gpu"
    for tier, messages in sorted(observed.unschedulable.items()):
        if not messages:
            continue
        reason = (
            c.GPU_UNSCHEDULABLE
            if any(f"Insufficient {gpu_resource}" in m for m in messages)
            else c.UNSCHEDULABLE
        )
        return True, reason, f"{len(messages)} {tier} pod(s) cannot be scheduled: {messages[0]}"
    return False, c.AS_EXPECTED, "all pods are scheduled"


def _progressing(spec: TTSServiceSpec, observed: Observed) -> tuple[bool, str, str]:
    if observed.applied_generation != observed.generation:
        return True, c.RECONCILING, f"applying generation {observed.generation}"
    missing = [t for t in tiers_of(spec) if t not in observed.deployments]
    if missing:
        return True, c.CREATING, f"waiting for the {', '.join(missing)} Deployment(s)"
    rolling = [t for t in tiers_of(spec) if not observed.deployments[t].rolled_out]
    if rolling:
        return True, c.ROLLING_OUT, f"rolling out the {', '.join(rolling)} tier(s)"
    return False, c.ROLLOUT_COMPLETE, "all tiers run the current spec"


def _ready(spec: TTSServiceSpec, observed: Observed, degraded_reason: str) -> tuple[bool, str, str]:
    parts, all_ready, total_ready = [], True, 0
    for tier in tiers_of(spec):
        state = observed.deployments.get(tier)
        desired, ready = (state.replicas, state.ready) if state else (None, 0)
        parts.append(f"{tier} {ready}/{desired if desired is not None else '?'} ready")
        all_ready = all_ready and desired is not None and ready >= desired
        total_ready += ready
    message = ", ".join(parts)
    if all_ready and total_ready > 0:
        return True, c.ALL_REPLICAS_READY, message
    if all_ready:
        return False, c.NO_REPLICAS, message
    reason = (
        degraded_reason if degraded_reason in (c.GPU_UNSCHEDULABLE, c.UNSCHEDULABLE) else c.REPLICAS_NOT_READY
    )
    return False, reason, message


def _autoscaling_unavailable(spec: TTSServiceSpec, observed: Observed, generation: int) -> dict[str, Any]:
    if observed.keda_available:
        tiers = ", ".join(tiers_of(spec))
        return _condition(c.AUTOSCALING_UNAVAILABLE, False, c.SCALED_OBJECTS_APPLIED,
                          f"KEDA ScaledObjects scale the {tiers} tier(s)", generation)  # fmt: skip
    floors = ", ".join(f"{tier} at {warm_floor(spec, tier)}" for tier in tiers_of(spec))
    return _condition(
        c.AUTOSCALING_UNAVAILABLE, True, c.KEDA_MISSING,
        f"KEDA's CRDs (keda.sh/v1alpha1 scaledobjects) are not installed; running at the floor: {floors}",
        generation,
    )  # fmt: skip


def compute_status(
    owner: Owner, spec: TTSServiceSpec, observed: Observed, previous: dict[str, Any], now: str
) -> dict[str, Any]:
    """The whole status object; lastTransitionTime is kept from `previous` unless the status flipped."""
    degraded, d_reason, d_message = _degraded(spec, observed)
    progressing, p_reason, p_message = _progressing(spec, observed)
    ready, r_reason, r_message = _ready(spec, observed, d_reason if degraded else "")
    gen = observed.generation
    new_conditions = [
        _condition(c.READY, ready, r_reason, r_message, gen),
        _condition(c.PROGRESSING, progressing, p_reason, p_message, gen),
        _condition(c.DEGRADED, degraded, d_reason, d_message, gen),
    ]
    if spec.autoscaling.enabled:
        new_conditions.append(_autoscaling_unavailable(spec, observed, gen))
    _stamp_transitions(new_conditions, previous, now)
    tiers: dict[str, Any] = {}
    for tier in tiers_of(spec):
        state = observed.deployments.get(tier)
        tiers[tier] = {
            "desiredReplicas": state.replicas if state else None,
            "readyReplicas": state.ready if state else 0,
            "updatedReplicas": state.updated if state else 0,
            "unschedulableReplicas": len(observed.unschedulable.get(tier, [])),
        }
        if tiers[tier]["desiredReplicas"] is None:
            del tiers[tier]["desiredReplicas"]
    status: dict[str, Any] = {
        "conditions": new_conditions,
        "tiers": tiers,
        "readyReplicas": sum(t["readyReplicas"] for t in tiers.values()),
        "endpoint": endpoint(owner, spec),
    }
    if observed.applied_generation is not None:
        status["observedGeneration"] = observed.applied_generation
    return status


def _stamp_transitions(new_conditions: list[dict[str, Any]], previous: dict[str, Any], now: str) -> None:
    old = {cond["type"]: cond for cond in previous.get("conditions") or []}
    for cond in new_conditions:
        prior = old.get(cond["type"])
        same = prior is not None and prior.get("status") == cond["status"]
        cond["lastTransitionTime"] = prior.get("lastTransitionTime", now) if same and prior else now


def invalid_spec_status(
    observed: Observed, message: str, previous: dict[str, Any], now: str
) -> dict[str, Any]:
    """A spec the API server admitted but the models reject (a CRD older than the operator)."""
    gen = observed.generation
    new_conditions = [
        _condition(c.READY, False, c.INVALID_SPEC, message, gen),
        _condition(c.PROGRESSING, False, c.INVALID_SPEC, message, gen),
        _condition(c.DEGRADED, True, c.INVALID_SPEC, message, gen),
    ]
    _stamp_transitions(new_conditions, previous, now)
    return {"conditions": new_conditions, "tiers": {}, "readyReplicas": 0}


def status_patch(previous: dict[str, Any], new: dict[str, Any]) -> dict[str, Any] | None:
    """A merge patch turning `previous` into `new`, or None when nothing we own changed."""
    relevant = {k: previous.get(k) for k in new}
    if relevant == new and set(previous.get("tiers") or {}) <= set(new["tiers"]):
        return None
    patch = dict(new)
    # Merge patches delete map keys only when told to: drop tiers that left the spec.
    patch["tiers"] = {**{t: None for t in previous.get("tiers") or {}}, **new["tiers"]}
    return patch


def changed_conditions(previous: dict[str, Any], new: dict[str, Any]) -> list[dict[str, Any]]:
    """The condition changes worth an Event: a status flip, or a new reason for a problem.

    The first status of a new TTSService is no change, and progress steps (Reconciling -> Creating ->
    RollingOut, all Progressing=True) are not news; a problem changing cause (ApplyFailed ->
    GPUUnschedulable) is.
    """
    old = {cond["type"]: cond for cond in previous.get("conditions") or []}
    changed = []
    for cond in new["conditions"]:
        prior = old.get(cond["type"])
        if prior is None:
            continue
        problem = (cond["type"], cond["status"]) in c.WARNING_STATES
        if prior["status"] != cond["status"] or (problem and prior["reason"] != cond["reason"]):
            changed.append(cond)
    return changed


DECISIONS_KEPT = 10


def record_decisions(
    previous: list[dict[str, Any]] | None, new: list[dict[str, Any]], limit: int = DECISIONS_KEPT
) -> list[dict[str, Any]]:
    """status.decisions after appending `new` (oldest first): the last `limit` kept.

    A decision equal to the newest one already recorded, apart from its time, is the same decision seen
    again (a re-reconcile, a repeated status read) and is not appended twice.
    """
    kept = list(previous or [])
    for decision in new:
        if kept and {k: v for k, v in kept[-1].items() if k != "time"} == {
            k: v for k, v in decision.items() if k != "time"
        }:
            continue
        kept.append(decision)
    return kept[-limit:]


def with_policy(
    status: dict[str, Any], plan: Plan | None, previous: dict[str, Any], decisions: Sequence[dict[str, Any]]
) -> dict[str, Any]:
    """`status` plus what the operator's policy put in force: tiers[*].minReplicas/maxReplicas (the
    bounds now), prewarm, and its not yet recorded decisions appended to status.decisions."""
    old_tiers = previous.get("tiers") or {}
    for tier, fields in status.get("tiers", {}).items():
        bounds = plan.tiers.get(tier) if plan is not None else None
        if bounds is not None:
            fields["minReplicas"], fields["maxReplicas"] = bounds.min_replicas, bounds.max_replicas
        else:
            # Merge patches keep keys they are not told to drop: clear bounds no policy sets any more.
            for name in ("minReplicas", "maxReplicas"):
                if (old_tiers.get(tier) or {}).get(name) is not None:
                    fields[name] = None
    if plan is not None and plan.prewarm is not None:
        status["prewarm"] = plan.prewarm
    elif (plan is None or not plan.tiers) and previous.get("prewarm") is not None:
        status["prewarm"] = None  # autoscaling off: no forecast to show
    if decisions:
        kept = status.get("decisions", previous.get("decisions"))
        status["decisions"] = record_decisions(kept, list(decisions))
    return status


# ---- live keys: metrics read by the observer loop, KEDA/HPA state read by the watches ----------------

# Written by with_live on top of compute_status; compute_status never writes them.
LIVE_METRIC_KEYS = ("queueDepth", "gpuUtilization", "timeToFirstAudioP95Seconds")
ACTIVE_TRIGGERS = "activeTriggers"
# (True/False, reason, message) of MetricsUnavailable.
MetricsVerdict = tuple[bool, str, str]


@dataclass(frozen=True)
class Live:
    """What the status shows beyond compute_status, for a service with autoscaling on."""

    # None: not read since the operator started; the status keeps what it shows until the first read.
    metrics: LiveMetrics | None = None
    verdict: MetricsVerdict | None = None
    # Per tier that has a ScaledObject: the triggers KEDA reports active.
    active_triggers: dict[TierName, list[str]] = field(default_factory=dict)
    # Decisions seen by the watches and not yet in the status (recorded once: see with_live).
    decisions: list[dict[str, Any]] = field(default_factory=list)


def metrics_verdict(spec: TTSServiceSpec, metrics: LiveMetrics, ready: set[TierName]) -> MetricsVerdict:
    """MetricsUnavailable from one round and the tiers that have had ready pods since the last round.

    Missing series count only for tiers whose pods were ready a whole round ago, so a pod that has not
    been scraped yet is no alarm. Unattributed GPU metrics are MetricsUnavailable, not Degraded: the
    service serves, but the GPU trigger fails (ignoreNullValues "false") and KEDA's fallback holds
    replicas instead of following load, which is what this condition is about.
    """
    where = f"Prometheus at {metrics.address}"
    if metrics.error is not None:
        return True, c.PROMETHEUS_UNREACHABLE, metrics.error
    missing = [t for t in tiers_of(spec) if t in ready and metrics.tiers[t].queue_depth is None]
    if missing:
        pods = ", ".join(missing)
        return True, c.SERVER_METRICS_MISSING, (
            f"{where} has no tts_queue_depth series for the ready {pods} pod(s) (labels namespace, pod): "
            "are they scraped (PodMonitor or pod discovery)? KEDA reads a missing queue as 0."
        )  # fmt: skip
    if "gpu" in ready and spec.tiers.gpu is not None and metrics.tiers["gpu"].gpu_utilization is None:
        labels = spec.autoscaling.dcgm_labels
        return True, c.GPU_METRICS_UNATTRIBUTED, (
            f"{where} has no DCGM_FI_DEV_GPU_UTIL series attributed to the ready GPU pods by the labels "
            f"{labels.namespace} / {labels.pod} (spec.autoscaling.dcgmLabels): the gpu-utilization trigger "
            "fails and KEDA's fallback holds the current replicas. Check dcgm-exporter's pod mapping and "
            "whether Prometheus renames its labels (honorLabels)."
        )  # fmt: skip
    return False, c.METRICS_AVAILABLE, f"queue depth, GPU utilization and latency come from {where}"


def _put(target: dict[str, Any], key: str, value: Any, prior: dict[str, Any]) -> None:
    """Set a live key; an absent value removes it (a merge patch removes only keys set to null)."""
    if value is not None:
        target[key] = value
    elif key in prior:
        target[key] = None


def with_live(
    new: dict[str, Any], previous: dict[str, Any], live: Live | None, generation: int, now: str
) -> dict[str, Any]:
    """`new` plus the live keys (`live` None: autoscaling is off, remove them).

    Keys this function does not know pass through; keys it owns are always set or explicitly removed,
    so the patch neither wipes them nor leaves stale ones. Pending decisions already in the status are
    not appended again, so a failed write simply carries them to the next one.
    """
    out = dict(new)
    prior_tiers = previous.get("tiers") or {}
    tiers = {tier: dict(values) for tier, values in (new.get("tiers") or {}).items()}
    out["tiers"] = tiers
    metrics = live.metrics if live is not None else None
    for tier, values in tiers.items():
        prior = prior_tiers.get(tier) or {}
        if live is not None and metrics is None:
            found = [prior.get(key) for key in LIVE_METRIC_KEYS]
        elif metrics is not None and metrics.error is None and tier in metrics.tiers:
            m = metrics.tiers[tier]
            found = [m.queue_depth, m.gpu_utilization, m.time_to_first_audio_p95_seconds]
        else:
            found = [None] * len(LIVE_METRIC_KEYS)
        for key, value in zip(LIVE_METRIC_KEYS, found, strict=True):
            _put(values, key, value, prior)
        triggers = live.active_triggers.get(tier) if live is not None else None
        _put(values, ACTIVE_TRIGGERS, triggers, prior)
    if live is not None and metrics is None:
        queue, observed_at = previous.get("queueDepth"), previous.get("metricsObservedAt")
    elif metrics is not None:
        total = metrics.queue_depth if metrics.error is None else None
        queue = round(total) if total is not None else None
        # On errors this stays the time of the last successful read.
        observed_at = metrics.observed_at if metrics.error is None else previous.get("metricsObservedAt")
    else:
        queue, observed_at = None, None
    _put(out, "queueDepth", queue, previous)
    _put(out, "metricsObservedAt", observed_at, previous)
    if live is None:
        return out
    if live.decisions:
        base = list(out.get("decisions", previous.get("decisions")) or [])
        out["decisions"] = record_decisions(base, [d for d in live.decisions if d not in base])
    prior_condition = next(
        (cond for cond in previous.get("conditions") or [] if cond.get("type") == c.METRICS_UNAVAILABLE), None
    )
    conditions = [cond for cond in out.get("conditions") or [] if cond.get("type") != c.METRICS_UNAVAILABLE]
    if live.verdict is not None:
        condition = _condition(c.METRICS_UNAVAILABLE, *live.verdict, generation)
        _stamp_transitions([condition], previous, now)
        conditions.append(condition)
    elif prior_condition is not None:
        conditions.append(prior_condition)
    out["conditions"] = conditions
    return out
