"""Getting a hub model into the pod: the `fetch-model` init container and the cache volume it fills.

The init container runs `tts-server fetch-model` from the server's own image into
`<cache mountPath>/<id with / as -->`, the directory tts-server's Settings.resolved_model_dir() loads
(tests/unit/test_operator_server_contract.py keeps the two equal). A rerun over a complete cache
downloads nothing, so a restarted pod on a persistent claim starts without fetching again.
"""

from __future__ import annotations

import posixpath
from typing import Any

from tts_operator.spec import ModelSpec

HUB_SOURCES = ("huggingface", "modelscope")
FETCH_CONTAINER_NAME = "fetch-model"
MODEL_CACHE_VOLUME = "model-cache"
# The variables the hubs' own clients read a token from.
TOKEN_ENV = {"huggingface": "HF_TOKEN", "modelscope": "MODELSCOPE_API_TOKEN"}
# Streaming download and hashing: network-bound, little memory.
FETCH_RESOURCES = {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}}


def hub_model_dir(model: ModelSpec) -> str:
    """Where the init container puts the model and the server finds it."""
    if model.id is None:
        raise ValueError("a hub model needs an id")
    return posixpath.join(model.cache.mount_path, model.id.replace("/", "--"))


def fetch_command(model: ModelSpec) -> list[str]:
    if model.id is None:
        raise ValueError("a hub model needs an id")
    command = ["tts-server", "fetch-model", "--source", model.source, "--id", model.id]
    if model.revision is not None:
        command += ["--revision", model.revision]
    if model.endpoint is not None:
        command += ["--endpoint", model.endpoint]
    return [*command, "--dest", hub_model_dir(model)]


def fetch_init_container(
    model: ModelSpec, image: str, pull_policy: str, security_context: dict[str, Any]
) -> dict[str, Any] | None:
    """None unless the model comes from a hub (builtin models are in the image, local ones in the pod)."""
    if model.source not in HUB_SOURCES:
        return None
    container: dict[str, Any] = {
        "name": FETCH_CONTAINER_NAME,
        "image": image,
        "imagePullPolicy": pull_policy,
        "command": fetch_command(model),
        "resources": FETCH_RESOURCES,
        "securityContext": security_context,
        "terminationMessagePolicy": "FallbackToLogsOnError",  # the hub's answer, in the pod's status
        "volumeMounts": [{"name": MODEL_CACHE_VOLUME, "mountPath": model.cache.mount_path}],
    }
    ref = model.token_secret_ref
    if ref is not None:
        container["env"] = [
            {
                "name": TOKEN_ENV[model.source],
                "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key}},
            }
        ]
    return container


def model_cache_volume(model: ModelSpec) -> dict[str, Any]:
    """A per-pod emptyDir by default; a named claim lets replicas and restarts share one download."""
    if model.cache.claim_name is not None:
        return {"name": MODEL_CACHE_VOLUME, "persistentVolumeClaim": {"claimName": model.cache.claim_name}}
    return {"name": MODEL_CACHE_VOLUME, "emptyDir": {"sizeLimit": str(model.cache.size_limit)}}
