"""POST /tts (native) and POST /v1/audio/speech (OpenAI-compatible)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from tts_server.api.auth import require_api_key
from tts_server.api.responders import respond
from tts_server.api.schemas import SpeechRequest, TTSRequest
from tts_server.api.state import ready_service
from tts_server.service import SynthesisService, emotion_from_instructions

ReadyService = Annotated[SynthesisService, Depends(ready_service)]
router = APIRouter(dependencies=[Depends(require_api_key)], tags=["synthesis"])

_AUDIO = {200: {"content": {"audio/wav": {}, "audio/mpeg": {}, "audio/pcm": {}}, "description": "Audio"}}
OPENAI_SAMPLE_RATE = 24_000


@router.post("/tts", responses=_AUDIO, response_class=Response)
async def tts(body: TTSRequest, request: Request, service: ReadyService) -> Response:
    """Synthesize text; the response body is audio in the requested format."""
    voice = service.resolve_voice(body.voice)
    emotion = service.check_emotion(body.emotion)
    plan = service.plan(body.text, voice, emotion, body.speed, body.pitch, body.energy)
    rate = service.output_rate(body.sample_rate)
    return await respond(request, service, plan, body.format, rate, "/tts", stream=body.stream)


@router.post("/v1/audio/speech", responses=_AUDIO, response_class=Response)
async def speech(body: SpeechRequest, request: Request, service: ReadyService) -> Response:
    """OpenAI's speech endpoint; audio streams sentence by sentence (or as SSE events)."""
    service.resolve_model(body.model)
    voice = service.resolve_voice(body.voice if isinstance(body.voice, str) else body.voice.id)
    emotion = service.check_emotion(
        body.emotion or emotion_from_instructions(body.instructions, service.info.emotions)
    )
    # An explicit emotion overrides instructions; otherwise prompt engines get the instructions verbatim.
    instructions = None if body.emotion else body.instructions
    plan = service.plan(body.input, voice, emotion, body.speed, 1.0, 1.0, instructions)
    rate = body.sample_rate or OPENAI_SAMPLE_RATE
    sse = body.stream_format == "sse"
    return await respond(request, service, plan, body.response_format, rate, "/v1/audio/speech", True, sse)
