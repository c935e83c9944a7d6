"""A server that cannot run its engine exits 2 with one message before it listens (so /readyz never lies)."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--engine", "sambert-hifigan", "--model-dir", "{tmp}/model"], ["kantts", "{tmp}/model"]),
        (["--engine", "sambert-hifigan"], ["TTS_MODEL_DIR"]),
        (
            [
                "--engine",
                "emotivoice",
                "--emotivoice-checkout",
                "{tmp}/ev",
                "--emotivoice-weights",
                "{tmp}/w",
            ],
            ["torch", "{tmp}/ev", "g_00140000"],
        ),
        (["--engine", "no-such-engine"], ["unknown engine 'no-such-engine'"]),
    ],
)
def test_refuses_to_start(tmp_path: Path, flags: list[str], expected: list[str]) -> None:
    port = free_port()
    args = [f.format(tmp=tmp_path) for f in flags]
    result = subprocess.run(
        [sys.executable, "-m", "tts_server.cli", "--port", str(port), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"tts-server: cannot start engine {args[1]!r}: ")
    for word in expected:
        assert word.format(tmp=tmp_path) in lines[0]
    with socket.socket() as sock:  # nothing ever listened
        assert sock.connect_ex(("127.0.0.1", port)) != 0
