"""Autoscaling against the real control plane with KEDA 2.20's real CRDs: ScaledObjects pass KEDA's
schema, follow spec changes, are repaired, garbage-collected; without KEDA the service runs at its floor."""

from __future__ import annotations

import json
import re

from tests.cluster.cluster import keda_crd_dir
from tests.operator.conftest import condition, tts, wait_for

TIERS = {"gpu": {"maxReplicas": 6}, "cpu": {"maxReplicas": 3}}
AUTOSCALING = {
    "enabled": True,
    "queueDepthTarget": 20,
    "timeToFirstAudioP95Seconds": 1.5,
    "schedules": [
        {"name": "morning", "start": "50 7 * * *", "end": "0 9 * * *", "timezone": "Asia/Shanghai",
         "minReplicas": 5},
        {"name": "night", "start": "0 22 * * *", "end": "0 6 * * *", "tier": "cpu", "minReplicas": 2},
    ],
}  # fmt: skip


def scaled_objects(kube, name):
    items = kube.get("scaledobjects.keda.sh", selector=f"voicefleet.io/service={name}")["items"]
    return {item["metadata"]["name"]: item for item in items}


def wait_scaled_objects(kube, name, expected, timeout=10):
    return wait_for(
        lambda: (found := scaled_objects(kube, name)) and sorted(found) == sorted(expected) and found
        if expected else scaled_objects(kube, name) == {},
        timeout=timeout, interval=0.1, what=f"ScaledObjects {expected} of {name}",
    )  # fmt: skip


def scaled_object_repairs(operator) -> float:
    found = re.search(r'^voicefleet_operator_drift_repairs_total\{kind="ScaledObject"\} (\S+)$',
                      operator.metrics(), re.M)  # fmt: skip
    return float(found.group(1)) if found else 0.0


def wait_autoscaling_condition(kube, name, status, reason, timeout=10):
    wait_for(lambda: condition(kube.get("tts", name), "AutoscalingUnavailable") == (status, reason),
             timeout=timeout, what=f"AutoscalingUnavailable={status} {reason}")  # fmt: skip


def test_scaled_objects_follow_the_spec_and_go_with_it(kube, operator):
    kube.apply(tts("auto", tiers=TIERS, autoscaling=AUTOSCALING))
    found = wait_scaled_objects(kube, "auto", ["auto-gpu", "auto-cpu"])
    gpu = found["auto-gpu"]
    # Stored as rendered: KEDA's structural schema kept every field (nothing pruned), and the apply used
    # fieldValidation=Strict, so an unknown field would have been an error.
    assert gpu["spec"]["minReplicaCount"] == 2 and gpu["spec"]["maxReplicaCount"] == 6
    assert gpu["spec"]["fallback"]["behavior"] == "currentReplicasIfHigher"
    assert gpu["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleDown"] == {
        "stabilizationWindowSeconds": 600, "policies": [{"type": "Pods", "value": 1, "periodSeconds": 120}]
    }
    names = [t["name"] for t in gpu["spec"]["triggers"]]
    assert names == ["queue-depth", "gpu-utilization", "time-to-first-audio-p95", "schedule-morning"]
    cron = gpu["spec"]["triggers"][-1]["metadata"]
    assert cron == {"timezone": "Asia/Shanghai", "start": "50 7 * * *", "end": "0 9 * * *",
                    "desiredReplicas": "5"}  # fmt: skip
    assert [t["name"] for t in found["auto-cpu"]["spec"]["triggers"]] == [
        "queue-depth", "time-to-first-audio-p95", "schedule-night"
    ]
    owner = gpu["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["controller"]) == ("TTSService", "auto", True)
    # The HPA KEDA creates owns replicas: our apply leaves them out.
    deployment = kube.get("deployment", "auto-gpu")
    ours = [m for m in deployment["metadata"]["managedFields"] if m["manager"] == "voicefleet-operator"]
    assert ours and all("f:replicas" not in json.dumps(m["fieldsV1"].get("f:spec", {})) for m in ours)
    wait_autoscaling_condition(kube, "auto", "False", "ScaledObjectsApplied")

    # Spec change: new target, paused.
    kube.apply(tts("auto", tiers=TIERS, autoscaling={**AUTOSCALING, "queueDepthTarget": 7, "paused": True}))
    wait_for(
        lambda: (so := scaled_objects(kube, "auto").get("auto-cpu"))
        and so["spec"]["triggers"][0]["metadata"]["threshold"] == "7"
        and so["metadata"].get("annotations", {}).get("autoscaling.keda.sh/paused") == "true",
        timeout=5, what="threshold 7 and paused",
    )  # fmt: skip
    # Unpausing removes the annotation (server-side apply drops a field we no longer send).
    kube.apply(tts("auto", tiers=TIERS, autoscaling={**AUTOSCALING, "queueDepthTarget": 7}))
    wait_for(
        lambda: "autoscaling.keda.sh/paused"
        not in (scaled_objects(kube, "auto")["auto-cpu"]["metadata"].get("annotations") or {}),
        timeout=5, what="pause annotation removed",
    )  # fmt: skip

    # A tier leaving the spec takes its ScaledObject.
    kube.apply(tts("auto", tiers={"cpu": {"maxReplicas": 3}}, autoscaling={"enabled": True}))
    wait_scaled_objects(kube, "auto", ["auto-cpu"])

    # Drift: a deleted ScaledObject comes back.
    uid = scaled_objects(kube, "auto")["auto-cpu"]["metadata"]["uid"]
    kube.run("delete", "scaledobject.keda.sh", "auto-cpu")
    wait_for(lambda: (so := scaled_objects(kube, "auto").get("auto-cpu")) and so["metadata"]["uid"] != uid,
             timeout=5, what="ScaledObject re-created")  # fmt: skip
    assert scaled_object_repairs(operator) == 1  # that one; no fight with what KEDA's CRD stored

    # Autoscaling off: ScaledObjects go, the Deployment gets its replicas back.
    kube.apply(tts("auto", tiers={"cpu": {"maxReplicas": 3, "minReplicas": 2}}))
    wait_scaled_objects(kube, "auto", [])
    wait_for(lambda: kube.get("deployment", "auto-cpu")["spec"]["replicas"] == 2, timeout=5, what="replicas")

    # Back on, then the TTSService is deleted: the garbage collector removes the ScaledObjects.
    kube.apply(tts("auto", tiers=TIERS, autoscaling={"enabled": True}))
    wait_scaled_objects(kube, "auto", ["auto-gpu", "auto-cpu"])
    kube.run("delete", "tts", "auto", "--wait=true", "--timeout=10s")
    wait_scaled_objects(kube, "auto", [], timeout=20)
    assert scaled_object_repairs(operator) == 1


def test_keda_schema_is_really_checked(kube, operator):
    """The acceptance above means something: KEDA's CRD rejects what its schema forbids."""
    kube.apply(tts("strict", autoscaling={"enabled": True}))
    so = wait_scaled_objects(kube, "strict", ["strict-cpu"])["strict-cpu"]
    bad = {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
           "metadata": {"name": "bad"}, "spec": json.loads(json.dumps(so["spec"]))}  # fmt: skip
    bad["spec"]["fallback"]["behavior"] = "shrinkEverything"
    err = kube.run("apply", "--server-side", "-f", "-", stdin=json.dumps(bad), check=False)
    assert not kube.exists("scaledobject.keda.sh", "bad"), err
    bad["spec"]["fallback"]["behavior"] = "currentReplicasIfHigher"
    bad["spec"]["minReplicaCount"], bad["spec"]["maxReplicaCount"] = 5, 2
    kube.run("apply", "--server-side", "-f", "-", stdin=json.dumps(bad), check=False)
    assert not kube.exists("scaledobject.keda.sh", "bad")


def test_without_keda_the_service_runs_at_its_floor(kube, operator):
    """Runs last in this file: it removes KEDA's ScaledObject CRD and puts it back."""
    crd = keda_crd_dir() / "keda.sh_scaledobjects.yaml"
    kube.cluster.kubectl("delete", "-f", str(crd), "--wait=true", "--timeout=30s")
    try:
        kube.apply(tts("nokeda", tiers=TIERS, autoscaling={"enabled": True}))
        wait_autoscaling_condition(kube, "nokeda", "True", "KEDACRDsMissing", timeout=15)
        assert kube.get("deployment", "nokeda-gpu")["spec"]["replicas"] == 2  # the GPU warm floor
        assert kube.get("deployment", "nokeda-cpu")["spec"]["replicas"] == 1
        wait_for(lambda: condition(kube.get("tts", "nokeda"), "Ready") == ("True", "AllReplicasReady"),
                 timeout=30, what="Ready at the floor")  # fmt: skip
        events = kube.get("events")["items"]
        assert not any(e["reason"] == "ApplyFailed" for e in events)
    finally:
        kube.cluster.kubectl("apply", "--server-side", "-f", str(crd))
        kube.cluster.kubectl("wait", "--for=condition=Established", "--timeout=30s",
                             "crd/scaledobjects.keda.sh")  # fmt: skip
    wait_for(lambda: kube.cluster.kubectl("get", "--raw=/apis/keda.sh/v1alpha1", check=False).strip(),
             timeout=30, what="keda.sh in discovery")  # fmt: skip
    # KEDA installed later: the next reconcile (any spec change) brings the ScaledObjects.
    kube.apply(tts("nokeda", tiers=TIERS, autoscaling={"enabled": True, "queueDepthTarget": 9}))
    wait_scaled_objects(kube, "nokeda", ["nokeda-gpu", "nokeda-cpu"], timeout=15)
    wait_autoscaling_condition(kube, "nokeda", "False", "ScaledObjectsApplied")
