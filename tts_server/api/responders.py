"""Turns a planned synthesis into an HTTP response: whole file, raw audio stream, or OpenAI SSE events."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator

from fastapi import Request
from fastapi.responses import Response, StreamingResponse

from tts_server.api.errors import ApiError, error_body
from tts_server.api.state import server_state
from tts_server.audio.encode import CONTENT_TYPES, encode_whole, stream_encoder
from tts_server.service import Plan, SynthesisService, unless_disconnected

STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def _arrival(request: Request) -> float:
    return request.scope["state"].setdefault("arrival", time.monotonic())


def _audio_headers(service: SynthesisService, rate: int, emotion: str) -> dict[str, str]:
    return {
        "X-Sample-Rate": str(rate),
        "X-Audio-Channels": "1",
        "X-Engine": service.info.name,
        "X-Emotion": emotion,
    }


async def respond(
    request: Request,
    service: SynthesisService,
    plan: Plan,
    fmt: str,
    rate: int,
    route: str,
    stream: bool,
    sse: bool = False,
) -> Response:
    state = server_state(request)
    started = _arrival(request)
    emotion = plan.segments[0].emotion
    headers = _audio_headers(service, rate, emotion)
    job = service.submit(plan)
    ttfa = state.metrics.ttfa.labels(service.info.name, route)

    if not stream:
        wave = await service.collect(job, request)
        body = await asyncio.to_thread(encode_whole, fmt, service.to_rate(wave, rate), rate)
        headers["X-Audio-Duration"] = f"{wave.size / service.info.sample_rate:.3f}"
        ttfa.observe(time.monotonic() - started)
        return Response(body, media_type=CONTENT_TYPES[fmt], headers=headers)

    waves = service.chunks(job)
    # Wait for the first sentence before sending headers, so early failures keep a real status.
    first = await unless_disconnected(anext(waves), request)
    encoder = stream_encoder(fmt, rate)

    async def audio_bytes() -> AsyncIterator[bytes]:
        try:
            yield await asyncio.to_thread(encoder.encode, service.to_rate(first, rate))
            ttfa.observe(time.monotonic() - started)
            async for wave in waves:
                yield await asyncio.to_thread(encoder.encode, service.to_rate(wave, rate))
            yield await asyncio.to_thread(encoder.finish)
        finally:
            await waves.aclose()

    if not sse:
        return StreamingResponse(
            audio_bytes(), media_type=CONTENT_TYPES[fmt], headers=headers | STREAM_HEADERS
        )

    async def events() -> AsyncIterator[bytes]:
        try:
            async for data in audio_bytes():
                if data:
                    payload = {"type": "speech.audio.delta", "audio": base64.b64encode(data).decode()}
                    yield f"data: {json.dumps(payload)}\n\n".encode()
            usage = {"input_tokens": plan.characters, "output_tokens": 0, "total_tokens": plan.characters}
            yield f"data: {json.dumps({'type': 'speech.audio.done', 'usage': usage})}\n\n".encode()
        except ApiError as exc:
            # Status 200 is already on the wire: report the failure in-band, then close.
            payload = {"type": "error", **error_body(exc.status, exc.code, exc.message)}
            yield f"data: {json.dumps(payload)}\n\n".encode()

    return StreamingResponse(events(), media_type="text/event-stream", headers=headers | STREAM_HEADERS)
