"""Start and stop a real Kubernetes control plane on 127.0.0.1 for tests and for humans.

etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok run as separate processes in
their own sessions (so a test runner's process-group cleanup cannot kill them half-way) with state,
logs and PID files under one folder. kwok plays the kubelet: it keeps fake nodes Ready (one of them with
GPU capacity) and moves pods through their lifecycle.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tests.cluster.build import Binaries, BuildError, ensure_binaries, kwok_stage_files
from tests.cluster.certs import kubeconfig, make_pki

REPO_ROOT = Path(__file__).resolve().parents[2]
CRD_DIR = REPO_ROOT / "crds"
# Stop order matters: the apiserver hangs on shutdown if etcd goes first.
STOP_ORDER = ("kwok", "kube-scheduler", "kube-controller-manager", "kube-apiserver", "etcd")
GPU_NODE = "gpu-node-1"
CPU_NODE = "cpu-node-1"
GPUS_PER_NODE = 4
OPERATOR_USER = "voicefleet-operator"


class ClusterError(RuntimeError):
    """The control plane did not come up; the message carries the reason and the log tail."""


def keda_crd_dir() -> Path:
    candidates = [
        os.environ.get("VOICEFLEET_KEDA_CRDS"),
        REPO_ROOT.parent / "shared" / "keda-crds",
        "/work/shared/keda-crds",
    ]
    for candidate in candidates:
        if candidate and (Path(candidate) / "keda.sh_scaledobjects.yaml").exists():
            return Path(candidate)
    raise ClusterError(f"KEDA CRDs not found (looked in {candidates}); set VOICEFLEET_KEDA_CRDS")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Cluster:
    root: Path
    binaries: Binaries

    @property
    def kubeconfig(self) -> Path:
        return self.root / "kubeconfig"

    @property
    def pki(self) -> Path:
        return self.root / "pki"

    @property
    def audit_log(self) -> Path:
        return self.root / "audit.log"

    def _audit_policy(self) -> Path:
        # Only the operator's requests are logged: the benchmark counts its API traffic from this file.
        policy = self.root / "audit-policy.yaml"
        policy.write_text(
            "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\nrules:\n"
            f"- level: Metadata\n  users: [{OPERATOR_USER}]\n- level: None\n"
        )
        return policy

    def kubectl(
        self,
        *args: str,
        stdin: str | None = None,
        check: bool = True,
        timeout: float = 60,
        stderr: bool = False,
    ) -> str:
        """kubectl's stdout (its stderr when `stderr`); raises ClusterError on failure when `check`."""
        proc = subprocess.run(
            [str(self.binaries.kubectl), f"--kubeconfig={self.kubeconfig}",
             f"--cache-dir={self.root / 'kube-cache'}", *args],
            input=stdin, capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip
        if check and proc.returncode != 0:
            raise ClusterError(f"kubectl {' '.join(args)} failed: {proc.stderr.strip()}")
        return proc.stderr if stderr else proc.stdout

    # ---- processes -----------------------------------------------------------------------------

    def _spawn(self, name: str, args: list[str]) -> None:
        logs = self.root / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        with (logs / f"{name}.log").open("ab") as log:
            proc = subprocess.Popen(
                args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
            )
        (self.root / "run").mkdir(exist_ok=True)
        (self.root / "run" / f"{name}.pid").write_text(str(proc.pid))

    def _log_tail(self, name: str) -> str:
        log = self.root / "logs" / f"{name}.log"
        return log.read_text(errors="replace")[-2000:] if log.exists() else "(no log)"

    def _wait(self, what: str, probe: Callable[[], bool], timeout: float, component: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not _alive(self.root, component):
                raise ClusterError(
                    f"{component} exited while waiting for {what}:\n{self._log_tail(component)}"
                )
            if probe():
                return
            time.sleep(0.1)
        raise ClusterError(f"timed out after {timeout} s waiting for {what}:\n{self._log_tail(component)}")

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if any(_alive(self.root, name) for name in STOP_ORDER):
            raise ClusterError(f"a cluster already runs from {self.root}; stop it first")
        make_pki(self.pki)
        b, pki = self.binaries, self.pki
        etcd_port, etcd_peer, api_port = _free_port(), _free_port(), _free_port()
        server = f"https://127.0.0.1:{api_port}"
        self.kubeconfig.write_text(kubeconfig(server, pki, "admin"))
        for user in ("controller-manager", "scheduler", "operator"):
            (self.root / f"{user}.kubeconfig").write_text(kubeconfig(server, pki, user))

        etcd_url = f"http://127.0.0.1:{etcd_port}"
        self._spawn("etcd", [
            str(b.etcd), "--name=default", f"--data-dir={self.root / 'etcd'}",
            f"--listen-client-urls={etcd_url}", f"--advertise-client-urls={etcd_url}",
            f"--listen-peer-urls=http://127.0.0.1:{etcd_peer}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{etcd_peer}",
            f"--initial-cluster=default=http://127.0.0.1:{etcd_peer}",
            # Test data is disposable: skipping fsync makes every write an order of magnitude cheaper.
            "--unsafe-no-fsync", "--log-level=warn",
        ])  # fmt: skip
        self._spawn("kube-apiserver", [
            str(b.kube_apiserver), f"--etcd-servers={etcd_url}",
            "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", f"--secure-port={api_port}",
            f"--tls-cert-file={pki / 'apiserver.crt'}", f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--client-ca-file={pki / 'ca.crt'}",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            "--service-cluster-ip-range=10.0.0.0/24", "--endpoint-reconciler-type=none",
            "--authorization-mode=RBAC", "--allow-privileged=true",
            f"--cert-dir={self.root / 'apiserver-certs'}",
            f"--audit-policy-file={self._audit_policy()}", f"--audit-log-path={self.audit_log}",
            # Aggregated APIs (KEDA's external metrics adapter): how the apiserver proxies to them.
            f"--requestheader-client-ca-file={pki / 'ca.crt'}",
            "--requestheader-allowed-names=front-proxy-client",
            "--requestheader-username-headers=X-Remote-User", "--requestheader-group-headers=X-Remote-Group",
            "--requestheader-extra-headers-prefix=X-Remote-Extra-",
            f"--proxy-client-cert-file={pki / 'front-proxy-client.crt'}",
            f"--proxy-client-key-file={pki / 'front-proxy-client.key'}",
        ])  # fmt: skip
        self._wait("apiserver /readyz", lambda: self._readyz(), 60, "kube-apiserver")

        # Our CRD and KEDA's go in before the controller-manager starts: its garbage collector only
        # rediscovers resource types every 30 s, and owner-reference cascades need it to know them.
        self.kubectl("apply", "--server-side", "-f", str(CRD_DIR), "-f", str(keda_crd_dir()))
        self.kubectl("wait", "--for=condition=Established", "--timeout=30s", "crd", "--all")
        # Established is not yet discoverable: wait until discovery serves both groups.
        for group_version in ("voicefleet.io/v1alpha1", "keda.sh/v1alpha1", "kopf.dev/v1"):
            self._wait(
                f"{group_version} in discovery",
                lambda gv=group_version: self.kubectl("get", f"--raw=/apis/{gv}", check=False).strip() != "",
                30,
                "kube-apiserver",
            )
        # kubectl cached discovery before the CRDs existed; `explain` would not find them for 10 minutes.
        shutil.rmtree(self.root / "kube-cache", ignore_errors=True)

        cm_port, sched_port, kwok_port = _free_port(), _free_port(), _free_port()
        self._spawn("kube-controller-manager", [
            str(b.kube_controller_manager), f"--kubeconfig={self.root / 'controller-manager.kubeconfig'}",
            "--bind-address=127.0.0.1", f"--secure-port={cm_port}", "--leader-elect=false",
            "--authentication-skip-lookup=true", "--use-service-account-credentials=true",
            f"--service-account-private-key-file={pki / 'sa.key'}", f"--root-ca-file={pki / 'ca.crt'}",
            f"--cluster-signing-cert-file={pki / 'ca.crt'}", f"--cluster-signing-key-file={pki / 'ca.key'}",
            # The defaults (20 qps) throttle the controllers once a benchmark creates hundreds of objects.
            "--kube-api-qps=200", "--kube-api-burst=400", "--concurrent-deployment-syncs=10",
            "--concurrent-replicaset-syncs=10", "--concurrent-gc-syncs=20",
        ])  # fmt: skip
        self._spawn("kube-scheduler", [
            str(b.kube_scheduler), f"--kubeconfig={self.root / 'scheduler.kubeconfig'}",
            "--bind-address=127.0.0.1", f"--secure-port={sched_port}", "--leader-elect=false",
            "--authentication-skip-lookup=true", "--kube-api-qps=200", "--kube-api-burst=400",
        ])  # fmt: skip
        self._spawn("kwok", [
            str(b.kwok), f"--kubeconfig={self.kubeconfig}", *(f"--config={f}" for f in kwok_stage_files()),
            "--manage-all-nodes=false", "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
            "--cidr=10.244.0.0/16", "--node-ip=127.0.0.1", f"--server-address=127.0.0.1:{kwok_port}",
        ])  # fmt: skip
        self._wait("the default ServiceAccount", self._default_sa, 60, "kube-controller-manager")
        self.kubectl("apply", "-f", "-", stdin=_nodes_manifest())
        self._wait("fake nodes Ready", self._nodes_ready, 60, "kwok")
        (self.root / "ready").write_text(json.dumps({"server": server, "started": time.time()}))

    def _readyz(self) -> bool:
        proc = subprocess.run(
            [str(self.binaries.kubectl), f"--kubeconfig={self.kubeconfig}", "get", "--raw=/readyz"],
            capture_output=True, text=True, check=False, timeout=10,
        )  # fmt: skip
        return proc.returncode == 0 and proc.stdout.strip() == "ok"

    def _default_sa(self) -> bool:
        return bool(self.kubectl("get", "serviceaccount", "default", "-o", "name", check=False).strip())

    def _nodes_ready(self) -> bool:
        out = self.kubectl(
            "get",
            "nodes",
            "-o",
            'jsonpath={range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\\n"}{end}',
            check=False,
        )
        return out.split() == ["True", "True"]


def _nodes_manifest() -> str:
    def node(name: str, gpus: int) -> dict[str, object]:
        # Roomy, so pods of namespaces still being deleted never crowd out the next test's pods.
        capacity = {"cpu": "128", "memory": "1Ti", "pods": "110"}
        labels = {"type": "kwok", "kubernetes.io/hostname": name}
        spec: dict[str, object] = {}
        if gpus:
            capacity["nvidia.com/gpu"] = str(gpus)
            labels["nvidia.com/gpu.present"] = "true"
            # Real GPU nodes carry this taint so only pods that asked for GPUs land there.
            spec["taints"] = [{"key": "nvidia.com/gpu", "effect": "NoSchedule"}]
        return {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": name, "labels": labels, "annotations": {"kwok.x-k8s.io/node": "fake"}},
            "spec": spec,
            "status": {"capacity": capacity, "allocatable": capacity},
        }

    return json.dumps(
        {"apiVersion": "v1", "kind": "List", "items": [node(GPU_NODE, GPUS_PER_NODE), node(CPU_NODE, 0)]}
    )


def _pid(root: Path, name: str) -> int | None:
    pid_file = root / "run" / f"{name}.pid"
    if not pid_file.exists():
        return None
    return int(pid_file.read_text())


def _alive(root: Path, name: str) -> bool:
    pid = _pid(root, name)
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped) counts as dead.
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split(") ", 1)[-1][:1] != "Z"


def stop(root: Path, timeout: float = 15) -> None:
    """Stop every component started from `root`, in dependency order; idempotent."""
    for name in STOP_ORDER:
        pid = _pid(root, name)
        if pid is not None and _alive(root, name):
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while _alive(root, name) and time.monotonic() < deadline:
                time.sleep(0.05)
            if _alive(root, name):
                os.kill(pid, signal.SIGKILL)
        (root / "run" / f"{name}.pid").unlink(missing_ok=True)
    (root / "ready").unlink(missing_ok=True)


def start(root: Path) -> Cluster:
    """Build (if needed) and start a cluster in `root`; on failure stop what started and raise."""
    try:
        binaries = ensure_binaries()
    except BuildError as error:
        raise ClusterError(str(error)) from error
    cluster = Cluster(root=root, binaries=binaries)
    try:
        cluster.start()
    except BaseException:
        stop(root)
        raise
    return cluster


def attach(root: Path) -> Cluster:
    """A handle on a cluster already started from `root` (by `make cluster-up`)."""
    if not (root / "ready").exists() or not all(_alive(root, name) for name in STOP_ORDER):
        raise ClusterError(f"no running cluster in {root}; run `make cluster-up`")
    return Cluster(root=root.resolve(), binaries=ensure_binaries())
