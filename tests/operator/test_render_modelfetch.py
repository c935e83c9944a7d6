"""Hub models: the fetch-model init container, its token and mirror, the cache volume (claim or emptyDir)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from tts_operator.drift import matches
from tts_operator.render import Owner, render_children
from tts_operator.render.deployment import container_security_context, render_deployment
from tts_operator.render.modelfetch import FETCH_RESOURCES
from tts_operator.spec import TTSServiceSpec

from tests.operator.conftest import tts

OWNER = Owner(name="voice", namespace="team-a", uid="1234")
SAMBERT = {"source": "modelscope", "id": "damo/speech_sambert-hifigan_tts_zh-cn_16k"}


def make_spec(model: dict[str, Any], tiers: dict[str, Any] | None = None) -> TTSServiceSpec:
    engine = "sambert-hifigan" if model["source"] == "modelscope" else "baker"
    body = {"engine": engine, "model": model, "tiers": tiers or {"gpu": {}, "cpu": {}}}
    return TTSServiceSpec.model_validate(body)


def pod(spec: TTSServiceSpec, tier: str = "gpu") -> dict[str, Any]:
    return render_deployment(OWNER, spec, tier, "hash")["spec"]["template"]["spec"]  # type: ignore[arg-type]


@pytest.mark.parametrize("tier", ["gpu", "cpu"])
def test_hub_model_gets_a_fetch_init_container_in_each_tier(tier: str) -> None:
    spec = make_spec({**SAMBERT, "revision": "v1.0.2"})
    p = pod(spec, tier)
    (init,) = p["initContainers"]
    server = p["containers"][0]
    assert init == {
        "name": "fetch-model",
        "image": server["image"],
        "imagePullPolicy": server["imagePullPolicy"],
        "command": [
            *("tts-server", "fetch-model", "--source", "modelscope"),
            *("--id", "damo/speech_sambert-hifigan_tts_zh-cn_16k", "--revision", "v1.0.2"),
            *("--dest", "/models/damo--speech_sambert-hifigan_tts_zh-cn_16k"),
        ],
        "resources": FETCH_RESOURCES,
        "securityContext": server["securityContext"],
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "volumeMounts": [{"name": "model-cache", "mountPath": "/models"}],
    }
    assert init["securityContext"] == container_security_context()
    # No GPU for a download, and the server's mount of the same volume is where it loads from.
    assert "nvidia.com/gpu" not in json.dumps(init["resources"])
    assert {"name": "model-cache", "mountPath": "/models"} in server["volumeMounts"]
    assert {"name": "model-cache", "emptyDir": {"sizeLimit": "20Gi"}} in p["volumes"]


@pytest.mark.parametrize("model", [{"source": "builtin", "id": "baker"}, {"source": "local", "path": "/m/x"}])
def test_builtin_and_local_models_are_not_fetched(model: dict[str, Any]) -> None:
    p = pod(make_spec(model))
    assert "initContainers" not in p
    assert {"name": "model-cache", "emptyDir": {"sizeLimit": "20Gi"}} in p["volumes"]


@pytest.mark.parametrize(
    ("source", "variable"), [("huggingface", "HF_TOKEN"), ("modelscope", "MODELSCOPE_API_TOKEN")]
)
def test_token_from_secret_and_mirror_endpoint(source: str, variable: str) -> None:
    model = {
        "source": source,
        "id": "org/private-voice",
        "endpoint": "https://hub-mirror.internal:8443/hf",
        "tokenSecretRef": {"name": "hub-token"},
    }
    p = pod(make_spec(model, {"cpu": {}}), "cpu")
    (init,) = p["initContainers"]
    assert init["env"] == [
        {"name": variable, "valueFrom": {"secretKeyRef": {"name": "hub-token", "key": "token"}}}
    ]
    command = init["command"]
    assert command[command.index("--endpoint") + 1] == "https://hub-mirror.internal:8443/hf"
    assert "--revision" not in command
    # The token reaches only the fetch, never the serving container or the ConfigMap.
    rendered = json.dumps(render_children(OWNER, make_spec(model, {"cpu": {}})))
    assert rendered.count("hub-token") == 1


def test_claim_replaces_the_empty_dir() -> None:
    spec = make_spec({**SAMBERT, "cache": {"claimName": "tts-models", "mountPath": "/cache"}})
    p = pod(spec)
    assert {"name": "model-cache", "persistentVolumeClaim": {"claimName": "tts-models"}} in p["volumes"]
    assert not any(v["name"] == "model-cache" and "emptyDir" in v for v in p["volumes"])
    assert p["initContainers"][0]["command"][-1] == "/cache/damo--speech_sambert-hifigan_tts_zh-cn_16k"


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ({"source": "builtin", "id": "baker", "endpoint": "https://m"}, "apply only to hub sources"),
        ({"source": "local", "path": "/m", "tokenSecretRef": {"name": "t"}}, "apply only to hub sources"),
        ({**SAMBERT, "endpoint": "ftp://mirror"}, "String should match pattern"),
        ({**SAMBERT, "cache": {"claimName": "Not_A_Name"}}, "String should match pattern"),
    ],
)
def test_model_rejects_misplaced_fetch_settings(model: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_spec(model)


def test_rendered_deployment_passes_real_apiserver_dry_run(kube) -> None:
    """The API server's own pod validation accepts the init container, the secret env and the claim."""
    model = {
        **SAMBERT,
        "revision": "v1.0.2",
        "endpoint": "https://modelscope-mirror.internal",
        "tokenSecretRef": {"name": "hub-token", "key": "ms"},
        "cache": {"claimName": "tts-models"},
    }
    owner = Owner(name="voice", namespace=kube.namespace, uid="0c9ff1b8-6a1d-4a8e-9d5b-3b8f3b7a0c11")
    dry_run = ("apply", "--server-side", "--dry-run=server", "-o", "json", "-f", "-")
    for tier in ("gpu", "cpu"):
        manifest = render_deployment(owner, make_spec(model), tier, "hash", autoscaled=False)  # type: ignore[arg-type]
        manifest["metadata"].pop("ownerReferences", None)  # the owner does not exist in this namespace
        answer = json.loads(kube.run(*dry_run, stdin=json.dumps(manifest)))
        # What the API server stores (defaults added) must not read as drift, or we would re-apply forever.
        assert matches(manifest["spec"], answer["spec"])
        applied = answer["spec"]["template"]["spec"]
        (init,) = applied["initContainers"]
        assert init["command"][-1] == "/models/damo--speech_sambert-hifigan_tts_zh-cn_16k"
        assert init["env"][0]["valueFrom"]["secretKeyRef"] == {"name": "hub-token", "key": "ms"}
        assert init["securityContext"] == applied["containers"][0]["securityContext"]
        claim = {"name": "model-cache", "persistentVolumeClaim": {"claimName": "tts-models"}}
        assert claim in applied["volumes"]


def test_crd_validates_hub_fields_on_a_real_apiserver(kube) -> None:
    good = tts("hub", engine="sambert-hifigan", model={**SAMBERT, "tokenSecretRef": {"name": "t"},
               "endpoint": "https://mirror.internal", "cache": {"claimName": "models"}})  # fmt: skip
    kube.apply(good)
    stored = kube.get("tts", "hub")["spec"]["model"]
    assert stored["tokenSecretRef"] == {"name": "t", "key": "token"}
    assert stored["cache"]["claimName"] == "models"
    bad = tts("bad", model={"source": "builtin", "id": "baker", "endpoint": "https://m.internal"})
    err = kube.cluster.kubectl("-n", kube.namespace, "apply", "--server-side", "-f", "-",
                               stdin=json.dumps(bad), check=False, stderr=True)  # fmt: skip
    assert "model.endpoint and model.tokenSecretRef apply only to hub sources" in err
    assert not kube.exists("tts", "bad")
