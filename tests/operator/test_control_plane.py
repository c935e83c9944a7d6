"""The control plane harness: real components up, our CRDs and KEDA's installed, fake nodes Ready."""

from __future__ import annotations

import json

from tests.cluster.cluster import GPU_NODE, GPUS_PER_NODE


def test_components_and_version(cluster):
    version = json.loads(cluster.kubectl("version", "-o", "json"))
    assert version["serverVersion"]["gitVersion"].startswith("v1.36.")
    assert cluster.kubectl("get", "--raw=/readyz").strip() == "ok"


def test_crds_installed_before_controllers(cluster):
    names = cluster.kubectl("get", "crd", "-o", "name").split()
    assert "customresourcedefinition.apiextensions.k8s.io/ttsservices.voicefleet.io" in names
    assert "customresourcedefinition.apiextensions.k8s.io/scaledobjects.keda.sh" in names


def test_gpu_node_capacity(cluster):
    node = json.loads(cluster.kubectl("get", "node", GPU_NODE, "-o", "json"))
    assert node["status"]["allocatable"]["nvidia.com/gpu"] == str(GPUS_PER_NODE)
    ready = [c["status"] for c in node["status"]["conditions"] if c["type"] == "Ready"]
    assert ready == ["True"]


def test_kubectl_explain_uses_model_descriptions(cluster):
    out = cluster.kubectl("explain", "tts.spec.tiers.gpu.gpus")
    assert "GPUs per replica." in out
    out = cluster.kubectl("explain", "ttsservice.spec.server")
    assert "queueSize" in out and "Requests that may wait per pod" in out
