"""Scaling reaction: how long from a load step until KEDA acts on the queue our operator's query reads.

    .venv/bin/python benchmarks/scaling_reaction.py [--clients 4] [--scrape-interval 5] [--window 15]

Everything is real: the test control plane (apiserver, controller-manager with its HPA controller,
scheduler, kwok), our operator, KEDA v2.20.2 (operator and metrics adapter, built from Go modules),
Prometheus and a tts-server with one worker. A TTSService with a GPU tier allowed to sleep (warm
floor 0) and a CPU tier of 1; Prometheus scrapes the real server as the CPU tier's real pod (static
target labels stand in for service discovery). The GPU tier is put at 0 (standing in for its cooldown
having elapsed), the server idles, then N clients start at once. Timestamps, relative to the step:

  queue_on_server      the server's own /metrics shows tts_queue_depth > 0
  queue_scraped        Prometheus holds a tts_queue_depth sample > 0 for the pod
  query_active         the generated queue query (GPU tier, both tiers' queue) > activationThreshold (0)
  query_over_target    the same query > threshold (queueDepthTarget)
  keda_active          the GPU ScaledObject's Active condition turns True (KEDA's decision)
  replicas_changed     the GPU Deployment's spec.replicas leaves 0 (KEDA's own 0 -> 1 scale)
  cpu_query_over_target  the CPU tier's own queue query > threshold
  hpa_scaled_cpu       the CPU Deployment grows past 1 (the HPA's 1 -> N decision, read through
                       external.metrics.k8s.io -> keda-adapter -> keda-operator -> Prometheus)

then the load stops and the way down is timed the same way (queue empty, query 0, KEDA cooling down,
the CPU tier back at 1: the benchmark's TTSService sets no scale-down window so runs can repeat).
The expected production lag is computed from the same intervals with the chart's scrape interval and
the operator's default window. Results are printed and saved under benchmarks/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import statistics
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
          "replicas_changed", "cpu_query_over_target", "hpa_scaled_cpu")  # fmt: skip
DOWN_EVENTS = ("queue_empty_on_server", "query_zero", "keda_cooldown", "hpa_scaled_cpu_back")


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
    """TTSService up and Ready in KEDA's eyes, Prometheus scraping the server as its CPU pod."""
    tiers = {"gpu": {"maxReplicas": 4}, "cpu": {"maxReplicas": 4}}
    # No scale-down window (default 600 s): the CPU tier must be back at 1 before the next step.
    autoscaling = {"enabled": True, "queueDepthTarget": args.target, "queueDepthWindowSeconds": args.window,
                   "warmFloor": {"gpu": 0, "cpu": 1},
                   "behavior": {"scaleDown": {"stabilizationWindowSeconds": 0}}}  # fmt: skip
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
    return prometheus_ctx, prom, so_name


def sample(kube: Kube, server: ServerProcess, prom: Any, so_name: str, q: dict) -> dict:
    so = kube.get("scaledobjects.keda.sh", so_name)
    query, selector = q["query"], q["pod_selector"]
    scraped = prom.query(f"tts_queue_depth{{{selector}}}")
    return {
        "t": time.time(),
        "server_queue": server.metric("tts_queue_depth"),
        "scraped_queue": sum(float(r["value"][1]) for r in scraped),
        "query": prom.scalar(query, time.time()),
        "active": condition(so, "Active"),
        "replicas": kube.get("deployment", so_name)["spec"].get("replicas"),
        "cpu_query": prom.scalar(q["cpu_query"], time.time()),
        "cpu_replicas": kube.get("deployment", f"{NAME}-cpu")["spec"].get("replicas"),
    }


def first(samples: list[dict], test: Any) -> float | None:
    return next((s["t"] for s in samples if test(s)), None)


UP_TESTS = {
    "queue_on_server": lambda s, q: s["server_queue"] > 0,
    "queue_scraped": lambda s, q: s["scraped_queue"] > 0,
    "query_active": lambda s, q: (s["query"] or 0) > q["activation"],
    "query_over_target": lambda s, q: (s["query"] or 0) > q["threshold"],
    "keda_active": lambda s, q: s["active"] == ("True", "ScalerActive"),
    "replicas_changed": lambda s, q: (s["replicas"] or 0) >= 1,
    "cpu_query_over_target": lambda s, q: (s["cpu_query"] or 0) > q["threshold"],
    "hpa_scaled_cpu": lambda s, q: (s["cpu_replicas"] or 0) > 1,
}
DOWN_TESTS = {
    "queue_empty_on_server": lambda s, q: s["server_queue"] == 0,
    "query_zero": lambda s, q: not s["query"],
    "keda_cooldown": lambda s, q: s["active"] == ("False", "ScalerCooldown"),
    "hpa_scaled_cpu_back": lambda s, q: s["cpu_replicas"] == 1,
}


def trial(kube: Kube, server: ServerProcess, prom: Any, so_name: str, q: dict, args: argparse.Namespace
          ) -> dict:  # fmt: skip
    """Idle at 0, load step, wait for KEDA's decision, stop the load, wait for the cooldown to start."""
    def take() -> dict:
        return sample(kube, server, prom, so_name, q)

    kube.run("scale", "deployment", so_name, "--replicas=0")
    wait_for(lambda: (s := take())["replicas"] == 0 and s["query"] == 0 and s["server_queue"] == 0
             and s["active"] == ("False", "ScalerNotActive") and s["cpu_replicas"] == 1, timeout=120,
             interval=1, what="GPU tier idle at 0, CPU tier at 1, queue empty")  # fmt: skip
    # The idle wait ends on one of KEDA's polls; a random extra pause lets each step meet KEDA's poll
    # and the query's 15 s grid at a different phase, so the runs spread over the real range.
    idle_until = time.time() + args.idle + random.uniform(0, q["polling_s"])
    while time.time() < idle_until:
        assert take()["replicas"] == 0, "the GPU tier woke while idle"
        time.sleep(args.poll)

    samples: list[dict] = []
    with Load(server.url, args.clients, args.repeats) as load:
        step = load.started_at
        while time.time() < step + args.timeout:
            samples.append(take())
            if all(any(test(s, q) for s in samples) for test in UP_TESTS.values()):
                break
            time.sleep(args.poll)
    stop_at = time.time()
    down: list[dict] = []
    while time.time() < stop_at + args.timeout:
        down.append(take())
        if all(any(test(s, q) for s in down) for test in DOWN_TESTS.values()):
            break
        time.sleep(args.poll)
    up_times = {name: first(samples, lambda s, t=test: t(s, q)) for name, test in UP_TESTS.items()}
    down_times = {name: first(down, lambda s, t=test: t(s, q)) for name, test in DOWN_TESTS.items()}
    return {
        "step_unix": round(step, 3),
        "up_s": {k: (round(v - step, 2) if v else None) for k, v in up_times.items()},
        "down_s": {k: (round(v - stop_at, 2) if v else None) for k, v in down_times.items()},
        "request_codes": sorted(set(load.codes)),
        "timeline": [{**s, "t": round(s["t"] - step, 2)} for s in samples + down],
    }


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
        cpu_so = kube.get("scaledobjects.keda.sh", f"{NAME}-cpu")
        trigger = so["spec"]["triggers"][0]
        query = trigger["metadata"]["query"]
        q = {
            "query": query,
            "threshold": float(trigger["metadata"]["threshold"]),
            "activation": float(trigger["metadata"]["activationThreshold"]),
            "pod_selector": query[query.index("{") + 1 : query.index("}")],
            "polling_s": so["spec"]["pollingInterval"],
            # The CPU tier (floor 1) watches its own queue; its HPA does 1 -> N via KEDA's adapter.
            "cpu_query": cpu_so["spec"]["triggers"][0]["metadata"]["query"],
        }
        trials = [trial(kube, server, prom, so_name, q, args) for _ in range(args.runs)]
        events = [e["message"] for e in kube.get("events")["items"]
                  if e["reason"] == "KEDAScaleTargetActivated"]  # fmt: skip
        window_match = re.search(r"\[(\d+)([sm]):", query)
        assert window_match, query
        window_s = int(window_match.group(1)) * (60 if window_match.group(2) == "m" else 1)
        step_s = int(SUBQUERY_STEP.removesuffix("s"))
        polling_s = so["spec"]["pollingInterval"]
        return {
            "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "clients": args.clients,
            "server_workers": 1,
            "query": query,
            "cpu_query": q["cpu_query"],
            "threshold": q["threshold"],
            "activation_threshold": q["activation"],
            "intervals": {
                "scrape_interval_s": args.scrape_interval,
                "keda_polling_interval_s": polling_s,
                "hpa_sync_period_s": HPA_SYNC_SECONDS,
                "query_window_s": window_s,
                "query_subquery_step_s": step_s,
                "use_cached_metrics": trigger.get("useCachedMetrics", False),
                "sampling_interval_s": args.poll,
            },
            "summary_up_s": summarize([t["up_s"] for t in trials], EVENTS),
            "summary_down_s": summarize([t["down_s"] for t in trials], DOWN_EVENTS),
            "keda_events": events,
            "expected_lag_this_run": lag_budget(
                args.scrape_interval, window_s, polling_s, HPA_SYNC_SECONDS, step_s
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
            "trials": trials,
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


def summarize(rows: list[dict], names: tuple[str, ...]) -> dict:
    out = {}
    for name in names:
        values = sorted(r[name] for r in rows if r[name] is not None)
        out[name] = {"min": values[0], "median": statistics.median(values), "max": values[-1],
                     "n": len(values)} if values else None  # fmt: skip
    return out


def cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def print_table(result: dict) -> None:
    print(f"\nload step: {result['clients']} clients on 1 worker; query: {result['query']}")
    print(f"intervals: {result['intervals']}")
    runs = len(result["trials"])
    header = "".join(f"{f'run {i + 1}':>8}" for i in range(runs))
    for title, key, names in (("s after step", "up_s", EVENTS), ("s after load stop", "down_s", DOWN_EVENTS)):
        print(f"{title:<24}{header}{'median':>8}")
        for name in names:
            values = [t[key][name] for t in result["trials"]]
            summary = result[f"summary_{key}"][name]
            cells = "".join(f"{cell(v):>8}" for v in [*values, summary and summary["median"]])
            print(f"  {name:<22}{cells}")
    for message in result["keda_events"]:
        print(f"KEDA: {message}")
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
    parser.add_argument("--runs", type=int, default=3, help="load steps to time")
    parser.add_argument("--idle", type=float, default=20, help="idle seconds sampled before each step")
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
