"""README's "Try it", as written: `make serve` from the set-up block, then the `curl` lines of the
quickstart block run verbatim by bash; the files they write must hold speech, and the live /metrics
must carry the tts_engine_info labels the README's metric table names."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.audio_decode import decode, wav_fields
from tests.quality import assert_speech, syllables
from tests.readme import ROOT, commands, quickstart, section
from tests.server.conftest import free_port
from tts_server.text.normalize import normalize

# `make serve` may first set the virtual environment up (a no-op once `make test` has built it).
READY_TIMEOUT_S = 300


class MakeServe:
    def __init__(self, command: str, port: int, log: Path) -> None:
        self.port, self.log = port, log
        self.env = {**os.environ, "PORT": str(port)}
        with log.open("wb") as out:
            # A session of its own: make and the tts-server it starts stop together.
            self.proc = subprocess.Popen(["bash", "-c", command], cwd=ROOT, env=self.env, stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip

    def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"make serve exited:\n{self.log.read_text()[-3000:]}"
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"not ready after {READY_TIMEOUT_S} s:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MakeServe]:
    [serve] = [c.split(" #")[0].strip() for c in commands(quickstart("setup")) if c.startswith("make serve")]
    server = MakeServe(serve, free_port(), tmp_path_factory.mktemp("make-serve") / "make-serve.log")
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def _request_texts(block: str) -> dict[str, str]:
    """Output file -> the text its command asks for, read from the block's JSON bodies."""
    texts = {}
    for command in commands(block):
        body = json.loads(re.search(r"-d '(\{.*?\})'", command)[1])
        texts[re.search(r"-o (\S+)$", command)[1]] = body.get("text") or body["input"]
    return texts


def test_readme_curl_commands_return_speech(served: MakeServe, tmp_path: Path) -> None:
    block = quickstart("speak")
    proc = subprocess.run(["bash", "-e", "-c", block], cwd=tmp_path, env=served.env, capture_output=True,
                          text=True, timeout=120, check=False)  # fmt: skip
    assert proc.returncode == 0, f"the README's curl block failed:\n{proc.stdout}\n{proc.stderr}"
    texts = _request_texts(block)
    assert set(texts) == {"hello.wav", "hello.mp3"}
    for name, text in texts.items():
        data = (tmp_path / name).read_bytes()
        fmt = name.rsplit(".", 1)[1]
        if fmt == "wav":
            fields = wav_fields(data)
            assert data[:4] == b"RIFF" and data[8:12] == b"WAVE"
            assert (fields["channels"], fields["bits"]) == (1, 16)
        wave, rate = decode(data, fmt)
        # Digits are read out (2024 -> 二零二四), so count the syllables of the normalized text.
        assert_speech(wave, rate, syllables(normalize(text)))


def test_live_engine_info_has_the_labels_the_readme_names(served: MakeServe) -> None:
    text = httpx.get(f"http://127.0.0.1:{served.port}/metrics", timeout=5).text
    sample = re.search(r"^tts_engine_info\{(.*)\} 1\.0$", text, re.MULTILINE)
    assert sample, text
    live = set(re.findall(r'(\w+)="', sample[1]))
    row = re.search(r"^\| `tts_engine_info\{([a-z_,]+)\}`", section("Metrics"), re.MULTILINE)
    assert row and set(row[1].split(",")) == live
