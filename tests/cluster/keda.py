"""Run the real KEDA (built from Go modules by build.py) out-of-cluster against a test Cluster.

Two processes, as in a KEDA install: `keda-operator` (reconciles ScaledObjects, creates the HPA, does
0 <-> 1 itself, serves metric values over gRPC) and `keda-adapter` (keda-metrics-apiserver: the
external.metrics.k8s.io API the HPA controller reads for 1 <-> N, answered from the operator's gRPC).

KEDA normally runs in the `keda` namespace with certificates mounted from a Secret. Here both talk to
the apiserver with the admin kubeconfig, leader election is off, and the mTLS material is made with
openssl once per run (`ca.crt`, `tls.crt`, `tls.key` in one cert dir, the layout KEDA's Secret has).
KEDA's own certificate rotation is off: it would patch webhook and APIService objects itself.

The adapter is reached the way the apiserver reaches any aggregated API: an APIService names a
Service, and the aggregator resolves a Service of type ExternalName to its host name, so
`ExternalName: localhost` routes to the adapter on 127.0.0.1. The apiserver authenticates to it with
its front-proxy client certificate (tests/cluster/cluster.py passes the requestheader flags).

Every listener binds 127.0.0.1, with one exception KEDA leaves no flag for: the adapter's own
Prometheus /metrics server listens on ":<--port>" (all interfaces, cmd/adapter/main.go); it gets a
random free port.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tests.cluster.build import BuildError, ensure_keda, keda_module_dir
from tests.cluster.certs import _key, _openssl, _signed
from tests.cluster.cluster import Cluster, ClusterError, _free_port

KEDA_NAMESPACE = "keda"
ADAPTER_SERVICE = "keda-metrics-apiserver"
EXTERNAL_METRICS_APISERVICE = "v1beta1.external.metrics.k8s.io"
# The cluster installs KEDA's keda.sh CRDs; the operator also watches these, and its manager stops
# when a watched kind never appears (controller-runtime's cache-sync timeout).
EVENTING_CRDS = {  # file in KEDA's config/crd/bases -> CRD name
    "eventing.keda.sh_cloudeventsources.yaml": "cloudeventsources.eventing.keda.sh",
    "eventing.keda.sh_clustercloudeventsources.yaml": "clustercloudeventsources.eventing.keda.sh",
}
READY_TIMEOUT_S = 60


def make_keda_certs(cert_dir: Path) -> None:
    """A CA and one certificate for both ends of KEDA's gRPC service and the adapter's HTTPS."""
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
        # The aggregator checks the adapter's certificate against the Service's DNS name.
        f"subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:{ADAPTER_SERVICE}.{KEDA_NAMESPACE}.svc\n",
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
class _Process:
    """One KEDA binary run in its own session, logging to `<root>/<name>.log`."""

    name: str
    root: Path
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def log(self) -> Path:
        return self.root / f"{self.name}.log"

    def log_tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else "(no log)"

    def spawn(self, args: list[str], env: dict[str, str], ready: Callable[[], bool]) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                args, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ClusterError(f"{self.name} exited with {self.proc.returncode}:\n{self.log_tail()}")
            if ready():
                return
            time.sleep(0.2)
        self.stop()
        raise ClusterError(f"{self.name} not ready after {READY_TIMEOUT_S} s:\n{self.log_tail()}")

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


def _env(cluster: Cluster) -> dict[str, str]:
    return {
        **os.environ,
        "KUBECONFIG": str(cluster.kubeconfig),
        "WATCH_NAMESPACE": "",  # all namespaces
        "KEDA_CLUSTER_OBJECT_NAMESPACE": KEDA_NAMESPACE,
        "POD_NAMESPACE": KEDA_NAMESPACE,
    }


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:
            return resp.status == 200
    except OSError:
        return False


@dataclass
class Keda:
    """KEDA's operator and metrics adapter running against `cluster`; `stop()` ends both."""

    cluster: Cluster
    root: Path
    binaries: dict[str, Path]
    operator: _Process = field(init=False)
    adapter: _Process = field(init=False)
    metrics_port: int = 0
    probe_port: int = 0
    grpc_port: int = 0
    adapter_port: int = 0

    def __post_init__(self) -> None:
        self.operator = _Process("keda-operator", self.root)
        self.adapter = _Process("keda-adapter", self.root)

    @property
    def cert_dir(self) -> Path:
        return self.root / "certs"

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        make_keda_certs(self.cert_dir)
        # KEDA reads TriggerAuthentication Secrets from its cluster-object namespace; it must exist.
        if not self.cluster.kubectl("get", "namespace", KEDA_NAMESPACE, "--ignore-not-found", "-o", "name"):
            self.cluster.kubectl("create", "namespace", KEDA_NAMESPACE)
        install_eventing_crds(self.cluster)
        self.metrics_port, self.probe_port, self.grpc_port = _free_port(), _free_port(), _free_port()
        self.operator.spawn([
            str(self.binaries["keda-operator"]),
            f"--metrics-bind-address=127.0.0.1:{self.metrics_port}",
            f"--health-probe-bind-address=127.0.0.1:{self.probe_port}",
            f"--metrics-service-bind-address=127.0.0.1:{self.grpc_port}",
            f"--cert-dir={self.cert_dir}", f"--ca-dir={self.cert_dir}",
            "--enable-cert-rotation=false", "--leader-elect=false", "--zap-encoder=console",
        ], _env(self.cluster), lambda: _http_ok(f"http://127.0.0.1:{self.probe_port}/readyz"))  # fmt: skip
        try:
            self._start_adapter()
        except BaseException:
            self.stop()
            raise

    def _start_adapter(self) -> None:
        self.adapter_port = _free_port()
        kubeconfig = str(self.cluster.kubeconfig)
        self.adapter.spawn([
            str(self.binaries["keda-adapter"]),
            "--bind-address=127.0.0.1", f"--secure-port={self.adapter_port}",
            f"--tls-cert-file={self.cert_dir / 'tls.crt'}",
            f"--tls-private-key-file={self.cert_dir / 'tls.key'}",
            # The gRPC client's mTLS material (ca.crt, tls.crt, tls.key) is read from the cert dir.
            f"--cert-dir={self.cert_dir}", f"--metrics-service-address=127.0.0.1:{self.grpc_port}",
            f"--lister-kubeconfig={kubeconfig}", f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}", f"--port={_free_port()}", "--zap-encoder=console",
        ], _env(self.cluster), self._adapter_serving)  # fmt: skip
        self._register_apiservice()

    def _adapter_serving(self) -> bool:
        return "Serving securely on" in self.adapter.log_tail(20000)

    def _register_apiservice(self) -> None:
        ca = base64.b64encode((self.cert_dir / "ca.crt").read_bytes()).decode()
        service = {
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": ADAPTER_SERVICE, "namespace": KEDA_NAMESPACE},
            "spec": {"type": "ExternalName", "externalName": "localhost",
                     "ports": [{"name": "https", "port": self.adapter_port}]},
        }  # fmt: skip
        apiservice = {
            "apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
            "metadata": {"name": EXTERNAL_METRICS_APISERVICE},
            "spec": {"group": "external.metrics.k8s.io", "version": "v1beta1", "caBundle": ca,
                     "groupPriorityMinimum": 100, "versionPriority": 100,
                     "service": {"name": ADAPTER_SERVICE, "namespace": KEDA_NAMESPACE,
                                 "port": self.adapter_port}},
        }  # fmt: skip
        manifest = {"apiVersion": "v1", "kind": "List", "items": [service, apiservice]}
        # Apply merges Service ports by port number: an earlier run's port would linger beside ours.
        self.cluster.kubectl("-n", KEDA_NAMESPACE, "delete", "service", ADAPTER_SERVICE, "--ignore-not-found")
        self.cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-",
                             stdin=json.dumps(manifest))  # fmt: skip
        self.cluster.kubectl(
            "wait", "--for=condition=Available", "--timeout=60s", f"apiservice/{EXTERNAL_METRICS_APISERVICE}"
        )

    def metrics(self) -> str:
        """The operator's own Prometheus metrics (keda_scaler_metrics_value, keda_scaler_active, ...)."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as resp:
            return resp.read().decode()

    def stop(self) -> None:
        # The APIService goes first: left pointing at a dead adapter, it makes discovery of every
        # group fail for later clients (kubectl, kopf) until the aggregator gives up on it.
        self.cluster.kubectl("delete", "apiservice", EXTERNAL_METRICS_APISERVICE, "--ignore-not-found",
                             check=False)  # fmt: skip
        self.adapter.stop()
        self.operator.stop()


def start_keda(cluster: Cluster, root: Path) -> Keda:
    """Build KEDA if needed (long on a cold cache) and start it; errors say why it could not."""
    try:
        binaries = ensure_keda()
    except BuildError as error:
        raise ClusterError(f"KEDA could not be built: {error}") from error
    keda = Keda(cluster=cluster, root=root, binaries=binaries)
    keda.start()
    return keda
