"""Invalid TTSServices are rejected by the real API server at apply, with messages that say what is wrong."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.operator.conftest import tts

VALID = tts("v")["spec"]


def spec_with(**changes):
    spec = json.loads(json.dumps(VALID))
    for path, value in changes.items():
        node = spec
        keys = path.split("__")
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = value
    return spec


def delete(path):
    spec = json.loads(json.dumps(VALID))
    node = spec
    keys = path.split("__")
    for key in keys[:-1]:
        node = node[key]
    del node[keys[-1]]
    return spec


INVALID = [
    ("missing engine", delete("engine"), "spec.engine: Required value"),
    ("unknown engine", spec_with(engine="espeak"), 'spec.engine: Unsupported value: "espeak"'),
    ("missing model", delete("model"), "spec.model: Required value"),
    ("no tier", spec_with(tiers={}), "at least one tier (gpu or cpu) is required"),
    (
        "gpu min > max",
        spec_with(tiers={"gpu": {"minReplicas": 5, "maxReplicas": 2}}),
        "minReplicas must be less than or equal to maxReplicas",
    ),
    (
        "cpu min > max",
        spec_with(tiers={"cpu": {"minReplicas": 3, "maxReplicas": 1}}),
        "minReplicas must be less than or equal to maxReplicas",
    ),
    ("zero gpus", spec_with(tiers={"gpu": {"gpus": 0}}), "spec.tiers.gpu.gpus: Invalid value: 0"),
    (
        "negative replicas",
        spec_with(tiers={"cpu": {"minReplicas": -1}}),
        "spec.tiers.cpu.minReplicas: Invalid value: -1",
    ),
    (
        "local model without path",
        spec_with(model={"source": "local"}),
        "model.path is required when source is local",
    ),
    (
        "hub model without id",
        spec_with(model={"source": "huggingface"}),
        "model.id is required unless source is local",
    ),
    (
        "bad quantity",
        spec_with(tiers={"cpu": {"resources": {"limits": {"memory": "lots"}}}}),
        "spec.tiers.cpu.resources.limits.memory: Invalid value",
    ),
    ("port out of range", spec_with(service={"port": 70000}), "spec.service.port: Invalid value: 70000"),
    (
        "unknown service type",
        spec_with(service={"type": "ExternalName"}),
        'spec.service.type: Unsupported value: "ExternalName"',
    ),
    ("queue size zero", spec_with(server={"queueSize": 0}), "spec.server.queueSize: Invalid value: 0"),
    (
        "unknown precision",
        spec_with(tiers={"gpu": {"precision": "int3"}}),
        'spec.tiers.gpu.precision: Unsupported value: "int3"',
    ),
    (
        "bad toleration operator",
        spec_with(tiers={"gpu": {"tolerations": [{"key": "k", "operator": "Maybe"}]}}),
        'spec.tiers.gpu.tolerations[0].operator: Unsupported value: "Maybe"',
    ),
    (
        "reserved pod label",
        spec_with(pod={"labels": {"voicefleet.io/tier": "x"}}),
        "pod labels under voicefleet.io/ are reserved for the operator",
    ),
    (
        "gpu utilization over 100",
        spec_with(autoscaling={"gpuUtilizationTarget": 150}),
        "spec.autoscaling.gpuUtilizationTarget: Invalid value: 150",
    ),
    (
        "duplicate schedule names",
        spec_with(
            autoscaling={
                "schedules": [
                    {"name": "peak", "start": "0 8 * * *", "end": "0 9 * * *", "minReplicas": 1},
                    {"name": "peak", "start": "0 18 * * *", "end": "0 19 * * *", "minReplicas": 1},
                ]
            }
        ),
        '.spec.autoscaling.schedules: duplicate entries for key [name="peak"]',
    ),
    (
        "schedule start equals end",
        spec_with(autoscaling={"schedules": [{"name": "w", "start": "0 8 * * *", "end": "0 8 * * *",
                                              "minReplicas": 1}]}),
        "a schedule's start and end must differ",
    ),
    (
        "schedule not a 5-field cron",
        spec_with(autoscaling={"schedules": [{"name": "w", "start": "@daily", "end": "0 8 * * *"}]}),
        "spec.autoscaling.schedules[0].start: Invalid value",
    ),
    (
        "schedule above its tier's maximum",
        spec_with(autoscaling={"enabled": True, "schedules": [
            {"name": "w", "start": "0 8 * * *", "end": "0 9 * * *", "tier": "cpu", "minReplicas": 5}]}),
        "each autoscaling schedule needs its tier, and minReplicas and warmFloor <= that tier's maxReplicas",
    ),
    (
        "schedule warm floor above its tier's maximum",
        spec_with(autoscaling={"enabled": True, "schedules": [
            {"name": "w", "start": "0 8 * * *", "end": "0 9 * * *", "tier": "cpu", "warmFloor": 5}]}),
        "each autoscaling schedule needs its tier, and minReplicas and warmFloor <= that tier's maxReplicas",
    ),
    (
        "schedule without any bound",
        spec_with(autoscaling={"schedules": [{"name": "w", "start": "0 8 * * *", "end": "0 9 * * *"}]}),
        "a schedule needs at least one of minReplicas, maxReplicas, warmFloor",
    ),
    (
        "schedule minReplicas above its maxReplicas",
        spec_with(autoscaling={"schedules": [
            {"name": "w", "start": "0 8 * * *", "end": "0 9 * * *", "minReplicas": 3, "maxReplicas": 2}]}),
        "a schedule's minReplicas must be less than or equal to its maxReplicas",
    ),
    (
        "schedule warmFloor above its maxReplicas",
        spec_with(autoscaling={"schedules": [
            {"name": "w", "start": "0 8 * * *", "end": "0 9 * * *", "warmFloor": 3, "maxReplicas": 2}]}),
        "a schedule's warmFloor must be less than or equal to its maxReplicas",
    ),
    (
        "schedule ceiling of 0",
        spec_with(autoscaling={"schedules": [
            {"name": "w", "start": "0 8 * * *", "end": "0 9 * * *", "maxReplicas": 0}]}),
        "spec.autoscaling.schedules[0].maxReplicas: Invalid value: 0",
    ),
    (
        "fallback delay negative",
        spec_with(autoscaling={"cpuFallback": {"afterSeconds": -1}}),
        "spec.autoscaling.cpuFallback.afterSeconds: Invalid value: -1",
    ),
    (
        "pre-warm lookback beyond 28 days",
        spec_with(autoscaling={"prewarm": {"lookbackDays": 60}}),
        "spec.autoscaling.prewarm.lookbackDays: Invalid value: 60",
    ),
    (
        "schedule for a missing tier",
        spec_with(autoscaling={"enabled": True, "schedules": [
            {"name": "w", "start": "0 8 * * *", "end": "0 9 * * *", "tier": "gpu", "minReplicas": 1}]}),
        "each autoscaling schedule needs its tier",
    ),
    (
        "p95 guard not positive",
        spec_with(autoscaling={"timeToFirstAudioP95Seconds": 0}),
        "timeToFirstAudioP95Seconds must be positive",
    ),
    (
        "DCGM label not a Prometheus label name",
        spec_with(autoscaling={"dcgmLabels": {"pod": "exported-pod"}}),
        "spec.autoscaling.dcgmLabels.pod: Invalid value",
    ),
    ("bad voice name", spec_with(voices=["no spaces allowed"]), "spec.voices[0]: Invalid value"),
    (
        "bad GPU resource name",
        spec_with(tiers={"gpu": {"resourceName": "nvidia.com/GPU!"}}),
        "spec.tiers.gpu.resourceName: Invalid value",
    ),
    ("unknown field", spec_with(replicas=3), ".spec.replicas: field not declared in schema"),
    (
        "secret ref without name",
        spec_with(server={"apiKeySecretRef": {"key": "k"}}),
        "spec.server.apiKeySecretRef.name: Required value",
    ),
]


def test_table_is_big_enough():
    assert len(INVALID) >= 15


@pytest.mark.parametrize(("case", "spec", "message"), INVALID, ids=[case for case, _, _ in INVALID])
def test_invalid_manifest_rejected(kube, case, spec, message):
    manifest = {
        "apiVersion": "voicefleet.io/v1alpha1",
        "kind": "TTSService",
        "metadata": {"name": "bad"},
        "spec": spec,
    }
    err = kube.cluster.kubectl("-n", kube.namespace, "apply", "--server-side", "-f", "-",
                               stdin=json.dumps(manifest), check=False, stderr=True)  # fmt: skip
    assert not kube.exists("tts", "bad"), f"{case}: the API server accepted it"
    assert message in err, f"{case}: {err}"


def test_name_too_long_rejected(kube):
    manifest = tts("n" * 53)
    err = kube.cluster.kubectl("-n", kube.namespace, "apply", "--server-side", "-f", "-",
                               stdin=json.dumps(manifest), check=False, stderr=True)  # fmt: skip
    assert "metadata.name must be at most 52 characters" in err


def test_valid_manifest_accepted_with_defaults(kube):
    kube.apply(tts("good"))
    spec = kube.get("tts", "good")["spec"]
    assert spec["autoscaling"]["cpuFallback"] == {"enabled": True, "afterSeconds": 120}
    assert spec["autoscaling"]["prewarm"] == {"enabled": False, "lookbackDays": 7, "horizonMinutes": 60}
    assert spec["server"]["queueSize"] == 64
    assert spec["tiers"]["cpu"] == {"minReplicas": 1, "maxReplicas": 4, "resources": {}}
    assert spec["model"]["cache"] == {"sizeLimit": "20Gi", "mountPath": "/models"}
    assert spec["service"] == {"type": "ClusterIP", "port": 80}


EXAMPLES = sorted((Path(__file__).parents[2] / "examples").glob("*.yaml"))


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_examples_pass_server_side_validation(kube, example):
    out = kube.run("apply", "--server-side", "--dry-run=server", "-f", str(example))
    assert "serverside-applied (server dry run)" in out
