"""`tts-server fetch-model`: download a model's files into a directory, verified, for an init container.

A manifest (JSON, a local path or an http(s) URL) names the files:

    {"name": "...", "base_url": "https://host/repo/resolve/<revision>/",
     "files": [{"path": "configuration.json", "sha256": "<hex>", "size": 1234}, ...]}

Each file is fetched from base_url + path (or base_url with "{path}" replaced), written to a temporary
name, checked against size and sha256 when the manifest gives them, then renamed into place. A stamp
file records the digests, so a second run over a complete directory downloads nothing.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import shutil
import sys
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

log = logging.getLogger(__name__)
STAMP = ".voicefleet-fetch.json"
CHUNK = 1 << 20


class FetchError(RuntimeError):
    """A file could not be fetched or did not verify; nothing unverified is left under its name."""


@dataclass(frozen=True)
class FileSpec:
    path: str
    sha256: str | None = None
    size: int | None = None


@dataclass(frozen=True)
class Manifest:
    name: str
    base_url: str
    files: tuple[FileSpec, ...]


@dataclass(frozen=True)
class FetchReport:
    downloaded: tuple[str, ...]
    kept: tuple[str, ...]


def safe_relative(path: str) -> str:
    """The manifest path, refused if it could escape the destination directory."""
    pure = PurePosixPath(path)
    if not path or pure.is_absolute() or ".." in pure.parts or "\\" in path:
        raise FetchError(f"unsafe path in manifest: {path!r}")
    return pure.as_posix()


def parse_manifest(text: str) -> Manifest:
    data = json.loads(text)
    files = tuple(
        FileSpec(safe_relative(f["path"]), f.get("sha256"), f.get("size")) for f in data.get("files", [])
    )
    if not files:
        raise FetchError("manifest lists no files")
    if len({f.path for f in files}) != len(files):
        raise FetchError("manifest lists a file twice")
    return Manifest(str(data.get("name", "model")), str(data["base_url"]), files)


def file_url(base_url: str, path: str) -> str:
    quoted = urllib.parse.quote(path)
    if "{path}" in base_url:
        return base_url.replace("{path}", quoted)
    return base_url.rstrip("/") + "/" + quoted


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _checked_url(url: str) -> str:
    if urllib.parse.urlparse(url).scheme not in ("http", "https", "file"):
        raise FetchError(f"unsupported URL scheme: {url}")
    return url


def read_manifest(location: str) -> Manifest:
    if urllib.parse.urlparse(location).scheme in ("http", "https"):
        with urllib.request.urlopen(_checked_url(location), timeout=60) as response:
            return parse_manifest(response.read().decode("utf-8"))
    return parse_manifest(Path(location).read_text(encoding="utf-8"))


def _verified(path: Path, spec: FileSpec, recorded: str | None) -> bool:
    """True when an existing file matches the manifest (or, lacking a digest there, our stamp)."""
    if not path.is_file() or (spec.size is not None and path.stat().st_size != spec.size):
        return False
    expected = spec.sha256 or recorded
    return expected is not None and sha256_of(path) == expected.lower()


def _download(url: str, target: Path, spec: FileSpec) -> str:
    partial = target.with_name(target.name + ".part")
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(_checked_url(url), timeout=60) as response, partial.open("wb") as out:
            while chunk := response.read(CHUNK):
                digest.update(chunk)
                out.write(chunk)
        size = partial.stat().st_size
        if spec.size is not None and size != spec.size:
            raise FetchError(f"{spec.path}: got {size} bytes, expected {spec.size}")
        if spec.sha256 and digest.hexdigest() != spec.sha256.lower():
            raise FetchError(f"{spec.path}: sha256 {digest.hexdigest()} does not match the manifest")
        os.replace(partial, target)
    except OSError as exc:
        raise FetchError(f"{spec.path}: download from {url} failed: {exc}") from exc
    finally:
        partial.unlink(missing_ok=True)
    return digest.hexdigest()


def fetch_model(manifest: Manifest, dest: Path) -> FetchReport:
    dest.mkdir(parents=True, exist_ok=True)
    stamp_path = dest / STAMP
    stamp: dict[str, str] = json.loads(stamp_path.read_text()) if stamp_path.is_file() else {}
    downloaded: list[str] = []
    kept: list[str] = []
    digests: dict[str, str] = {}
    for spec in manifest.files:
        target = dest / spec.path
        if _verified(target, spec, stamp.get(spec.path)):
            kept.append(spec.path)
            digests[spec.path] = spec.sha256 or stamp[spec.path]
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        log.info("fetching %s", spec.path)
        digests[spec.path] = _download(file_url(manifest.base_url, spec.path), target, spec)
        downloaded.append(spec.path)
    # Written last: a run cut short leaves no stamp for the files it did not finish.
    stamp_path.write_text(json.dumps(digests, indent=1, sort_keys=True))
    return FetchReport(tuple(downloaded), tuple(kept))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="tts-server fetch-model", description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", required=True, help="manifest JSON: a path or an http(s) URL")
    parser.add_argument("--dest", required=True, type=Path, help="directory to fill (created if absent)")
    parser.add_argument("--base-url", help="override the manifest's base_url (e.g. a mirror)")
    args = parser.parse_args(argv)
    logging.basicConfig(level="INFO", format="%(levelname)s %(message)s", stream=sys.stderr)
    try:
        manifest = read_manifest(args.manifest)
        if args.base_url:
            manifest = Manifest(manifest.name, args.base_url, manifest.files)
        report = fetch_model(manifest, args.dest)
    except (FetchError, OSError, ValueError, KeyError) as exc:
        print(f"tts-server fetch-model: {exc}", file=sys.stderr)
        return 1
    free = shutil.disk_usage(args.dest).free // (1 << 20)
    print(
        f"{manifest.name}: {len(report.downloaded)} downloaded, {len(report.kept)} already complete "
        f"in {args.dest} ({free} MiB free)"
    )
    return 0
