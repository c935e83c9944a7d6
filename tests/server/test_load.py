"""Behaviour under load, across the process boundary: backpressure, disconnects, drain on SIGTERM."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time

import httpx
import pytest

from tests.audio_decode import decode
from tests.quality import assert_speech, syllables

SENTENCE = "我们正在测试离线中文语音合成的速度和质量，请大家多多指教。"


async def _post(client: httpx.AsyncClient, text: str) -> httpx.Response:
    return await client.post("/tts", json={"text": text})


async def _wait_for(predicate, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


def test_flood_gets_429_while_accepted_requests_succeed(start_server) -> None:
    server = start_server("--threads", "2", "--max-queue", "3")
    text = SENTENCE * 2
    samples: list[float] = []

    async def sample_queue(stop: asyncio.Event) -> None:
        while not stop.is_set():
            samples.append(await asyncio.to_thread(server.metric, "tts_queue_depth"))
            await asyncio.sleep(0.05)

    async def run() -> list[httpx.Response]:
        stop = asyncio.Event()
        sampler = asyncio.create_task(sample_queue(stop))
        async with httpx.AsyncClient(base_url=server.url, timeout=120) as client:
            responses = await asyncio.gather(*(_post(client, text) for _ in range(16)))
        stop.set()
        await sampler
        return responses

    responses = asyncio.run(run())
    codes = [r.status_code for r in responses]
    assert set(codes) == {200, 429}, codes
    rejected = [r for r in responses if r.status_code == 429]
    accepted = [r for r in responses if r.status_code == 200]
    assert len(accepted) >= 4  # one in flight plus a full queue of three
    for r in rejected:
        assert int(r.headers["retry-after"]) >= 1
        assert r.json()["error"]["code"] == "rate_limit_exceeded"
    for r in accepted:
        wave, rate = decode(r.content, "wav")
        assert_speech(wave, rate, syllables(text))
    assert max(samples) >= 2, samples  # /metrics showed the queue filling up
    assert server.metric("tts_rejected_total", 'reason="queue_full"') == len(rejected)
    assert server.metric("tts_requests_total", 'code="200"') >= len(accepted)


def test_disconnected_client_work_is_never_synthesized(start_server) -> None:
    server = start_server("--threads", "2")
    long_text = SENTENCE * 6
    abandoned_text = "这句话的客户端会提前断开连接。"

    async def run() -> httpx.Response:
        async with httpx.AsyncClient(base_url=server.url, timeout=120) as client:
            first = asyncio.create_task(_post(client, long_text))
            await _wait_for(lambda: server.metric("tts_requests_in_flight") == 1)
            abandoned = asyncio.create_task(_post(client, abandoned_text))
            await _wait_for(lambda: server.metric("tts_queue_depth") == 1)
            abandoned.cancel()  # closes that request's connection while it waits in the queue
            response = await first
        return response

    first = asyncio.run(run())
    assert first.status_code == 200
    deadline = time.monotonic() + 10
    while server.metric("tts_client_disconnects_total", 'phase="queued"') < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.metric("tts_client_disconnects_total", 'phase="queued"') == 1
    # All audio the engine made belongs to the first request: its six sentences, without the five
    # 120 ms gaps the server inserts between them (warm-up is not counted). The abandoned sentence
    # would have added about two seconds.
    produced = server.metric("tts_audio_seconds_total")
    assert produced == pytest.approx(float(first.headers["x-audio-duration"]) - 5 * 0.120, abs=0.01)
    assert server.metric("tts_requests_in_flight") == 0 and server.metric("tts_queue_depth") == 0


def test_sigterm_drains_every_accepted_request(start_server) -> None:
    server = start_server("--threads", "2", "--max-queue", "16", "--drain-timeout-s", "60")
    count = 6

    async def run() -> tuple[list[httpx.Response], httpx.Response, int]:
        async with httpx.AsyncClient(base_url=server.url, timeout=120) as client:
            tasks = [asyncio.create_task(_post(client, SENTENCE)) for _ in range(count)]
            await _wait_for(
                lambda: server.metric("tts_queue_depth") + server.metric("tts_requests_in_flight") == count
            )
            server.proc.send_signal(signal.SIGTERM)
            await _wait_for(lambda: server.metric("tts_draining") == 1, timeout=5)
            refused = await client.post("/tts", json={"text": "新的请求。"})
            ready = (await client.get("/readyz")).status_code
            return await asyncio.gather(*tasks), refused, ready

    responses, refused, ready = asyncio.run(run())
    assert [r.status_code for r in responses] == [200] * count
    for r in responses:
        wave, rate = decode(r.content, "wav")
        assert_speech(wave, rate, syllables(SENTENCE))
    assert refused.status_code == 503 and refused.json()["error"]["code"] == "draining"
    assert "retry-after" in refused.headers
    assert ready == 503
    assert server.proc.wait(timeout=30) == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--engine", "nope"], "unknown engine 'nope'"),
        (["--engine", "baker-litert", "--device", "cuda"], "CPU only"),
        (["--precision", "int8"], "int8 is the baker-litert engine"),
        (["--batch-mode", "sometimes"], "invalid choice: 'sometimes'"),
        (["--batch-size", "0"], "invalid settings: batch_size: Input should be greater than or equal to 1"),
    ],
)
def test_refuses_to_start_with_a_clear_message(args: list[str], message: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tts_server.cli", "--port", "1", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert message in result.stderr


def test_two_workers_serve_concurrently(start_server) -> None:
    server = start_server("--workers", "2", "--threads", "1")

    async def run() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=server.url, timeout=120) as client:
            tasks = [asyncio.create_task(_post(client, SENTENCE)) for _ in range(4)]
            await _wait_for(lambda: server.metric("tts_requests_in_flight") == 2)
            return await asyncio.gather(*tasks)

    responses = asyncio.run(run())
    assert [r.status_code for r in responses] == [200] * 4
    for r in responses:
        wave, rate = decode(r.content, "wav")
        assert_speech(wave, rate, syllables(SENTENCE))
    card = httpx.get(server.url + "/v1/models").json()["data"][0]
    assert card["capabilities"]["workers"] == 2


def test_padded_batch_mode_batches_concurrent_requests_on_cpu(start_server) -> None:
    """`--batch-mode padded` is what CUDA gets by default; forced on CPU it must still batch real
    requests into one engine call (at most --batch-size) and give each its own speech."""
    server = start_server("--batch-mode", "padded", "--batch-size", "3", "--batch-wait-ms", "300")
    card = httpx.get(server.url + "/v1/models").json()["data"][0]
    assert card["capabilities"]["batching"] is True and card["capabilities"]["max_batch_size"] == 3
    texts = [SENTENCE, "今天天气很好。", "欢迎使用语音合成服务。", "谢谢大家。"]

    async def run() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=server.url, timeout=120) as client:
            return await asyncio.gather(*(_post(client, text) for text in texts))

    responses = asyncio.run(run())
    assert [r.status_code for r in responses] == [200] * len(texts)
    for r, text in zip(responses, texts, strict=True):
        wave, rate = decode(r.content, "wav")
        assert_speech(wave, rate, syllables(text))
    calls = server.metric("tts_batch_size_count")
    segments = server.metric("tts_batch_size_sum")
    assert segments == len(texts)  # one sentence each
    # Fewer calls than segments: some call carried several requests; at least two calls, because
    # four segments do not fit one call of at most three.
    assert 2 <= calls < segments


def test_request_whose_deadline_passes_in_the_queue_gets_504(start_server) -> None:
    server = start_server("--threads", "2", "--request-timeout-s", "0.3")

    async def run() -> tuple[httpx.Response, httpx.Response]:
        async with httpx.AsyncClient(base_url=server.url, timeout=120) as client:
            busy = asyncio.create_task(_post(client, SENTENCE * 4))
            await _wait_for(lambda: server.metric("tts_requests_in_flight") == 1)
            late = await _post(client, "这个请求会在队列里等太久。")
            return await busy, late

    busy, late = asyncio.run(run())
    assert busy.status_code == 200
    assert late.status_code == 504
    error = late.json()["error"]
    assert (error["type"], error["code"]) == ("timeout_error", "queue_timeout")
    assert "queue" in error["message"]
    assert server.metric("tts_rejected_total", 'reason="queue_timeout"') == 1
