"""Table-driven tests of the pure renderers."""

from __future__ import annotations

from typing import Any

import pytest
from tts_operator.render import Owner, render_children
from tts_operator.render.common import content_hash
from tts_operator.render.deployment import PRE_STOP_SLEEP_SECONDS, render_deployment
from tts_operator.spec import TTSServiceSpec

OWNER = Owner(name="voice", namespace="team-a", uid="1234")


def make_spec(**overrides: Any) -> TTSServiceSpec:
    body: dict[str, Any] = {
        "engine": "baker",
        "model": {"source": "builtin", "id": "baker"},
        "tiers": {"gpu": {}},
    }
    body.update(overrides)
    return TTSServiceSpec.model_validate(body)


def deployment(spec: TTSServiceSpec, tier: str = "gpu") -> dict[str, Any]:
    return render_deployment(OWNER, spec, tier, "hash")  # type: ignore[arg-type]


def container(spec: TTSServiceSpec, tier: str = "gpu") -> dict[str, Any]:
    return deployment(spec, tier)["spec"]["template"]["spec"]["containers"][0]


def pod(spec: TTSServiceSpec, tier: str = "gpu") -> dict[str, Any]:
    return deployment(spec, tier)["spec"]["template"]["spec"]


@pytest.mark.parametrize(
    ("tiers", "expected"),
    [
        (
            {"gpu": {}},
            [
                ("ConfigMap", "voice-config"),
                ("Deployment", "voice-gpu"),
                ("PodDisruptionBudget", "voice-gpu"),
                ("Service", "voice"),
            ],
        ),
        (
            {"cpu": {}},
            [
                ("ConfigMap", "voice-config"),
                ("Deployment", "voice-cpu"),
                ("PodDisruptionBudget", "voice-cpu"),
                ("Service", "voice"),
            ],
        ),
        (
            {"gpu": {}, "cpu": {}},
            [
                ("ConfigMap", "voice-config"),
                ("Deployment", "voice-gpu"),
                ("PodDisruptionBudget", "voice-gpu"),
                ("Deployment", "voice-cpu"),
                ("PodDisruptionBudget", "voice-cpu"),
                ("Service", "voice"),
            ],
        ),
    ],
)
def test_children_per_tier(tiers, expected):
    children = render_children(OWNER, make_spec(tiers=tiers))
    assert [(c["kind"], c["metadata"]["name"]) for c in children] == expected
    for child in children:
        assert child["metadata"]["namespace"] == "team-a"
        ref = child["metadata"]["ownerReferences"][0]
        assert (ref["kind"], ref["name"], ref["uid"], ref["controller"]) == (
            "TTSService",
            "voice",
            "1234",
            True,
        )
        assert child["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "voicefleet-operator"


@pytest.mark.parametrize(
    ("gpu_tier", "limits"),
    [
        ({}, {"nvidia.com/gpu": "1", "memory": "16Gi"}),
        ({"gpus": 2}, {"nvidia.com/gpu": "2", "memory": "16Gi"}),
        ({"gpus": 1, "resourceName": "amd.com/gpu"}, {"amd.com/gpu": "1", "memory": "16Gi"}),
        (
            {"resources": {"limits": {"memory": "24Gi", "cpu": 4}}},
            {"nvidia.com/gpu": "1", "memory": "24Gi", "cpu": "4"},
        ),
    ],
)
def test_gpu_limits(gpu_tier, limits):
    assert container(make_spec(tiers={"gpu": gpu_tier}))["resources"]["limits"] == limits


@pytest.mark.parametrize(
    ("gpu_tier", "node_selector", "tolerations"),
    [
        (
            {},
            {"nvidia.com/gpu.present": "true"},
            [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        ),
        (
            {"resourceName": "amd.com/gpu"},
            {},
            [{"key": "amd.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        ),
        ({"nodeSelector": {}, "tolerations": []}, {}, []),
        (
            {
                "nodeSelector": {"pool": "a100"},
                "tolerations": [{"key": "dedicated", "value": "tts", "effect": "NoExecute"}],
            },
            {"pool": "a100"},
            [{"key": "dedicated", "operator": "Equal", "value": "tts", "effect": "NoExecute"}],
        ),
    ],
)
def test_gpu_scheduling_defaults(gpu_tier, node_selector, tolerations):
    spec = pod(make_spec(tiers={"gpu": gpu_tier}))
    assert spec["nodeSelector"] == node_selector
    assert spec["tolerations"] == tolerations


def test_cpu_tier_has_no_gpu_and_no_gpu_scheduling():
    spec = make_spec(tiers={"cpu": {"resources": {"requests": {"cpu": "4"}}}})
    c = container(spec, "cpu")
    assert "nvidia.com/gpu" not in c["resources"].get("limits", {})
    assert c["resources"]["requests"] == {"cpu": "4", "memory": "4Gi"}
    assert "nodeSelector" not in pod(spec, "cpu") and "tolerations" not in pod(spec, "cpu")
    assert {"name": "TTS_DEVICE", "value": "cpu"} in c["env"]


@pytest.mark.parametrize(
    ("server", "grace", "startup_failures"),
    [({}, PRE_STOP_SLEEP_SECONDS + 30 + 10, 120), ({"drainSeconds": 120, "startupSeconds": 62}, 135, 13)],
)
def test_probes_and_drain_budget(server, grace, startup_failures):
    spec = make_spec(server=server)
    c, p = container(spec), pod(spec)
    assert c["startupProbe"]["httpGet"]["path"] == "/readyz"
    assert c["startupProbe"]["failureThreshold"] == startup_failures
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert c["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert c["lifecycle"]["preStop"] == {"sleep": {"seconds": PRE_STOP_SLEEP_SECONDS}}
    # Why a server refused to start (its last stderr line) lands in the pod's lastState.
    assert c["terminationMessagePolicy"] == "FallbackToLogsOnError"
    assert p["terminationGracePeriodSeconds"] == grace
    assert p["terminationGracePeriodSeconds"] > spec.server.drain_seconds + PRE_STOP_SLEEP_SECONDS


def test_restricted_security_context():
    c, p = container(make_spec()), pod(make_spec())
    assert p["securityContext"]["runAsNonRoot"] is True
    assert p["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert c["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }


@pytest.mark.parametrize(
    ("autoscaling", "tier", "replicas"),
    [
        ({"enabled": False}, {"minReplicas": 3, "maxReplicas": 5}, 3),
        ({"enabled": True}, {"minReplicas": 3, "maxReplicas": 5}, None),
    ],
)
def test_replicas_only_without_autoscaler(autoscaling, tier, replicas):
    spec = deployment(make_spec(autoscaling=autoscaling, tiers={"gpu": tier}))["spec"]
    assert spec.get("replicas") == replicas


@pytest.mark.parametrize(
    ("server", "expected"),
    [
        ({}, {"TTS_MAX_QUEUE": "64", "TTS_BATCH_SIZE": "8", "TTS_MAX_TEXT_LENGTH": "2000"}),
        (
            {"queueSize": 5, "batchSize": 2, "maxTextLength": 10},
            {"TTS_MAX_QUEUE": "5", "TTS_BATCH_SIZE": "2", "TTS_MAX_TEXT_LENGTH": "10"},
        ),
    ],
)
def test_config_map_carries_server_settings(server, expected):
    config_map = render_children(OWNER, make_spec(server=server))[0]
    assert config_map["kind"] == "ConfigMap"
    assert expected.items() <= config_map["data"].items()
    assert config_map["data"]["TTS_ENGINE"] == "baker"


def test_config_change_rolls_pods():
    before = render_children(OWNER, make_spec())
    after = render_children(OWNER, make_spec(server={"queueSize": 7}))

    def hash_of(children):
        return children[1]["spec"]["template"]["metadata"]["annotations"]["voicefleet.io/config-hash"]

    assert hash_of(before) == content_hash(before[0]["data"])
    assert hash_of(before) != hash_of(after)


def test_api_key_from_secret_and_pod_overrides():
    spec = make_spec(
        server={"apiKeySecretRef": {"name": "keys"}},
        pod={
            "labels": {"team": "a"},
            "annotations": {"x": "y"},
            "priorityClassName": "high",
            "serviceAccountName": "tts",
        },
    )
    d = deployment(spec)
    template = d["spec"]["template"]
    assert {
        "name": "TTS_API_KEY",
        "valueFrom": {"secretKeyRef": {"name": "keys", "key": "api-key"}},
    } in container(spec)["env"]
    assert template["metadata"]["labels"]["team"] == "a"
    assert template["metadata"]["annotations"]["x"] == "y"
    assert template["spec"]["priorityClassName"] == "high"
    assert template["spec"]["serviceAccountName"] == "tts"
    # The selector never depends on user labels: Deployment selectors are immutable.
    assert d["spec"]["selector"]["matchLabels"] == {
        "voicefleet.io/service": "voice",
        "voicefleet.io/tier": "gpu",
    }


@pytest.mark.parametrize(
    ("service", "port", "type_"),
    [({}, 80, "ClusterIP"), ({"port": 8000, "type": "LoadBalancer"}, 8000, "LoadBalancer")],
)
def test_service_spans_tiers(service, port, type_):
    svc = render_children(OWNER, make_spec(service=service, tiers={"gpu": {}, "cpu": {}}))[-1]
    assert svc["spec"]["selector"] == {"voicefleet.io/service": "voice"}
    assert svc["spec"]["ports"] == [{"name": "http", "port": port, "targetPort": "http", "protocol": "TCP"}]
    assert svc["spec"]["type"] == type_


def test_pdb_per_tier():
    children = render_children(OWNER, make_spec(tiers={"gpu": {}, "cpu": {}}))
    pdbs = [c for c in children if c["kind"] == "PodDisruptionBudget"]
    assert [p["spec"]["selector"]["matchLabels"]["voicefleet.io/tier"] for p in pdbs] == ["gpu", "cpu"]
    assert all(p["spec"]["maxUnavailable"] == 1 for p in pdbs)
