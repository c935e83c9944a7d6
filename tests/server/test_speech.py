"""Speech out of a real server process: audio, formats, streaming, catalogue."""

from __future__ import annotations

import base64
import json

import httpx
import numpy as np
import pytest
import torch

from tests.audio_decode import decode, wav_fields
from tests.quality import assert_speech, syllables
from tts_server.audio.encode import CONTENT_TYPES, FORMATS

TEXT = "欢迎使用语音合成服务，今天天气很好。"
LONG = "".join(f"这是第{n}句话，我们正在测试流式语音合成。" for n in range(1, 9))


def test_tts_returns_mandarin_speech(client: httpx.Client) -> None:
    r = client.post("/tts", json={"text": TEXT})
    assert r.status_code == 200
    assert r.headers["content-type"] == "audio/wav"
    assert r.headers["x-sample-rate"] == "24000"
    assert r.headers["x-request-id"]
    fields = wav_fields(r.content)
    assert (fields["channels"], fields["rate"], fields["bits"]) == (1, 24000, 16)
    assert fields["data_size"] == len(r.content) - 44
    wave, rate = decode(r.content, "wav")
    assert float(r.headers["x-audio-duration"]) == pytest.approx(wave.size / rate, abs=0.01)
    assert_speech(wave, rate, syllables(TEXT))


def test_numbers_and_acronyms_are_voiced(client: httpx.Client) -> None:
    plain = client.post("/tts", json={"text": "使用率达到。"})
    rich = client.post("/tts", json={"text": "GPU使用率达到95%。"})
    extra = float(rich.headers["x-audio-duration"]) - float(plain.headers["x-audio-duration"])
    # G P U + 百分之九十五: eight more syllables.
    assert extra > 1.2


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("stream", [False, True])
def test_tts_every_format_decodes(client: httpx.Client, fmt: str, stream: bool) -> None:
    r = client.post("/tts", json={"text": TEXT + "再见。", "format": fmt, "stream": stream})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == CONTENT_TYPES[fmt]
    wave, rate = decode(r.content, fmt, pcm_rate=24000)
    assert_speech(wave, rate, syllables(TEXT + "再见。"))


@pytest.mark.parametrize("fmt", ["mp3", "opus", "aac", "flac", "wav", "pcm"])
def test_openai_speech_every_format(client: httpx.Client, fmt: str) -> None:
    r = client.post(
        "/v1/audio/speech", json={"model": "tts-1", "input": TEXT, "voice": "alloy", "response_format": fmt}
    )
    assert r.status_code == 200, r.text
    wave, rate = decode(r.content, fmt, pcm_rate=24000)
    assert_speech(wave, rate, syllables(TEXT))


def test_openai_pcm_is_24khz_s16le_mono(client: httpx.Client) -> None:
    r = client.post(
        "/v1/audio/speech", json={"model": "tts-1", "input": TEXT, "voice": "baker", "response_format": "pcm"}
    )
    assert r.headers["x-sample-rate"] == "24000"
    assert len(r.content) % 2 == 0
    wave, rate = decode(r.content, "pcm", pcm_rate=24000)
    assert_speech(wave, rate, syllables(TEXT))


@pytest.mark.parametrize("rate", [8000, 16000, 44100, 48000])
def test_sample_rate_is_honoured(client: httpx.Client, rate: int) -> None:
    r = client.post("/tts", json={"text": TEXT, "sample_rate": rate})
    assert r.headers["x-sample-rate"] == str(rate)
    wave, decoded_rate = decode(r.content, "wav")
    assert decoded_rate == rate
    assert wave.size / rate == pytest.approx(float(r.headers["x-audio-duration"]), abs=0.01)


def test_first_streamed_chunk_arrives_before_synthesis_ends(server, client: httpx.Client) -> None:
    before = server.metric("tts_audio_seconds_total")
    with client.stream("POST", "/tts", json={"text": LONG, "stream": True}) as r:
        assert r.status_code == 200
        chunks = r.iter_bytes()
        first = next(chunks)
        synthesized_at_first_chunk = server.metric("tts_audio_seconds_total") - before
        rest = b"".join(chunks)
    total = server.metric("tts_audio_seconds_total") - before
    assert first.startswith(b"RIFF")
    assert synthesized_at_first_chunk < 0.5 * total, (synthesized_at_first_chunk, total)
    data = first + rest
    assert data.count(b"RIFF") == 1 and wav_fields(data)["data_size"] == 0xFFFFFFFF
    wave, rate = decode(data, "wav")
    assert wave.size / rate == pytest.approx(total, rel=0.05)


def test_sse_stream_emits_delta_then_done(client: httpx.Client) -> None:
    body = {
        "model": "tts-1",
        "input": TEXT + "再见。",
        "voice": "alloy",
        "response_format": "pcm",
        "stream_format": "sse",
    }
    r = client.post("/v1/audio/speech", json=body)
    assert r.headers["content-type"].startswith("text/event-stream")
    events = [json.loads(line[6:]) for line in r.text.splitlines() if line.startswith("data: ")]
    assert [e["type"] for e in events[:-1]] == ["speech.audio.delta"] * (len(events) - 1)
    assert len(events) >= 3 and events[-1]["type"] == "speech.audio.done"
    assert events[-1]["usage"]["input_tokens"] > 0
    pcm = b"".join(base64.b64decode(e["audio"]) for e in events[:-1])
    wave, rate = decode(pcm, "pcm", pcm_rate=24000)
    assert_speech(wave, rate, syllables(TEXT + "再见。"))


def test_instructions_pick_an_emotion(client: httpx.Client) -> None:
    body = {"model": "tts-1", "input": TEXT, "voice": "alloy", "response_format": "wav"}
    r = client.post("/v1/audio/speech", json=body | {"instructions": "Speak in a cheerful, happy tone"})
    assert r.headers["x-emotion"] == "happy"
    r = client.post("/v1/audio/speech", json=body | {"instructions": "用悲伤的语气"})
    assert r.headers["x-emotion"] == "sad"


def test_explicit_emotion_overrides_instructions(client: httpx.Client) -> None:
    body = {"model": "tts-1", "input": TEXT, "voice": "alloy", "response_format": "wav"}
    r = client.post("/v1/audio/speech", json=body | {"instructions": "cheerful", "emotion": "angry"})
    assert r.status_code == 200 and r.headers["x-emotion"] == "angry"


def test_speed_and_emotion_change_the_audio(client: httpx.Client) -> None:
    base = float(client.post("/tts", json={"text": TEXT}).headers["x-audio-duration"])
    fast = float(client.post("/tts", json={"text": TEXT, "speed": 2.0}).headers["x-audio-duration"])
    sad = float(client.post("/tts", json={"text": TEXT, "emotion": "sad"}).headers["x-audio-duration"])
    assert fast == pytest.approx(base / 2, rel=0.2)
    assert sad > base * 1.1


def test_models_and_voices_describe_the_engine(client: httpx.Client) -> None:
    models = client.get("/v1/models").json()
    assert models["object"] == "list"
    card = models["data"][0]
    assert card["id"] == "baker-zh" and card["engine"] == "baker"
    # The server picks CUDA (fp16) wherever torch sees a GPU, else CPU in fp32.
    device, precision = ("cuda", "fp16") if torch.cuda.is_available() else ("cpu", "fp32")
    assert (card["runtime"], card["device"], card["precision"], card["sample_rate"]) == (
        "torch",
        device,
        precision,
        24000,
    )
    # Padded batching where it pays: on CUDA; on CPU items run one by one (measured faster).
    assert card["capabilities"]["batching"] is torch.cuda.is_available()
    details = card["details"]
    assert details["batch_mode"] == ("padded" if torch.cuda.is_available() else "sequential")
    assert "device_fallback" not in details  # no GPU at all is not a fallback
    assert card["languages"] == ["zh"] and card["voices"] == ["baker"]
    assert {"neutral", "happy", "sad", "angry", "surprised"} <= set(card["emotions"])
    assert card["capabilities"]["streaming"] is True and card["capabilities"]["cloning"] is False
    voices = client.get("/v1/voices").json()["voices"]
    assert voices[0]["id"] == "baker" and "alloy" in voices[0]["aliases"]


def test_probes_docs_and_page(client: httpx.Client) -> None:
    assert client.get("/livez").status_code == 200
    assert client.get("/readyz").json()["status"] == "ready"
    assert "/tts" in client.get("/openapi.json").json()["paths"]
    assert client.get("/docs").status_code == 200
    page = client.get("/")
    assert page.status_code == 200 and "Synthesize" in page.text


def test_request_id_is_echoed(client: httpx.Client) -> None:
    r = client.get("/livez", headers={"X-Request-ID": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"


def test_metrics_expose_the_documented_families(server, client: httpx.Client) -> None:
    client.post("/tts", json={"text": TEXT})
    text = client.get("/metrics").text
    for family in (
        "tts_queue_depth", "tts_requests_in_flight", "tts_requests_total", "tts_request_duration_seconds",
        "tts_time_to_first_audio_seconds", "tts_real_time_factor", "tts_batch_size", "tts_queue_wait_seconds",
        "tts_audio_seconds_total", "tts_rejected_total", "tts_engine_ready", "tts_draining",
        "tts_engine_info",
    ):  # fmt: skip
        assert f"\n{family}" in text, family
    assert 'tts_requests_total{code="200",route="/tts"}' in text
    assert server.metric("tts_engine_ready") == 1
    rtf = server.metric("tts_real_time_factor_sum") / server.metric("tts_real_time_factor_count")
    assert 0 < rtf < 1


def test_long_text_is_split_and_fully_spoken(client: httpx.Client) -> None:
    text = "，".join(["今天我们一起学习语音合成"] * 20) + "。"
    r = client.post("/tts", json={"text": text})
    assert r.status_code == 200
    wave, rate = decode(r.content, "wav")
    assert_speech(wave, rate, syllables(text))
    assert np.isfinite(wave).all()
