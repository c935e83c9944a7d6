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


def test_keda_warm_start_runs_nothing(monkeypatch, tmp_path):
    monkeypatch.setenv("VOICEFLEET_CACHE", str(tmp_path))
    folder = tmp_path / "bin" / f"keda-{build.KEDA_VERSION}"
    folder.mkdir(parents=True)
    for binary in build.KEDA_BINARIES:
        (folder / binary).write_text("#!/bin/sh\n")
        (folder / binary).chmod(0o755)
    monkeypatch.setattr(build, "_run", lambda *a, **k: pytest.fail(f"warm start ran {a}"))
    monkeypatch.setattr(build, "_go_output", lambda *a, **k: pytest.fail(f"warm start ran {a}"))
    assert build.ensure_keda() == {name: folder / name for name in build.KEDA_BINARIES}


def test_keda_replaces_are_read_from_kedas_own_go_mod():
    """The consumer module repeats what KEDA's release pins (docs: k8s.io/* v0.35.5, controller-runtime
    v0.23.3), read from KEDA's go.mod rather than copied by hand."""
    replaces = build.keda_replaces()
    assert replaces["k8s.io/client-go"] == "k8s.io/client-go v0.35.5"
    assert replaces["sigs.k8s.io/controller-runtime"] == "sigs.k8s.io/controller-runtime v0.23.3"
    assert {"github.com/google/cel-go", "github.com/prometheus/prometheus"} <= set(replaces)
    go_mod = (build.keda_module_dir() / "go.mod").read_text()
    assert all(f"{module} => {target}" in go_mod for module, target in replaces.items())
