"""`tts-server fetch-model`: download a model's files into a directory, verified, for an init container.

The files come from a hub model (`--source huggingface|modelscope --id ID`, listed by tts_server.hub)
or from a manifest. A manifest (JSON, a local path or an http(s) URL) names the files:

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
import secrets
import shutil
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

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
        with open_url(location) as response:
            return parse_manifest(response.read().decode("utf-8"))
    return parse_manifest(Path(location).read_text(encoding="utf-8"))


def _verified(path: Path, spec: FileSpec, recorded: str | None) -> bool:
    """True when an existing file matches the manifest (or, lacking a digest there, our stamp)."""
    if not path.is_file() or (spec.size is not None and path.stat().st_size != spec.size):
        return False
    expected = spec.sha256 or recorded
    return expected is not None and sha256_of(path) == expected.lower()


class _AuthStaysOnHost(urllib.request.HTTPRedirectHandler):
    """Hubs redirect large files to a CDN with a signed URL: the token must not follow to another host."""

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: Any,
        code: int,
        msg: str,
        headers: Any,
        newurl: str,
    ) -> urllib.request.Request | None:
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        moved = urllib.parse.urlparse(newurl).netloc != urllib.parse.urlparse(req.full_url).netloc
        if new is not None and moved:
            new.headers = {k: v for k, v in new.headers.items() if k.lower() != "authorization"}
        return new


_OPENER = urllib.request.build_opener(_AuthStaysOnHost)


def open_url(url: str, headers: Mapping[str, str] | None = None, timeout: float = 60) -> Any:
    """An http(s)/file response; headers (a token among them) go only to the URL's own host."""
    request = urllib.request.Request(_checked_url(url), headers=dict(headers or {}))
    return _OPENER.open(request, timeout=timeout)


def http_failure(what: str, exc: OSError) -> FetchError:
    """A message that says what to do: 401/403 is a token problem, 404 a wrong id, revision or path."""
    if isinstance(exc, urllib.error.HTTPError):
        if exc.code in (401, 403):
            hint = "access denied: the model is private or gated, or the token is missing or wrong"
        elif exc.code == 404:
            hint = "not found: check the model id, revision and endpoint"
        else:
            hint = f"the server answered {exc.reason}"
        # Hugging Face says why in a header (e.g. "Repository not found" behind a 401).
        detail = exc.headers.get("X-Error-Message") if exc.headers else None
        return FetchError(f"{what}: HTTP {exc.code}, {hint}" + (f" ({detail})" if detail else ""))
    reason = getattr(exc, "reason", None) or exc
    return FetchError(f"{what}: network error ({reason})")


def _download(url: str, target: Path, spec: FileSpec, headers: Mapping[str, str] | None = None) -> str:
    # A unique name: replicas sharing a cache volume may fetch the same file at the same time.
    partial = target.with_name(f"{target.name}.{secrets.token_hex(4)}.part")
    digest = hashlib.sha256()
    try:
        with open_url(url, headers) as response, partial.open("wb") as out:
            while chunk := response.read(CHUNK):
                digest.update(chunk)
                out.write(chunk)
        size = partial.stat().st_size
        if spec.size is not None and size != spec.size:
            raise FetchError(f"{spec.path}: got {size} bytes, expected {spec.size}")
        if spec.sha256 and digest.hexdigest() != spec.sha256.lower():
            raise FetchError(
                f"{spec.path}: sha256 {digest.hexdigest()} does not match the expected {spec.sha256}"
            )
        os.replace(partial, target)
    except OSError as exc:
        raise http_failure(f"{spec.path}: download from {url} failed", exc) from exc
    finally:
        partial.unlink(missing_ok=True)
    return digest.hexdigest()


def fetch_model(manifest: Manifest, dest: Path, headers: Mapping[str, str] | None = None) -> FetchReport:
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
        digests[spec.path] = _download(file_url(manifest.base_url, spec.path), target, spec, headers)
        downloaded.append(spec.path)
    # Written last: a run cut short leaves no stamp for the files it did not finish.
    partial_stamp = stamp_path.with_name(f"{STAMP}.{secrets.token_hex(4)}.part")
    partial_stamp.write_text(json.dumps(digests, indent=1, sort_keys=True))
    os.replace(partial_stamp, stamp_path)
    return FetchReport(tuple(downloaded), tuple(kept))


def main(argv: list[str]) -> int:
    from tts_server import hub

    parser = argparse.ArgumentParser(prog="tts-server fetch-model", description=__doc__.splitlines()[0])
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--manifest", help="manifest JSON: a path or an http(s) URL")
    what.add_argument("--source", choices=hub.SOURCES, help="a hub to list the model's files from")
    parser.add_argument("--id", dest="model_id", help="hub model id (owner/name)")
    parser.add_argument("--revision", help="hub branch, tag or commit (default: the hub's default branch)")
    parser.add_argument(
        "--endpoint", help="hub URL, e.g. a mirror (default: HF_ENDPOINT or MODELSCOPE_DOMAIN, else public)"
    )
    parser.add_argument("--dest", required=True, type=Path, help="directory to fill (created if absent)")
    parser.add_argument("--base-url", help="override the manifest's base_url (e.g. a mirror)")
    args = parser.parse_args(argv)
    if args.source and not args.model_id:
        parser.error("--source needs --id")
    if args.manifest and (args.model_id or args.revision or args.endpoint):
        parser.error("--id, --revision and --endpoint go with --source, not --manifest")
    logging.basicConfig(level="INFO", format="%(levelname)s %(message)s", stream=sys.stderr)
    headers: dict[str, str] = {}
    try:
        if args.source:
            env = os.environ
            model = hub.HubModel.from_env(args.source, args.model_id, args.revision, args.endpoint, env)
            headers = hub.auth_headers(args.source, os.environ)
            manifest = hub.resolve_manifest(model, headers)
        else:
            manifest = read_manifest(args.manifest)
        if args.base_url:
            manifest = Manifest(manifest.name, args.base_url, manifest.files)
        report = fetch_model(manifest, args.dest, headers)
    except (FetchError, OSError, ValueError, KeyError) as exc:
        print(f"tts-server fetch-model: {exc}", file=sys.stderr)
        return 1
    free = shutil.disk_usage(args.dest).free // (1 << 20)
    print(
        f"{manifest.name}: {len(report.downloaded)} downloaded, {len(report.kept)} already complete "
        f"in {args.dest} ({free} MiB free)"
    )
    return 0
