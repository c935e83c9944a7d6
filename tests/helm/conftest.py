"""Fixtures for the chart tests: helm against the session's real control plane."""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.cluster.cluster import Cluster
from tests.helm.monitoring_crds import monitoring_crd_files
from tests.operator.conftest import cluster  # noqa: F401  (the session's control plane, shared)

CHART = Path(__file__).resolve().parents[2] / "charts" / "voicefleet"
CRD_NAME = "ttsservices.voicefleet.io"
PEERING_CRDS = ("clusterkopfpeerings.kopf.dev", "kopfpeerings.kopf.dev")
# Everything optional switched on, for the dry-run and lifecycle tests.
OPTIONAL = (
    "monitoring.prometheusRule",
    "monitoring.dashboard",
    "monitoring.podMonitor",
    "metrics.serviceMonitor",
)
ALL_ON = tuple(arg for key in OPTIONAL for arg in ("--set", f"{key}.enabled=true"))


class Helm:
    """helm with its own config/cache dirs, talking to the test cluster as admin."""

    def __init__(self, control_plane: Cluster, home: Path) -> None:
        self.cluster = control_plane
        self.env = {
            **os.environ,
            "HELM_CACHE_HOME": str(home / "cache"),
            "HELM_CONFIG_HOME": str(home / "config"),
            "HELM_DATA_HOME": str(home / "data"),
            "KUBECONFIG": str(control_plane.kubeconfig),
        }

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([str(self.cluster.binaries.helm), *args], env=self.env, capture_output=True,
                              text=True, timeout=180, check=False)  # fmt: skip
        if check and proc.returncode != 0:
            raise AssertionError(
                f"helm {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
            )
        return proc

    def template(self, *args: str, chart: Path = CHART) -> list[dict]:
        out = self.run("template", "rel", str(chart), *args).stdout
        return [doc for doc in yaml.safe_load_all(out) if doc]

    def history(self, release: str, namespace: str) -> list[dict]:
        return json.loads(self.run("history", release, "-n", namespace, "-o", "json").stdout)


@pytest.fixture(scope="session")
def helm(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Helm:  # noqa: F811
    return Helm(cluster, tmp_path_factory.mktemp("helm"))


@pytest.fixture(scope="session")
def monitoring_crds(cluster: Cluster) -> list[str]:  # noqa: F811
    """prometheus-operator's real PrometheusRule, ServiceMonitor and PodMonitor CRDs, once per session."""
    files = monitoring_crd_files()
    cluster.kubectl("apply", "--server-side", *(arg for f in files for arg in ("-f", str(f))))
    names = [f"{k}.monitoring.coreos.com" for k in ("prometheusrules", "servicemonitors", "podmonitors")]
    cluster.kubectl("wait", "--for=condition=Established", "--timeout=30s", *(f"crd/{n}" for n in names))
    for group_version in ("monitoring.coreos.com/v1",):
        deadline = time.monotonic() + 30
        while not cluster.kubectl("get", f"--raw=/apis/{group_version}", check=False).strip():
            assert time.monotonic() < deadline, f"{group_version} never appeared in discovery"
            time.sleep(0.2)
    return names


@pytest.fixture
def namespace(cluster: Cluster) -> Iterator[str]:  # noqa: F811
    name = f"h-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", name)
    try:
        yield name
    finally:
        cluster.kubectl("delete", "namespace", name, "--wait=false")


def adopt_crd(cluster: Cluster, release: str, namespace: str) -> None:  # noqa: F811
    """Mark the CRD the harness applied with kubectl as owned by `release`: Helm's documented adoption.

    The session's cluster already has the CRD (the operator tests need it from the start); without these
    marks `helm install` refuses to take it over.
    """
    cluster.kubectl("label", "crd", CRD_NAME, "app.kubernetes.io/managed-by=Helm", "--overwrite")
    cluster.kubectl("annotate", "crd", CRD_NAME, f"meta.helm.sh/release-name={release}",
                    f"meta.helm.sh/release-namespace={namespace}", "--overwrite")  # fmt: skip


def restore_crd(cluster: Cluster) -> None:  # noqa: F811
    """Give the CRD back to the harness as it was: kubectl's copy from crds/, no Helm ownership marks.

    The operator tests later in the session use this CRD; a failed upgrade must not leave it changed.
    """
    crd_file = CHART.parents[1] / "crds" / f"{CRD_NAME}.yaml"
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(crd_file))
    # Every label the release put on it: left behind, they stay owned by Helm's field manager and a later
    # server-side apply of the chart under another manager would conflict on them.
    labels = ("managed-by", "name", "instance", "version", "component", "part-of")
    cluster.kubectl("label", "crd", CRD_NAME, *(f"app.kubernetes.io/{k}-" for k in labels), "helm.sh/chart-")
    marks = ("meta.helm.sh/release-name-", "meta.helm.sh/release-namespace-", "helm.sh/resource-policy-")
    cluster.kubectl("annotate", "crd", CRD_NAME, *marks)
