"""The build fails loudly, with the reason, when it cannot work (no silent skip, no mock)."""

from __future__ import annotations

import pytest

from tests.cluster import build


def test_missing_go_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("VOICEFLEET_CACHE", str(tmp_path))  # empty cache: something must be built
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(build, "GO_FALLBACKS", ())
    with pytest.raises(build.BuildError, match="Go is not installed"):
        build.ensure_binaries()


def test_cache_is_keyed_by_version(monkeypatch, tmp_path):
    monkeypatch.setenv("VOICEFLEET_CACHE", str(tmp_path))
    # A finished build is recognised by its binaries, so a warm start runs no Go command at all.
    for name, binaries in (
        (f"kubernetes-{build.K8S_VERSION}", build.K8S_BINARIES),
        (f"etcd-{build.ETCD_VERSION}", ("etcd",)),
        (f"kwok-{build.KWOK_VERSION}", ("kwok",)),
        (f"helm-{build.HELM_VERSION}", ("helm",)),
    ):
        folder = tmp_path / "bin" / name
        folder.mkdir(parents=True)
        for binary in binaries:
            (folder / binary).write_text("#!/bin/sh\n")
            (folder / binary).chmod(0o755)
    monkeypatch.setattr(build, "_run", lambda *a, **k: pytest.fail(f"warm start ran {a}"))
    found = build.ensure_binaries()
    assert found.kube_apiserver == tmp_path / "bin" / f"kubernetes-{build.K8S_VERSION}" / "kube-apiserver"
    assert found.etcd.parent.name == f"etcd-{build.ETCD_VERSION}"
