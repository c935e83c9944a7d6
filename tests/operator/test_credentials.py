"""Where the operator finds its cluster: a service account in a pod, else $KUBECONFIG."""

from __future__ import annotations

import base64

import pytest
import yaml
from tts_operator import credentials

KUBECONFIG = {
    "apiVersion": "v1",
    "kind": "Config",
    "current-context": "test",
    "contexts": [{"name": "test", "context": {"cluster": "c", "user": "u", "namespace": "team"}}],
    "clusters": [
        {"name": "c", "cluster": {"server": "https://127.0.0.1:6443", "certificate-authority": "ca.crt"}}
    ],
    "users": [{"name": "u", "user": {"client-certificate-data": base64.b64encode(b"CERT").decode(),
                                     "client-key": "/abs/key.pem"}}],
}  # fmt: skip


def test_kubeconfig_paths_are_relative_to_the_file(tmp_path, monkeypatch):
    path = tmp_path / "config"
    path.write_text(yaml.safe_dump(KUBECONFIG))
    monkeypatch.setenv("KUBECONFIG", f"{tmp_path / 'missing'}:{path}")
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    creds = credentials.load()
    assert creds.server == "https://127.0.0.1:6443"
    assert creds.ca_path == str(tmp_path / "ca.crt")
    assert creds.certificate_data == b"CERT"
    assert creds.private_key_path == "/abs/key.pem"
    assert creds.default_namespace == "team"


def test_in_cluster_wins_and_rereads_the_rotating_token(tmp_path, monkeypatch):
    (tmp_path / "token").write_text("one\n")
    (tmp_path / "namespace").write_text("voicefleet-system")
    monkeypatch.setattr(credentials, "SERVICE_ACCOUNT_DIR", tmp_path)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    creds = credentials.load()
    assert creds.server == "https://10.0.0.1:443"
    assert creds.default_namespace == "voicefleet-system"
    assert creds.bearer_token() == "one"
    (tmp_path / "token").write_text("two\n")
    assert creds.bearer_token() == "two"


@pytest.mark.parametrize(
    ("user", "message"),
    [({"exec": {"command": "aws"}}, "exec/auth-provider plugins are not supported")],
)
def test_unsupported_kubeconfig_is_an_error(tmp_path, user, message):
    config = {**KUBECONFIG, "users": [{"name": "u", "user": user}]}
    path = tmp_path / "config"
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(credentials.CredentialsError, match=message):
        credentials.from_kubeconfig(path)


def test_no_credentials_at_all(tmp_path, monkeypatch):
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "nope"))
    with pytest.raises(credentials.CredentialsError, match="no kubeconfig found"):
        credentials.load()
