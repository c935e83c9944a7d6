"""One KEDA ScaledObject per tier (KEDA 2.20): triggers from ``triggers.py``, HPA behaviour, fallback.

KEDA creates and drives the HPA; the Deployment we render leaves ``spec.replicas`` out while a
ScaledObject exists, so the operator and the HPA never fight over it. Fields KEDA ignores for the
settings we use are left out instead of rendered with inert values (its webhook warns about them):
``cooldownPeriod`` and ``initialCooldownPeriod`` only act on the way to and from 0 replicas, and
``activationThreshold`` only matters at 0, so all three appear only for a tier whose floor can be 0
(its warm floor, or a schedule window's ``warmFloor: 0``). For a window they stay rendered while it is
closed: the ScaledObject keeps one shape and only ``minReplicaCount`` moves at the window's edges.
``initialCooldownPeriod`` counts from the ScaledObject's creation, so a night window opening on an old
object is governed by ``cooldownPeriod`` alone (``scaleToZeroCooldownSeconds``, default 600 s,
without activity before the last pod goes).

The bounds come from the operator's policy (``policy.decide``) when given: schedule windows, CPU
fallback and pre-warm move ``minReplicaCount`` / ``maxReplicaCount``, which KEDA has no per-window
setting for (kedacore/keda#6796, keda-docs#1208).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from tts_operator import triggers as t
from tts_operator.render.common import Owner, TierName, metadata, tier_name
from tts_operator.spec import ScalingPolicy, ScalingRules, TTSServiceSpec

DEFAULT_PROMETHEUS_ADDRESS = "http://prometheus-operated.monitoring.svc:9090"
PAUSED_ANNOTATION = "autoscaling.keda.sh/paused"
# Matters because every prometheus trigger uses cached metrics: KEDA queries Prometheus this often.
POLLING_INTERVAL_SECONDS = 15
# Three failed polls in a row (45 s) before the fallback acts: one slow scrape is no outage.
FALLBACK_FAILURE_THRESHOLD = 3
# Scale up promptly (the "held for N minutes" lives in the queries), by up to 4 pods or doubling a minute.
SCALE_UP_POLICIES = (ScalingPolicy(type="Pods", value=4, period_seconds=60),
                     ScalingPolicy(type="Percent", value=100, period_seconds=60))  # fmt: skip
# Scale down gently: a GPU pod takes minutes to load and warm its model again.
SCALE_DOWN_POLICIES = (ScalingPolicy(type="Pods", value=1, period_seconds=120),)


class TierBounds(NamedTuple):
    """Bounds the operator's policy (``policy.decide``) puts in force for a tier now."""

    min_replicas: int  # the ScaledObject's minReplicaCount
    max_replicas: int  # the ScaledObject's maxReplicaCount
    replicas: int  # the Deployment's replicas when no autoscaler runs (KEDA's CRDs missing)


def warm_floor(spec: TTSServiceSpec, tier: TierName) -> int:
    """Fewest replicas the tier runs while autoscaling: the warm floor, capped at the tier's maximum
    (the default GPU floor of 2 must not make a maxReplicas: 1 tier invalid)."""
    tier_spec = spec.tiers.gpu if tier == "gpu" else spec.tiers.cpu
    if tier_spec is None:
        raise ValueError(f"spec has no {tier} tier")
    return min(getattr(spec.autoscaling.warm_floor, tier), tier_spec.max_replicas)


def may_sleep(spec: TTSServiceSpec, tier: TierName) -> bool:
    """Can the tier's floor be 0, by its warm floor or any of its schedule windows?

    Decided from the spec, not from the window open now, so the triggers (and their queries) stay the
    same when a night window opens and only minReplicaCount moves.
    """
    return warm_floor(spec, tier) == 0 or any(
        s.tier == tier and s.warm_floor == 0 for s in spec.autoscaling.schedules
    )


def _rules(rules: ScalingRules, window: int, policies: tuple[ScalingPolicy, ...]) -> dict[str, Any]:
    chosen = rules.policies or list(policies)
    out: dict[str, Any] = {
        "stabilizationWindowSeconds": (
            rules.stabilization_window_seconds if rules.stabilization_window_seconds is not None else window
        ),
        "policies": [{"type": p.type, "value": p.value, "periodSeconds": p.period_seconds} for p in chosen],
    }
    # selectPolicy picks among several policies (default Max); Disabled matters even with one.
    if rules.select_policy is not None:
        out["selectPolicy"] = rules.select_policy
    return out


def behavior(spec: TTSServiceSpec) -> dict[str, Any]:
    """HPA behaviour: the user's rules, else scale up at once and down after a calm window, 1 pod / 2 min."""
    autoscaling = spec.autoscaling
    return {
        "scaleUp": _rules(autoscaling.behavior.scale_up, 0, SCALE_UP_POLICIES),
        "scaleDown": _rules(
            autoscaling.behavior.scale_down, autoscaling.scale_down_stabilization_seconds, SCALE_DOWN_POLICIES
        ),
    }


def tier_triggers(owner: Owner, spec: TTSServiceSpec, tier: TierName, server: str) -> list[dict[str, Any]]:
    """The tier's triggers: queue depth (primary), GPU utilization (GPU tier), p95 guard, cron windows."""
    autoscaling = spec.autoscaling
    floor = 0 if may_sleep(spec, tier) else warm_floor(spec, tier)
    # A tier at 0 replicas exports no queue of its own, so a tier allowed to sleep watches the queue of
    # the whole service (the other tier's pods keep reporting) and wakes on its activation threshold.
    scope: tuple[TierName, ...] = (tier,) if floor > 0 else ("gpu", "cpu")
    queue = t.prometheus_trigger(
        t.TRIGGER_QUEUE,
        server,
        t.queue_depth_query(owner.namespace, owner.name, scope, autoscaling.queue_depth_window_seconds),
        autoscaling.queue_depth_target,
        "AverageValue",
        activation_threshold=0 if floor == 0 else None,
    )
    result = [queue]
    if tier == "gpu":
        query = t.gpu_utilization_query(
            owner.namespace, owner.name, autoscaling.dcgm_labels, autoscaling.gpu_utilization_window_seconds
        )
        # With a floor of 1+ GPU pods there must be DCGM series; none means broken attribution, and
        # failing (-> fallback, never shrink) beats reading it as idle. At 0 pods "none" is the truth.
        result.append(t.prometheus_trigger(
            t.TRIGGER_GPU, server, query, autoscaling.gpu_utilization_target, "AverageValue",
            fail_on_empty=floor > 0, activation_threshold=None if floor > 0 else 0,
        ))  # fmt: skip
    if autoscaling.time_to_first_audio_p95_seconds is not None:
        query = t.time_to_first_audio_p95_query(
            owner.namespace, owner.name, tier, autoscaling.queue_depth_window_seconds
        )
        result.append(t.prometheus_trigger(
            t.TRIGGER_TTFA, server, query, autoscaling.time_to_first_audio_p95_seconds, "Value",
            activation_threshold=None if floor > 0 else 0,
        ))  # fmt: skip
    # Only minReplicas windows are KEDA cron triggers; maxReplicas/warmFloor windows move the bounds.
    result.extend(
        t.cron_trigger(s) for s in autoscaling.schedules if s.tier == tier and s.min_replicas is not None
    )
    return result


def render_scaled_object(
    owner: Owner,
    spec: TTSServiceSpec,
    tier: TierName,
    prometheus_address: str = DEFAULT_PROMETHEUS_ADDRESS,
    bounds: TierBounds | None = None,
) -> dict[str, Any]:
    """`bounds`: the policy's floor and ceiling in force now (schedule windows, CPU fallback, pre-warm);
    without them the spec's warm floor and maxReplicas."""
    tier_spec = spec.tiers.gpu if tier == "gpu" else spec.tiers.cpu
    if tier_spec is None:
        raise ValueError(f"spec has no {tier} tier")
    autoscaling = spec.autoscaling
    server = autoscaling.prometheus_address or prometheus_address
    if bounds is None:
        bounds = TierBounds(warm_floor(spec, tier), tier_spec.max_replicas, warm_floor(spec, tier))
    floor, ceiling = bounds.min_replicas, bounds.max_replicas
    name = tier_name(owner, tier)
    meta = metadata(owner, name, tier)
    if autoscaling.paused:
        # KEDA pauses at the current replica count; leaving the annotation out (not "false") when
        # unpaused lets server-side apply remove it, since we own it.
        meta["annotations"] = {PAUSED_ANNOTATION: "true"}
    so_spec: dict[str, Any] = {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
        "pollingInterval": POLLING_INTERVAL_SECONDS,
        "minReplicaCount": floor,
        "maxReplicaCount": ceiling,
    }
    if may_sleep(spec, tier):
        so_spec["cooldownPeriod"] = autoscaling.scale_to_zero_cooldown_seconds
        so_spec["initialCooldownPeriod"] = autoscaling.scale_to_zero_cooldown_seconds
    # When Prometheus cannot answer, hold what runs (or the floor, if more): an outage of the metrics
    # pipeline must never scale a busy service down. At least 1: KEDA holds an erroring object only
    # when fallback.replicas is not 0; with 0 it scales a floor-0 tier to zero after the cooldown.
    so_spec["fallback"] = {
        "failureThreshold": FALLBACK_FAILURE_THRESHOLD,
        "replicas": max(floor, 1),
        "behavior": "currentReplicasIfHigher",
    }
    so_spec["advanced"] = {"horizontalPodAutoscalerConfig": {"behavior": behavior(spec)}}
    so_spec["triggers"] = tier_triggers(owner, spec, tier, server)
    return {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "metadata": meta, "spec": so_spec}
