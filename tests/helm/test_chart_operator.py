"""The real operator process, authenticated only by the chart ServiceAccount's token, reconciles a
TTSService in the namespace the chart lets it serve: the chart grants all the operator needs."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.cluster.cluster import Cluster
from tests.helm.conftest import CHART, Helm
from tests.operator.conftest import Kube, free_port, tts, wait_for


def _metric(text: str, name: str) -> float:
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    return float(match[1]) if match else 0.0


def _service_account_kubeconfig(cluster: Cluster, namespace: str, account: str, path: Path) -> Path:
    """A kubeconfig with the admin's server and CA but only the ServiceAccount's bound token."""
    token = cluster.kubectl("-n", namespace, "create", "token", account, "--duration=1h").strip()
    admin = yaml.safe_load(cluster.kubeconfig.read_text())
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": admin["clusters"][0]["cluster"]}],
        "users": [{"name": "sa", "user": {"token": token}}],
        "contexts": [{"name": "sa", "context": {"cluster": "c", "user": "sa", "namespace": namespace}}],
        "current-context": "sa",
    }
    # Server and CA may be relative paths in the admin kubeconfig: keep the file next to it.
    path.write_text(yaml.safe_dump(config))
    return path


def _python_path() -> dict[str, str]:
    """The session's PYTHONPATH, so the operator process runs the checkout under test (a shared venv's
    editable install may point at another one)."""
    return {"PYTHONPATH": os.environ["PYTHONPATH"]} if "PYTHONPATH" in os.environ else {}


@dataclass
class ChartOperator:
    served: str  # the namespace the TTSService goes in
    log: Path
    container: dict  # the operator container of the Deployment the chart installed

    def url(self, probe: str) -> str:
        """The URL the kubelet would probe for `probe` (livenessProbe, readinessProbe)."""
        get = self.container[probe]["httpGet"]
        [port] = [p["containerPort"] for p in self.container["ports"] if p["name"] == get["port"]]
        return f"http://127.0.0.1:{port}{get['path']}"

    def fetch(self, probe: str) -> str:
        try:
            with urllib.request.urlopen(self.url(probe), timeout=2) as resp:
                return resp.read().decode() or "ok"
        except OSError:
            return ""


@pytest.fixture(params=["namespaces", "cluster"])
def chart_operator(
    request: pytest.FixtureRequest, helm: Helm, cluster: Cluster, tmp_path: Path
) -> Iterator[ChartOperator]:
    """The operator process started with the command line of the chart's Deployment and only its
    ServiceAccount's token; the release serves one namespace or (param "cluster") all of them."""
    scoped = request.param == "namespaces"
    suffix = uuid.uuid4().hex[:6]
    op_ns, served = f"h-op-{suffix}", f"h-served-{suffix}"
    for name in (op_ns, served):
        cluster.kubectl("create", "namespace", name)
    release = "rbop"
    values = ["--set", "crds.install=false", "--set", f"operator.metricsPort={free_port()}",
              "--set", f"operator.healthPort={free_port()}"]  # fmt: skip
    if scoped:
        values += ["--set", f"watchNamespaces={{{served}}}"]
    helm.run("install", release, str(CHART), "-n", op_ns, *values)
    deployment = json.loads(
        cluster.kubectl("-n", op_ns, "get", "deployment", f"{release}-voicefleet", "-o", "json")
    )
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    kubeconfig = _service_account_kubeconfig(
        cluster, op_ns, f"{release}-voicefleet", cluster.kubeconfig.parent / f"sa-{suffix}.kubeconfig"
    )
    log = tmp_path / "operator.log"
    env = {"KUBECONFIG": str(kubeconfig), "PYTHONUNBUFFERED": "1", "PATH": "/usr/bin:/bin", **_python_path()}
    # The image's entry point is `tts-operator`; this is the same console script's module.
    cmd = [sys.executable, "-m", "tts_operator.cli", *container["args"]]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield ChartOperator(served, log, container)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        helm.run("uninstall", release, "-n", op_ns, "--wait", "--timeout=60s", check=False)
        kubeconfig.unlink(missing_ok=True)
        for name in (op_ns, served):
            cluster.kubectl("delete", "namespace", name, "--wait=false")


def test_operator_reconciles_with_the_chart_service_account(
    cluster: Cluster, chart_operator: ChartOperator
) -> None:
    op = chart_operator
    kube = Kube(cluster, op.served)

    def metrics() -> str:
        return op.fetch("readinessProbe")

    # The chart's probes hit real endpoints: readiness (/metrics) and kopf's liveness (/healthz).
    wait_for(metrics, timeout=30, what=f"the readiness probe's URL (log: {op.log})")
    wait_for(lambda: op.fetch("livenessProbe"), timeout=30, what=f"the liveness probe's URL (log: {op.log})")
    kube.apply(tts("hello"))
    # This process's own counters: another operator in the session cannot move them.
    wait_for(
        lambda: _metric(metrics(), 'voicefleet_operator_reconciles_total{result="ok"}') >= 1,
        timeout=30,
        what="a successful reconcile",
    )
    wait_for(lambda: kube.exists("deployment", "hello-cpu"), timeout=10, what="the CPU tier Deployment")
    for kind, name in (("service", "hello"), ("configmap", "hello-config")):
        assert kube.exists(kind, name), (kind, name)
    wait_for(
        lambda: _metric(metrics(), "voicefleet_operator_status_updates_total") >= 1,
        timeout=30,
        what="a status patch",
    )
    status = kube.get("tts", "hello").get("status", {})
    assert any(c["type"] == "Ready" for c in status.get("conditions", [])), status
    # Events are posted on condition changes (POST events).
    wait_for(lambda: "voicefleet_operator_events_total{" in metrics(), timeout=30, what="an Event posted")
    # A removed tier is pruned (DELETE) and the new one applied.
    kube.apply(tts("hello", tiers={"gpu": {}}))
    wait_for(lambda: not kube.exists("deployment", "hello-cpu"), timeout=30, what="the CPU tier pruned")
    assert kube.exists("deployment", "hello-gpu")
    text = metrics()
    assert _metric(text, 'voicefleet_operator_reconciles_total{result="error"}') == 0, text
    assert "apply_errors_total{" not in text, text
    # RBAC denials name the ServiceAccount ("... is forbidden: User "system:serviceaccount:..." cannot ...").
    # A 403 for posting into a namespace that an earlier test is still deleting ("being terminated") is
    # the API server protecting that namespace, not a missing permission.
    denials = [
        line for line in op.log.read_text().splitlines()
        if ("forbidden" in line.lower() or " 403" in line) and "being terminated" not in line
    ]  # fmt: skip
    assert denials == [], "\n".join(denials)[-3000:]


# ---- high availability: two peered replicas with the chart's command line and ServiceAccount --------


@dataclass
class Replica:
    pod: str
    log: Path
    metrics_port: int
    proc: subprocess.Popen[bytes]

    def reconciles(self) -> float:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=2) as resp:
                return _metric(resp.read().decode(), 'voicefleet_operator_reconciles_total{result="ok"}')
        except OSError:
            return -1.0

    def state(self) -> str:
        """ "active" or "paused", from kopf's last word on it (peered replicas start paused)."""
        words = re.findall(r"(Resuming|Pausing) operations", self.log.read_text())
        return "active" if words and words[-1] == "Resuming" else "paused"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _settled(read: Callable[[], float], quiet: float = 1.0) -> tuple[float] | None:
    """(value,) when `read()` did not change over `quiet` seconds, else None."""
    before = read()
    time.sleep(quiet)
    return (before,) if read() == before else None


def _reconciled(log: Path, namespace: str, name: str) -> bool:
    for line in log.read_text().splitlines():
        if line.startswith("{") and "applied" in line:
            obj = json.loads(line).get("object", {})
            if (obj.get("namespace"), obj.get("name"), obj.get("kind")) == (namespace, name, "TTSService"):
                return True
    return False


@pytest.mark.parametrize("scope", ["namespaces", "cluster"])
def test_peered_replicas_keep_one_active_and_fail_over(
    helm: Helm, cluster: Cluster, tmp_path: Path, scope: str
) -> None:
    suffix = uuid.uuid4().hex[:6]
    op_ns, served = f"h-op-{suffix}", f"h-served-{suffix}"
    for name in (op_ns, served):
        cluster.kubectl("create", "namespace", name)
    release = f"ha{scope[0]}"
    values = ["--set", "crds.install=false", "--set", "operator.replicas=2"]
    if scope == "namespaces":
        values += ["--set", f"watchNamespaces={{{served}}}"]
    helm.run("install", release, str(CHART), "-n", op_ns, *values)
    account = f"{release}-voicefleet"
    deployment = json.loads(cluster.kubectl("-n", op_ns, "get", "deployment", account, "-o", "json"))
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    kubeconfig = _service_account_kubeconfig(
        cluster, op_ns, account, cluster.kubeconfig.parent / f"sa-{suffix}.kubeconfig"
    )
    peering = ["get", "kopfpeering", account, "-n", served] if scope == "namespaces" else [
        "get", "clusterkopfpeering", account]  # fmt: skip
    replicas: list[Replica] = []
    try:
        for index in range(2):
            # What the Deployment's pods run; only the ports differ (two processes share this host), and
            # POD_ID is what the Deployment's fieldRef gives each pod.
            port = free_port()
            args = [
                *container["args"],
                f"--metrics-port={port}",
                f"--liveness=http://127.0.0.1:{free_port()}/healthz",
            ]
            pod = f"{account}-5d8f9c7b6-{index}abcd"
            log = tmp_path / f"{pod}.log"
            env = {
                "KUBECONFIG": str(kubeconfig),
                "PYTHONUNBUFFERED": "1",
                "PATH": "/usr/bin:/bin",
                **_python_path(),
                "POD_ID": pod,
            }
            with log.open("wb") as out:
                command = [sys.executable, "-m", "tts_operator.cli", *args]
                proc = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
            replicas.append(Replica(pod, log, port, proc))
        # Peered kopf starts paused; the replica with the highest priority in the peering object resumes,
        # the others stay paused (or pause again, if they resumed before it registered).
        wait_for(lambda: len(json.loads(cluster.kubectl(*peering, "-o", "json")).get("status", {})) == 2,
                 timeout=30, what="both replicas in the peering object")  # fmt: skip
        status = json.loads(cluster.kubectl(*peering, "-o", "json"))["status"]
        assert set(status) == {r.pod for r in replicas}, status
        active = max(replicas, key=lambda r: status[r.pod]["priority"])
        [standby] = [r for r in replicas if r is not active]
        wait_for(lambda: active.state() == "active" and standby.state() == "paused", timeout=30,
                 what="one active replica and one paused")  # fmt: skip

        # A replica that was briefly alone may still finish what it had started before pausing (kopf does
        # not interrupt running handlers; cluster-wide, that can be another test's leftovers): from a
        # settled count on, a paused replica must do nothing.
        baseline = wait_for(lambda: _settled(standby.reconciles), timeout=15, what="the standby settling")[0]
        kube = Kube(cluster, served)
        kube.apply(tts("first"))
        # Its reconcile counts once the whole reconcile is done (the Deployment exists before that).
        wait_for(lambda: active.reconciles() >= 1 and kube.exists("deployment", "first-cpu"), timeout=30,
                 what="the active replica's reconcile")  # fmt: skip
        assert standby.reconciles() == baseline
        assert not _reconciled(standby.log, served, "first")

        # The active replica stops (a rolling update or a lost node): the standby takes over.
        active.stop()
        wait_for(lambda: standby.state() == "active", timeout=30, what="the standby resuming")
        kube.apply(tts("second"))
        wait_for(lambda: _reconciled(standby.log, served, "second"), timeout=30,
                 what="the new active replica's reconcile")  # fmt: skip
        assert standby.reconciles() > baseline and kube.exists("deployment", "second-cpu")
        assert not _reconciled(active.log, served, "second")
        for replica in replicas:
            lines = replica.log.read_text().splitlines()
            denials = [
                line
                for line in lines
                if ("forbidden" in line.lower() or " 403" in line) and "being terminated" not in line
            ]
            assert denials == [], "\n".join(denials)[-3000:]
    finally:
        for replica in replicas:
            replica.stop()
        helm.run("uninstall", release, "-n", op_ns, "--wait", "--timeout=60s", check=False)
        kubeconfig.unlink(missing_ok=True)
        for name in (op_ns, served):
            cluster.kubectl("delete", "namespace", name, "--wait=false")
