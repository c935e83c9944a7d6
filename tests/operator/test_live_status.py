"""Live status: queue depth, GPU utilization and latency read from Prometheus into TTSService status.

The pure half checks how live keys merge into the status (never wiped by a compute_status run, never left
stale, decisions recorded once) and how MetricsUnavailable is decided. The live half runs the operator
process against the real control plane, with a real Prometheus (Debian's package) scraping a real
tts-server under load, its target labels naming the TTSService's real (kwok) pods, plus the DCGM-format
stand-in (the one fake: there is no GPU) publishing DCGM_FI_DEV_GPU_UTIL for the real GPU pods; every
value in the status is checked against the same PromQL evaluated at the status's metricsObservedAt.
"""

from __future__ import annotations

import asyncio
import calendar
import re
import socket
import time
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import httpx
import pytest
import requests
from prometheus_api_client import PrometheusApiClientException
from tts_operator import conditions as c
from tts_operator import observe
from tts_operator import triggers as t
from tts_operator.observe import LiveMetrics, TierMetrics
from tts_operator.spec import DCGMLabels, TTSServiceSpec
from tts_operator.status import Live, metrics_verdict, status_patch, with_live

from tests.operator.conftest import condition, free_port, tts, wait_for
from tests.promstack import DCGMStandIn, running_prometheus, static_job
from tests.server.conftest import ServerProcess

SPEC = TTSServiceSpec.model_validate(
    {
        "engine": "baker",
        "model": {"source": "builtin", "id": "x"},
        "tiers": {"gpu": {}, "cpu": {}},
        "autoscaling": {"enabled": True},
    }
)
ADDRESS = "http://prometheus.monitoring.svc:9090"
READ = LiveMetrics(
    ADDRESS,
    "2026-11-21T08:00:00Z",
    {"gpu": TierMetrics(4.0, 70.0, 0.8123), "cpu": TierMetrics(3.0, None, None)},
    7.0,
)
FAILED = LiveMetrics(ADDRESS, "2026-11-21T08:00:30Z", error=f"cannot read Prometheus at {ADDRESS}: boom")
BOTH = {"gpu", "cpu"}


def base_status(**extra: Any) -> dict[str, Any]:
    """What compute_status writes (its keys only)."""
    return {
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "AllReplicasReady",
                "message": "",
                "lastTransitionTime": "t0",
                "observedGeneration": 1,
            }
        ],
        "tiers": {
            "gpu": {"desiredReplicas": 2, "readyReplicas": 2},
            "cpu": {"desiredReplicas": 1, "readyReplicas": 1},
        },
        "readyReplicas": 3,
        **extra,
    }


def live(metrics: LiveMetrics | None = READ, **kwargs: Any) -> Live:
    verdict = metrics_verdict(SPEC, metrics, BOTH) if metrics is not None else None
    return Live(metrics, verdict, **kwargs)


def unavailable(status: dict[str, Any]) -> tuple[str, str] | None:
    return condition({"status": status}, c.METRICS_UNAVAILABLE)


# ---- pure: merging into the status --------------------------------------------------------------------


def test_live_values_land_in_the_status():
    new = with_live(base_status(), {}, live(active_triggers={"gpu": ["queue-depth"], "cpu": []}), 1, "t1")
    assert new["tiers"]["gpu"] == {
        "desiredReplicas": 2,
        "readyReplicas": 2,
        "queueDepth": 4.0,
        "gpuUtilization": 70.0,
        "timeToFirstAudioP95Seconds": 0.8123,
        "activeTriggers": ["queue-depth"],
    }
    assert new["tiers"]["cpu"] == {
        "desiredReplicas": 1,
        "readyReplicas": 1,
        "queueDepth": 3.0,
        "activeTriggers": [],
    }
    assert new["queueDepth"] == 7 and new["metricsObservedAt"] == "2026-11-21T08:00:00Z"
    assert unavailable(new) == ("False", c.METRICS_AVAILABLE)
    assert new["readyReplicas"] == 3  # compute_status's keys pass through


def test_a_refresh_before_the_first_read_keeps_what_the_status_shows():
    """After an operator restart the status keeps its live keys (and condition) until the first read."""
    shown = with_live(base_status(), {}, live(), 1, "t1")
    again = with_live(base_status(), shown, live(None), 1, "t2")
    assert again == shown and status_patch(shown, again) is None


def test_a_failed_read_clears_values_but_not_when_they_were_last_read():
    shown = with_live(base_status(), {}, live(), 1, "t1")
    failed = with_live(base_status(), shown, live(FAILED), 1, "t2")
    patch = status_patch(shown, failed)
    assert patch["tiers"]["gpu"]["queueDepth"] is None and patch["queueDepth"] is None  # merge patch: removed
    assert patch["metricsObservedAt"] == "2026-11-21T08:00:00Z"
    assert unavailable(failed) == ("True", c.PROMETHEUS_UNREACHABLE)
    cond = next(x for x in failed["conditions"] if x["type"] == c.METRICS_UNAVAILABLE)
    assert ADDRESS in cond["message"] and cond["lastTransitionTime"] == "t2"
    # The same failure again changes nothing.
    assert status_patch(failed, with_live(base_status(), failed, live(FAILED), 1, "t3")) is None


def test_autoscaling_off_removes_every_live_key():
    shown = with_live(base_status(), {}, live(active_triggers={"gpu": ["queue-depth"]}), 1, "t1")
    off = with_live(base_status(), shown, None, 2, "t2")
    patch = status_patch(shown, off)
    assert patch["queueDepth"] is None and patch["metricsObservedAt"] is None
    assert patch["tiers"]["gpu"]["gpuUtilization"] is None and patch["tiers"]["gpu"]["activeTriggers"] is None
    assert unavailable(off) is None
    # Once removed, nothing is left to patch; and a status that never had live keys gets no nulls.
    assert status_patch(off, with_live(base_status(), off, None, 2, "t3")) is None
    assert with_live(base_status(), base_status(), None, 2, "t3") == base_status()


def test_compute_status_runs_do_not_wipe_live_keys():
    """refresh_status runs on every Deployment/Pod event: without a new read it must keep the live keys."""
    shown = with_live(base_status(), {}, live(), 1, "t1")
    for _ in range(3):
        assert status_patch(shown, with_live(base_status(), shown, live(), 1, "t2")) is None


def test_decisions_are_recorded_once():
    decision = {"time": "t1", "tier": "gpu", "source": "hpa", "action": "replicas 2 -> 4", "reason": "queue"}
    operator_decision = {**decision, "source": "operator", "action": "floor 2 -> 3", "reason": "schedule"}
    first = with_live(base_status(decisions=[operator_decision]), {}, live(decisions=[decision]), 1, "t1")
    assert first["decisions"] == [operator_decision, decision]
    # Still pending (say the write failed, or was not confirmed yet): not appended twice.
    assert (
        with_live(base_status(), first, live(decisions=[decision]), 1, "t2")["decisions"]
        == first["decisions"]
    )


# ---- pure: MetricsUnavailable ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("metrics", "ready", "expected", "words"),
    [
        (READ, BOTH, (False, c.METRICS_AVAILABLE), ADDRESS),
        (FAILED, BOTH, (True, c.PROMETHEUS_UNREACHABLE), "boom"),
        (
            LiveMetrics(ADDRESS, "t", {"gpu": TierMetrics(1, 50), "cpu": TierMetrics(None)}),
            BOTH,
            (True, c.SERVER_METRICS_MISSING),
            "ready cpu pod",
        ),
        # Pods that became ready only this round may not have been scraped yet: no alarm.
        (
            LiveMetrics(ADDRESS, "t", {"gpu": TierMetrics(1, 50), "cpu": TierMetrics(None)}),
            {"gpu"},
            (False, c.METRICS_AVAILABLE),
            ADDRESS,
        ),
        (
            LiveMetrics(ADDRESS, "t", {"gpu": TierMetrics(1, None), "cpu": TierMetrics(0)}),
            BOTH,
            (True, c.GPU_METRICS_UNATTRIBUTED),
            "exported_namespace / exported_pod",
        ),
        # No ready GPU pods (a tier at 0, or GPUs short): no series is the truth.
        (
            LiveMetrics(ADDRESS, "t", {"gpu": TierMetrics(None, None), "cpu": TierMetrics(0)}),
            {"cpu"},
            (False, c.METRICS_AVAILABLE),
            ADDRESS,
        ),
    ],
)
def test_metrics_verdict(metrics, ready, expected, words):
    found = metrics_verdict(SPEC, metrics, ready)
    assert found[:2] == expected and words in found[2]


@pytest.mark.parametrize(
    ("error", "words"),
    [
        (
            requests.ConnectionError(
                "HTTPConnectionPool(host='127.0.0.1', port=1): Max retries exceeded with url: "
                "/api/v1/query?q (Caused by NewConnectionError('<urllib3.connection.HTTPConnection "
                "object>: Failed to establish a new connection: [Errno 111] Connection refused'))"
            ),
            "connection refused",
        ),
        (requests.ReadTimeout("read timed out"), "no answer within 5 s"),
        (requests.ConnectionError("HTTPConnectionPool(host='p'): Read timed out."), "no answer within 5 s"),
        (asyncio.TimeoutError(), "no answer within 5 s"),
        (
            PrometheusApiClientException(
                'HTTP Status Code 400 (b\'{"status":"error","errorType":"bad_data","error":"1:5: parse '
                "error: unexpected <op:*>\"}')"
            ),
            "HTTP 400: 1:5: parse error: unexpected <op:*>",
        ),
        (PrometheusApiClientException("HTTP Status Code 404 (b'')"), "HTTP 404"),
    ],
)
def test_errors_read_as_one_line(error, words):
    assert observe.describe(error, 5) == words


def test_a_silent_or_absent_prometheus_costs_one_timeout():
    """A Prometheus that accepts connections and never answers, and a port nobody listens on."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        address = f"http://127.0.0.1:{silent.getsockname()[1]}"
        hung = asyncio.run(observe.observe("team-a", "voice", SPEC, address, timeout=1))
    assert hung.error == f"cannot read Prometheus at {address}: no answer within 1 s"
    dead = f"http://127.0.0.1:{free_port()}"
    refused = asyncio.run(observe.observe("team-a", "voice", SPEC, dead, timeout=1))
    assert refused.error == f"cannot read Prometheus at {dead}: connection refused"
    assert refused.tiers == {} and refused.queue_depth is None


def test_every_status_query_is_scoped_to_the_service():
    queries = observe.queries("team-a", "voice", SPEC)
    assert sorted(queries) == sorted(
        [
            ("service", "queue"),
            ("gpu", "queue"),
            ("gpu", "gpu"),
            ("gpu", "ttfa"),
            ("cpu", "queue"),
            ("cpu", "ttfa"),
        ]
    )
    for query in queries.values():
        assert re.search(r'namespace="team-a",(exported_)?pod=~"voice-(gpu|cpu|\(gpu\|cpu\))-', query), query


# ---- live: the operator process, a real Prometheus, a real tts-server ---------------------------------

NAME = "live"
SENTENCE = "我们正在测试离线中文语音合成的速度和质量，请大家多多指教。"
# DCGM_FI_DEV_GPU_UTIL of the first GPU pod's two GPUs (that pod's mean: 70), and of every other GPU pod.
FIRST_POD_GPUS, OTHER_PODS = (80.0, 60.0), 90.0


def epoch(rfc3339: str) -> float:
    return float(calendar.timegm(time.strptime(rfc3339, "%Y-%m-%dT%H:%M:%SZ")))


def metric(operator, name: str, labels: str = "") -> float:
    found = re.search(rf"^{re.escape(name)}{re.escape(labels)} (\S+)$", operator.metrics(), re.M)
    return float(found.group(1)) if found else 0.0


def ready_pods(kube, tier: str) -> list[str]:
    items = kube.get("pods", selector=f"voicefleet.io/service={NAME},voicefleet.io/tier={tier}")["items"]
    return sorted(
        p["metadata"]["name"]
        for p in items
        if any(x["type"] == "Ready" and x["status"] == "True" for x in p["status"].get("conditions", []))
    )


def spec_with(address: str | None, enabled: bool = True) -> dict[str, Any]:
    autoscaling: dict[str, Any] = {"enabled": enabled}
    if address:
        autoscaling["prometheusAddress"] = address
    return tts(NAME, tiers={"gpu": {"maxReplicas": 4}, "cpu": {"maxReplicas": 3}}, autoscaling=autoscaling)


def status_of(kube) -> dict[str, Any]:
    return kube.get("tts", NAME).get("status", {})


def wait_metrics_condition(kube, status: str, reason: str, timeout: float = 30) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        current = status_of(kube)
        return current if unavailable(current) == (status, reason) else None

    return wait_for(check, timeout=timeout, interval=0.3, what=f"MetricsUnavailable={status} {reason}")


def message(status: dict[str, Any]) -> str:
    return next(x["message"] for x in status["conditions"] if x["type"] == c.METRICS_UNAVAILABLE)


def our_events(kube) -> list[tuple[str, str]]:
    return [
        (e["type"], e["reason"]) for e in kube.get("events")["items"] if e["involvedObject"]["name"] == NAME
    ]


@pytest.fixture
def tts_server(tmp_path) -> Iterator[ServerProcess]:
    server = ServerProcess(
        ["--threads", "1", "--max-queue", "16", "--request-timeout-s", "300"], {}, tmp_path / "server.log"
    )
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop(timeout=10)


def test_status_shows_live_metrics_from_prometheus(kube, operator, tts_server, tmp_path):
    ns = kube.namespace
    # Without an address of its own the service uses the operator's default, which does not resolve here.
    kube.apply(spec_with(None))
    down = wait_metrics_condition(kube, "True", c.PROMETHEUS_UNREACHABLE)
    assert "prometheus-operated.monitoring.svc" in message(down)
    wait_for(
        lambda: condition(kube.get("tts", NAME), "Ready") == ("True", "AllReplicasReady"),
        timeout=60,
        what="both tiers ready",
    )
    gpu_pods, cpu_pods = ready_pods(kube, "gpu"), ready_pods(kube, "cpu")
    # One replica each: no KEDA runs here to raise the Deployments to their warm floors.
    assert gpu_pods and len(cpu_pods) == 1

    # The real server is scraped as each of the service's real pods (static labels stand in for pod
    # discovery); the stand-in exporter reports two GPUs for the first GPU pod and one for any other, plus
    # a decoy in another namespace.
    gpu_series = [(ns, gpu_pods[0], "0", FIRST_POD_GPUS[0]), (ns, gpu_pods[0], "1", FIRST_POD_GPUS[1])]
    gpu_series += [(ns, pod, str(i), OTHER_PODS) for i, pod in enumerate(gpu_pods[1:], start=2)]
    gpu_mean = (sum(FIRST_POD_GPUS) / 2 + OTHER_PODS * (len(gpu_pods) - 1)) / len(gpu_pods)
    decoy = [("elsewhere", gpu_pods[0], "9", 100.0)]
    target = tts_server.url.removeprefix("http://")
    with ExitStack() as stack:
        dcgm = stack.enter_context(DCGMStandIn(gpu_series + decoy))
        jobs = [
            static_job(f"tts-{pod}", target, {"namespace": ns, "pod": pod}) for pod in cpu_pods + gpu_pods
        ]
        jobs.append(
            static_job("dcgm", dcgm.address, {"namespace": "gpu-operator", "pod": "nvidia-dcgm-exporter-x"})
        )
        prom = stack.enter_context(running_prometheus(tmp_path / "prometheus", jobs))

        kube.apply(spec_with(prom.url))
        up = wait_metrics_condition(kube, "False", c.METRICS_AVAILABLE)
        assert prom.url in message(up)
        assert ("Normal", c.METRICS_AVAILABLE) in our_events(kube)

        # Idle: the GPU tier at the stand-in's mean (the decoy left out), nothing queued, no latency yet.
        idle = wait_for(
            lambda: (
                (s := status_of(kube)).get("tiers", {}).get("gpu", {}).get("gpuUtilization") == gpu_mean and s
            ),
            timeout=20,
            what="GPU utilization in the status",
        )
        at = epoch(idle["metricsObservedAt"])
        assert prom.scalar(t.gpu_utilization_mean_query(ns, NAME, DCGMLabels()), at) == gpu_mean
        assert idle["tiers"]["cpu"]["queueDepth"] == 0 and idle["queueDepth"] == 0
        assert "timeToFirstAudioP95Seconds" not in idle["tiers"]["cpu"]
        assert "gpuUtilization" not in idle["tiers"]["cpu"]
        assert idle["tiers"]["cpu"]["activeTriggers"] == []  # KEDA has written no activity (none runs here)

        # Under load: every status value equals the same PromQL at the status's own evaluation time.
        reconciles = metric(operator, "voicefleet_operator_reconciles_total", '{result="ok"}')
        writes = metric(operator, "voicefleet_operator_status_updates_total")
        seen = asyncio.run(_load_and_watch(kube, tts_server))
        loaded = [s for s in seen if s["tiers"]["cpu"].get("queueDepth")]
        assert loaded, f"the queue never showed in the status: {seen}"
        cpu_now = t.queue_depth_now_query(ns, NAME, ("cpu",))
        service_now = t.queue_depth_now_query(ns, NAME, ("gpu", "cpu"))
        for shown in seen:
            at = epoch(shown["metricsObservedAt"])
            # A scrape that landed while the operator's query ran is the only allowed difference. (A scrape
            # the busy server answered too late leaves no sample: then both sides see none.)
            cpu = {prom.scalar(cpu_now, at), prom.scalar(cpu_now, at - 1)}
            assert shown["tiers"]["cpu"]["queueDepth"] in cpu, (shown, cpu)
            service = {prom.scalar(service_now, at), prom.scalar(service_now, at - 1)}
            assert shown.get("queueDepth") in {None if v is None else round(v) for v in service}, (
                shown,
                service,
            )
            # And the queries mean what they say: the same number as the raw series of exactly those pods.
            assert prom.scalar(cpu_now, at) == prom.scalar(
                f'sum(tts_queue_depth{{job="tts-{cpu_pods[0]}"}})', at
            )
            assert prom.scalar(service_now, at) == prom.scalar('sum(tts_queue_depth{job=~"tts-.*"})', at)
        print(
            f"cpu queue depth in the status while loaded: {[s['tiers']['cpu']['queueDepth'] for s in seen]}"
        )
        # The printer column shows the whole service's queue.
        assert "QUEUE" in kube.run("get", "tts", NAME).splitlines()[0]
        # Status writes happened, and none of them re-triggered a reconcile (no apply storm).
        assert metric(operator, "voicefleet_operator_status_updates_total") >= writes + 3
        assert metric(operator, "voicefleet_operator_reconciles_total", '{result="ok"}') == reconciles

        # After the traffic: p95 time to first audio as Prometheus computes it.
        served = wait_for(
            lambda: (s := status_of(kube))["tiers"]["cpu"].get("timeToFirstAudioP95Seconds") and s,
            timeout=20,
            what="latency in the status",
        )
        at = epoch(served["metricsObservedAt"])
        ttfa = prom.scalar(t.time_to_first_audio_p95_observed_query(ns, NAME, "cpu", 120), at)
        assert ttfa is not None and ttfa > 0
        reference = (
            "histogram_quantile(0.95, sum by (le) "
            f'(rate(tts_time_to_first_audio_seconds_bucket{{job="tts-{cpu_pods[0]}"}}[2m])))'
        )
        assert ttfa == prom.scalar(reference, at)
        assert served["tiers"]["cpu"]["timeToFirstAudioP95Seconds"] == pytest.approx(ttfa, abs=1e-4)
        print(f"p95 time to first audio in the status: {ttfa:.3f} s")

        # Pointed at a dead port: unavailable, with the address; values gone, the last read time kept.
        dead = f"http://127.0.0.1:{free_port()}"
        kube.apply(spec_with(dead))
        broken = wait_metrics_condition(kube, "True", c.PROMETHEUS_UNREACHABLE)
        assert dead in message(broken) and "connection refused" in message(broken)
        assert "queueDepth" not in broken["tiers"]["cpu"] and "queueDepth" not in broken
        assert broken["metricsObservedAt"]
        assert ("Warning", c.PROMETHEUS_UNREACHABLE) in our_events(kube)
        kube.apply(spec_with(prom.url))
        wait_metrics_condition(kube, "False", c.METRICS_AVAILABLE)

        # GPU series without pod attribution (what dcgm-exporter#342 looks like): said so, by label name.
        dcgm.series = [("", "", "0", 80.0), ("", "", "1", 60.0)]
        lost = wait_metrics_condition(kube, "True", c.GPU_METRICS_UNATTRIBUTED)
        assert "exported_namespace / exported_pod" in message(lost)
        dcgm.series = gpu_series
        wait_metrics_condition(kube, "False", c.METRICS_AVAILABLE)

        # Autoscaling off: the live keys and the condition go; on again, they come back.
        kube.apply(spec_with(prom.url, enabled=False))
        wait_for(lambda: unavailable(status_of(kube)) is None, timeout=20, what="MetricsUnavailable removed")
        off = status_of(kube)
        assert "queueDepth" not in off and "metricsObservedAt" not in off
        assert all(
            not set(tier) & {"queueDepth", "gpuUtilization", "activeTriggers"}
            for tier in off["tiers"].values()
        )
        kube.apply(spec_with(prom.url))
        wait_for(
            lambda: status_of(kube).get("tiers", {}).get("gpu", {}).get("gpuUtilization") == gpu_mean,
            timeout=20,
            what="live keys back",
        )
        prometheus_url = prom.url
        stack.pop_all().close()  # Prometheus (and the stand-in) stop

    # Prometheus stopped: unavailable again, naming the address it could not reach.
    stopped = wait_metrics_condition(kube, "True", c.PROMETHEUS_UNREACHABLE)
    assert prometheus_url in message(stopped)


async def _load_and_watch(kube, server: ServerProcess) -> list[dict[str, Any]]:
    """Queue six long syntheses on the one-worker server; collect each distinct status read meanwhile."""
    seen: dict[str, dict[str, Any]] = {}
    async with httpx.AsyncClient(base_url=server.url, timeout=300) as client:
        body = {"text": SENTENCE * 15}
        requests = [asyncio.create_task(client.post("/tts", json=body)) for _ in range(6)]
        while not all(r.done() for r in requests):
            status = await asyncio.to_thread(status_of, kube)
            if status.get("metricsObservedAt") and "queueDepth" in status.get("tiers", {}).get("cpu", {}):
                seen[status["metricsObservedAt"]] = status
            await asyncio.sleep(0.5)
        codes = [r.result().status_code for r in requests]
    assert codes == [200] * len(codes), codes
    return list(seen.values())
