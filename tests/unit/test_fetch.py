"""tts-server fetch-model against a real HTTP server on 127.0.0.1 serving a local directory."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tts_server.fetch import (
    STAMP,
    FetchError,
    FileSpec,
    Manifest,
    fetch_model,
    file_url,
    parse_manifest,
    safe_relative,
)

FILES = {
    "configuration.json": b'{"framework": "pytorch"}',
    "voices/voices.json": b'{"voices": ["zhitian_emo"]}',
    "voices/zhitian_emo/am/ckpt/checkpoint_0.pth": bytes(range(256)) * 4000,
    "name with space.txt": b"spaces are quoted",
}


class Hub:
    def __init__(self, root: Path, port: int) -> None:
        self.root = root
        self.base_url = f"http://127.0.0.1:{port}/repo"
        self.requests: list[str] = []

    def manifest(self, with_digests: bool = True) -> Manifest:
        files = tuple(
            FileSpec(path, hashlib.sha256(data).hexdigest() if with_digests else None, len(data))
            for path, data in FILES.items()
        )
        return Manifest("test-model", self.base_url, files)


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    root = tmp_path / "served"
    for path, data in FILES.items():
        (root / "repo" / path).parent.mkdir(parents=True, exist_ok=True)
        (root / "repo" / path).write_bytes(data)
    served: list[str] = []

    class Handler(SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            served.append(self.path)

    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    hub = Hub(root / "repo", server.server_address[1])
    hub.requests = served
    try:
        yield hub
    finally:
        server.shutdown()
        server.server_close()


def tree(directory: Path) -> dict[str, bytes]:
    return {p.relative_to(directory).as_posix(): p.read_bytes() for p in directory.rglob("*") if p.is_file()}


@pytest.mark.parametrize("with_digests", [True, False])
def test_fetch_then_no_op(hub: Hub, tmp_path: Path, with_digests: bool) -> None:
    dest = tmp_path / "model"
    report = fetch_model(hub.manifest(with_digests), dest)
    assert sorted(report.downloaded) == sorted(FILES) and report.kept == ()
    stamp = json.loads((dest / STAMP).read_text())
    assert stamp == {path: hashlib.sha256(data).hexdigest() for path, data in FILES.items()}
    assert tree(dest) == {**FILES, STAMP: (dest / STAMP).read_bytes()}
    asked = len(hub.requests)
    again = fetch_model(hub.manifest(with_digests), dest)
    assert again.downloaded == () and sorted(again.kept) == sorted(FILES)
    assert len(hub.requests) == asked  # a complete directory costs no request


def test_damaged_file_is_fetched_again(hub: Hub, tmp_path: Path) -> None:
    dest = tmp_path / "model"
    fetch_model(hub.manifest(with_digests=False), dest)
    target = dest / "voices/zhitian_emo/am/ckpt/checkpoint_0.pth"
    damaged = bytearray(target.read_bytes())
    damaged[100] ^= 0xFF  # same size: only the recorded digest can notice
    target.write_bytes(bytes(damaged))
    report = fetch_model(hub.manifest(with_digests=False), dest)
    assert report.downloaded == ("voices/zhitian_emo/am/ckpt/checkpoint_0.pth",)
    assert target.read_bytes() == FILES["voices/zhitian_emo/am/ckpt/checkpoint_0.pth"]


def test_digest_mismatch_leaves_nothing(hub: Hub, tmp_path: Path) -> None:
    manifest = hub.manifest()
    wrong = Manifest(manifest.name, manifest.base_url, (FileSpec("configuration.json", "0" * 64),))
    dest = tmp_path / "model"
    with pytest.raises(FetchError, match="sha256"):
        fetch_model(wrong, dest)
    assert tree(dest) == {}


def test_missing_remote_file_is_an_error(hub: Hub, tmp_path: Path) -> None:
    manifest = Manifest("m", hub.base_url, (FileSpec("not-there.bin"),))
    with pytest.raises(FetchError, match="404"):
        fetch_model(manifest, tmp_path / "model")
    assert not (tmp_path / "model" / STAMP).exists()


@pytest.mark.parametrize("path", ["../escape", "/etc/passwd", "a/../../b", "", "a\\b"])
def test_unsafe_paths_are_refused(path: str) -> None:
    with pytest.raises(FetchError, match="unsafe"):
        safe_relative(path)


@pytest.mark.parametrize(
    ("base", "path", "url"),
    [
        ("http://h/r/", "a b/c.json", "http://h/r/a%20b/c.json"),
        ("http://h/r", "c.json", "http://h/r/c.json"),
        (
            "http://h/api?Revision=v1&FilePath={path}",
            "voices/v.json",
            "http://h/api?Revision=v1&FilePath=voices/v.json",
        ),
    ],
)
def test_file_url(base: str, path: str, url: str) -> None:
    assert file_url(base, path) == url


@pytest.mark.parametrize(
    "text",
    ['{"base_url": "x", "files": []}', '{"base_url": "x", "files": [{"path": "a"}, {"path": "a"}]}'],
)
def test_bad_manifests(text: str) -> None:
    with pytest.raises(FetchError):
        parse_manifest(text)


def test_cli_fetches_from_a_served_manifest(hub: Hub, tmp_path: Path) -> None:
    manifest = hub.manifest()
    body = {
        "name": manifest.name,
        "base_url": manifest.base_url,
        "files": [{"path": f.path, "sha256": f.sha256, "size": f.size} for f in manifest.files],
    }
    (hub.root / "manifest.json").write_text(json.dumps(body))
    dest = tmp_path / "model"
    command = [
        sys.executable,
        "-m",
        "tts_server.cli",
        "fetch-model",
        "--manifest",
        f"{hub.base_url}/manifest.json",
    ]
    first = subprocess.run([*command, "--dest", str(dest)], capture_output=True, text=True, timeout=60)
    assert first.returncode == 0, first.stderr
    assert f"test-model: {len(FILES)} downloaded, 0 already complete" in first.stdout
    second = subprocess.run([*command, "--dest", str(dest)], capture_output=True, text=True, timeout=60)
    assert f"test-model: 0 downloaded, {len(FILES)} already complete" in second.stdout
    bad = subprocess.run(
        [*command, "--dest", str(tmp_path / "other"), "--base-url", hub.base_url + "/missing"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 1 and "404" in bad.stderr
