"""The operator configures tts-server pods; these checks keep the two halves speaking one language.

tts-server ignores unknown TTS_* variables (pods must tolerate extra env), so a renamed setting would
fail silently in a cluster: every variable the operator renders must be a server setting.
"""

from __future__ import annotations

import typing

import pytest
from tts_operator.render import Owner, render_children
from tts_operator.render.common import CONTAINER_PORT
from tts_operator.spec import Engine, TTSServiceSpec

from tts_server.engines.registry import ENGINES
from tts_server.settings import Settings

OWNER = Owner(name="voice", namespace="team-a", uid="1234")
FULL_SPEC = {
    "engine": "sambert-hifigan",
    "model": {
        "source": "modelscope",
        "id": "damo/speech_sambert-hifigan_tts_zh-cn_16k",
        "revision": "v1.0.1",
    },
    "voices": ["zhitian_emo"],
    "server": {"queueSize": 5, "batchSize": 2, "maxTextLength": 100, "apiKeySecretRef": {"name": "tts-key"}},
    "tiers": {"gpu": {}, "cpu": {}},
}


def rendered_env(spec_body: dict) -> dict[str, str | None]:
    env: dict[str, str | None] = {}
    for child in render_children(OWNER, TTSServiceSpec.model_validate(spec_body)):
        if child["kind"] == "ConfigMap":
            env.update(child["data"])
        if child["kind"] == "Deployment":
            for container in child["spec"]["template"]["spec"]["containers"]:
                env.update({e["name"]: e.get("value") for e in container.get("env", [])})
    return env


def test_every_rendered_variable_is_a_server_setting() -> None:
    env = rendered_env(FULL_SPEC)
    assert env, "the operator rendered no settings at all"
    fields = set(Settings.model_fields)
    unknown = sorted(k for k in env if k.startswith("TTS_") and k[4:].lower() not in fields)
    assert unknown == [], f"tts-server has no setting for {unknown}"


def test_rendered_values_are_valid_server_settings() -> None:
    for tier_device in ("cuda", "cpu"):
        env = {
            k[4:].lower(): v
            for k, v in rendered_env(FULL_SPEC).items()
            if k.startswith("TTS_") and v is not None
        }
        env["device"] = tier_device
        settings = Settings(**{k: v for k, v in env.items() if k != "api_key"})
        assert settings.port == CONTAINER_PORT
        assert settings.max_queue == 5
        assert settings.voices == ["zhitian_emo"]


def test_operator_engines_are_the_server_registry() -> None:
    assert set(typing.get_args(Engine)) == set(ENGINES)


def test_hub_models_load_from_their_place_in_the_cache() -> None:
    settings = Settings(model_source="modelscope", model_id="damo/x", model_cache_dir="/models")
    assert str(settings.resolved_model_dir()) == "/models/damo--x"
    assert (
        Settings(model_dir="/m", model_source="modelscope", model_id="a").resolved_model_dir().as_posix()
        == "/m"
    )
    assert Settings(model_source="builtin", model_id="baker").resolved_model_dir() is None


def _fetch_and_server(spec_body: dict) -> tuple[list[str], Settings]:
    """The init container's command and the serving container's settings, as rendered for one tier."""
    children = render_children(OWNER, TTSServiceSpec.model_validate(spec_body))
    pod = next(c for c in children if c["kind"] == "Deployment")["spec"]["template"]["spec"]
    (init,) = pod["initContainers"]
    env = rendered_env(spec_body)
    values = {k[4:].lower(): v for k, v in env.items() if k.startswith("TTS_") and k != "TTS_API_KEY"}
    return init["command"], Settings(**values)


@pytest.mark.parametrize(
    "model",
    [
        FULL_SPEC["model"],
        {"source": "huggingface", "id": "org/voice.v2", "cache": {"mountPath": "/var/cache/tts"}},
        {"source": "modelscope", "id": "single", "cache": {"claimName": "shared-models"}},
    ],
)
def test_init_container_fetches_where_the_server_loads(model: dict) -> None:
    command, settings = _fetch_and_server({**FULL_SPEC, "model": model})
    assert command[command.index("--dest") + 1] == str(settings.resolved_model_dir())
    assert command[command.index("--source") + 1] == settings.model_source
    assert command[command.index("--id") + 1] == settings.model_id
    if settings.model_revision is not None:
        assert command[command.index("--revision") + 1] == settings.model_revision


def test_fetch_model_accepts_every_hub_source_the_operator_renders() -> None:
    from tts_operator.render.modelfetch import HUB_SOURCES, TOKEN_ENV

    from tts_server import hub

    assert set(HUB_SOURCES) == set(hub.SOURCES)
    assert all(TOKEN_ENV[source] in hub.TOKEN_ENV[source] for source in HUB_SOURCES)
