"""KEDA/HPA status -> active triggers and scaling decisions, table-tested on realistic status bodies.

Shapes follow KEDA 2.20 (apis/keda/v1alpha1: ScaledObjectStatus, Conditions, HealthStatus,
TriggerActivityStatus; condition reasons and messages as its controller and fallback package write them)
and autoscaling/v2 HorizontalPodAutoscalerStatus as the HPA controller writes it for KEDA's external
metrics (AverageValue: current.averageValue is the total divided by currentReplicas, in milli-units).
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from tts_operator.scaling_status import (
    decisions,
    quantity,
    tier_scaling,
    trim_hpa,
    trim_scaled_object,
)

NOW = "2026-11-21T08:02:00Z"
CRON_METRIC = "s3-cron-Asia-Shanghai-507xxx-09xxx"
SELECTOR = {"matchLabels": {"scaledobject.keda.sh/name": "voice-gpu"}}


def cond(kind: str, status: str, reason: str, message: str) -> dict[str, str]:
    return {"type": kind, "status": status, "reason": reason, "message": message}


KEDA_READY = cond(
    "Ready", "True", "ScaledObjectReady", "ScaledObject is defined correctly and is ready for scaling"
)
ACTIVE = cond("Active", "True", "ScalerActive", "Scaling is performed because triggers are active")
INACTIVE = cond(
    "Active", "False", "ScalerNotActive", "Scaling is not performed because triggers are not active"
)
NO_FALLBACK = cond("Fallback", "False", "NoFallbackFound", "No fallbacks are active on this scaled object")
FALLBACK = cond(
    "Fallback", "True", "FallbackExists", "At least one trigger is falling back on this scaled object"
)
UNPAUSED = cond("Paused", "False", "ScaledObjectUnpaused", "pause annotation removed for ScaledObject")
PAUSED = cond("Paused", "True", "ScaledObjectPaused", "ScaledObject is paused")


def scaled_object(
    conditions: list[dict[str, str]] | None = None,
    active: tuple[str, ...] = ("s0-prometheus", "s1-prometheus"),
    failing: dict[str, int] | None = None,
    paused_replicas: int | None = None,
) -> dict[str, Any]:
    """The GPU tier's ScaledObject as the operator renders it, with KEDA 2.20's status."""
    metrics = ["s0-prometheus", "s1-prometheus", "s2-prometheus", CRON_METRIC]
    failing = failing or {}
    status: dict[str, Any] = {
        "scaleTargetKind": "apps/v1.Deployment",
        "scaleTargetGVKR": {
            "group": "apps",
            "kind": "Deployment",
            "resource": "deployments",
            "version": "v1",
        },
        "originalReplicaCount": 2,
        "externalMetricNames": metrics,
        "hpaName": "keda-hpa-voice-gpu",
        "lastActiveTime": "2026-11-21T08:01:00Z",
        "triggersTypes": "prometheus,cron",
        "conditions": conditions or [KEDA_READY, ACTIVE, NO_FALLBACK, UNPAUSED],
        "health": {
            m: (
                {"numberOfFailures": failing[m], "status": "Failing"}
                if m in failing
                else {"numberOfFailures": 0, "status": "Happy"}
            )
            for m in metrics[:3]
        },
        "triggersActivity": {m: {"isActive": m in active} for m in metrics},
    }
    if paused_replicas is not None:
        status["pausedReplicaCount"] = paused_replicas
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": "voice-gpu", "namespace": "team-a"},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "voice-gpu"},
            "minReplicaCount": 2,
            "maxReplicaCount": 6,
            "fallback": {"failureThreshold": 3, "replicas": 2, "behavior": "currentReplicasIfHigher"},
            "triggers": [
                {
                    "type": "prometheus",
                    "name": "queue-depth",
                    "metricType": "AverageValue",
                    "metadata": {"threshold": "20"},
                },
                {
                    "type": "prometheus",
                    "name": "gpu-utilization",
                    "metricType": "AverageValue",
                    "metadata": {"threshold": "75"},
                },
                {
                    "type": "prometheus",
                    "name": "time-to-first-audio-p95",
                    "metricType": "Value",
                    "metadata": {"threshold": "1.5"},
                },
                {
                    "type": "cron",
                    "name": "schedule-morning",
                    "metadata": {
                        "timezone": "Asia/Shanghai",
                        "start": "50 7 * * *",
                        "end": "0 9 * * *",
                        "desiredReplicas": "5",
                    },
                },
            ],
        },
        "status": status,
    }


def external(name: str, **target: str) -> dict[str, Any]:
    kind = "AverageValue" if "averageValue" in target else "Value"
    return {
        "type": "External",
        "external": {"metric": {"name": name, "selector": SELECTOR}, "target": {"type": kind, **target}},
    }


def current(name: str, **value: str) -> dict[str, Any]:
    return {
        "type": "External",
        "external": {"metric": {"name": name, "selector": SELECTOR}, "current": value},
    }


LIMITED_NO = cond(
    "ScalingLimited", "False", "DesiredWithinRange", "the desired count is within the acceptable range"
)
TOO_MANY = cond(
    "ScalingLimited",
    "True",
    "TooManyReplicas",
    "the desired replica count is more than the maximum replica count",
)
TOO_FEW = cond(
    "ScalingLimited",
    "True",
    "TooFewReplicas",
    "the desired replica count is less than the minimum replica count",
)
SCALING_OK = cond(
    "ScalingActive",
    "True",
    "ValidMetricFound",
    "the HPA was able to successfully calculate a replica count from external metric s0-prometheus",
)
NO_METRIC = cond(
    "ScalingActive",
    "False",
    "FailedGetExternalMetric",
    "the HPA was unable to compute the replica count: unable to get external metric "
    "team-a/s0-prometheus: no metrics returned from external metrics API",
)


def hpa(
    current_replicas: int,
    desired: int,
    queue_avg: str | None = "0",
    gpu_avg: str = "0",
    ttfa: str = "0",
    cron_avg: str = "0",
    limited: dict[str, str] = LIMITED_NO,
    active: dict[str, str] = SCALING_OK,
    min_replicas: int = 2,
    extra: tuple[tuple[dict[str, Any], dict[str, Any]], ...] = (),
) -> dict[str, Any]:
    """KEDA's HPA for the GPU tier (keda-hpa-voice-gpu) with the HPA controller's status."""
    metrics = [
        external("s0-prometheus", averageValue="20"),
        external("s1-prometheus", averageValue="75"),
        external("s2-prometheus", value="1500m"),
        external(CRON_METRIC, averageValue="1"),
        *(spec for spec, _ in extra),
    ]
    readings = (
        []
        if queue_avg is None
        else [
            current("s0-prometheus", averageValue=queue_avg),
            current("s1-prometheus", averageValue=gpu_avg),
            current("s2-prometheus", value=ttfa),
            current(CRON_METRIC, averageValue=cron_avg),
            *(status for _, status in extra),
        ]
    )
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "keda-hpa-voice-gpu", "namespace": "team-a"},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "voice-gpu"},
            "minReplicas": min_replicas,
            "maxReplicas": 6,
            "metrics": metrics,
        },
        "status": {
            "currentReplicas": current_replicas,
            "desiredReplicas": desired,
            "lastScaleTime": "2026-11-21T08:01:15Z",
            "currentMetrics": readings,
            "conditions": [
                cond("AbleToScale", "True", "ReadyForNewScale", "recommended size matches current size"),
                active,
                limited,
            ],
        },
    }


CPU_METRIC = (
    {
        "type": "Resource",
        "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}},
    },
    {
        "type": "Resource",
        "resource": {"name": "cpu", "current": {"averageUtilization": 85, "averageValue": "850m"}},
    },
)


def summary(found: list[dict[str, Any]]) -> list[tuple[str, str, str, str]]:
    return [(d["source"], d["action"], d["reason"], d["time"]) for d in found]


SCALE_TIME = "2026-11-21T08:01:15Z"


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        pytest.param(
            (scaled_object(), hpa(2, 2)),
            (scaled_object(), hpa(2, 5, queue_avg="41500m", gpu_avg="90", ttfa="900m")),
            [
                (
                    "hpa",
                    "replicas 2 -> 5",
                    "queue-depth 83 (target 20 per replica) asks for 5; gpu-utilization 3, "
                    "time-to-first-audio-p95 2, schedule-morning 0",
                    SCALE_TIME,
                )
            ],
            id="queue drives a scale-up",
        ),
        pytest.param(
            (scaled_object(), hpa(2, 2)),
            (scaled_object(), hpa(2, 4, queue_avg="10", gpu_avg="150", ttfa="1")),
            [
                (
                    "hpa",
                    "replicas 2 -> 4",
                    "gpu-utilization 300 (target 75 per replica) asks for 4; queue-depth 1, "
                    "time-to-first-audio-p95 2, schedule-morning 0",
                    SCALE_TIME,
                )
            ],
            id="hot GPUs drive a scale-up",
        ),
        pytest.param(
            (scaled_object(), hpa(4, 4, queue_avg="30")),
            (scaled_object(), hpa(4, 6, queue_avg="50", limited=TOO_MANY)),
            [
                (
                    "hpa",
                    "replicas 4 -> 6",
                    "queue-depth 200 (target 20 per replica) asks for 10; gpu-utilization 0, "
                    "time-to-first-audio-p95 0, schedule-morning 0; capped at max 6",
                    SCALE_TIME,
                )
            ],
            id="scale-up capped at the maximum",
        ),
        pytest.param(
            (scaled_object(), hpa(6, 6, queue_avg="20")),
            (scaled_object(), hpa(6, 6, queue_avg="25", limited=TOO_MANY)),
            [
                (
                    "hpa",
                    "capped at max 6",
                    "TooManyReplicas: the desired replica count is more than the maximum replica count",
                    NOW,
                )
            ],
            id="already at the maximum, now limited by it",
        ),
        pytest.param(
            (scaled_object(), hpa(2, 2, cron_avg="0")),
            (scaled_object(), hpa(2, 5, cron_avg="2500m")),
            [
                (
                    "hpa",
                    "replicas 2 -> 5",
                    "schedule-morning window open (5 replicas); queue-depth 0, "
                    "gpu-utilization 0, time-to-first-audio-p95 0",
                    SCALE_TIME,
                )
            ],
            id="a schedule window opens",
        ),
        pytest.param(
            (scaled_object(), hpa(5, 5, queue_avg="20")),
            (scaled_object(), hpa(5, 4, queue_avg="14")),
            [
                (
                    "hpa",
                    "replicas 5 -> 4",
                    "queue-depth 70 (target 20 per replica) asks for 4; gpu-utilization 0, "
                    "time-to-first-audio-p95 0, schedule-morning 0",
                    SCALE_TIME,
                )
            ],
            id="scale-down",
        ),
        pytest.param(
            (scaled_object(), hpa(1, 1, queue_avg=None, active=NO_METRIC, min_replicas=1)),
            (scaled_object(), hpa(1, 3, queue_avg=None, active=NO_METRIC, limited=TOO_FEW, min_replicas=3)),
            [
                (
                    "hpa",
                    "replicas 1 -> 3",
                    f"FailedGetExternalMetric: {NO_METRIC['message']}; held at min 3",
                    SCALE_TIME,
                )
            ],
            id="no metrics, floor raised",
        ),
        pytest.param(
            (scaled_object(), hpa(2, 2, extra=(CPU_METRIC,))),
            (scaled_object(), hpa(2, 3, extra=(CPU_METRIC,))),
            [
                (
                    "hpa",
                    "replicas 2 -> 3",
                    "cpu 85% (target 70% per pod) asks for 3; queue-depth 0, "
                    "gpu-utilization 0, time-to-first-audio-p95 0, schedule-morning 0",
                    SCALE_TIME,
                )
            ],
            id="a cpu trigger (HPA Resource metric)",
        ),
        pytest.param(
            (scaled_object([KEDA_READY, INACTIVE, NO_FALLBACK, UNPAUSED], active=()), hpa(2, 2)),
            (
                scaled_object([KEDA_READY, ACTIVE, NO_FALLBACK, UNPAUSED], active=("s0-prometheus",)),
                hpa(2, 2),
            ),
            [("keda", "active", "Scaling is performed because triggers are active: queue-depth", NOW)],
            id="KEDA turns active",
        ),
        pytest.param(
            (scaled_object(), hpa(2, 2)),
            (scaled_object([KEDA_READY, INACTIVE, NO_FALLBACK, UNPAUSED], active=()), hpa(2, 2)),
            [("keda", "inactive", "Scaling is not performed because triggers are not active", NOW)],
            id="KEDA turns inactive",
        ),
        pytest.param(
            (scaled_object(failing={"s1-prometheus": 2}), hpa(3, 3)),
            (
                scaled_object([KEDA_READY, ACTIVE, FALLBACK, UNPAUSED], failing={"s1-prometheus": 3}),
                hpa(3, 3),
            ),
            [
                (
                    "keda",
                    "fallback on",
                    "At least one trigger is falling back on this scaled object; failing: "
                    "gpu-utilization (3 failures); holding the current replicas, at least 2",
                    NOW,
                )
            ],
            id="fallback: GPU metrics gone",
        ),
        pytest.param(
            (
                scaled_object([KEDA_READY, ACTIVE, FALLBACK, UNPAUSED], failing={"s1-prometheus": 5}),
                hpa(3, 3),
            ),
            (scaled_object(), hpa(3, 3)),
            [("keda", "fallback off", "No fallbacks are active on this scaled object", NOW)],
            id="fallback ends",
        ),
        pytest.param(
            (scaled_object(), hpa(3, 3)),
            (scaled_object([KEDA_READY, ACTIVE, NO_FALLBACK, PAUSED], paused_replicas=3), hpa(3, 3)),
            [("keda", "paused", "ScaledObject is paused at 3 replicas", NOW)],
            id="paused",
        ),
        pytest.param(
            (scaled_object([KEDA_READY, ACTIVE, NO_FALLBACK, PAUSED], paused_replicas=3), hpa(3, 3)),
            (scaled_object(), hpa(3, 3)),
            [("keda", "resumed", "pause annotation removed for ScaledObject", NOW)],
            id="resumed",
        ),
        pytest.param(
            (scaled_object(), hpa(2, 2)),
            (
                scaled_object([KEDA_READY, INACTIVE, NO_FALLBACK, UNPAUSED], active=()),
                hpa(2, 3, queue_avg="25"),
            ),
            [
                ("keda", "inactive", "Scaling is not performed because triggers are not active", NOW),
                (
                    "hpa",
                    "replicas 2 -> 3",
                    "queue-depth 50 (target 20 per replica) asks for 3; gpu-utilization 0, "
                    "time-to-first-audio-p95 0, schedule-morning 0",
                    SCALE_TIME,
                ),
            ],
            id="both at once, KEDA first",
        ),
        pytest.param(
            (scaled_object(), None),
            (scaled_object(), hpa(2, 2)),
            [],
            id="HPA created: nothing decided yet",
        ),
        pytest.param((scaled_object(), hpa(2, 4)), (scaled_object(), None), [], id="HPA deleted"),
        pytest.param(
            (scaled_object(), hpa(2, 2, queue_avg="10")),
            (scaled_object(), hpa(2, 2, queue_avg="19")),
            [],
            id="metrics move, replicas do not",
        ),
        pytest.param(
            ({"spec": scaled_object()["spec"]}, None),
            (
                scaled_object(
                    [
                        cond("Ready", "Unknown", "ScaledObjectCheckFailed", "x"),
                        cond("Active", "Unknown", "UnknownState", "ScaledObject check failed"),
                        cond("Fallback", "False", "NoFallbackFound", "x"),
                        cond("Paused", "False", "x", "x"),
                    ]
                ),
                None,
            ),
            [],
            id="KEDA initialises its conditions",
        ),
    ],
)
def test_decisions(before, after, expected):
    previous = tier_scaling("gpu", *before)
    assert summary(decisions(previous, tier_scaling("gpu", *after), NOW)) == expected


def test_first_reading_decides_nothing():
    """What changed before the operator looked is unknown, so the first reading records nothing."""
    assert decisions(None, tier_scaling("gpu", scaled_object(), hpa(2, 5, queue_avg="41500m")), NOW) == []


def test_decision_fields_fit_the_status_schema():
    before = tier_scaling("gpu", scaled_object(), hpa(2, 2))
    after = tier_scaling("gpu", scaled_object(), hpa(2, 5, queue_avg="41500m"))
    [decision] = decisions(before, after, NOW)
    assert decision == {
        "time": SCALE_TIME,
        "tier": "gpu",
        "source": "hpa",
        "action": "replicas 2 -> 5",
        "reason": decision["reason"],
    }
    from tts_operator.spec import ScalingDecision

    ScalingDecision.model_validate(decision)


@pytest.mark.parametrize(
    ("active", "expected"),
    [
        (("s0-prometheus", "s1-prometheus"), ("queue-depth", "gpu-utilization")),
        ((CRON_METRIC, "s0-prometheus"), ("queue-depth", "schedule-morning")),  # spec order, not KEDA's
        ((), ()),
    ],
)
def test_active_triggers_by_our_names(active, expected):
    assert tier_scaling("gpu", scaled_object(active=active), None).active_triggers == expected


def test_scaled_object_without_status_yet():
    fresh = scaled_object()
    del fresh["status"]
    scaling = tier_scaling("gpu", fresh, None)
    assert scaling.active_triggers == () and scaling.keda == () and not scaling.hpa_seen


def test_unnamed_triggers_and_formulas_are_named_by_what_keda_knows():
    body = copy.deepcopy(scaled_object(active=("s0-prometheus", "composite-metric")))
    del body["spec"]["triggers"][0]["name"]
    body["status"]["triggersActivity"]["composite-metric"] = {"isActive": True}
    assert tier_scaling("gpu", body, None).active_triggers == ("prometheus", "scaling formula")


def test_trimmed_bodies_read_the_same():
    """The operator's indexes keep trimmed bodies; nothing tier_scaling reads may be lost."""
    so, autoscaler = scaled_object(failing={"s1-prometheus": 3}), hpa(4, 6, queue_avg="50", limited=TOO_MANY)
    assert tier_scaling("gpu", trim_scaled_object(so), trim_hpa(autoscaler)) == tier_scaling(
        "gpu", so, autoscaler
    )


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("83", 83.0),
        ("41500m", 41.5),
        ("1500m", 1.5),
        ("2k", 2000.0),
        ("1Ki", 1024.0),
        ("1e3", 1000.0),
        (".5", 0.5),
        (7, 7.0),
    ],
)
def test_quantity(text, value):
    assert quantity(text) == value


@pytest.mark.parametrize("text", ["", "abc", "12Q", "1.2.3"])
def test_quantity_rejects_garbage(text):
    with pytest.raises(ValueError, match="not a quantity"):
        quantity(text)
