"""Hub answers to manifests, endpoints and tokens from the official clients' variables (pure functions)."""

from __future__ import annotations

import pytest

from tts_server.fetch import FetchError, FileSpec
from tts_server.hub import (
    HubModel,
    auth_headers,
    cache_dir_name,
    default_endpoint,
    huggingface_manifest,
    listing_url,
    modelscope_manifest,
)

HF = HubModel("huggingface", "org/voice", "main", "https://huggingface.co")
MS = HubModel("modelscope", "damo/tts", "v1.0.2", "https://www.modelscope.cn")


@pytest.mark.parametrize(
    ("source", "env", "endpoint"),
    [
        ("huggingface", {}, "https://huggingface.co"),
        ("huggingface", {"HF_ENDPOINT": "https://hf-mirror.com"}, "https://hf-mirror.com"),
        ("modelscope", {}, "https://www.modelscope.cn"),
        ("modelscope", {"MODELSCOPE_DOMAIN": "modelscope.internal"}, "https://modelscope.internal"),
        ("modelscope", {"MODELSCOPE_DOMAIN": "http://10.0.0.5:8080"}, "http://10.0.0.5:8080"),
    ],
)
def test_default_endpoint(source, env: dict[str, str], endpoint: str) -> None:
    assert default_endpoint(source, env) == endpoint


def test_tokens_are_bearer_headers_from_the_clients_variables() -> None:
    assert auth_headers("huggingface", {"HF_TOKEN": "hf_x\n"}) == {"Authorization": "Bearer hf_x"}
    assert auth_headers("huggingface", {"HUGGING_FACE_HUB_TOKEN": "old"}) == {"Authorization": "Bearer old"}
    assert auth_headers("modelscope", {"MODELSCOPE_API_TOKEN": "ms"}) == {"Authorization": "Bearer ms"}
    assert auth_headers("modelscope", {"HF_TOKEN": "hf_x"}) == {}


def test_from_env_defaults_and_checks() -> None:
    model = HubModel.from_env("modelscope", "damo/tts", None, "https://m.internal/", {})
    assert (model.revision, model.endpoint) == ("master", "https://m.internal")
    assert HubModel.from_env("huggingface", "org/voice", None, None, {}).revision == "main"
    for bad in ("../x", "a/b/c", "a/..", "", "a b"):
        with pytest.raises(FetchError, match="invalid model id"):
            HubModel.from_env("huggingface", bad, None, None, {})
    with pytest.raises(FetchError, match="http"):
        HubModel.from_env("huggingface", "a/b", None, "file:///etc", {})


def test_listing_urls_quote_the_revision() -> None:
    assert (
        listing_url(HubModel("huggingface", "org/voice", "refs/pr/1", "https://h"))
        == "https://h/api/models/org/voice/revision/refs%2Fpr%2F1?blobs=true"
    )
    assert listing_url(MS) == (
        "https://www.modelscope.cn/api/v1/models/damo/tts/repo/files?Revision=v1.0.2&Recursive=true"
    )


def test_huggingface_listing_pins_the_commit() -> None:
    info = {
        "sha": "abc123",
        "siblings": [
            {"rfilename": "config.json", "size": 12, "blobId": "x"},
            {"rfilename": "w/model.bin", "size": 99, "lfs": {"sha256": "f" * 64, "size": 99}},
        ],
    }
    manifest = huggingface_manifest(HF, info)
    assert manifest.base_url == "https://huggingface.co/org/voice/resolve/abc123/"
    assert manifest.files == (FileSpec("config.json", None, 12), FileSpec("w/model.bin", "f" * 64, 99))
    assert manifest.name == "huggingface:org/voice@main"


def test_modelscope_listing_skips_directories_and_reports_refusals() -> None:
    body = {
        "Code": 200,
        "Success": True,
        "Data": {
            "Files": [
                {"Path": "voices", "Type": "tree", "Size": 0, "Sha256": ""},
                {"Path": "voices/a b.json", "Type": "blob", "Size": "7", "Sha256": "A" * 64},
                {"Path": "README.md", "Type": "blob", "Size": 3, "Sha256": ""},
            ]
        },
    }
    manifest = modelscope_manifest(MS, body)
    assert manifest.files == (FileSpec("voices/a b.json", "A" * 64, 7), FileSpec("README.md", None, 3))
    assert manifest.base_url.endswith("/api/v1/models/damo/tts/repo?Revision=v1.0.2&FilePath={path}")
    with pytest.raises(FetchError, match="model not exists"):
        modelscope_manifest(MS, {"Code": 10010205001, "Message": "model not exists", "Success": False})
    with pytest.raises(FetchError, match="has no files"):
        modelscope_manifest(MS, {"Code": 200, "Data": {"Files": []}})
    with pytest.raises(FetchError, match="unsafe"):
        modelscope_manifest(MS, {"Code": 200, "Data": {"Files": [{"Path": "../x", "Type": "blob"}]}})


def test_cache_dir_name() -> None:
    assert cache_dir_name("damo/speech_sambert-hifigan_tts_zh-cn_16k") == (
        "damo--speech_sambert-hifigan_tts_zh-cn_16k"
    )
    assert cache_dir_name("single") == "single"
