"""The operator against the real control plane: children, rollouts, garbage collection, drift, status."""

from __future__ import annotations

import json
import re
import signal
import statistics
import time

from tests.operator.conftest import condition, tts, wait_for

CHILD_KINDS = "configmaps,deployments,services,poddisruptionbudgets"


def children(kube, name):
    items = kube.get(CHILD_KINDS, selector=f"voicefleet.io/service={name}")["items"]
    return sorted((item["kind"], item["metadata"]["name"]) for item in items)


def expected_children(name, tiers=("cpu",)):
    kids = [("ConfigMap", f"{name}-config"), ("Service", name)]
    for tier in tiers:
        kids += [("Deployment", f"{name}-{tier}"), ("PodDisruptionBudget", f"{name}-{tier}")]
    return sorted(kids)


def wait_children(kube, name, tiers=("cpu",), timeout=10):
    want = expected_children(name, tiers)
    return wait_for(
        lambda: children(kube, name) == want, timeout=timeout, interval=0.05, what=f"children of {name}"
    )


def wait_condition(kube, name, kind, status, reason=None, timeout=20):
    def check():
        got = condition(kube.get("tts", name), kind)
        return got is not None and got[0] == status and (reason is None or got[1] == reason)

    wait_for(check, timeout=timeout, what=f"{kind}={status} {reason or ''} on {name}")


def test_apply_creates_children_within_two_seconds(kube, operator):
    latencies = []
    for i in range(3):
        name = f"fast-{i}"
        started = time.monotonic()
        kube.apply(tts(name, tiers={"gpu": {}, "cpu": {}}))
        wait_children(kube, name, ("gpu", "cpu"), timeout=2)
        latencies.append(time.monotonic() - started)
    print(
        f"apply -> children: {[round(x, 2) for x in latencies]} s, p50 {statistics.median(latencies):.2f} s"
    )
    assert statistics.median(latencies) <= 2

    body = kube.get("deployment", "fast-0-gpu")
    owner = body["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["controller"]) == ("TTSService", "fast-0", True)
    managers = {(m["manager"], m["operation"]) for m in body["metadata"]["managedFields"]}
    assert ("voicefleet-operator", "Apply") in managers
    container = body["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"

    # kwok runs the pods: the service becomes Ready, with per-tier counts and an endpoint.
    wait_condition(kube, "fast-0", "Ready", "True", "AllReplicasReady")
    status = kube.get("tts", "fast-0")["status"]
    assert status["observedGeneration"] == 1
    assert status["tiers"]["gpu"]["readyReplicas"] == 1 and status["tiers"]["cpu"]["readyReplicas"] == 1
    assert status["endpoint"] == f"http://fast-0.{kube.namespace}.svc:80"
    assert condition(kube.get("tts", "fast-0"), "Degraded") == ("False", "AsExpected")


def test_spec_change_updates_children_and_rolls_out(kube, operator):
    kube.apply(tts("roll"))
    wait_condition(kube, "roll", "Ready", "True")
    before = kube.get("deployment", "roll-cpu")["spec"]["template"]["metadata"]["annotations"][
        "voicefleet.io/config-hash"
    ]
    kube.apply(tts("roll", server={"queueSize": 5}, tiers={"cpu": {"minReplicas": 2, "maxReplicas": 3}}))
    wait_for(
        lambda: kube.get("configmap", "roll-config")["data"]["TTS_MAX_QUEUE"] == "5",
        timeout=3,
        what="config",
    )
    deployment = wait_for(
        lambda: (d := kube.get("deployment", "roll-cpu"))["spec"]["replicas"] == 2 and d,
        timeout=3,
        what="replicas",
    )
    after = deployment["spec"]["template"]["metadata"]["annotations"]["voicefleet.io/config-hash"]
    assert after != before, "a config change must roll the pods"
    # A new ReplicaSet is the rollout; the old one is scaled to zero once new pods are ready.
    wait_for(
        lambda: len(kube.get("replicasets", selector="voicefleet.io/service=roll")["items"]) == 2, timeout=5
    )
    wait_condition(kube, "roll", "Progressing", "False", "RolloutComplete")
    wait_condition(kube, "roll", "Ready", "True")
    status = kube.get("tts", "roll")["status"]
    assert status["observedGeneration"] == 2 and status["tiers"]["cpu"]["readyReplicas"] == 2


def test_adding_and_removing_a_tier(kube, operator):
    kube.apply(tts("tiers"))
    wait_children(kube, "tiers", ("cpu",))
    kube.apply(tts("tiers", tiers={"cpu": {}, "gpu": {}}))
    wait_children(kube, "tiers", ("gpu", "cpu"), timeout=3)
    kube.apply(tts("tiers", tiers={"gpu": {}}))
    wait_children(kube, "tiers", ("gpu",), timeout=5)


def test_delete_garbage_collects_children(kube, operator):
    kube.apply(tts("gone"))
    wait_children(kube, "gone")
    kube.run("delete", "tts", "gone", "--wait=true", "--timeout=10s")
    wait_for(lambda: children(kube, "gone") == [], timeout=10, what="garbage collection")
    wait_for(
        lambda: kube.get("pods", selector="voicefleet.io/service=gone")["items"] == [],
        timeout=20,
        what="pods gone",
    )


def test_drift_is_repaired(kube, operator):
    kube.apply(tts("drift"))
    wait_children(kube, "drift")
    uid = kube.get("service", "drift")["metadata"]["uid"]
    kube.run("delete", "service", "drift")
    wait_for(
        lambda: kube.exists("service", "drift") and kube.get("service", "drift")["metadata"]["uid"] != uid,
        timeout=3,
        what="deleted Service re-created",
    )

    kube.run("patch", "configmap", "drift-config", "--type=merge", "-p", '{"data":{"TTS_MAX_QUEUE":"1"}}')
    wait_for(
        lambda: kube.get("configmap", "drift-config")["data"]["TTS_MAX_QUEUE"] == "64",
        timeout=3,
        what="config",
    )

    kube.run("set", "image", "deployment/drift-cpu", "tts-server=evil:latest")
    wait_for(
        lambda: kube.get("deployment", "drift-cpu")["spec"]["template"]["spec"]["containers"][0]["image"]
        == "ghcr.io/voicefleet/tts-server:0.1.0",
        timeout=3, what="image restored",
    )  # fmt: skip
    kube.run("delete", "deployment", "drift-cpu", "--wait=false")
    wait_children(kube, "drift", timeout=3)


def test_no_finalizer_and_no_fight_with_autoscaler(kube, operator):
    kube.apply(tts("scaled", autoscaling={"enabled": True}))
    wait_children(kube, "scaled")
    assert kube.get("tts", "scaled")["metadata"].get("finalizers") in (None, [])
    deployment = kube.get("deployment", "scaled-cpu")
    ours = [m for m in deployment["metadata"]["managedFields"] if m["manager"] == "voicefleet-operator"]
    assert ours and all("f:replicas" not in json.dumps(m["fieldsV1"].get("f:spec", {})) for m in ours)
    # Stand-in for KEDA's HPA: someone else scales; the operator must leave it alone.
    kube.run("scale", "deployment", "scaled-cpu", "--replicas=3")
    kube.apply(tts("scaled", autoscaling={"enabled": True}, server={"queueSize": 9}))
    wait_for(lambda: kube.get("configmap", "scaled-config")["data"]["TTS_MAX_QUEUE"] == "9", timeout=3)
    time.sleep(1)
    assert kube.get("deployment", "scaled-cpu")["spec"]["replicas"] == 3


def test_gpu_unschedulable_shows_as_condition(kube, operator):
    # 3 replicas x 2 GPUs cannot fit the fake GPU node's 4 GPUs: at least one pod stays Pending.
    kube.apply(tts("gpufull", tiers={"gpu": {"gpus": 2, "minReplicas": 3, "maxReplicas": 3}}))
    wait_condition(kube, "gpufull", "Degraded", "True", "GPUUnschedulable", timeout=30)
    body = kube.get("tts", "gpufull")
    degraded = next(c for c in body["status"]["conditions"] if c["type"] == "Degraded")
    assert "Insufficient nvidia.com/gpu" in degraded["message"]
    assert condition(body, "Ready") == ("False", "GPUUnschedulable")
    assert body["status"]["tiers"]["gpu"]["unschedulableReplicas"] >= 1
    events = kube.get("events", selector=None)["items"]
    assert any(e["reason"] == "GPUUnschedulable" and e["involvedObject"]["name"] == "gpufull" for e in events)
    kube.apply(tts("gpufull", tiers={"gpu": {"gpus": 2, "minReplicas": 0, "maxReplicas": 3}}))
    wait_condition(kube, "gpufull", "Degraded", "False", "AsExpected", timeout=30)


def test_events_only_when_conditions_change(kube, operator):
    kube.apply(tts("quiet"))
    wait_condition(kube, "quiet", "Ready", "True")
    time.sleep(1)

    def our_events():
        items = kube.get("events")["items"]
        return sorted(e["metadata"]["name"] for e in items if e["involvedObject"]["name"] == "quiet"
                      and e["involvedObject"]["kind"] == "TTSService")  # fmt: skip

    before = our_events()
    assert before, "condition changes on creation must be recorded as Events"
    kube.apply(tts("quiet"))  # no-op re-apply: nothing changes, so no Event
    kube.run("annotate", "tts", "quiet", "touched=yes")
    time.sleep(2)
    assert our_events() == before


def test_printer_columns(kube, operator):
    kube.apply(tts("cols", tiers={"gpu": {}, "cpu": {"minReplicas": 2, "maxReplicas": 2}}))
    wait_condition(kube, "cols", "Ready", "True")
    wait_for(lambda: kube.get("tts", "cols")["status"]["tiers"]["cpu"]["readyReplicas"] == 2, timeout=10)
    lines = kube.run("get", "tts", "cols").splitlines()
    assert lines[0].split() == ["NAME", "ENGINE", "READY", "GPU", "CPU", "QUEUE", "AGE"]
    assert lines[1].split()[:5] == ["cols", "baker", "True", "1", "2"]


def test_operator_metrics(kube, operator):
    kube.apply(tts("metered"))
    wait_children(kube, "metered")
    text = operator.metrics()
    assert "voicefleet_operator_reconciles_total" in text
    assert "voicefleet_operator_reconcile_duration_seconds_bucket" in text
    managed = re.search(r"^voicefleet_operator_managed_services (\S+)$", text, re.M)
    assert managed and float(managed.group(1)) >= 1


def test_restart_mid_way_converges_without_duplicates(kube, operator):
    names = [f"r-{i}" for i in range(12)]
    manifests = "\n---\n".join(
        json.dumps(tts(n, tiers={"gpu": {"minReplicas": 0}, "cpu": {}})) for n in names
    )
    kube.run("apply", "--server-side", "-f", "-", stdin=manifests)
    time.sleep(0.3)
    operator.stop(signal.SIGKILL)  # no cleanup, mid-reconcile
    operator.start()
    for name in names:
        wait_children(kube, name, ("gpu", "cpu"), timeout=20)
        wait_condition(kube, name, "Ready", "True", timeout=30)
    deployments = kube.get("deployments")["items"]
    assert sorted(d["metadata"]["name"] for d in deployments) == sorted(
        f"{n}-{t}" for n in names for t in ("gpu", "cpu")
    )
    for name in names:
        replicasets = kube.get(
            "replicasets", selector=f"voicefleet.io/service={name},voicefleet.io/tier=cpu"
        )["items"]
        assert len(replicasets) == 1, (
            f"{name}: duplicate rollouts {[r['metadata']['name'] for r in replicasets]}"
        )
        assert kube.get("tts", name)["status"]["observedGeneration"] == 1


def test_apply_failure_is_degraded_then_recovers(kube, operator):
    quota = {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "no-deployments"},
             "spec": {"hard": {"count/deployments.apps": "0"}}}  # fmt: skip
    kube.apply(quota)
    kube.apply(tts("quota"))
    wait_condition(kube, "quota", "Degraded", "True", "ApplyFailed", timeout=10)
    degraded = next(c for c in kube.get("tts", "quota")["status"]["conditions"] if c["type"] == "Degraded")
    assert "exceeded quota" in degraded["message"]
    assert 'voicefleet_operator_apply_errors_total{kind="Deployment"}' in operator.metrics()
    kube.run("delete", "resourcequota", "no-deployments")
    # kopf retries the failed reconcile after its back-off (10 s).
    wait_condition(kube, "quota", "Ready", "True", timeout=30)
    assert condition(kube.get("tts", "quota"), "Degraded") == ("False", "AsExpected")


def test_failed_drift_repair_is_retried(kube, operator):
    kube.apply(tts("retry"))
    wait_children(kube, "retry")
    quota = {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "no-services"},
             "spec": {"hard": {"services": "0"}}}  # fmt: skip
    kube.apply(quota)
    wait_for(lambda: kube.get("resourcequota", "no-services").get("status", {}).get("hard"), what="quota")
    kube.run("delete", "service", "retry")
    time.sleep(1.5)
    assert not kube.exists("service", "retry"), "the quota should block the re-creation for now"
    kube.run("delete", "resourcequota", "no-services")
    # No new event arrives for a deleted Service: only the operator's own retries can bring it back.
    wait_for(lambda: kube.exists("service", "retry"), timeout=20, what="Service back after the quota went")
