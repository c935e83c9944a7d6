"""Run the real KEDA operator (built from Go modules by build.py) out-of-cluster against a test Cluster.

KEDA normally runs in the `keda` namespace with certificates mounted from a Secret. Here it is a local
process: it talks to the apiserver with the admin kubeconfig, every listener it has is pinned to
127.0.0.1 on a free port (metrics, health probes, the gRPC metrics service the metrics adapter reads),
leader election is off, and the mTLS material for that gRPC service is made with openssl once per run
(`ca.crt`, `tls.crt`, `tls.key` in its cert dir, the layout KEDA's Secret would have). KEDA's own
certificate rotation is off: it would patch webhook and APIService objects this setup does not have.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from tests.cluster.build import BuildError, ensure_keda, keda_module_dir
from tests.cluster.certs import _key, _openssl, _signed
from tests.cluster.cluster import Cluster, ClusterError, _free_port

KEDA_NAMESPACE = "keda"
# The cluster installs KEDA's keda.sh CRDs; the operator also watches these, and its manager stops
# when a watched kind never appears (controller-runtime's cache-sync timeout).
EVENTING_CRDS = {  # file in KEDA's config/crd/bases -> CRD name
    "eventing.keda.sh_cloudeventsources.yaml": "cloudeventsources.eventing.keda.sh",
    "eventing.keda.sh_clustercloudeventsources.yaml": "clustercloudeventsources.eventing.keda.sh",
}
READY_TIMEOUT_S = 60


def make_keda_certs(cert_dir: Path) -> None:
    """A CA and one certificate for both ends of KEDA's gRPC metrics service (server and client)."""
    cert_dir.mkdir(parents=True, exist_ok=True)
    if (cert_dir / "tls.crt").exists():
        return
    _key("ca", cert_dir)
    _openssl(
        "req", "-x509", "-new", "-key", "ca.key", "-subj", "/CN=keda-test-ca", "-days", "30",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        "-out", "ca.crt", cwd=cert_dir,
    )  # fmt: skip
    _signed(
        "tls",
        "/CN=keda-operator",
        "keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\n"
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
        cert_dir,
    )


def install_eventing_crds(cluster: Cluster) -> None:
    """KEDA's eventing.keda.sh CRDs, from the KEDA module the binaries were built from."""
    bases = keda_module_dir() / "config" / "crd" / "bases"
    files = [bases / name for name in EVENTING_CRDS]
    missing = [str(f) for f in files if not f.exists()]
    if missing:
        raise ClusterError(f"KEDA CRDs missing from the module cache: {missing}")
    cluster.kubectl("apply", "--server-side", *(f"-f={f}" for f in files))
    names = [f"crd/{name}" for name in EVENTING_CRDS.values()]
    cluster.kubectl("wait", "--for=condition=Established", "--timeout=30s", *names)


@dataclass
class KedaOperator:
    """A running keda-operator; `stop()` ends it. `log` is its combined stdout/stderr."""

    cluster: Cluster
    root: Path
    binary: Path
    metrics_port: int = 0
    probe_port: int = 0
    grpc_port: int = 0
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def log(self) -> Path:
        return self.root / "keda-operator.log"

    @property
    def cert_dir(self) -> Path:
        return self.root / "certs"

    def log_tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else "(no log)"

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        make_keda_certs(self.cert_dir)
        # KEDA reads Secrets for TriggerAuthentications from its cluster-object namespace and fails to
        # start its informer if that namespace cannot be listed; it must exist.
        if not self.cluster.kubectl("get", "namespace", KEDA_NAMESPACE, "--ignore-not-found", "-o", "name"):
            self.cluster.kubectl("create", "namespace", KEDA_NAMESPACE)
        install_eventing_crds(self.cluster)
        self.metrics_port, self.probe_port, self.grpc_port = _free_port(), _free_port(), _free_port()
        env = {
            **os.environ,
            "KUBECONFIG": str(self.cluster.kubeconfig),
            "WATCH_NAMESPACE": "",  # all namespaces
            "KEDA_CLUSTER_OBJECT_NAMESPACE": KEDA_NAMESPACE,
            "POD_NAMESPACE": KEDA_NAMESPACE,
        }
        args = [
            str(self.binary),
            f"--metrics-bind-address=127.0.0.1:{self.metrics_port}",
            f"--health-probe-bind-address=127.0.0.1:{self.probe_port}",
            f"--metrics-service-bind-address=127.0.0.1:{self.grpc_port}",
            f"--cert-dir={self.cert_dir}",
            f"--ca-dir={self.cert_dir}",
            "--enable-cert-rotation=false",
            "--leader-elect=false",
            "--zap-log-level=info",
            "--zap-encoder=console",
        ]
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                args, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ClusterError(f"keda-operator exited with {self.proc.returncode}:\n{self.log_tail()}")
            if self._ready():
                return
            time.sleep(0.2)
        self.stop()
        raise ClusterError(f"keda-operator not ready after {READY_TIMEOUT_S} s:\n{self.log_tail()}")

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.probe_port}/readyz", timeout=1) as resp:
                return resp.status == 200
        except OSError:
            return False

    def metrics(self) -> str:
        """KEDA's own Prometheus metrics (keda_scaler_metrics_value, keda_scaler_active, ...)."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as resp:
            return resp.read().decode()

    def stop(self, timeout: float = 20) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


def start_keda(cluster: Cluster, root: Path) -> KedaOperator:
    """Build KEDA if needed (long on a cold cache) and start its operator; errors say why it could not."""
    try:
        binaries = ensure_keda()
    except BuildError as error:
        raise ClusterError(f"KEDA could not be built: {error}") from error
    operator = KedaOperator(cluster=cluster, root=root, binary=binaries["keda-operator"])
    operator.start()
    return operator
