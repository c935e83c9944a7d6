"""Table-driven tests of the ScaledObject renderer, its wiring into render_children, and the
AutoscalingUnavailable condition (pure, no cluster)."""

from __future__ import annotations

from typing import Any

import pytest
from tts_operator import conditions as c
from tts_operator.render import Owner, render_children
from tts_operator.render.scaledobject import (
    DEFAULT_PROMETHEUS_ADDRESS,
    PAUSED_ANNOTATION,
    render_scaled_object,
    warm_floor,
)
from tts_operator.spec import TTSServiceSpec
from tts_operator.status import DeploymentState, Observed, compute_status

OWNER = Owner(name="voice", namespace="team-a", uid="1234")


def make_spec(autoscaling: dict | None = None, tiers: dict | None = None) -> TTSServiceSpec:
    return TTSServiceSpec.model_validate({
        "engine": "baker", "model": {"source": "builtin", "id": "baker"},
        "tiers": tiers if tiers is not None else {"gpu": {"maxReplicas": 8}, "cpu": {}},
        "autoscaling": {"enabled": True, **(autoscaling or {})},
    })  # fmt: skip


def so(tier: str = "gpu", **autoscaling: Any) -> dict[str, Any]:
    return render_scaled_object(OWNER, make_spec(autoscaling), tier)  # type: ignore[arg-type]


def triggers(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {trigger["name"]: trigger for trigger in obj["spec"]["triggers"]}


def test_gpu_tier_defaults():
    obj = so("gpu")
    assert obj["apiVersion"] == "keda.sh/v1alpha1" and obj["kind"] == "ScaledObject"
    assert obj["metadata"]["name"] == "voice-gpu" and obj["metadata"]["namespace"] == "team-a"
    assert obj["metadata"]["ownerReferences"][0]["uid"] == "1234"
    assert obj["metadata"]["labels"]["voicefleet.io/tier"] == "gpu"
    assert "annotations" not in obj["metadata"]
    spec = obj["spec"]
    assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "voice-gpu"}
    assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (2, 8)  # warm floor 2 on the GPU tier
    assert spec["fallback"] == {"failureThreshold": 3, "replicas": 2, "behavior": "currentReplicasIfHigher"}
    # 10 min of calm, then one pod per 2 min; up at once
    assert spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"] == {
        "scaleUp": {"stabilizationWindowSeconds": 0, "policies": [
            {"type": "Pods", "value": 4, "periodSeconds": 60},
            {"type": "Percent", "value": 100, "periodSeconds": 60}]},
        "scaleDown": {"stabilizationWindowSeconds": 600, "policies": [
            {"type": "Pods", "value": 1, "periodSeconds": 120}]},
    }  # fmt: skip
    # Fields KEDA ignores with a floor above 0 are left out.
    for ignored in ("cooldownPeriod", "initialCooldownPeriod", "idleReplicaCount"):
        assert ignored not in spec
    by_name = triggers(obj)
    assert list(by_name) == ["queue-depth", "gpu-utilization"]
    queue, gpu = by_name["queue-depth"], by_name["gpu-utilization"]
    assert queue["metricType"] == gpu["metricType"] == "AverageValue"
    assert queue["metadata"]["serverAddress"] == DEFAULT_PROMETHEUS_ADDRESS
    assert queue["metadata"]["threshold"] == "8" and gpu["metadata"]["threshold"] == "75"
    assert 'namespace="team-a",pod=~"voice-gpu-' in queue["metadata"]["query"]
    assert "[2m:15s]" in queue["metadata"]["query"]
    assert 'exported_namespace="team-a"' in gpu["metadata"]["query"] and "[3m]" in gpu["metadata"]["query"]
    assert gpu["metadata"]["ignoreNullValues"] == "false"  # broken DCGM attribution -> fallback
    assert "activationThreshold" not in queue["metadata"] and "activationThreshold" not in gpu["metadata"]


def test_cpu_tier_has_no_gpu_trigger_and_floor_one():
    obj = so("cpu")
    assert list(triggers(obj)) == ["queue-depth"]
    assert (obj["spec"]["minReplicaCount"], obj["spec"]["maxReplicaCount"]) == (1, 4)
    assert 'pod=~"voice-cpu-' in obj["spec"]["triggers"][0]["metadata"]["query"]


@pytest.mark.parametrize(
    ("autoscaling", "tier", "path", "expected"),
    [
        ({"queueDepthTarget": 20}, "gpu", ("queue-depth", "threshold"), "20"),
        ({"gpuUtilizationTarget": 60}, "gpu", ("gpu-utilization", "threshold"), "60"),
        ({"prometheusAddress": "http://thanos.mon:9090"}, "cpu", ("queue-depth", "serverAddress"),
         "http://thanos.mon:9090"),
        ({"dcgmLabels": {"pod": "pod", "namespace": "namespace"}}, "gpu", ("gpu-utilization", "query"),
         'sum(avg by (namespace, pod) (avg_over_time(DCGM_FI_DEV_GPU_UTIL{namespace="team-a",'
         'pod=~"voice-gpu-[a-z0-9]+-[a-z0-9]+"}[3m])))'),
        ({"queueDepthWindowSeconds": 300}, "cpu", ("queue-depth", "query"),
         'min_over_time(sum(tts_queue_depth{namespace="team-a",pod=~"voice-cpu-[a-z0-9]+-[a-z0-9]+"})'
         "[5m:15s])"),
        ({"timeToFirstAudioP95Seconds": 1.5}, "cpu", ("time-to-first-audio-p95", "threshold"), "1.5"),
    ],
)  # fmt: skip
def test_trigger_settings(autoscaling, tier, path, expected):
    trigger, key = path
    assert triggers(so(tier, **autoscaling))[trigger]["metadata"][key] == expected


def test_latency_guard_is_a_value_trigger():
    guard = triggers(so("gpu", timeToFirstAudioP95Seconds=2))["time-to-first-audio-p95"]
    assert guard["metricType"] == "Value"  # a percentile is per request, not a sum over pods


def test_operator_wide_prometheus_default():
    obj = render_scaled_object(OWNER, make_spec(), "cpu", "http://prom.obs:9090")
    assert obj["spec"]["triggers"][0]["metadata"]["serverAddress"] == "http://prom.obs:9090"


@pytest.mark.parametrize(
    ("schedules", "tier", "expected"),
    [
        ([{"name": "morning", "start": "50 7 * * *", "end": "0 9 * * *", "timezone": "Asia/Shanghai",
           "minReplicas": 5}], "gpu",
         [{"type": "cron", "name": "schedule-morning", "metadata": {
             "timezone": "Asia/Shanghai", "start": "50 7 * * *", "end": "0 9 * * *",
             "desiredReplicas": "5"}}]),
        ([{"name": "night", "start": "0 22 * * *", "end": "0 6 * * *", "tier": "cpu", "minReplicas": 3}],
         "cpu",
         [{"type": "cron", "name": "schedule-night", "metadata": {
             "timezone": "UTC", "start": "0 22 * * *", "end": "0 6 * * *", "desiredReplicas": "3"}}]),
        ([{"name": "night", "start": "0 22 * * *", "end": "0 6 * * *", "tier": "cpu", "minReplicas": 2}],
         "gpu", []),
        # Ceilings and warm floors are the operator's (no KEDA equivalent), not cron triggers.
        ([{"name": "cap", "start": "0 22 * * *", "end": "0 6 * * *", "maxReplicas": 2, "warmFloor": 0}],
         "gpu", []),
    ],
)  # fmt: skip
def test_cron_windows_go_to_their_tier(schedules, tier, expected):
    obj = so(tier, schedules=schedules)
    assert [tr for tr in obj["spec"]["triggers"] if tr["type"] == "cron"] == expected


def test_sleeping_gpu_tier_wakes_on_the_whole_service_queue():
    obj = so("gpu", warmFloor={"gpu": 0})
    spec = obj["spec"]
    assert spec["minReplicaCount"] == 0
    assert spec["cooldownPeriod"] == spec["initialCooldownPeriod"] == 600
    queue, gpu = triggers(obj)["queue-depth"], triggers(obj)["gpu-utilization"]
    assert 'pod=~"voice-(gpu|cpu)-[a-z0-9]+-[a-z0-9]+"' in queue["metadata"]["query"]
    assert queue["metadata"]["activationThreshold"] == "0"
    # At 0 GPU pods there are no DCGM series; that is no error.
    assert "ignoreNullValues" not in gpu["metadata"]


def test_scale_to_zero_cooldown_is_the_users():
    spec = so("gpu", warmFloor={"gpu": 0}, scaleToZeroCooldownSeconds=45)["spec"]
    assert spec["cooldownPeriod"] == spec["initialCooldownPeriod"] == 45
    # A tier that never sleeps carries neither: KEDA ignores them above 0 replicas.
    assert "cooldownPeriod" not in so("gpu", scaleToZeroCooldownSeconds=45)["spec"]
    # Not 0: KEDA would take an outage for idleness and scale the tier to zero (test_keda_live.py).
    assert spec["fallback"]["replicas"] == 1


@pytest.mark.parametrize(
    ("tiers", "floor", "tier", "expected"),
    [
        ({"gpu": {"maxReplicas": 1}}, {}, "gpu", 1),  # default 2, capped at the ceiling
        ({"gpu": {"maxReplicas": 8}}, {"gpu": 3}, "gpu", 3),
        ({"cpu": {"maxReplicas": 8}}, {"cpu": 0}, "cpu", 0),
        ({"cpu": {"maxReplicas": 8}}, {}, "cpu", 1),
    ],
)
def test_warm_floor(tiers, floor, tier, expected):
    assert warm_floor(make_spec({"warmFloor": floor}, tiers), tier) == expected


@pytest.mark.parametrize(
    ("behavior", "stabilization", "expected_down"),
    [
        ({}, 300, {"stabilizationWindowSeconds": 300,
                   "policies": [{"type": "Pods", "value": 1, "periodSeconds": 120}]}),
        ({"scaleDown": {"stabilizationWindowSeconds": 900, "selectPolicy": "Min",
                        "policies": [{"type": "Percent", "value": 10, "periodSeconds": 60},
                                     {"type": "Pods", "value": 2, "periodSeconds": 300}]}}, 600,
         {"stabilizationWindowSeconds": 900, "selectPolicy": "Min",
          "policies": [{"type": "Percent", "value": 10, "periodSeconds": 60},
                       {"type": "Pods", "value": 2, "periodSeconds": 300}]}),
        ({"scaleDown": {"selectPolicy": "Disabled"}}, 600,
         {"stabilizationWindowSeconds": 600, "selectPolicy": "Disabled",
          "policies": [{"type": "Pods", "value": 1, "periodSeconds": 120}]}),
    ],
)  # fmt: skip
def test_behavior(behavior, stabilization, expected_down):
    obj = so("cpu", behavior=behavior, scaleDownStabilizationSeconds=stabilization)
    assert obj["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleDown"] == expected_down


def test_pause_is_an_annotation():
    assert so("gpu", paused=True)["metadata"]["annotations"] == {PAUSED_ANNOTATION: "true"}


def kinds(children: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(child["kind"], child["metadata"]["name"]) for child in children]


@pytest.mark.parametrize(
    ("enabled", "keda", "scaled_objects", "replicas"),
    [
        (True, True, ["voice-gpu", "voice-cpu"], {"voice-gpu": None, "voice-cpu": None}),
        # KEDA's CRDs missing: no ScaledObjects, the Deployments run at the warm floor
        (True, False, [], {"voice-gpu": 2, "voice-cpu": 1}),
        (False, True, [], {"voice-gpu": 1, "voice-cpu": 1}),
    ],
)
def test_render_children_wiring(enabled, keda, scaled_objects, replicas):
    spec = make_spec({"enabled": enabled})
    children = render_children(OWNER, spec, keda_available=keda)
    assert [name for kind, name in kinds(children) if kind == "ScaledObject"] == scaled_objects
    deployments = {ch["metadata"]["name"]: ch["spec"].get("replicas") for ch in children
                   if ch["kind"] == "Deployment"}  # fmt: skip
    assert deployments == replicas


def test_autoscaling_unavailable_condition():
    spec = make_spec()
    deployments = {"gpu": DeploymentState(2, 1, 1, 2, 2, 2), "cpu": DeploymentState(1, 1, 1, 1, 1, 1)}

    def condition(keda: bool) -> dict[str, Any]:
        observed = Observed(generation=1, applied_generation=1, deployments=deployments, keda_available=keda)
        status = compute_status(OWNER, spec, observed, {}, "2026-11-21T18:00:00Z")
        return next(cond for cond in status["conditions"] if cond["type"] == c.AUTOSCALING_UNAVAILABLE)

    missing = condition(False)
    assert (missing["status"], missing["reason"]) == ("True", c.KEDA_MISSING)
    assert "gpu at 2, cpu at 1" in missing["message"]
    present = condition(True)
    assert (present["status"], present["reason"]) == ("False", c.SCALED_OBJECTS_APPLIED)
    # Without autoscaling the condition is not shown at all.
    observed = Observed(generation=1, applied_generation=1, deployments=deployments, keda_available=False)
    status = compute_status(OWNER, make_spec({"enabled": False}), observed, {}, "2026-11-21T18:00:00Z")
    assert c.AUTOSCALING_UNAVAILABLE not in {cond["type"] for cond in status["conditions"]}
