"""Every bad input gets a 4xx with the JSON error envelope; none gets a 5xx."""

from __future__ import annotations

import httpx
import pytest

OK = {"model": "tts-1", "input": "你好。", "voice": "alloy"}

CASES = [
    # (id, method, path, json or raw bytes, status, code)
    ("empty text", "POST", "/tts", {"text": ""}, 400, "empty_input"),
    ("blank text", "POST", "/tts", {"text": "   \n "}, 400, "empty_input"),
    ("missing text", "POST", "/tts", {}, 400, "empty_input"),
    ("text too long", "POST", "/tts", {"text": "好" * 4097}, 400, "input_too_long"),
    ("text not a string", "POST", "/tts", {"text": 123}, 400, "invalid_parameter"),
    ("unknown voice", "POST", "/tts", {"text": "你好", "voice": "nobody"}, 400, "voice_not_found"),
    ("unknown emotion", "POST", "/tts", {"text": "你好", "emotion": "bored"}, 400, "emotion_not_supported"),
    ("unknown format", "POST", "/tts", {"text": "你好", "format": "ogg"}, 400, "unsupported_format"),
    ("speed too low", "POST", "/tts", {"text": "你好", "speed": 0.1}, 400, "invalid_parameter"),
    ("speed too high", "POST", "/tts", {"text": "你好", "speed": 5}, 400, "invalid_parameter"),
    ("pitch out of range", "POST", "/tts", {"text": "你好", "pitch": 3}, 400, "invalid_parameter"),
    ("sample rate too low", "POST", "/tts", {"text": "你好", "sample_rate": 1000}, 400, "invalid_parameter"),
    ("unknown field", "POST", "/tts", {"text": "你好", "volume": 3}, 400, "unknown_parameter"),
    ("only emoji", "POST", "/tts", {"text": "😀😀"}, 400, "nothing_to_speak"),
    ("only punctuation", "POST", "/tts", {"text": "。。。！"}, 400, "nothing_to_speak"),
    ("invalid json", "POST", "/tts", b'{"text": "x"', 400, "invalid_json"),
    ("json array body", "POST", "/tts", [1, 2], 400, "invalid_parameter"),
    ("oversized body", "POST", "/tts", {"text": "好" * 40000}, 413, "request_too_large"),
    ("openai unknown model", "POST", "/v1/audio/speech", OK | {"model": "tts-9"}, 400, "model_not_found"),
    ("openai input too long", "POST", "/v1/audio/speech", OK | {"input": "好" * 4097}, 400, "input_too_long"),
    ("openai empty input", "POST", "/v1/audio/speech", OK | {"input": ""}, 400, "empty_input"),
    (
        "openai bad format",
        "POST",
        "/v1/audio/speech",
        OK | {"response_format": "ogg"},
        400,
        "unsupported_format",
    ),
    ("openai speed", "POST", "/v1/audio/speech", OK | {"speed": 0.2}, 400, "invalid_parameter"),
    (
        "openai stream format",
        "POST",
        "/v1/audio/speech",
        OK | {"stream_format": "ws"},
        400,
        "invalid_parameter",
    ),
    ("openai unknown voice", "POST", "/v1/audio/speech", OK | {"voice": "zzz"}, 400, "voice_not_found"),
    (
        "openai voice object",
        "POST",
        "/v1/audio/speech",
        OK | {"voice": {"id": "zzz"}},
        400,
        "voice_not_found",
    ),
    (
        "openai missing voice",
        "POST",
        "/v1/audio/speech",
        {"model": "tts-1", "input": "你好"},
        400,
        "invalid_parameter",
    ),
    ("wrong method", "GET", "/tts", None, 405, "method_not_allowed"),
    ("unknown path", "GET", "/nope", None, 404, "not_found"),
]


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_input_gets_clear_4xx(
    client: httpx.Client, method: str, path: str, body, status: int, code: str
) -> None:
    if isinstance(body, bytes):
        r = client.request(method, path, content=body, headers={"content-type": "application/json"})
    elif body is None:
        r = client.request(method, path)
    else:
        r = client.request(method, path, json=body)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["code"] == code
    assert error["message"] and error["type"]


def test_server_still_healthy_after_bad_inputs(client: httpx.Client) -> None:
    assert client.post("/tts", json={"text": "你好。"}).status_code == 200


@pytest.fixture(scope="module")
def secured(start_server):
    return start_server("--threads", "2", env={"TTS_API_KEY": "s3cret"})


def test_api_key_required_when_configured(secured) -> None:
    with httpx.Client(base_url=secured.url, timeout=30) as c:
        missing = c.post("/tts", json={"text": "你好"})
        assert missing.status_code == 401
        assert missing.headers["www-authenticate"] == "Bearer"
        assert missing.json()["error"]["code"] == "invalid_api_key"
        wrong = c.post("/tts", json={"text": "你好"}, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        assert c.get("/v1/models").status_code == 401
        ok = c.post("/tts", json={"text": "你好"}, headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200 and ok.content.startswith(b"RIFF")
        for open_path in ("/livez", "/readyz", "/metrics", "/"):
            assert c.get(open_path).status_code == 200, open_path


def test_no_key_configured_means_open(client: httpx.Client) -> None:
    assert (
        client.post("/tts", json={"text": "你好"}, headers={"Authorization": "Bearer anything"}).status_code
        == 200
    )
