"""Every PromQL the operator generates, run by a real Prometheus (Debian's `prometheus`) scraping a real
tts-server process, must return the expected number.

The server is scraped under three identities (static target labels standing in for what Kubernetes
service discovery adds): the tier pod we query for, the same pod name in another namespace, and a pod of
another Deployment whose name starts with ours. Each carries the same real values, so a query that
leaks across namespaces or workloads returns a multiple of the expected number. GPU utilization comes from
a small DCGM-format exporter (the one stand-in: there is no GPU here), scraped once behind "operator"
target labels (labels arrive as exported_pod / exported_namespace) and once directly (pod / namespace).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tts_operator import triggers as t
from tts_operator.spec import DCGMLabels

from tests.operator.conftest import wait_for
from tests.promstack import running_prometheus, static_job
from tests.server.conftest import ServerProcess

POD = "voice-cpu-7d9f8b6c5-x2x4z"
IDENTITIES = {  # job -> target labels of the one real server
    "tts-ours": {"namespace": "team-a", "pod": POD},
    "tts-other-namespace": {"namespace": "team-b", "pod": POD},
    "tts-other-workload": {"namespace": "team-a", "pod": "voice-cpu-extra-7d9f8b6c5-x2x4z"},
}
# DCGM_FI_DEV_GPU_UTIL per (namespace, pod, gpu): pod 1 has two GPUs (mean 70), pod 2 one (90).
GPU_SERIES = [
    ("team-a", "voice-gpu-5c7d9-abcde", "0", 80),
    ("team-a", "voice-gpu-5c7d9-abcde", "1", 60),
    ("team-a", "voice-gpu-5c7d9-fghij", "2", 90),
    ("team-b", "voice-gpu-5c7d9-abcde", "3", 100),  # same pod name, other namespace
    ("team-a", "voice-gpu-big-5c7d9-abcde", "4", 100),  # other Deployment, our prefix
    ("team-a", "voice-cpu-5c7d9-abcde", "5", 100),  # our CPU tier has no business here
]
EXPECTED_GPU_SUM = 70 + 90
SENTENCE = "我们正在测试离线中文语音合成的速度和质量，请大家多多指教。"


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory, tts_server: ServerProcess, dcgm: str) -> Iterator:
    target = tts_server.url.removeprefix("http://")
    jobs = [static_job(job, target, labels) for job, labels in IDENTITIES.items()]
    # Behind an operator-style scrape, the target's own namespace/pod labels win and the exporter's are
    # renamed exported_*; scraped directly, they stay as they are.
    jobs.append(static_job("dcgm-behind-operator", dcgm,
                           {"namespace": "gpu-operator", "pod": "nvidia-dcgm-exporter-abcde"}))  # fmt: skip
    jobs.append(static_job("dcgm-direct", dcgm))
    with running_prometheus(tmp_path_factory.mktemp("prometheus"), jobs) as prom:
        yield prom


@pytest.mark.parametrize(
    ("labels", "job"),
    [(DCGMLabels(), "dcgm-behind-operator"), (DCGMLabels(pod="pod", namespace="namespace"), "dcgm-direct")],
)
def test_gpu_utilization_query(prometheus, labels, job):
    query = t.gpu_utilization_query("team-a", "voice", labels, 180)
    # Samples need a moment to exist under both jobs; the values are constant, so the sum is exact.
    assert wait_for(lambda: prometheus.scalar(query, time.time()) == EXPECTED_GPU_SUM, timeout=10,
                    what=f"{query} == {EXPECTED_GPU_SUM}")  # fmt: skip
    # The AverageValue reading: 160 over target 75 -> ceil(2.13) = 3 replicas.
    assert prometheus.scalar(f"count(count by (gpu) (DCGM_FI_DEV_GPU_UTIL{{job='{job}'}}))", time.time()) == 6


def test_gpu_utilization_query_is_empty_for_a_service_without_gpu_pods(prometheus):
    query = t.gpu_utilization_query("team-a", "nobody", DCGMLabels(), 180)
    assert prometheus.scalar(query, time.time()) is None  # -> ignoreNullValues "false" makes it an error


def test_queue_depth_and_latency_queries_on_a_loaded_server(prometheus, tts_server):
    ours = t.queue_depth_query("team-a", "voice", ("cpu",), 15)
    both_tiers = t.queue_depth_query("team-a", "voice", ("gpu", "cpu"), 15)
    gpu_only = t.queue_depth_query("team-a", "voice", ("gpu",), 15)
    reference = "min_over_time(sum(tts_queue_depth{job='tts-ours'})[15s:15s])"
    # Idle real server (once the subquery's 15 s-aligned step has a sample to read): exactly 0.
    wait_for(lambda: (at := time.time()) and prometheus.scalar(reference, at) == 0
             and prometheus.scalar(ours, at) == 0, timeout=30, interval=0.5, what="idle queue 0")  # fmt: skip

    seen: list[tuple[float, float | None, float | None]] = []

    async def load() -> None:
        async with httpx.AsyncClient(base_url=tts_server.url, timeout=300) as client:
            body = {"text": SENTENCE * 15}  # ~30 s of work on one worker: spans 15 s-aligned steps
            requests = [asyncio.create_task(client.post("/tts", json=body)) for _ in range(6)]
            while not all(r.done() for r in requests):
                now = time.time()
                seen.append((prometheus_value(reference, now), prometheus_value(ours, now),
                             prometheus_value(both_tiers, now)))  # fmt: skip
                await asyncio.sleep(0.5)
            codes = [r.result().status_code for r in requests]
            assert codes == [200] * len(requests), [r.result().text[:200] for r in requests]

    def prometheus_value(query: str, at: float) -> float | None:
        return prometheus.scalar(query, at)

    asyncio.run(load())
    loaded = [s for s in seen if s[0]]
    assert loaded, f"the queue never showed in Prometheus: {seen}"
    print(f"queue depth seen by Prometheus while loaded: {[s[0] for s in seen]}")
    # Same evaluation time, same number: exactly one identity's series, never the decoys' too.
    for reference_value, ours_value, both_value in seen:
        assert ours_value == reference_value and both_value == reference_value, seen
    assert prometheus.scalar(gpu_only, time.time()) is None  # no GPU pods: KEDA reads it as 0

    # p95 time to first audio over the traffic just served: a real positive latency for our pods,
    # equal to the same quantile over the one identity; 0 (not NaN, not empty) where nothing was served.
    time.sleep(2)
    at = time.time()
    ttfa = t.time_to_first_audio_p95_query("team-a", "voice", "cpu", 120)
    reference_ttfa = ("histogram_quantile(0.95, sum by (le) "
                      "(rate(tts_time_to_first_audio_seconds_bucket{job='tts-ours'}[2m])))")  # fmt: skip
    value = prometheus.scalar(ttfa, at)
    assert value is not None and value > 0 and value == prometheus.scalar(reference_ttfa, at)
    print(f"p95 time to first audio: {value:.3f} s")
    assert prometheus.scalar(t.time_to_first_audio_p95_query("team-a", "voice", "gpu", 120), at) == 0


def test_ci_installs_prometheus():
    assert "prometheus" in (Path(__file__).parents[2] / ".ci" / "run").read_text()
