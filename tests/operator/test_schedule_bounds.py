"""The operator's policy against the real control plane (KEDA 2.20's CRDs, kube-scheduler, a kwok GPU
node with 4 nvidia.com/gpu): a schedule window open now moves the ScaledObject's bounds and moves them
back when it closes (the policy loop wakes at the edge); GPU pods that cannot be scheduled raise the
CPU tier's floor after afterSeconds, and placing them again undoes it."""

from __future__ import annotations

import asyncio
import re
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import kopf
import pytest
from tts_operator import policy_runtime
from tts_operator.policy import Observation, decide
from tts_operator.render import Owner, render_children
from tts_operator.spec import TTSServiceSpec
from tts_operator.status import with_policy

from tests.operator.conftest import tts, wait_for
from tests.operator.test_autoscaling import scaled_objects

SHANGHAI = ZoneInfo("Asia/Shanghai")
OWNER = Owner("voice", "team-a", "uid-1")
NIGHT = {"name": "night", "start": "0 1 * * *", "end": "0 7 * * *", "timezone": "Asia/Shanghai",
         "warmFloor": 0, "maxReplicas": 2}  # fmt: skip
PEAK = {"name": "peak", "start": "0 8 * * *", "end": "0 9 * * *", "timezone": "Asia/Shanghai",
        "minReplicas": 3}  # fmt: skip
AT_NIGHT = datetime(2026, 11, 20, 18, 0, tzinfo=timezone.utc)  # 02:00 in Shanghai
AT_PEAK = datetime(2026, 11, 21, 0, 30, tzinfo=timezone.utc)  # 08:30 in Shanghai


def spec_with_windows() -> TTSServiceSpec:
    return TTSServiceSpec.model_validate({
        "engine": "baker", "model": {"source": "builtin", "id": "baker"},
        "tiers": {"gpu": {"maxReplicas": 6}, "cpu": {"maxReplicas": 3}},
        "autoscaling": {"enabled": True, "schedules": [NIGHT, PEAK]},
    })  # fmt: skip


def by_kind(children: list[dict], kind: str) -> dict[str, dict]:
    return {c["metadata"]["name"]: c for c in children if c["kind"] == kind}


def minmax(scaled_object: dict) -> tuple[int, int]:
    return scaled_object["spec"]["minReplicaCount"], scaled_object["spec"]["maxReplicaCount"]


# ---- pure: the plan in the rendered children and in status --------------------------------------------


def test_plan_bounds_go_into_the_scaled_objects():
    spec = spec_with_windows()
    plan = decide(spec, AT_NIGHT, Observation())
    objects = by_kind(render_children(OWNER, spec, bounds=plan.tiers), "ScaledObject")
    gpu = objects["voice-gpu"]["spec"]
    assert (gpu["minReplicaCount"], gpu["maxReplicaCount"]) == (0, 2)
    # The floor in force (0), raised to 1: KEDA holds an object whose queries fail only when
    # fallback.replicas is not 0, so a Prometheus outage at night must not take the tier to zero.
    assert gpu["fallback"]["replicas"] == 1
    assert minmax(objects["voice-cpu"]) == (1, 3)
    # Triggers do not depend on the hour: the window's warmFloor 0 means the tier may sleep at any time.
    day_plan = decide(spec, AT_PEAK, Observation())
    day = by_kind(render_children(OWNER, spec, bounds=day_plan.tiers), "ScaledObject")
    assert day["voice-gpu"]["spec"]["triggers"] == gpu["triggers"]
    assert day["voice-gpu"]["spec"]["cooldownPeriod"] == gpu["cooldownPeriod"] == 600
    assert minmax(day["voice-gpu"]) == (2, 6)
    assert "cooldownPeriod" not in day["voice-cpu"]["spec"]  # the CPU tier never sleeps here


@pytest.mark.parametrize(("now", "gpu_replicas"), [(AT_NIGHT, 0), (AT_PEAK, 3)], ids=["night", "peak"])
def test_without_keda_the_deployment_follows_the_plan(now, gpu_replicas):
    spec = spec_with_windows()
    plan = decide(spec, now, Observation())
    children = render_children(OWNER, spec, keda_available=False, bounds=plan.tiers)
    assert by_kind(children, "ScaledObject") == {}
    deployments = by_kind(children, "Deployment")
    assert deployments["voice-gpu"]["spec"]["replicas"] == gpu_replicas
    assert deployments["voice-cpu"]["spec"]["replicas"] == 1


def test_status_shows_bounds_prewarm_and_decisions():
    spec = spec_with_windows()
    plan = decide(spec, AT_NIGHT, Observation())
    previous = {"decisions": [{"time": "t0", "tier": "gpu", "source": "hpa", "action": "replicas 2 -> 3",
                               "reason": "queue-depth"}]}  # fmt: skip
    status = {"tiers": {"gpu": {"readyReplicas": 2}, "cpu": {"readyReplicas": 1}}}
    new = with_policy(status, plan, previous, plan.decisions)
    assert new["tiers"]["gpu"] == {"readyReplicas": 2, "minReplicas": 0, "maxReplicas": 2}
    assert new["tiers"]["cpu"] == {"readyReplicas": 1, "minReplicas": 1, "maxReplicas": 3}
    assert [d["action"] for d in new["decisions"]] == ["replicas 2 -> 3", "floor 2 -> 0", "ceiling 6 -> 2"]
    assert "prewarm" not in new  # no forecast made yet
    # Autoscaling switched off: the bounds leave status (merge patches need explicit nulls).
    off = with_policy({"tiers": {"gpu": {"readyReplicas": 2}}}, None, {"tiers": new["tiers"]}, [])
    assert off["tiers"]["gpu"] == {"readyReplicas": 2, "minReplicas": None, "maxReplicas": None}


def runtime_memo() -> kopf.Memo:
    memo = kopf.Memo()
    memo.plans, memo.pending_decisions, memo.forecasts, memo.pending_seen = {}, {}, {}, {}
    memo.last_status = {}
    memo.policy_wakeup = asyncio.Event()
    return memo


def test_after_a_restart_the_bounds_in_status_count_as_in_force():
    """No decision is recorded twice: a restarted operator compares with the bounds status shows."""
    spec = spec_with_windows()
    key = ("team-a", "voice")
    first = decide(spec, AT_NIGHT, Observation())
    status = with_policy({"tiers": {"gpu": {}, "cpu": {}}}, first, {}, first.decisions)
    indexes = {"ttsservices": {key: [{"status": status}]}, "gpu_pending_since": {}}
    plan = policy_runtime.plan_for(key, spec, runtime_memo(), indexes, now=AT_NIGHT + timedelta(minutes=5))
    assert plan.bounds() == first.bounds() and plan.decisions == ()
    fresh = policy_runtime.plan_for(key, spec, runtime_memo(), {**indexes, "ttsservices": {}},
                                    now=AT_NIGHT + timedelta(minutes=5))  # fmt: skip
    assert [d["action"] for d in fresh.decisions] == ["floor 2 -> 0", "ceiling 6 -> 2"]


def test_decisions_are_queued_once_and_dropped_once_recorded():
    spec = spec_with_windows()
    key = ("team-a", "voice")
    memo = runtime_memo()
    plan = decide(spec, AT_NIGHT, Observation())
    policy_runtime.remember(key, plan, memo)
    assert memo.policy_wakeup.is_set()  # a plan with a next change wakes the loop
    recorded = list(memo.pending_decisions[key])
    policy_runtime.remember(key, decide(spec, AT_NIGHT, Observation(previous=plan.bounds())), memo)
    assert memo.pending_decisions[key] == recorded  # the same bounds again: nothing new queued
    policy_runtime.drop_recorded(key, memo, recorded)
    assert memo.pending_decisions[key] == []
    # An apply that failed takes its plan and decisions back, so the next pass tries again.
    later = decide(spec, AT_PEAK, Observation(previous=plan.bounds()))
    policy_runtime.remember(key, later, memo)
    policy_runtime.forget(key, later, plan, memo)
    assert memo.plans[key] is plan and memo.pending_decisions[key] == []


def test_gpu_pending_since_is_the_oldest_transition():
    spec = TTSServiceSpec.model_validate({
        "engine": "baker", "model": {"source": "builtin", "id": "baker"},
        "tiers": {"gpu": {"maxReplicas": 4}, "cpu": {"maxReplicas": 4}},
        "autoscaling": {"enabled": True, "cpuFallback": {"afterSeconds": 60}},
    })  # fmt: skip
    key = ("team-a", "voice")
    pending = {key: ["2026-11-20T12:00:30Z", "2026-11-20T12:00:00Z"]}
    indexes = {"ttsservices": {}, "gpu_pending_since": pending}
    at = datetime(2026, 11, 20, 12, 1, tzinfo=timezone.utc)
    assert policy_runtime.plan_for(key, spec, runtime_memo(), indexes, now=at).bounds()["cpu"] == (3, 4)
    # Pods without a transition time count from when the operator first saw them.
    memo = runtime_memo()
    blank = {**indexes, "gpu_pending_since": {key: [""]}}
    assert policy_runtime.plan_for(key, spec, memo, blank, now=at).bounds()["cpu"] == (1, 4)
    later = at + timedelta(seconds=60)
    assert policy_runtime.plan_for(key, spec, memo, blank, now=later).bounds()["cpu"] == (2, 4)


# ---- against the real control plane --------------------------------------------------------------------


def cron(t: datetime) -> str:
    return f"{t.minute} {t.hour} * * *"


def bounds(kube, name: str) -> dict[str, tuple[int, int]]:
    return {so["metadata"]["labels"]["voicefleet.io/tier"]: (so["spec"]["minReplicaCount"],
                                                           so["spec"]["maxReplicaCount"])
            for so in scaled_objects(kube, name).values()}  # fmt: skip


def status_bounds(kube, name: str) -> dict[str, tuple[int | None, int | None]]:
    tiers = kube.get("tts", name).get("status", {}).get("tiers", {})
    return {t: (v.get("minReplicas"), v.get("maxReplicas")) for t, v in tiers.items()}


def decisions(kube, name: str) -> list[dict]:
    return kube.get("tts", name).get("status", {}).get("decisions", [])


def test_window_open_now_lowers_floor_and_ceiling_until_it_closes(kube, operator):
    # A window in Shanghai time that opened a minute ago and closes at the start of the minute after
    # next: 60-120 s from now, whatever the second is.
    local = datetime.now(SHANGHAI)
    start, end = local - timedelta(minutes=1), local + timedelta(minutes=2)
    window = {"name": "lull", "start": cron(start), "end": cron(end), "timezone": "Asia/Shanghai",
              "warmFloor": 0, "maxReplicas": 3}  # fmt: skip
    kube.apply(tts("lull", tiers={"gpu": {"maxReplicas": 6}, "cpu": {"maxReplicas": 3}},
                   autoscaling={"enabled": True, "schedules": [window]}))  # fmt: skip
    wait_for(lambda: bounds(kube, "lull") == {"gpu": (0, 3), "cpu": (1, 3)}, timeout=15,
             what="window bounds on the ScaledObjects")  # fmt: skip
    wait_for(lambda: status_bounds(kube, "lull") == {"gpu": (0, 3), "cpu": (1, 3)}, timeout=10,
             what="bounds in status")  # fmt: skip
    actions = {(d["tier"], d["source"], d["action"]) for d in decisions(kube, "lull")}
    assert actions == {("gpu", "operator", "floor 2 -> 0"), ("gpu", "operator", "ceiling 6 -> 3")}
    described = f"window lull ({start:%H:%M}-{end:%H:%M} Asia/Shanghai)"
    assert {d["reason"] for d in decisions(kube, "lull")} == {
        f"{described} lowers the gpu floor", f"{described} lowers the gpu ceiling"}
    gpu = scaled_objects(kube, "lull")["lull-gpu"]["spec"]
    # A tier that may sleep watches the whole service's queue and wakes on it.
    assert gpu["cooldownPeriod"] == 600 and gpu["triggers"][0]["metadata"]["activationThreshold"] == "0"
    assert 'pod=~"lull-(gpu|cpu)-' in gpu["triggers"][0]["metadata"]["query"]
    assert [t["type"] for t in gpu["triggers"]] == ["prometheus", "prometheus"]  # no cron for bounds

    # Nothing touches the TTSService: the policy loop wakes at the window's end by itself.
    wait_for(lambda: bounds(kube, "lull") == {"gpu": (2, 6), "cpu": (1, 3)}, timeout=150, interval=1,
             what="bounds back after the window closed")  # fmt: skip
    wait_for(lambda: status_bounds(kube, "lull")["gpu"] == (2, 6), timeout=10, what="status bounds back")
    last = decisions(kube, "lull")[-2:]
    assert {d["action"] for d in last} == {"floor 0 -> 2", "ceiling 3 -> 6"}
    assert all("no window, fallback or pre-warm in force" in d["reason"] for d in last)
    assert kube.get("tts", "lull")["metadata"].get("finalizers") in (None, [])


def test_cpu_fallback_while_gpu_pods_cannot_be_scheduled(kube, operator):
    # 5 GPUs per replica cannot fit the fake GPU node's 4: the GPU pod stays Pending.
    tiers = {"gpu": {"gpus": 5, "maxReplicas": 2}, "cpu": {"maxReplicas": 3}}
    autoscaling = {"enabled": True, "cpuFallback": {"afterSeconds": 3}}
    kube.apply(tts("fb", tiers=tiers, autoscaling=autoscaling))
    wait_for(lambda: bounds(kube, "fb") == {"gpu": (2, 2), "cpu": (2, 3)}, timeout=30, interval=0.5,
             what="CPU floor raised by the fallback")  # fmt: skip
    wait_for(lambda: status_bounds(kube, "fb").get("cpu") == (2, 3), timeout=10, what="status CPU floor")
    (decision,) = [d for d in decisions(kube, "fb") if d["tier"] == "cpu"]
    assert (decision["source"], decision["action"]) == ("operator", "floor 1 -> 2")
    waited = re.fullmatch(r"CPU fallback: 1 gpu pod\(s\) unschedulable for (\d+) s \(afterSeconds 3\)",
                          decision["reason"])  # fmt: skip
    assert waited and int(waited.group(1)) >= 3, decision["reason"]
    pending = kube.get("pods", selector="voicefleet.io/service=fb,voicefleet.io/tier=gpu")["items"]
    assert any(p["status"].get("phase") == "Pending" for p in pending)

    # GPUs the node has: the pod schedules, the fallback is undone.
    kube.apply(tts("fb", tiers={**tiers, "gpu": {"gpus": 1, "maxReplicas": 2}}, autoscaling=autoscaling))
    wait_for(lambda: bounds(kube, "fb")["cpu"] == (1, 3), timeout=60, interval=0.5,
             what="CPU floor back once GPU pods schedule")  # fmt: skip
    wait_for(lambda: decisions(kube, "fb")[-1]["action"] == "floor 2 -> 1", timeout=10, what="undo decision")
    assert decisions(kube, "fb")[-1]["tier"] == "cpu"
