"""Where the operator gets its API credentials: in-cluster service account, else $KUBECONFIG.

One loader feeds both kopf (through its login handler) and our own HTTP client, so both always talk
to the same cluster as the same identity.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")


class CredentialsError(RuntimeError):
    """No usable cluster credentials were found."""


@dataclass(frozen=True)
class Credentials:
    server: str
    ca_path: str | None = None
    ca_data: bytes | None = None
    insecure: bool = False
    certificate_path: str | None = None
    certificate_data: bytes | None = None
    private_key_path: str | None = None
    private_key_data: bytes | None = None
    token: str | None = None
    # Bound service-account tokens rotate; re-read this file rather than caching the token forever.
    token_path: str | None = None
    default_namespace: str | None = None

    def bearer_token(self) -> str | None:
        if self.token_path:
            return Path(self.token_path).read_text().strip()
        return self.token


def _in_cluster() -> Credentials | None:
    host, port = os.environ.get("KUBERNETES_SERVICE_HOST"), os.environ.get("KUBERNETES_SERVICE_PORT")
    if not host or not port or not (SERVICE_ACCOUNT_DIR / "token").exists():
        return None
    host = f"[{host}]" if ":" in host else host
    namespace_file = SERVICE_ACCOUNT_DIR / "namespace"
    return Credentials(
        server=f"https://{host}:{port}",
        ca_path=str(SERVICE_ACCOUNT_DIR / "ca.crt"),
        token_path=str(SERVICE_ACCOUNT_DIR / "token"),
        default_namespace=namespace_file.read_text().strip() if namespace_file.exists() else None,
    )


def _path(value: str | None, base: Path) -> str | None:
    if value is None:
        return None
    return str(Path(value) if Path(value).is_absolute() else base / value)


def _data(value: str | None) -> bytes | None:
    return base64.b64decode(value) if value else None


def _named(items: list[dict[str, Any]], name: str, what: str) -> dict[str, Any]:
    for item in items or []:
        if item.get("name") == name:
            return item.get(what) or {}
    raise CredentialsError(f"kubeconfig has no {what} named {name!r}")


def from_kubeconfig(path: Path) -> Credentials:
    config = yaml.safe_load(path.read_text()) or {}
    context_name = config.get("current-context")
    if not context_name:
        raise CredentialsError(f"{path} has no current-context")
    context = _named(config.get("contexts", []), context_name, "context")
    cluster = _named(config.get("clusters", []), context["cluster"], "cluster")
    user = _named(config.get("users", []), context["user"], "user")
    if "exec" in user or "auth-provider" in user:
        raise CredentialsError(
            "kubeconfig exec/auth-provider plugins are not supported; use a token or client cert"
        )
    base = path.parent
    return Credentials(
        server=cluster["server"],
        ca_path=_path(cluster.get("certificate-authority"), base),
        ca_data=_data(cluster.get("certificate-authority-data")),
        insecure=bool(cluster.get("insecure-skip-tls-verify", False)),
        certificate_path=_path(user.get("client-certificate"), base),
        certificate_data=_data(user.get("client-certificate-data")),
        private_key_path=_path(user.get("client-key"), base),
        private_key_data=_data(user.get("client-key-data")),
        token=user.get("token"),
        token_path=_path(user.get("tokenFile"), base),
        default_namespace=context.get("namespace"),
    )


def load() -> Credentials:
    """In-cluster credentials in a pod, else the first kubeconfig in $KUBECONFIG (or ~/.kube/config)."""
    in_cluster = _in_cluster()
    if in_cluster is not None:
        return in_cluster
    candidates = [p for p in os.environ.get("KUBECONFIG", "").split(os.pathsep) if p] or [
        str(Path.home() / ".kube/config")
    ]
    for candidate in candidates:
        if Path(candidate).exists():
            return from_kubeconfig(Path(candidate))
    raise CredentialsError(f"not in a cluster and no kubeconfig found (tried {candidates})")
