"""Namespace scoping (`tts-operator -n NS`) and HA peering (one active replica among several)."""

from __future__ import annotations

import re
import uuid

import pytest

from tests.operator.conftest import Kube, OperatorProcess, tts, wait_for


def reconciles(operator: OperatorProcess) -> int:
    pattern = r'^voicefleet_operator_reconciles_total\{result="ok"\} (\S+)$'
    match = re.search(pattern, operator.metrics(), re.M)
    return int(float(match.group(1))) if match else 0


@pytest.fixture
def namespaces(cluster):
    created = []

    def make() -> Kube:
        name = f"s-{uuid.uuid4().hex[:8]}"
        cluster.kubectl("create", "namespace", name)
        created.append(name)
        return Kube(cluster, name)

    yield make
    for name in created:
        cluster.kubectl("delete", "namespace", name, "--wait=false")


def test_namespaced_operator_ignores_other_namespaces(cluster, namespaces, tmp_path):
    watched, other = namespaces(), namespaces()
    operator = OperatorProcess(cluster, tmp_path / "scoped.log", "-n", watched.namespace)
    operator.start()
    try:
        other.apply(tts("elsewhere"))
        watched.apply(tts("here"))
        wait_for(lambda: reconciles(operator) == 1, timeout=10, what="one reconcile in the watched namespace")
        wait_for(lambda: watched.exists("deployment", "here-cpu"), timeout=5)
        assert reconciles(operator) == 1, "the operator reconciled a TTSService outside its namespace"
    finally:
        operator.stop()


def test_peering_keeps_one_replica_active(cluster, namespaces, tmp_path):
    kube = namespaces()
    peering = {"apiVersion": "kopf.dev/v1", "kind": "KopfPeering", "metadata": {"name": "voicefleet"}}
    kube.apply(peering)
    common = ("-n", kube.namespace, "--peering", "voicefleet")
    low = OperatorProcess(cluster, tmp_path / "low.log", *common, "--priority", "10")
    high = OperatorProcess(cluster, tmp_path / "high.log", *common, "--priority", "20")
    low.start()
    high.start()
    try:
        paused = "Pausing operations in favour of"
        wait_for(lambda: paused in low.log.read_text(), timeout=20, what="the low-priority replica pauses")
        kube.apply(tts("ha"))
        wait_for(lambda: reconciles(high) == 1, timeout=10, what="the active replica reconciles")
        assert reconciles(low) == 0, "the standby replica must not act"
        peers = kube.get("kopfpeering", "voicefleet").get("status", {})
        assert len(peers) == 2, peers
    finally:
        high.stop()
        low.stop()
