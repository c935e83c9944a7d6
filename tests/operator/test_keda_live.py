"""The real KEDA operator (v2.20.2, built from Go modules) on the test control plane, driving what our
operator renders: ScaledObjects become Ready, KEDA's HPA carries our metrics and behaviour, a real
queue (a real tts-server under load, scraped by a real Prometheus) wakes a GPU tier from 0 to 1, and the
HPA scales a tier from 1 to N on the same queue.

The HPA's own 1 -> N step runs too: kube-controller-manager reads KEDA's External metric through the
external.metrics.k8s.io APIService, served by KEDA's metrics adapter (tests/cluster/keda.py).

Scraping: Prometheus reaches the one tts-server process through a static target whose labels
(namespace, pod) stand in for what Kubernetes service discovery would add for a CPU-tier pod; kwok's
pods serve nothing, so the queue KEDA sees is that real server's.

The way back to 0 runs too: the GPU tier's spec.autoscaling.scaleToZeroCooldownSeconds is short here
(600 s by default), so KEDA takes a fresh idle tier to 0 on its own and returns a woken one to 0 once
the queue has been empty that long.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tts_operator.render import Owner
from tts_operator.render.scaledobject import render_scaled_object
from tts_operator.spec import TTSServiceSpec

from tests.cluster.cluster import Cluster
from tests.cluster.keda import Keda, start_keda
from tests.loadstep import Load
from tests.operator.conftest import Kube, tts, wait_for
from tests.promstack import Prometheus, queueing_server, running_prometheus, static_job
from tests.server.conftest import ServerProcess

# Short enough to watch KEDA take an idle tier to 0; long enough to see its "cooling down" state first.
COOLDOWN_S = 30
# KEDA's prometheus scaler polls this often (the operator renders it; KEDA acts on it at 0 replicas).
POLLING_S = 15


@pytest.fixture(scope="module")
def keda(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Keda]:
    """KEDA (operator and metrics adapter) for this module only. Never skipped: a failed build or start
    is an error that says why."""
    running = start_keda(cluster, tmp_path_factory.mktemp("keda"))
    try:
        yield running
    finally:
        running.stop()
        # KEDA puts a finalizer on every ScaledObject it sees; with KEDA gone, objects in namespaces
        # that later tests' teardown deletes would hang those namespaces forever.
        listing = json.loads(cluster.kubectl("get", "scaledobjects.keda.sh", "-A", "-o", "json"))
        for item in listing["items"]:
            if item["metadata"].get("finalizers"):
                cluster.kubectl(
                    "-n", item["metadata"]["namespace"], "patch", "scaledobject.keda.sh",
                    item["metadata"]["name"], "--type=merge", "-p", '{"metadata":{"finalizers":null}}',
                    check=False,
                )  # fmt: skip


@pytest.fixture(scope="module")
def tts_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    # One worker: concurrent requests queue, which is the signal under test.
    with queueing_server(tmp_path_factory.mktemp("server"), max_queue=32) as server:
        yield server


def cpu_pod_name(kube: Kube, deployment: str) -> str:
    """A real pod name of the CPU tier (`<name>-cpu-<hash>-<suffix>`): the identity Prometheus gives
    the server, so the operator's anchored pod regex must match it."""
    selector = f"voicefleet.io/tier=cpu,voicefleet.io/service={deployment}"
    pods = wait_for(lambda: kube.get("pods", selector=selector)["items"], timeout=20, what="a CPU-tier pod")
    return pods[0]["metadata"]["name"]


@pytest.fixture
def prometheus_for(tmp_path: Path, tts_server: ServerProcess):
    """Start a Prometheus scraping the real server as pod `pod` of namespace `namespace`."""
    stack: list = []

    def start(namespace: str, pod: str) -> Prometheus:
        job = static_job("tts", tts_server.url.removeprefix("http://"), {"namespace": namespace, "pod": pod})
        ctx = running_prometheus(tmp_path / "prometheus", [job])
        stack.append(ctx)
        return ctx.__enter__()

    yield start
    for ctx in reversed(stack):
        ctx.__exit__(None, None, None)


def scaled_object(kube: Kube, name: str) -> dict:
    return kube.get("scaledobjects.keda.sh", name)


def hpa(kube: Kube, name: str) -> dict:
    return wait_for(lambda: kube.exists("hpa", name) and kube.get("hpa", name), timeout=30,
                    what=f"KEDA's HPA {name}")  # fmt: skip


def active(kube: Kube, name: str) -> tuple[str, str] | None:
    """The ScaledObject's Active condition (status, reason)."""
    return so_condition(scaled_object(kube, name), "Active")


def so_condition(body: dict, kind: str) -> tuple[str, str] | None:
    for cond in body.get("status", {}).get("conditions", []):
        if cond["type"] == kind:
            return cond["status"], cond.get("reason", "")
    return None


def remove_service(kube: Kube, name: str) -> None:
    """Delete the TTSService while KEDA runs, so KEDA releases its ScaledObjects' finalizers."""
    kube.run("delete", "tts", name, "--ignore-not-found", "--wait=true", "--timeout=30s")
    wait_for(lambda: not kube.get("scaledobjects.keda.sh", selector=f"voicefleet.io/service={name}")["items"],
             timeout=60, what=f"ScaledObjects of {name} gone")  # fmt: skip


TIERS = {"gpu": {"maxReplicas": 6}, "cpu": {"maxReplicas": 3}}


def test_scaled_objects_ready_and_hpa_carries_our_metrics_and_behavior(kube, operator, keda, tts_server,
                                                                       prometheus_for):  # fmt: skip
    prom = prometheus_for(kube.namespace, "ready-cpu-5c7d9f8b6-x2x4z")
    autoscaling = {
        "enabled": True,
        "prometheusAddress": prom.url,
        "queueDepthTarget": 20,
        "timeToFirstAudioP95Seconds": 1.5,
        "warmFloor": {"gpu": 1, "cpu": 1},
        "behavior": {"scaleUp": {"stabilizationWindowSeconds": 30,
                                 "policies": [{"type": "Pods", "value": 2, "periodSeconds": 45}]}},
        "schedules": [{"name": "morning", "start": "50 7 * * *", "end": "0 9 * * *",
                       "timezone": "Asia/Shanghai", "minReplicas": 4}],
    }  # fmt: skip
    kube.apply(tts("ready", tiers=TIERS, autoscaling=autoscaling))
    try:
        for tier in ("gpu", "cpu"):
            wait_for(lambda t=tier: so_condition(scaled_object(kube, f"ready-{t}"), "Ready") == ("True",
                     "ScaledObjectReady"), timeout=60, what=f"ready-{tier} Ready=True from KEDA")  # fmt: skip
        gpu_so = scaled_object(kube, "ready-gpu")
        assert gpu_so["status"]["hpaName"] == "keda-hpa-ready-gpu"
        assert gpu_so["status"]["scaleTargetKind"] == "apps/v1.Deployment"
        assert "finalizer.keda.sh" in gpu_so["metadata"]["finalizers"]

        gpu_hpa = hpa(kube, "keda-hpa-ready-gpu")
        spec = gpu_hpa["spec"]
        assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "ready-gpu"}
        assert (spec["minReplicas"], spec["maxReplicas"]) == (1, 6)
        owner = gpu_hpa["metadata"]["ownerReferences"][0]
        assert (owner["kind"], owner["name"]) == ("ScaledObject", "ready-gpu")
        # One External metric per trigger, in trigger order: queue, GPU util, p95 guard, cron window.
        metrics = [(m["type"], m["external"]["metric"]["name"], m["external"]["target"])
                   for m in spec["metrics"]]  # fmt: skip
        assert [m[0] for m in metrics] == ["External"] * 4
        names = [m[1] for m in metrics]
        assert names[:3] == ["s0-prometheus", "s1-prometheus", "s2-prometheus"], names
        assert names[3].startswith("s3-cron-Asia-Shanghai"), names
        assert [m[2] for m in metrics] == [
            {"type": "AverageValue", "averageValue": "20"},  # queue: a sum, 20 per replica
            {"type": "AverageValue", "averageValue": "75"},  # GPU util: a sum of per-pod %
            {"type": "Value", "value": "1.500"},  # p95 TTFA 1.5 s: a per-pod quantity
            {"type": "AverageValue", "averageValue": "1"},  # cron: desiredReplicas over target 1
        ]
        selector = spec["metrics"][0]["external"]["metric"]["selector"]["matchLabels"]
        assert selector == {"scaledobject.keda.sh/name": "ready-gpu"}
        assert spec["behavior"]["scaleUp"] == {
            "stabilizationWindowSeconds": 30, "selectPolicy": "Max",
            "policies": [{"type": "Pods", "value": 2, "periodSeconds": 45}],
        }  # fmt: skip
        assert spec["behavior"]["scaleDown"] == {
            "stabilizationWindowSeconds": 600, "selectPolicy": "Max",
            "policies": [{"type": "Pods", "value": 1, "periodSeconds": 120}],
        }  # fmt: skip

        cpu_hpa = hpa(kube, "keda-hpa-ready-cpu")
        assert (cpu_hpa["spec"]["minReplicas"], cpu_hpa["spec"]["maxReplicas"]) == (1, 3)
        assert [m["external"]["target"] for m in cpu_hpa["spec"]["metrics"]] == [
            {"type": "AverageValue", "averageValue": "20"}, {"type": "Value", "value": "1.500"},
        ]  # fmt: skip

        # KEDA really evaluated our queries against Prometheus: each prometheus trigger reports health.
        wait_for(lambda: (health := scaled_object(kube, "ready-cpu")["status"].get("health"))
                 and all(h["status"] == "Happy" for h in health.values()) and len(health) == 2,
                 timeout=60, what="ready-cpu triggers healthy")  # fmt: skip
        # And the HPA reads both through the metrics adapter (KEDA mirrors its ScalingActive).
        wait_for(lambda: so_condition(scaled_object(kube, "ready-cpu"), "HPAActive") == ("True", "HPAActive"),
                 timeout=60, what="ready-cpu's HPA actively scaling")  # fmt: skip
    finally:
        remove_service(kube, "ready")


def test_queue_rise_wakes_a_gpu_tier_from_zero(kube, operator, keda, tts_server, prometheus_for):
    autoscaling = {"enabled": True, "queueDepthTarget": 2, "queueDepthWindowSeconds": 15,
                   "warmFloor": {"gpu": 0, "cpu": 1}, "scaleToZeroCooldownSeconds": COOLDOWN_S}  # fmt: skip
    # Prometheus must know the CPU pod's real name, which exists only once the operator made the
    # Deployment: apply first with an address nothing listens on, then point the service at Prometheus.
    kube.apply(tts("wake", tiers={"gpu": {"maxReplicas": 2}, "cpu": {"maxReplicas": 2}},
                   autoscaling={**autoscaling, "prometheusAddress": "http://127.0.0.1:1"}))  # fmt: skip
    try:
        # The server answers as the CPU tier's real pod: the name the operator's regex must match.
        prom = prometheus_for(kube.namespace, cpu_pod_name(kube, "wake"))
        kube.apply(tts("wake", tiers={"gpu": {"maxReplicas": 2}, "cpu": {"maxReplicas": 2}},
                       autoscaling={**autoscaling, "prometheusAddress": prom.url}))  # fmt: skip
        wait_for(lambda: prom.url in json.dumps(scaled_object(kube, "wake-gpu")["spec"]["triggers"]),
                 timeout=20, what="wake-gpu pointing at the test Prometheus")  # fmt: skip
        gpu_so = scaled_object(kube, "wake-gpu")
        assert gpu_so["spec"]["minReplicaCount"] == 0
        queue_trigger = gpu_so["spec"]["triggers"][0]
        assert queue_trigger["metadata"]["activationThreshold"] == "0"
        assert 'pod=~"wake-(gpu|cpu)-[a-z0-9]+-[a-z0-9]+"' in queue_trigger["metadata"]["query"]
        assert gpu_so["spec"]["cooldownPeriod"] == gpu_so["spec"]["initialCooldownPeriod"] == COOLDOWN_S
        # A new Deployment without spec.replicas starts at 1; KEDA takes the idle tier to 0 itself once
        # the initialCooldownPeriod has passed (the HPA is disabled at 0 replicas).
        wait_for(lambda: kube.get("deployment", "wake-gpu")["spec"]["replicas"] == 0, timeout=COOLDOWN_S + 60,
                 interval=0.5, what="KEDA taking the idle wake-gpu to 0")  # fmt: skip
        wait_for(lambda: active(kube, "wake-gpu") == ("False", "ScalerNotActive"), timeout=60,
                 what="wake-gpu idle at 0")  # fmt: skip
        time.sleep(POLLING_S + 1)  # a full polling interval idle: KEDA must not wake it on its own
        assert kube.get("deployment", "wake-gpu")["spec"]["replicas"] == 0

        query = queue_trigger["metadata"]["query"]
        with Load(tts_server.url, clients=4) as load:
            started = time.monotonic()
            # Queued requests on the CPU tier (3 waiting behind the one worker) wake the GPU tier:
            # KEDA itself does 0 -> 1 (the HPA never scales from 0).
            wait_for(lambda: kube.get("deployment", "wake-gpu")["spec"]["replicas"] >= 1,
                     timeout=90, interval=0.5, what="KEDA scaling wake-gpu 0 -> 1")  # fmt: skip
            woke_after = time.monotonic() - started
            seen = prom.scalar(query, time.time())
        assert seen is not None and seen > 0, seen
        assert all(code == 200 for code in load.codes), load.codes  # finished ones (maybe none yet)
        so = scaled_object(kube, "wake-gpu")
        assert so_condition(so, "Active") == ("True", "ScalerActive")
        # KEDA names triggers by their External metric: s0 is the queue, s1 the GPU utilization.
        activity = {name: state["isActive"] for name, state in so["status"]["triggersActivity"].items()}
        assert activity == {"s0-prometheus": True, "s1-prometheus": False}, so["status"]
        events = kube.get("events")["items"]
        woke = [e["message"] for e in events if e["reason"] == "KEDAScaleTargetActivated"]
        assert woke == [f"Scaled apps/v1.Deployment {kube.namespace}/wake-gpu from 0 to 1, triggered by "
                        "s0-prometheus"], woke  # fmt: skip
        print(f"GPU tier woke {woke_after:.1f} s after the load step (query value {seen})")

        # Load gone: KEDA sees the queue empty, cools down instead of scaling at once, and returns the
        # tier to 0 once the queue has been empty for the cooldown.
        wait_for(lambda: prom.scalar(query, time.time()) == 0, timeout=60, interval=0.5,
                 what="the queue query back at 0")  # fmt: skip
        idle_since = time.monotonic()
        wait_for(lambda: active(kube, "wake-gpu") == ("False", "ScalerCooldown"), timeout=60, interval=0.5,
                 what="wake-gpu cooling down")  # fmt: skip
        assert kube.get("deployment", "wake-gpu")["spec"]["replicas"] >= 1
        wait_for(lambda: kube.get("deployment", "wake-gpu")["spec"]["replicas"] == 0,
                 timeout=COOLDOWN_S + 2 * POLLING_S + 30, interval=0.5, what="KEDA returning wake-gpu to 0")
        slept_after = time.monotonic() - idle_since
        # Not before the cooldown (less the query's own lag behind the queue emptying).
        assert slept_after >= COOLDOWN_S - POLLING_S, slept_after
    finally:
        remove_service(kube, "wake")


def test_hpa_scales_a_tier_up_on_the_queue_through_keda_metrics_adapter(kube, operator, keda, tts_server,
                                                                         prometheus_for):  # fmt: skip
    """1 -> N is the HPA's job: kube-controller-manager reads KEDA's external metric through the
    aggregated external.metrics.k8s.io API (apiserver -> keda-adapter -> keda-operator gRPC -> Prometheus)."""
    tiers = {"cpu": {"maxReplicas": 3}}
    autoscaling = {"enabled": True, "queueDepthTarget": 1, "queueDepthWindowSeconds": 15,
                   "warmFloor": {"cpu": 1}}  # fmt: skip
    # As above: Prometheus needs the real pod name first.
    kube.apply(tts("grow", tiers=tiers, autoscaling={**autoscaling, "prometheusAddress": "http://127.0.0.1:1"}))
    try:
        prom = prometheus_for(kube.namespace, cpu_pod_name(kube, "grow"))
        kube.apply(tts("grow", tiers=tiers, autoscaling={**autoscaling, "prometheusAddress": prom.url}))
        wait_for(lambda: prom.url in json.dumps(scaled_object(kube, "grow-cpu")["spec"]["triggers"]),
                 timeout=20, what="grow-cpu pointing at the test Prometheus")  # fmt: skip
        # The HPA's metric, read the way the HPA controller reads it.
        path = (f"/apis/external.metrics.k8s.io/v1beta1/namespaces/{kube.namespace}/s0-prometheus"
                "?labelSelector=scaledobject.keda.sh%2Fname%3Dgrow-cpu")  # fmt: skip

        def external_value() -> float | None:
            out = kube.cluster.kubectl("get", "--raw", path, check=False)
            items = json.loads(out)["items"] if out.strip() else []
            return float(items[0]["value"].rstrip("m")) / (1000 if items[0]["value"].endswith("m") else 1) \
                if items else None

        assert wait_for(lambda: external_value() == 0, timeout=60, what="the idle queue, via the adapter")
        wait_for(lambda: hpa(kube, "keda-hpa-grow-cpu").get("status", {}).get("currentMetrics"), timeout=60,
                 what="the HPA reading its metrics")  # fmt: skip
        assert kube.get("deployment", "grow-cpu")["spec"]["replicas"] == 1

        with Load(tts_server.url, clients=4):
            # 3 waiting behind one worker, target 1 per replica: the HPA wants ceil(3 / 1) = 3.
            wait_for(lambda: kube.get("deployment", "grow-cpu")["spec"]["replicas"] == 3, timeout=120,
                     interval=0.5, what="the HPA scaling grow-cpu 1 -> 3")  # fmt: skip
            assert external_value() == 3
            # Our operator's status tells the same story, read live from Prometheus and KEDA.
            def cpu_status() -> dict | None:
                tier = (kube.get("tts", "grow").get("status", {}).get("tiers") or {}).get("cpu") or {}
                active_now = "queue-depth" in (tier.get("activeTriggers") or [])
                return tier if active_now and (tier.get("queueDepth") or 0) > 0 else None

            live = wait_for(cpu_status, timeout=30, what="status.tiers.cpu: queue-depth active, queue read")
            assert live["maxReplicas"] == 3, live
        status = hpa(kube, "keda-hpa-grow-cpu")["status"]
        assert status["desiredReplicas"] == 3
        queue_metric = status["currentMetrics"][0]["external"]
        assert queue_metric["metric"]["name"] == "s0-prometheus"
        # The reading behind the decision: 3 queued over the 1 replica running then, target 1 -> 3 replicas.
        assert queue_metric["current"]["averageValue"] == "3"
        rescale = [e["message"] for e in kube.get("events")["items"] if e["reason"] == "SuccessfulRescale"]
        assert any("New size: 3" in m and "s0-prometheus" in m for m in rescale), rescale

        def hpa_decision() -> dict | None:
            found = kube.get("tts", "grow").get("status", {}).get("decisions") or []
            return next((d for d in found if (d["source"], d["tier"]) == ("hpa", "cpu")
                         and d["action"].endswith("-> 3")), None)  # fmt: skip

        # ... and status.decisions records the HPA's decision with the trigger that drove it.
        decision = wait_for(hpa_decision, timeout=30, what="the HPA's 1 -> 3 in status.decisions")
        assert "queue-depth" in decision["reason"], decision
    finally:
        remove_service(kube, "grow")


def test_metrics_outage_never_scales_a_tier_that_may_sleep_down_to_zero(kube, keda):
    """Prometheus down must hold what runs, also for a tier whose floor is 0.

    KEDA only treats an erroring, inactive ScaledObject as "fallback, hold" when fallback.replicas is
    not 0 (pkg/scaling/executor/scale_scaledobjects.go); with 0 it takes the scale-to-zero branch once
    the cooldown has passed. The object is the operator's own rendering for a floor-0 GPU tier, copied
    onto a plain Deployment with only the cooldowns shortened (600 s in the operator) so the outcome
    shows within the test.
    """
    spec = TTSServiceSpec.model_validate({
        "engine": "baker", "model": {"source": "builtin", "id": "baker"},
        "tiers": {"gpu": {"maxReplicas": 4}, "cpu": {}},
        "autoscaling": {"enabled": True, "warmFloor": {"gpu": 0}},
    })  # fmt: skip
    owner = Owner(name="outage", namespace=kube.namespace, uid="unused")
    rendered = render_scaled_object(owner, spec, "gpu", "http://127.0.0.1:1")  # nothing listens there
    kube.apply({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "outage-gpu"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "outage"}},
                 "template": {"metadata": {"labels": {"app": "outage"}},
                              "spec": {"containers": [{"name": "c", "image": "registry.invalid/c"}]}}},
    })  # fmt: skip
    rendered["metadata"] = {"name": "outage-gpu"}  # no owner: the TTSService does not exist
    rendered["spec"].update(cooldownPeriod=5, initialCooldownPeriod=5)
    kube.apply(rendered)
    try:
        # KEDA polls every 15 s and the HPA asks every 15 s: within 75 s the cooldown has long passed,
        # the queries have failed at least 3 times and KEDA reports the fallback in force.
        deadline = time.monotonic() + 75
        replicas: list[int] = []
        while time.monotonic() < deadline:
            replicas.append(kube.get("deployment", "outage-gpu")["spec"]["replicas"])
            time.sleep(1)
        assert set(replicas) == {2}, f"a metrics outage scaled the tier: {replicas}"
        wait_for(lambda: so_condition(scaled_object(kube, "outage-gpu"), "Fallback") == ("True",
                 "FallbackExists"), timeout=60, interval=1, what="KEDA reporting the fallback")  # fmt: skip
        assert kube.get("deployment", "outage-gpu")["spec"]["replicas"] == 2
    finally:
        kube.run("delete", "scaledobject.keda.sh", "outage-gpu", "--wait=true", "--timeout=30s")
