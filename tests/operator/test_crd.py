"""The committed CRD must be exactly what the models generate, and the examples must be valid."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError
from tts_operator.crd import CRD_FILE, generate_crd, render_yaml
from tts_operator.spec import TTSServiceSpec

ROOT = Path(__file__).resolve().parents[2]


def test_committed_crd_matches_models():
    committed = (ROOT / CRD_FILE).read_text()
    assert yaml.safe_load(committed) == generate_crd(), (
        f"{CRD_FILE} is stale: run `python -m tts_operator.crd > {CRD_FILE}`"
    )
    assert committed == render_yaml()


def _walk(schema, path="spec"):
    yield path, schema
    for name, sub in (schema.get("properties") or {}).items():
        yield from _walk(sub, f"{path}.{name}")
    if isinstance(schema.get("items"), dict):
        yield from _walk(schema["items"], f"{path}[]")


def test_schema_is_structural_and_described():
    spec = generate_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    for path, node in _walk(spec):
        assert ("$ref" not in node and "anyOf" not in node) or node.get("x-kubernetes-int-or-string"), path
        assert "type" in node or node.get("x-kubernetes-int-or-string"), path
        if path.count(".") <= 3 and not path.endswith("[]"):
            assert node.get("description"), f"{path} has no description for kubectl explain"


def test_defaults_match_their_types():
    spec = generate_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    python_types = {"object": dict, "array": list, "integer": int, "string": str, "boolean": bool}
    defaults = [(path, node) for path, node in _walk(spec) if "default" in node]
    assert len(defaults) > 20
    for path, node in defaults:
        expected = (int, str) if node.get("x-kubernetes-int-or-string") else python_types[node["type"]]
        assert isinstance(node["default"], expected), f"{path}: default {node['default']!r} is not {expected}"
        assert not isinstance(node["default"], bool) or node.get("type") == "boolean", path


@pytest.mark.parametrize("example", sorted((ROOT / "examples").glob("ttsservice-*.yaml")))
def test_examples_are_valid(example):
    body = yaml.safe_load(example.read_text())
    assert body["apiVersion"] == "voicefleet.io/v1alpha1" and body["kind"] == "TTSService"
    TTSServiceSpec.model_validate(body["spec"])


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"tiers": {}}, "at least one tier"),
        ({"tiers": {"gpu": {"minReplicas": 3, "maxReplicas": 2}}}, "minReplicas must be less than or equal"),
        ({"model": {"source": "local"}}, "model.path is required"),
        ({"model": {"source": "huggingface"}}, "model.id is required"),
        ({"autoscaling": {"schedules": [{"name": "w", "start": "0 8 * * *", "end": "0 9 * * *"}]}},
         "at least one of minReplicas, maxReplicas, warmFloor"),
        ({"autoscaling": {"schedules": [{"name": "w", "start": "0 8 * * *", "end": "0 9 * * *",
                                         "warmFloor": 3, "maxReplicas": 2}]}},
         "warmFloor must be less than or equal to its maxReplicas"),
        ({"autoscaling": {"schedules": [{"name": "w", "start": "0 8 * * *", "end": "0 9 * * *",
                                         "minReplicas": 3, "maxReplicas": 2}]}},
         "minReplicas must be less than or equal to its maxReplicas"),
        ({"autoscaling": {"enabled": True, "schedules": [{"name": "w", "start": "0 8 * * *",
                                                          "end": "0 9 * * *", "warmFloor": 5}]}},
         "minReplicas and warmFloor <= that tier's maxReplicas"),
    ],
)  # fmt: skip
def test_models_enforce_the_cel_rules_too(spec, message):
    body = {"engine": "baker", "model": {"source": "builtin", "id": "x"}, "tiers": {"gpu": {}}, **spec}
    with pytest.raises(ValidationError, match=message):
        TTSServiceSpec.model_validate(body)
