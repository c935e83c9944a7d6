"""Certificates for the test control plane, made with the openssl CLI (no Python crypto dependency)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from tests.cluster.build import BuildError

# (file stem, subject, extensions): client identities the components authenticate with.
CLIENTS = (
    ("admin", "/O=system:masters/CN=voicefleet-admin"),
    ("controller-manager", "/CN=system:kube-controller-manager"),
    ("scheduler", "/CN=system:kube-scheduler"),
    # The operator gets its own identity so the audit log can count its requests alone.
    ("operator", "/O=system:masters/CN=voicefleet-operator"),
    # The aggregator's identity towards extension API servers (KEDA's metrics adapter), which trust
    # the user it names in X-Remote-User only from this certificate.
    ("front-proxy-client", "/CN=front-proxy-client"),
)
SERVER_SANS = (
    "IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc"
)


def _openssl(*args: str, cwd: Path) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        raise BuildError("openssl is not installed; it makes the test cluster's CA and certificates")
    proc = subprocess.run([openssl, *args], cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise BuildError(f"openssl {' '.join(args)} failed: {proc.stderr.strip()}")


def _key(name: str, pki: Path) -> None:
    _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", f"{name}.key", cwd=pki)


def _signed(name: str, subject: str, extensions: str, pki: Path) -> None:
    _key(name, pki)
    _openssl("req", "-new", "-key", f"{name}.key", "-subj", subject, "-out", f"{name}.csr", cwd=pki)
    (pki / f"{name}.ext").write_text(extensions)
    _openssl(
        "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
        "-days", "30", "-sha256", "-extfile", f"{name}.ext", "-out", f"{name}.crt", cwd=pki,
    )  # fmt: skip


def make_pki(pki: Path) -> None:
    """CA, apiserver serving cert, client certs and the service-account signing key pair."""
    pki.mkdir(parents=True, exist_ok=True)
    # A folder made before a client was added to CLIENTS is made again.
    if (pki / "done").exists() and all((pki / f"{name}.crt").exists() for name, _ in CLIENTS):
        return
    _key("ca", pki)
    _openssl(
        "req", "-x509", "-new", "-key", "ca.key", "-subj", "/CN=voicefleet-test-ca", "-days", "30",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        "-out", "ca.crt", cwd=pki,
    )  # fmt: skip
    _signed(
        "apiserver",
        "/CN=kube-apiserver",
        f"keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName={SERVER_SANS}\n",
        pki,
    )
    for name, subject in CLIENTS:
        _signed(
            name,
            subject,
            "keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n",
            pki,
        )
    _key("sa", pki)
    _openssl("ec", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=pki)
    (pki / "done").write_text("ok\n")


def kubeconfig(server: str, pki: Path, user: str) -> str:
    """A kubeconfig naming files by absolute path (works from any working directory)."""
    return f"""apiVersion: v1
kind: Config
clusters:
- name: voicefleet-test
  cluster:
    server: {server}
    certificate-authority: {pki / "ca.crt"}
users:
- name: {user}
  user:
    client-certificate: {pki / f"{user}.crt"}
    client-key: {pki / f"{user}.key"}
contexts:
- name: voicefleet-test
  context:
    cluster: voicefleet-test
    user: {user}
    namespace: default
current-context: voicefleet-test
"""
