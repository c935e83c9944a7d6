"""The ConfigMap holding the server's settings: TTS_* environment variables, each one a field of
tts_server.settings.Settings (tests/unit/test_operator_server_contract.py checks every key)."""

from __future__ import annotations

from typing import Any

from tts_operator.render.common import CONTAINER_PORT, Owner, config_map_name, metadata
from tts_operator.spec import TTSServiceSpec


def config_data(spec: TTSServiceSpec) -> dict[str, str]:
    data = {
        "TTS_ENGINE": spec.engine,
        "TTS_MODEL_SOURCE": spec.model.source,
        "TTS_MODEL_CACHE_DIR": spec.model.cache.mount_path,
        "TTS_VOICES": ",".join(spec.voices),
        "TTS_MAX_QUEUE": str(spec.server.queue_size),
        "TTS_BATCH_SIZE": str(spec.server.batch_size),
        "TTS_MAX_TEXT_LENGTH": str(spec.server.max_text_length),
        "TTS_DRAIN_TIMEOUT_S": str(spec.server.drain_seconds),
        "TTS_HOST": "0.0.0.0",
        "TTS_PORT": str(CONTAINER_PORT),
    }
    if spec.model.id is not None:
        data["TTS_MODEL_ID"] = spec.model.id
    if spec.model.path is not None:
        data["TTS_MODEL_DIR"] = spec.model.path
    if spec.model.revision is not None:
        data["TTS_MODEL_REVISION"] = spec.model.revision
    return data


def render_config_map(owner: Owner, spec: TTSServiceSpec) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(owner, config_map_name(owner)),
        "data": config_data(spec),
    }
