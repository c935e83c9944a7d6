"""Scaling reaction: how long from a load step until KEDA acts on the queue our operator's query reads.

    .venv/bin/python benchmarks/scaling_reaction.py [--clients 4] [--scrape-interval 5] [--window 15]

Everything is real: the test control plane (apiserver, controller-manager, scheduler, kwok), our
operator, the KEDA operator (v2.20.2, built from Go modules), Prometheus and a tts-server with one
worker. A TTSService with a GPU tier allowed to sleep (warm floor 0) and a CPU tier of 1; Prometheus
scrapes the real server as the CPU tier's real pod (static target labels stand in for service
discovery). The GPU tier is put at 0 (standing in for its cooldown having elapsed), the server idles,
then N clients start at once. Timestamps, relative to the step:

  queue_on_server      the server's own /metrics shows tts_queue_depth > 0
  queue_scraped        Prometheus holds a tts_queue_depth sample > 0 for the pod
  query_active         the generated queue query (GPU tier, both tiers' queue) > activationThreshold (0)
  query_over_target    the same query > threshold (queueDepthTarget): what the HPA would scale 1 -> N on
  keda_active          the GPU ScaledObject's Active condition turns True (KEDA's decision)
  replicas_changed     the GPU Deployment's spec.replicas leaves 0 (KEDA's own 0 -> 1 scale)

then the load stops and the way down is timed the same way (queue empty, query 0, KEDA cooling down).
The expected production lag is computed from the same intervals with the chart's scrape interval and
the operator's default window. Results are printed and saved under benchmarks/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import tempfile
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "operator")]

from tts_operator.render.scaledobject import POLLING_INTERVAL_SECONDS  # noqa: E402
from tts_operator.triggers import SUBQUERY_STEP  # noqa: E402

from tests.cluster.cluster import Cluster, attach, start, stop  # noqa: E402
from tests.cluster.keda import start_keda  # noqa: E402
from tests.loadstep import Load  # noqa: E402
from tests.operator.conftest import Kube, OperatorProcess, tts, wait_for  # noqa: E402
from tests.promstack import running_prometheus, static_job  # noqa: E402
from tests.server.conftest import ServerProcess  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
NAME = "react"
# kube-controller-manager's --horizontal-pod-autoscaler-sync-period default; the test cluster keeps it.
HPA_SYNC_SECONDS = 15
# What production uses by default: the chart's ServiceMonitor interval, the operator's queue window.
PRODUCTION = {"scrape_interval_s": 30, "queue_window_s": 120}
EVENTS = ("queue_on_server", "queue_scraped", "query_active", "query_over_target", "keda_active",
          "replicas_changed")  # fmt: skip
DOWN_EVENTS = ("queue_empty_on_server", "query_zero", "keda_cooldown")


def lag_budget(scrape_s: float, window_s: int, polling_s: int, hpa_sync_s: int, step_s: int) -> dict:
    """Worst and best case from a queue rise until each decision, from the intervals alone.

    A sample reaches Prometheus within one scrape interval. ``min_over_time(...[W:step])`` is above a
    level only when every step-aligned point of the window is: W - step to W after the first sample.
    KEDA queries Prometheus itself every pollingInterval to decide 0 <-> 1. For 1 -> N the HPA asks
    every sync period and, with useCachedMetrics, gets KEDA's value from its last poll (up to one
    pollingInterval old). Pod start-up comes on top of all of these.
    """
    best = max(window_s - step_s, 0)
    return {
        "activation_0_to_1": {"best_s": best, "worst_s": scrape_s + window_s + polling_s},
        "hpa_1_to_n": {"best_s": best, "worst_s": scrape_s + window_s + polling_s + hpa_sync_s},
    }


def condition(body: dict, kind: str) -> tuple[str, str] | None:
    for cond in body.get("status", {}).get("conditions", []):
        if cond["type"] == kind:
            return cond["status"], cond.get("reason", "")
    return None


def prepare(kube: Kube, server: ServerProcess, root: Path, args: argparse.Namespace) -> tuple[Any, Any, str]:
    """TTSService up, Prometheus scraping the server as its CPU pod, GPU tier idle at 0."""
    tiers = {"gpu": {"maxReplicas": 4}, "cpu": {"maxReplicas": 4}}
    autoscaling = {"enabled": True, "queueDepthTarget": args.target, "queueDepthWindowSeconds": args.window,
                   "warmFloor": {"gpu": 0, "cpu": 1}}  # fmt: skip
    kube.apply(tts(NAME, tiers=tiers, autoscaling={**autoscaling, "prometheusAddress": "http://127.0.0.1:1"}))
    selector = f"voicefleet.io/tier=cpu,voicefleet.io/service={NAME}"
    pod = wait_for(lambda: kube.get("pods", selector=selector)["items"], timeout=30, what="CPU pod")[0]
    job = static_job("tts", server.url.removeprefix("http://"),
                     {"namespace": kube.namespace, "pod": pod["metadata"]["name"]})  # fmt: skip
    prometheus_ctx = running_prometheus(root / "prometheus", [job], interval=f"{args.scrape_interval}s")
    prom = prometheus_ctx.__enter__()
    kube.apply(tts(NAME, tiers=tiers, autoscaling={**autoscaling, "prometheusAddress": prom.url}))
    so_name = f"{NAME}-gpu"
    wait_for(lambda: prom.url in json.dumps(kube.get("scaledobjects.keda.sh", so_name)["spec"]),
             timeout=30, what="ScaledObject on the benchmark's Prometheus")  # fmt: skip
    wait_for(lambda: condition(kube.get("scaledobjects.keda.sh", so_name), "Ready") == ("True",
             "ScaledObjectReady"), timeout=60, what="ScaledObject Ready")  # fmt: skip
    kube.run("scale", "deployment", so_name, "--replicas=0")
    wait_for(lambda: condition(kube.get("scaledobjects.keda.sh", so_name), "Active") == ("False",
             "ScalerNotActive"), timeout=60, what="GPU tier idle at 0")  # fmt: skip
    return prometheus_ctx, prom, so_name


def sample(kube: Kube, server: ServerProcess, prom: Any, so_name: str, query: str, pod_selector: str) -> dict:
    so = kube.get("scaledobjects.keda.sh", so_name)
    scraped = prom.query(f"tts_queue_depth{{{pod_selector}}}")
    return {
        "t": time.time(),
        "server_queue": server.metric("tts_queue_depth"),
        "scraped_queue": sum(float(r["value"][1]) for r in scraped),
        "query": prom.scalar(query, time.time()),
        "active": condition(so, "Active"),
        "replicas": kube.get("deployment", so_name)["spec"].get("replicas"),
    }


def first(samples: list[dict], test: Any) -> float | None:
    return next((s["t"] for s in samples if test(s)), None)


def run(cluster: Cluster, args: argparse.Namespace) -> dict:
    work = Path(tempfile.mkdtemp(prefix="vf-react-"))
    operator = OperatorProcess(cluster, work / "operator.log")
    operator.start()
    keda = start_keda(cluster, work / "keda")
    server = ServerProcess(["--threads", "1", "--max-queue", "64", "--request-timeout-s", "600"], {},
                           work / "server.log")  # fmt: skip
    namespace = f"bench-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", namespace)
    kube = Kube(cluster, namespace)
    prometheus_ctx = None
    try:
        server.wait_ready()
        prometheus_ctx, prom, so_name = prepare(kube, server, work, args)
        so = kube.get("scaledobjects.keda.sh", so_name)
        queue = so["spec"]["triggers"][0]
        query = queue["metadata"]["query"]
        threshold = float(queue["metadata"]["threshold"])
        activation = float(queue["metadata"]["activationThreshold"])
        pod_selector = query[query.index("{") + 1 : query.index("}")]
        samples: list[dict] = []
        idle_until = time.time() + args.idle
        while time.time() < idle_until:
            samples.append(sample(kube, server, prom, so_name, query, pod_selector))
            time.sleep(args.poll)
        idle = samples[:]
        assert all(s["replicas"] == 0 for s in idle), "the GPU tier woke before the step"

        samples = []
        with Load(server.url, args.clients, args.repeats) as load:
            step = load.started_at
            deadline = step + args.timeout
            while time.time() < deadline:
                samples.append(sample(kube, server, prom, so_name, query, pod_selector))
                if samples[-1]["replicas"] and samples[-1]["query"] and samples[-1]["query"] > threshold:
                    break
                time.sleep(args.poll)
            # Hold the load a little after the decision so the way down starts from a steady state.
            time.sleep(2)
        stop_at = time.time()
        down: list[dict] = []
        while time.time() < stop_at + args.timeout:
            down.append(sample(kube, server, prom, so_name, query, pod_selector))
            if down[-1]["active"] == ("False", "ScalerCooldown") and not down[-1]["query"]:
                break
            time.sleep(args.poll)

        up_tests = {
            "queue_on_server": lambda s: s["server_queue"] > 0,
            "queue_scraped": lambda s: s["scraped_queue"] > 0,
            "query_active": lambda s: (s["query"] or 0) > activation,
            "query_over_target": lambda s: (s["query"] or 0) > threshold,
            "keda_active": lambda s: s["active"] == ("True", "ScalerActive"),
            "replicas_changed": lambda s: (s["replicas"] or 0) >= 1,
        }
        up = {name: first(samples, test) for name, test in up_tests.items()}
        down_tests = {
            "queue_empty_on_server": lambda s: s["server_queue"] == 0,
            "query_zero": lambda s: not s["query"],
            "keda_cooldown": lambda s: s["active"] == ("False", "ScalerCooldown"),
        }
        down_times = {name: first(down, test) for name, test in down_tests.items()}
        events = [e for e in kube.get("events")["items"] if e["reason"] == "KEDAScaleTargetActivated"]
        window_match = re.search(r"\[(\d+)([sm]):", query)
        assert window_match, query
        window_s = int(window_match.group(1)) * (60 if window_match.group(2) == "m" else 1)
        step_s = int(SUBQUERY_STEP.removesuffix("s"))
        intervals = {
            "scrape_interval_s": args.scrape_interval,
            "keda_polling_interval_s": so["spec"]["pollingInterval"],
            "hpa_sync_period_s": HPA_SYNC_SECONDS,
            "query_window_s": window_s,
            "query_subquery_step_s": step_s,
            "use_cached_metrics": queue.get("useCachedMetrics", False),
            "sampling_interval_s": args.poll,
        }
        return {
            "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "clients": args.clients,
            "server_workers": 1,
            "query": query,
            "threshold": threshold,
            "activation_threshold": activation,
            "intervals": intervals,
            "step_unix": step,
            "up_s": {k: (round(v - step, 2) if v else None) for k, v in up.items()},
            "down_s": {k: (round(v - stop_at, 2) if v else None) for k, v in down_times.items()},
            "keda_event": events[-1]["message"] if events else None,
            "request_codes": sorted(set(load.codes)),
            "expected_lag_this_run": lag_budget(
                args.scrape_interval, window_s, so["spec"]["pollingInterval"], HPA_SYNC_SECONDS, step_s
            ),
            "expected_lag_production": {
                "intervals": {
                    **PRODUCTION,
                    "keda_polling_interval_s": POLLING_INTERVAL_SECONDS,
                    "hpa_sync_period_s": HPA_SYNC_SECONDS,
                },
                **lag_budget(
                    PRODUCTION["scrape_interval_s"], PRODUCTION["queue_window_s"], POLLING_INTERVAL_SECONDS,
                    HPA_SYNC_SECONDS, step_s,
                ),
            },
            "timeline": [{**s, "t": round(s["t"] - step, 2)} for s in samples + down],
        }
    finally:
        # Delete while KEDA runs so it releases its finalizers; then stop everything.
        kube.run("delete", "tts", NAME, "--ignore-not-found", "--wait=true", "--timeout=30s", check=False)
        try:
            wait_for(lambda: not kube.get("scaledobjects.keda.sh")["items"], timeout=60, what="SOs gone")
        finally:
            cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
            if prometheus_ctx is not None:
                prometheus_ctx.__exit__(None, None, None)
            server.stop(timeout=10)
            keda.stop()
            operator.stop()


def print_table(result: dict) -> None:
    print(f"\nload step: {result['clients']} clients on 1 worker; query: {result['query']}")
    print(f"intervals: {result['intervals']}")
    print(f"{'event':<24}{'s after step':>14}")
    for name in EVENTS:
        value = result["up_s"][name]
        print(f"{name:<24}{'-' if value is None else f'{value:.2f}':>14}")
    print(f"{'event (load stopped)':<24}{'s after stop':>14}")
    for name in DOWN_EVENTS:
        value = result["down_s"][name]
        print(f"{name:<24}{'-' if value is None else f'{value:.2f}':>14}")
    print(f"KEDA: {result['keda_event']}")
    for label, budget in (("this run", result["expected_lag_this_run"]),
                          ("production", result["expected_lag_production"])):  # fmt: skip
        print(f"expected lag, {label}: 0->1 {budget['activation_0_to_1']['best_s']}-"
              f"{budget['activation_0_to_1']['worst_s']} s, 1->N {budget['hpa_1_to_n']['best_s']}-"
              f"{budget['hpa_1_to_n']['worst_s']} s (+ pod start)")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients of the step")
    parser.add_argument("--repeats", type=int, default=10, help="sentences per request (~0.3 s each here)")
    parser.add_argument("--target", type=int, default=2, help="queueDepthTarget of the TTSService")
    parser.add_argument("--window", type=int, default=15, help="queueDepthWindowSeconds (15 is the minimum)")
    parser.add_argument("--scrape-interval", type=int, default=5, help="Prometheus scrape interval, seconds")
    parser.add_argument("--idle", type=float, default=20, help="idle seconds sampled before the step")
    parser.add_argument("--poll", type=float, default=0.25, help="how often the benchmark samples, seconds")
    parser.add_argument("--timeout", type=float, default=180, help="give up waiting after this many seconds")
    parser.add_argument("--cluster-dir", type=Path, default=None, help="reuse a `make cluster-up` cluster")
    parser.add_argument("--out", default="scaling_reaction.json", help="file name under benchmarks/results/")
    args = parser.parse_args()
    temp = None
    if args.cluster_dir:
        cluster = attach(args.cluster_dir)
    else:
        temp = Path(tempfile.mkdtemp(prefix="vf-react-cluster-"))
        cluster = start(temp)
    try:
        result = run(cluster, args)
    finally:
        if temp is not None:
            stop(temp)
    result["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version(),
                         "kernel": platform.release()}  # fmt: skip
    print_table(result)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"saved {RESULTS / args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
