"""GET /v1/models and GET /v1/voices."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from tts_server.api.auth import require_api_key
from tts_server.api.schemas import ModelCard, ModelList, VoiceCard, VoiceList
from tts_server.api.state import server_state
from tts_server.audio.encode import FORMATS
from tts_server.service import OPENAI_MODEL_ALIASES

router = APIRouter(dependencies=[Depends(require_api_key)], tags=["catalogue"])


@router.get("/v1/models")
def models(request: Request) -> ModelList:
    state = server_state(request)
    info = state.engine.info
    caps = info.capabilities
    card = ModelCard(
        id=info.model_id,
        engine=info.name,
        runtime=info.runtime,
        device=info.device,
        precision=info.precision,
        sample_rate=info.sample_rate,
        languages=list(info.languages),
        voices=[v.id for v in info.voices],
        emotions=list(info.emotions),
        capabilities={
            "batching": caps.batching,
            "max_batch_size": state.scheduler.batch_size,
            "workers": state.scheduler.workers,
            "streaming": caps.streaming,
            "cloning": caps.cloning,
            "controls": list(caps.controls),
            "formats": list(FORMATS),
            "max_input_characters": state.settings.max_text_length,
        },
        aliases=list(OPENAI_MODEL_ALIASES),
        details=dict(info.extra),
    )
    return ModelList(data=[card])


@router.get("/v1/voices")
def voices(request: Request) -> VoiceList:
    state = server_state(request)
    info = state.engine.info
    aliases = state.service.voice_aliases
    return VoiceList(
        voices=[
            VoiceCard(
                id=v.id,
                name=v.name,
                language=v.language,
                gender=v.gender,
                description=v.description,
                engine=info.name,
                model=info.model_id,
                emotions=list(info.emotions),
                aliases=sorted(name for name, target in aliases.items() if target == v.id),
            )
            for v in info.voices
        ]
    )
