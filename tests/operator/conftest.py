"""Fixtures: the real control plane (built from Go modules on first use, once per session) and the
operator as a real process (`python -m tts_operator.cli`) against it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster.cluster import Cluster, attach, start, stop
from tests.server.conftest import ServerProcess


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Cluster:
    """A running cluster. Never skipped: if it cannot be built or started, the error says why.

    VOICEFLEET_TEST_CLUSTER=.cluster reuses a cluster started by `make cluster-up` (quick iteration).
    """
    reuse = os.environ.get("VOICEFLEET_TEST_CLUSTER")
    if reuse:
        yield attach(Path(reuse))
        return
    root = tmp_path_factory.mktemp("cluster")
    running = start(root)
    try:
        yield running
    finally:
        stop(root)


class OperatorProcess:
    def __init__(self, cluster: Cluster, log: Path, *extra: str) -> None:
        self.cluster, self.log, self.extra = cluster, log, extra
        self.proc: subprocess.Popen[bytes] | None = None
        self.metrics_port = 0

    def start(self) -> None:
        self.metrics_port = free_port()
        kubeconfig = str(self.cluster.root / "operator.kubeconfig")
        env = {**os.environ, "KUBECONFIG": kubeconfig, "PYTHONUNBUFFERED": "1"}  # logs read while it runs
        cmd = [sys.executable, "-m", "tts_operator.cli", "--metrics-address=127.0.0.1",
               f"--metrics-port={self.metrics_port}", *self.extra]  # fmt: skip
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"operator exited: {self.log.read_text()[-3000:]}"
            try:
                self.metrics()
                return
            except OSError:
                time.sleep(0.1)
        raise AssertionError("operator /metrics did not come up")

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=2) as resp:
            return resp.read().decode()

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


@pytest.fixture(scope="session")
def operator(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    # Live metrics every 2 s instead of 30, so status tests need not wait long for a read.
    log = tmp_path_factory.mktemp("operator") / "operator.log"
    proc = OperatorProcess(cluster, log, "--metrics-interval=2")
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


class Kube:
    """kubectl with JSON in and out, bound to one namespace."""

    def __init__(self, cluster: Cluster, namespace: str) -> None:
        self.cluster, self.namespace = cluster, namespace

    def run(self, *args: str, stdin: str | None = None, check: bool = True) -> str:
        return self.cluster.kubectl("-n", self.namespace, *args, stdin=stdin, check=check)

    def get(self, kind: str, name: str | None = None, selector: str | None = None) -> dict:
        args = ["get", kind, "-o", "json", "--show-managed-fields"]
        if name:
            args.insert(2, name)
        if selector:
            args += ["-l", selector]
        return json.loads(self.run(*args))

    def exists(self, kind: str, name: str) -> bool:
        return bool(self.run("get", kind, name, "--ignore-not-found", "-o", "name", check=False).strip())

    def apply(self, manifest: dict) -> None:
        self.run("apply", "--server-side", "-f", "-", stdin=json.dumps(manifest))


def wait_for(predicate, timeout: float = 10, interval: float = 0.1, what: str = "condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {last!r})")


@pytest.fixture
def kube(cluster: Cluster) -> Iterator[Kube]:
    namespace = f"t-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", namespace)
    try:
        yield Kube(cluster, namespace)
    finally:
        cluster.kubectl("delete", "namespace", namespace, "--wait=false")


def tts(name: str, **spec) -> dict:
    body = {"engine": "baker", "model": {"source": "builtin", "id": "baker"}, "tiers": {"cpu": {}}}
    body.update(spec)
    return {
        "apiVersion": "voicefleet.io/v1alpha1",
        "kind": "TTSService",
        "metadata": {"name": name},
        "spec": body,
    }


def condition(body: dict, kind: str) -> tuple[str, str] | None:
    for cond in body.get("status", {}).get("conditions", []):
        if cond["type"] == kind:
            return cond["status"], cond["reason"]
    return None


@pytest.fixture(scope="module")
def dcgm(request: pytest.FixtureRequest) -> Iterator[str]:
    """The DCGM exporter stand-in (no GPU here) serving the test module's GPU_SERIES."""
    from tests.promstack import DCGMStandIn  # promstack imports this module's helpers

    with DCGMStandIn(request.module.GPU_SERIES) as exporter:
        yield exporter.address


@pytest.fixture(scope="module")
def tts_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A real tts-server that queues under load (modules that need other limits define their own)."""
    from tests.promstack import queueing_server

    with queueing_server(tmp_path_factory.mktemp("server"), max_queue=16) as server:
        yield server
