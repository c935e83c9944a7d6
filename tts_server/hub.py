"""A Hugging Face or ModelScope model as a fetch manifest: the hub's file list, with sizes and digests.

Only the two hubs' public HTTP APIs are used (no client library in the image):

- Hugging Face: ``GET {endpoint}/api/models/{id}/revision/{rev}?blobs=true`` lists ``siblings`` with
  ``rfilename``, ``size`` and, for LFS files, ``lfs.sha256``; the answer's ``sha`` (the commit) pins every
  download, ``{endpoint}/{id}/resolve/{commit}/{path}``, so a branch moving mid-fetch cannot mix commits.
- ModelScope: ``GET {endpoint}/api/v1/models/{id}/repo/files?Revision={rev}&Recursive=true`` lists
  ``Data.Files`` with ``Path``, ``Type`` (blob or tree), ``Size`` and ``Sha256``; a file is
  ``{endpoint}/api/v1/models/{id}/repo?Revision={rev}&FilePath={path}``.

Endpoints and tokens come from the environment variables the official clients read (HF_ENDPOINT,
MODELSCOPE_DOMAIN; HF_TOKEN, MODELSCOPE_API_TOKEN). A token only ever travels in a header.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from tts_server.fetch import FetchError, FileSpec, Manifest, http_failure, open_url, safe_relative

HubSource = Literal["huggingface", "modelscope"]
SOURCES: tuple[HubSource, ...] = ("huggingface", "modelscope")
HF_DEFAULT_ENDPOINT = "https://huggingface.co"
MODELSCOPE_DEFAULT_DOMAIN = "www.modelscope.cn"
DEFAULT_REVISION: dict[HubSource, str] = {"huggingface": "main", "modelscope": "master"}
TOKEN_ENV: dict[HubSource, tuple[str, ...]] = {
    # HUGGING_FACE_HUB_TOKEN is the older name huggingface_hub still reads.
    "huggingface": ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"),
    "modelscope": ("MODELSCOPE_API_TOKEN",),
}
# owner/name (or a bare name); each part starts with a letter or digit, so "." and ".." cannot occur.
MODEL_ID = re.compile(r"^[A-Za-z0-9][-._A-Za-z0-9]*(/[A-Za-z0-9][-._A-Za-z0-9]*)?$")


def cache_dir_name(model_id: str) -> str:
    """The directory a hub model is fetched into under the cache, and loaded from by the server."""
    return model_id.replace("/", "--")


def default_endpoint(source: HubSource, env: Mapping[str, str]) -> str:
    if source == "huggingface":
        return env.get("HF_ENDPOINT") or HF_DEFAULT_ENDPOINT
    # The ModelScope client reads a bare domain here and prefixes https://; a full URL also works.
    domain = env.get("MODELSCOPE_DOMAIN") or MODELSCOPE_DEFAULT_DOMAIN
    return domain if domain.startswith(("http://", "https://")) else "https://" + domain


def auth_headers(source: HubSource, env: Mapping[str, str]) -> dict[str, str]:
    token = next((env[name] for name in TOKEN_ENV[source] if env.get(name)), None)
    return {"Authorization": f"Bearer {token.strip()}"} if token else {}


@dataclass(frozen=True)
class HubModel:
    source: HubSource
    id: str
    revision: str
    endpoint: str

    @classmethod
    def from_env(
        cls,
        source: HubSource,
        model_id: str,
        revision: str | None,
        endpoint: str | None,
        env: Mapping[str, str],
    ) -> HubModel:
        if not MODEL_ID.match(model_id):
            raise FetchError(f"invalid model id {model_id!r}: expected owner/name")
        endpoint = (endpoint or default_endpoint(source, env)).rstrip("/")
        if urllib.parse.urlparse(endpoint).scheme not in ("http", "https"):
            raise FetchError(f"endpoint must be an http(s) URL, got {endpoint!r}")
        return cls(source, model_id, revision or DEFAULT_REVISION[source], endpoint)


def _quote(value: str) -> str:
    return urllib.parse.quote(value, safe="")


def listing_url(model: HubModel) -> str:
    if model.source == "huggingface":
        return f"{model.endpoint}/api/models/{model.id}/revision/{_quote(model.revision)}?blobs=true"
    query = urllib.parse.urlencode({"Revision": model.revision, "Recursive": "true"})
    return f"{model.endpoint}/api/v1/models/{model.id}/repo/files?{query}"


def huggingface_manifest(model: HubModel, info: Mapping[str, Any]) -> Manifest:
    commit = str(info.get("sha") or model.revision)
    files = []
    for sibling in info.get("siblings") or []:
        lfs = sibling.get("lfs") or {}
        size = lfs.get("size", sibling.get("size"))
        files.append(FileSpec(safe_relative(sibling["rfilename"]), lfs.get("sha256"), _size(size)))
    base_url = f"{model.endpoint}/{model.id}/resolve/{_quote(commit)}/"
    return _manifest(model, base_url, files)


def modelscope_manifest(model: HubModel, body: Mapping[str, Any]) -> Manifest:
    # ModelScope reports some failures as HTTP 200 with Success false and its own Code.
    if body.get("Success") is False or body.get("Code") not in (None, 200):
        raise FetchError(
            f"modelscope model {model.id} at revision {model.revision}: "
            f"{body.get('Message') or 'the hub refused the listing'} (code {body.get('Code')})"
        )
    entries = (body.get("Data") or {}).get("Files") or []
    files = [
        FileSpec(safe_relative(entry["Path"]), entry.get("Sha256") or None, _size(entry.get("Size")))
        for entry in entries
        if entry.get("Type", "blob") == "blob"
    ]
    query = urllib.parse.urlencode({"Revision": model.revision})
    base_url = f"{model.endpoint}/api/v1/models/{model.id}/repo?{query}&FilePath={{path}}"
    return _manifest(model, base_url, files)


def _size(value: object) -> int | None:
    return int(value) if isinstance(value, int | str) and str(value).isdigit() else None


def _manifest(model: HubModel, base_url: str, files: list[FileSpec]) -> Manifest:
    if not files:
        raise FetchError(f"{model.source} model {model.id} at revision {model.revision} has no files")
    return Manifest(f"{model.source}:{model.id}@{model.revision}", base_url, tuple(files))


def resolve_manifest(model: HubModel, headers: Mapping[str, str] | None = None) -> Manifest:
    """Asks the hub for the model's files; errors name the model, never the token."""
    url = listing_url(model)
    what = f"listing {model.source} model {model.id} (revision {model.revision}) at {model.endpoint}"
    try:
        with open_url(url, headers) as response:
            body = json.loads(response.read().decode("utf-8"))
    except OSError as exc:
        raise http_failure(what, exc) from exc
    except ValueError as exc:
        raise FetchError(f"{what}: the answer is not JSON ({exc})") from exc
    if not isinstance(body, dict):
        raise FetchError(f"{what}: unexpected answer")
    if model.source == "huggingface":
        return huggingface_manifest(model, body)
    return modelscope_manifest(model, body)
