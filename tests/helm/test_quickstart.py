"""README's cluster quickstart, as written, against the real control plane: the `install`, `first-service`
and `clean-up` blocks run verbatim by bash with kubectl and helm on PATH and KUBECONFIG set.

Pods here are kwok's stand-ins that run no container, so between the blocks the test does what the
operator pod would do on a real cluster: it starts the operator process with the command line of the
Deployment the chart installed and only that Deployment's ServiceAccount token (ports moved to free
ones on 127.0.0.1). The tts-server pods are not real either: the test checks what the operator builds
and reports, not audio (tests/server/test_quickstart.py covers the audio)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.cluster.cluster import Cluster
from tests.helm.conftest import Helm, adopt_crd, restore_crd
from tests.helm.test_chart_operator import _metric, _service_account_kubeconfig
from tests.operator.conftest import condition, free_port, wait_for
from tests.readme import ROOT, blocks, commands, quickstart

# The names the README's blocks use; the test reads them back from the blocks to be sure.
RELEASE, NAMESPACE, EXAMPLE = "voicefleet", "voicefleet", "examples/ttsservice-basic.yaml"


class Shell:
    """bash with the README's tools: kubectl and helm first on PATH, KUBECONFIG the test cluster's."""

    def __init__(self, cluster: Cluster, helm: Helm, bin_dir: Path) -> None:
        bin_dir.mkdir(exist_ok=True)
        for name in ("kubectl", "helm"):
            (bin_dir / name).unlink(missing_ok=True)
            (bin_dir / name).symlink_to(getattr(cluster.binaries, name))
        self.env = {**helm.env, "PATH": f"{bin_dir}:{helm.env.get('PATH', '/usr/bin:/bin')}",
                    "KUBECONFIG": str(cluster.kubeconfig)}  # fmt: skip

    def run(self, block: str, timeout: float = 360) -> str:
        proc = subprocess.run(["bash", "-e", "-c", block], cwd=ROOT, env=self.env, capture_output=True,
                              text=True, timeout=timeout, check=False)  # fmt: skip
        assert proc.returncode == 0, (
            f"README block failed ({proc.returncode}):\n{block}\n{proc.stdout}\n{proc.stderr}"
        )
        return proc.stdout


class ChartOperatorProcess:
    """The operator pod's stand-in: the chart Deployment's args, its ServiceAccount's token."""

    def __init__(self, cluster: Cluster, log: Path) -> None:
        deployment = json.loads(cluster.kubectl("-n", NAMESPACE, "get", "deployment", RELEASE, "-o", "json"))
        [container] = deployment["spec"]["template"]["spec"]["containers"]
        account = deployment["spec"]["template"]["spec"]["serviceAccountName"]
        self.kubeconfig = _service_account_kubeconfig(
            cluster, NAMESPACE, account, cluster.kubeconfig.parent / "sa-quickstart.kubeconfig"
        )
        self.metrics_port = free_port()
        # Only the listening addresses change: tests bind to 127.0.0.1 on free ports.
        args = [a for a in container["args"] if not a.startswith(("--metrics-port=", "--liveness="))]
        args += [f"--metrics-port={self.metrics_port}", "--metrics-address=127.0.0.1",
                 f"--liveness=http://127.0.0.1:{free_port()}/healthz"]  # fmt: skip
        env = {"KUBECONFIG": str(self.kubeconfig), "PYTHONUNBUFFERED": "1", "PATH": "/usr/bin:/bin"}
        # The operator code under test, not whatever the virtual environment's install points at.
        env["PYTHONPATH"] = os.pathsep.join(
            [str(ROOT / "operator"), str(ROOT), os.environ.get("PYTHONPATH", "")]
        )
        self.log = log
        with log.open("wb") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "tts_operator.cli", *args], env=env,
                                         stdout=out, stderr=subprocess.STDOUT)  # fmt: skip

    def metrics(self) -> str:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=2) as r:
                return r.read().decode()
        except OSError:
            return ""

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.kubeconfig.unlink(missing_ok=True)


@pytest.fixture
def shell(cluster: Cluster, helm: Helm, tmp_path: Path) -> Iterator[Shell]:
    # The session's control plane already has the CRD (kubectl-applied by the harness); on a real cluster
    # the README's `helm install` creates it. Let the release adopt it, and give it back afterwards.
    adopt_crd(cluster, RELEASE, NAMESPACE)
    try:
        yield Shell(cluster, helm, tmp_path / "bin")
    finally:
        cluster.kubectl("delete", "tts", "voice-basic", "-n", "default", "--ignore-not-found", check=False)
        helm.run("uninstall", RELEASE, "-n", NAMESPACE, "--wait", "--timeout=60s", check=False)
        restore_crd(cluster)
        cluster.kubectl("delete", "namespace", NAMESPACE, "--wait=false", "--ignore-not-found", check=False)


def test_blocks_use_the_names_this_test_expects():
    install = " ".join(commands(quickstart("install")))
    assert f"helm install {RELEASE} charts/voicefleet -n {NAMESPACE} --create-namespace" in install
    assert f"kubectl apply -f {EXAMPLE}" in commands(quickstart("first-service"))
    assert f"helm uninstall {RELEASE} -n {NAMESPACE}" in commands(quickstart("clean-up"))


def test_cluster_quickstart_as_written(cluster: Cluster, shell: Shell, tmp_path: Path) -> None:
    out = shell.run(quickstart("install"))
    assert re.search(r'deployment "voicefleet" successfully rolled out', out), out
    operator = ChartOperatorProcess(cluster, tmp_path / "operator.log")
    try:
        try:
            out = shell.run(quickstart("first-service"))
        except AssertionError as error:
            raise AssertionError(f"{error}\noperator log:\n{operator.log.read_text()[-4000:]}") from None
        assert "ttsservice.voicefleet.io/voice-basic condition met" in out, out
        assert re.search(r"^voice-basic\s+baker\s+True\s", out, re.MULTILINE), out
        children = ("deployment.apps/voice-basic-cpu", "service/voice-basic", "configmap/voice-basic-config",
                    "poddisruptionbudget.policy/voice-basic-cpu")  # fmt: skip
        for child in children:
            assert child in out, f"{child} missing from the README's listing:\n{out}"
        body = json.loads(cluster.kubectl("-n", "default", "get", "tts", "voice-basic", "-o", "json"))
        assert condition(body, "Ready") == ("True", "AllReplicasReady"), body.get("status")
        assert body["status"]["tiers"]["cpu"]["readyReplicas"] == 1, body["status"]
        # The stand-in did the work (not some other operator in the session).
        ok = 'voicefleet_operator_reconciles_total{result="ok"}'
        wait_for(lambda: _metric(operator.metrics(), ok) >= 1, timeout=10,
                 what=f"this operator's reconcile (log: {operator.log})")  # fmt: skip
    finally:
        operator.stop()
    shell.run(quickstart("clean-up"))
    assert not cluster.kubectl("-n", "default", "get", "tts", "--ignore-not-found", "-o", "name").strip()
    releases = json.loads(shell.run(f"helm list -n {NAMESPACE} -o json"))
    assert releases == []


def _cookbook() -> list[dict]:
    docs = [yaml.safe_load(b.body) for b in blocks() if b.info == "yaml"]
    return [d for d in docs if isinstance(d, dict) and d.get("kind") == "TTSService"]


@pytest.mark.parametrize("manifest", _cookbook(), ids=lambda m: m["metadata"]["name"])
def test_cookbook_manifests_pass_server_side_dry_run(cluster: Cluster, manifest: dict) -> None:
    """The API server, with the CRD's schema and CEL rules, accepts every TTSService the README shows."""
    out = cluster.kubectl("apply", "--server-side", "--dry-run=server", "-n", "default", "-f", "-",
                          stdin=json.dumps(manifest))  # fmt: skip
    assert (
        f"ttsservice.voicefleet.io/{manifest['metadata']['name']} serverside-applied (server dry run)" in out
    )
