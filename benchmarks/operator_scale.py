"""Operator scale benchmark: 200 TTSServices against the real test control plane.

Reports apply -> children latency (p50/p95 over services created one at a time), time until 200 services
are all Ready, the operator's peak RSS, and its API requests per minute while idle (counted from the
apiserver audit log, which records only the operator's identity).

    python benchmarks/operator_scale.py [--services 200] [--idle-seconds 120] [--cluster-dir .cluster]

Without --cluster-dir a fresh cluster is started in a temporary folder and stopped afterwards.
Results go to benchmarks/results/operator_scale.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tts_operator.credentials import from_kubeconfig  # noqa: E402
from tts_operator.kube import KubeClient  # noqa: E402

from tests.cluster.cluster import Cluster, attach, start, stop  # noqa: E402

NAMESPACE = "bench"
# A node holds 110 pods: the two default nodes cannot hold 200+.
EXTRA_NODES = 3
CAPACITY = {"cpu": "64", "memory": "256Gi", "pods": "110"}


def tts(name: str) -> dict:
    return {
        "apiVersion": "voicefleet.io/v1alpha1",
        "kind": "TTSService",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "engine": "baker",
            "model": {"source": "builtin", "id": "baker"},
            "tiers": {
                "cpu": {
                    "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"memory": "64Mi"}}
                }
            },
        },
    }


class DeploymentWatcher:
    """First time each Deployment is seen, by local clock (a kubectl watch in a thread)."""

    def __init__(self, cluster: Cluster) -> None:
        self.seen: dict[str, float] = {}
        self.proc = subprocess.Popen(
            [str(cluster.binaries.kubectl), f"--kubeconfig={cluster.kubeconfig}", "-n", NAMESPACE, "get",
             "deployments", "--watch", "-o", "jsonpath={.metadata.name}{\"\\n\"}"],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.seen.setdefault(line.strip(), time.monotonic())

    async def wait(self, name: str, timeout: float = 30) -> float:
        deadline = time.monotonic() + timeout
        while name not in self.seen:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no Deployment {name} after {timeout} s")
            await asyncio.sleep(0.005)
        return self.seen[name]


def ready_count(cluster: Cluster) -> int:
    items = json.loads(cluster.kubectl("-n", NAMESPACE, "get", "tts", "-o", "json"))["items"]
    count = 0
    for item in items:
        status = item.get("status", {})
        ready = any(c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions", []))
        count += ready and status.get("observedGeneration") == item["metadata"]["generation"]
    return count


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


def operator_requests(audit_log: Path, since: float, until: float) -> int:
    ids = set()
    for line in audit_log.read_text().splitlines():
        event = json.loads(line)
        ts = datetime.strptime(event["requestReceivedTimestamp"][:26].rstrip("Z"), "%Y-%m-%dT%H:%M:%S.%f")
        at = ts.replace(tzinfo=timezone.utc).timestamp()
        if since <= at <= until:
            ids.add(event["auditID"])
    return len(ids)


def add_nodes(cluster: Cluster) -> None:
    nodes = [
        {
            "apiVersion": "v1", "kind": "Node",
            "metadata": {
                "name": f"bench-node-{i}",
                "labels": {"type": "kwok"},
                "annotations": {"kwok.x-k8s.io/node": "fake"},
            },
            "status": {"capacity": CAPACITY, "allocatable": CAPACITY},
        }
        for i in range(EXTRA_NODES)
    ]  # fmt: skip
    cluster.kubectl(
        "apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": nodes})
    )


async def run(cluster: Cluster, services: int, sequential: int, idle_seconds: float) -> dict:
    add_nodes(cluster)
    cluster.kubectl("create", "namespace", NAMESPACE)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        metrics_port = sock.getsockname()[1]
    log = open(cluster.root / "bench-operator.log", "ab")
    operator = subprocess.Popen(
        [sys.executable, "-m", "tts_operator.cli", "--metrics-address=127.0.0.1",
         f"--metrics-port={metrics_port}"],
        env={**os.environ, "KUBECONFIG": str(cluster.root / "operator.kubeconfig")}, stdout=log, stderr=log,
    )  # fmt: skip
    client = KubeClient(from_kubeconfig(cluster.kubeconfig))
    watcher = DeploymentWatcher(cluster)
    try:
        await asyncio.sleep(3)  # operator start-up: login, CRD discovery, initial listings
        latencies = []
        for i in range(sequential):
            started = time.monotonic()
            await client.create(tts(f"seq-{i}"))
            latencies.append(await watcher.wait(f"seq-{i}-cpu") - started)
        bulk_started = time.monotonic()
        sem = asyncio.Semaphore(16)

        async def create(i: int) -> None:
            async with sem:
                await client.create(tts(f"svc-{i}"))

        await asyncio.gather(*(create(i) for i in range(services - sequential)))
        created = time.monotonic() - bulk_started
        for i in range(services - sequential):
            await watcher.wait(f"svc-{i}-cpu", timeout=120)
        children_all = time.monotonic() - bulk_started
        while ready_count(cluster) < services:
            if time.monotonic() - bulk_started > 600:
                raise TimeoutError(f"only {ready_count(cluster)} of {services} Ready after 600 s")
            await asyncio.sleep(0.5)
        converged = time.monotonic() - bulk_started
        await asyncio.sleep(10)  # let the last status patches and pod events settle
        idle_from = time.time()
        await asyncio.sleep(idle_seconds)
        idle_to = time.time()
        requests = operator_requests(cluster.audit_log, idle_from, idle_to)
        per_minute = requests * 60 / idle_seconds
        return {
            "services": services,
            "apply_to_children_seconds": {
                "samples": sequential,
                "p50": round(statistics.median(latencies), 3),
                "p95": round(sorted(latencies)[int(0.95 * (len(latencies) - 1))], 3),
                "max": round(max(latencies), 3),
            },
            "bulk_create_seconds": round(created, 2),
            "all_children_seconds": round(children_all, 2),
            "all_ready_seconds": round(converged, 2),
            "operator_peak_rss_mb": round(peak_rss_mb(operator.pid), 1),
            "idle_window_seconds": idle_seconds,
            "idle_requests_per_minute": round(per_minute, 2),
            "idle_requests_per_resource_per_minute": round(per_minute / services, 4),
        }
    finally:
        watcher.proc.terminate()
        operator.terminate()
        operator.wait(timeout=20)
        await client.close()
        cluster.kubectl("delete", "namespace", NAMESPACE, "--wait=false", check=False)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--services", type=int, default=200)
    parser.add_argument("--sequential", type=int, default=20, help="of which created one by one for latency")
    parser.add_argument("--idle-seconds", type=float, default=120)
    parser.add_argument(
        "--cluster-dir", type=Path, default=None, help="reuse a running `make cluster-up` cluster"
    )
    args = parser.parse_args()
    temp = None
    if args.cluster_dir:
        cluster = attach(args.cluster_dir)
    else:
        temp = Path(tempfile.mkdtemp(prefix="vf-bench-"))
        cluster = start(temp)
    try:
        result = asyncio.run(run(cluster, args.services, args.sequential, args.idle_seconds))
    finally:
        if temp is not None:
            stop(temp)
    result["targets"] = {
        "apply_to_children_p50_seconds": 1.0,
        "all_ready_seconds": 60,
        "operator_peak_rss_mb": 200,
        "idle_requests_per_resource_per_minute": 1,
    }
    result["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version()}
    out = ROOT / "benchmarks" / "results" / "operator_scale.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
