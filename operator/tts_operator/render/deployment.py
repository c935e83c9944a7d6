"""One Deployment per tier: probes sized for model load, a drain-aware shutdown, restricted pods."""

from __future__ import annotations

import math
from typing import Any

from tts_operator.render.common import (
    ANNOTATION_CONFIG_HASH,
    CONTAINER_NAME,
    CONTAINER_PORT,
    Owner,
    TierName,
    common_labels,
    config_map_name,
    metadata,
    selector_labels,
    tier_name,
)
from tts_operator.render.modelfetch import MODEL_CACHE_VOLUME, fetch_init_container, model_cache_volume
from tts_operator.render.scaledobject import warm_floor
from tts_operator.spec import CPUTier, GPUTier, Resources, TTSServiceSpec

# Defaults for resources a user leaves out, per tier.
GPU_DEFAULT_RESOURCES = {"requests": {"cpu": "2", "memory": "8Gi"}, "limits": {"memory": "16Gi"}}
CPU_DEFAULT_RESOURCES = {"requests": {"cpu": "2", "memory": "4Gi"}, "limits": {"memory": "8Gi"}}
# Long enough for endpoints controllers and proxies to stop sending new requests before SIGTERM.
PRE_STOP_SLEEP_SECONDS = 5
# Slack between the server's drain deadline and the kubelet's SIGKILL.
GRACE_SLACK_SECONDS = 10
STARTUP_PERIOD_SECONDS = 5
RUN_AS_USER = 10001


def _resources(user: Resources, defaults: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
    """User values win key by key; quantities are strings so the API server keeps them as written."""
    merged: dict[str, dict[str, str]] = {}
    for part in ("requests", "limits"):
        values = {**defaults[part], **{k: str(v) for k, v in getattr(user, part).items()}}
        if values:
            merged[part] = values
    return merged


def gpu_resources(tier: GPUTier) -> dict[str, dict[str, str]]:
    resources = _resources(tier.resources, GPU_DEFAULT_RESOURCES)
    resources.setdefault("limits", {})[tier.resource_name] = str(tier.gpus)
    return resources


def gpu_node_selector(tier: GPUTier) -> dict[str, str]:
    if tier.node_selector is not None:
        return dict(tier.node_selector)
    # GPU feature discovery labels NVIDIA nodes this way; other vendors have no common label.
    return {"nvidia.com/gpu.present": "true"} if tier.resource_name == "nvidia.com/gpu" else {}


def gpu_tolerations(tier: GPUTier) -> list[dict[str, Any]]:
    if tier.tolerations is not None:
        return [t.model_dump(by_alias=True, exclude_none=True) for t in tier.tolerations]
    return [{"key": tier.resource_name, "operator": "Exists", "effect": "NoSchedule"}]


def termination_grace_seconds(spec: TTSServiceSpec) -> int:
    return PRE_STOP_SLEEP_SECONDS + spec.server.drain_seconds + GRACE_SLACK_SECONDS


def _probes(spec: TTSServiceSpec) -> dict[str, Any]:
    http = lambda path: {"httpGet": {"path": path, "port": "http"}}  # noqa: E731
    return {
        # Until the model is loaded and warmed up only the startup probe runs, for at most startupSeconds.
        "startupProbe": {
            **http("/readyz"),
            "periodSeconds": STARTUP_PERIOD_SECONDS,
            "failureThreshold": math.ceil(spec.server.startup_seconds / STARTUP_PERIOD_SECONDS),
            "timeoutSeconds": 2,
        },
        "readinessProbe": {**http("/readyz"), "periodSeconds": 5, "failureThreshold": 2, "timeoutSeconds": 2},
        "livenessProbe": {**http("/livez"), "periodSeconds": 10, "failureThreshold": 3, "timeoutSeconds": 5},
    }


def container_security_context() -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }


def _env(spec: TTSServiceSpec, tier: TierName, precision: str) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = [
        {"name": "TTS_DEVICE", "value": "cuda" if tier == "gpu" else "cpu"},
        {"name": "TTS_PRECISION", "value": precision},
        {"name": "TTS_TIER", "value": tier},
    ]
    ref = spec.server.api_key_secret_ref
    if ref is not None:
        env.append({"name": "TTS_API_KEY", "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key}}})
    return env


def render_deployment(
    owner: Owner,
    spec: TTSServiceSpec,
    tier: TierName,
    config_hash: str,
    *,
    autoscaled: bool | None = None,
    replicas: int | None = None,
) -> dict[str, Any]:
    """`autoscaled`: a ScaledObject owns replicas (default: autoscaling is enabled). `replicas`: the
    count when nothing autoscales (the operator policy's, else the floor or minReplicas)."""
    tier_spec: GPUTier | CPUTier | None = spec.tiers.gpu if tier == "gpu" else spec.tiers.cpu
    if tier_spec is None:
        raise ValueError(f"spec has no {tier} tier")
    if isinstance(tier_spec, GPUTier):
        resources = gpu_resources(tier_spec)
        precision = tier_spec.precision
        scheduling: dict[str, Any] = {
            "nodeSelector": gpu_node_selector(tier_spec),
            "tolerations": gpu_tolerations(tier_spec),
        }
    else:
        resources = _resources(tier_spec.resources, CPU_DEFAULT_RESOURCES)
        precision = "fp32"
        scheduling = {}
    pod_labels = {**spec.pod.labels, **common_labels(owner, tier)}
    pod_annotations = {**spec.pod.annotations, ANNOTATION_CONFIG_HASH: config_hash}
    container = {
        "name": CONTAINER_NAME,
        "image": spec.image,
        "imagePullPolicy": spec.image_pull_policy,
        "ports": [{"name": "http", "containerPort": CONTAINER_PORT, "protocol": "TCP"}],
        "envFrom": [{"configMapRef": {"name": config_map_name(owner)}}],
        "env": _env(spec, tier, precision),
        "resources": resources,
        **_probes(spec),
        # The sleep keeps serving while endpoints drop the pod; the server drains after SIGTERM.
        "lifecycle": {"preStop": {"sleep": {"seconds": PRE_STOP_SLEEP_SECONDS}}},
        "securityContext": container_security_context(),
        # A server that cannot start (e.g. "device 'cuda' requested, but CUDA fails: ...") says why on
        # stderr; with this, the reason shows in the pod's lastState without reading logs.
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "volumeMounts": [
            {"name": MODEL_CACHE_VOLUME, "mountPath": spec.model.cache.mount_path},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }
    pod_spec: dict[str, Any] = {
        "containers": [container],
        "terminationGracePeriodSeconds": termination_grace_seconds(spec),
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUN_AS_USER,
            "runAsGroup": RUN_AS_USER,
            "fsGroup": RUN_AS_USER,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumes": [
            model_cache_volume(spec.model),
            {"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}},
        ],
        **scheduling,
    }
    fetch = fetch_init_container(spec.model, spec.image, spec.image_pull_policy, container_security_context())
    if fetch is not None:
        pod_spec["initContainers"] = [fetch]
    if spec.pod.priority_class_name:
        pod_spec["priorityClassName"] = spec.pod.priority_class_name
    if spec.pod.service_account_name:
        pod_spec["serviceAccountName"] = spec.pod.service_account_name
    deployment_spec: dict[str, Any] = {
        "selector": {"matchLabels": selector_labels(owner, tier)},
        "revisionHistoryLimit": 3,
        "progressDeadlineSeconds": spec.server.startup_seconds + 60,
        # Surge first: a replacement must be ready before an old replica (and its warm model) goes.
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
        "template": {"metadata": {"labels": pod_labels, "annotations": pod_annotations}, "spec": pod_spec},
    }
    # With autoscaling on, the autoscaler owns spec.replicas: leaving the field out of our apply means
    # server-side apply never takes it back, so the two never fight.
    if autoscaled is None:
        autoscaled = spec.autoscaling.enabled
    if not autoscaled:
        # Autoscaling wanted but KEDA missing: run at the floor the autoscaler would have kept.
        if replicas is None:
            replicas = warm_floor(spec, tier) if spec.autoscaling.enabled else tier_spec.min_replicas
        deployment_spec["replicas"] = replicas
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(owner, tier_name(owner, tier), tier),
        "spec": deployment_spec,
    }
