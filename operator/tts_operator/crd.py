"""Generate the TTSService CustomResourceDefinition from the pydantic models in ``spec.py``.

Kubernetes wants a *structural* schema: no ``$ref``, no ``anyOf`` choosing between types, no ``null``.
This module inlines references, turns ``X | None`` into an optional ``X``, and turns ``int | str``
quantities into ``x-kubernetes-int-or-string``. Run ``python -m tts_operator.crd > crds/...yaml``.
"""

from __future__ import annotations

import json
import sys
from types import UnionType
from typing import Any, Union, get_args, get_origin

import yaml
from pydantic import BaseModel

from tts_operator import GROUP, KIND, PLURAL, VERSION
from tts_operator.spec import MAX_NAME_LENGTH, QUANTITY_PATTERN, TTSServiceSpec, TTSServiceStatus

SHORT_NAMES = ["tts"]
CRD_FILE = f"crds/{PLURAL}.{GROUP}.yaml"
# Keywords a structural schema may carry; pydantic's titles and the like are dropped.
_KEPT = {
    "type", "description", "default", "enum", "minimum", "maximum", "minLength", "maxLength", "pattern",
    "minItems", "maxItems", "minProperties", "maxProperties", "items", "properties", "required",
    "additionalProperties", "format",
}  # fmt: skip

PRINTER_COLUMNS = [
    {"name": "Engine", "type": "string", "jsonPath": ".spec.engine"},
    {"name": "Ready", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].status'},
    {
        "name": "GPU",
        "type": "integer",
        "jsonPath": ".status.tiers.gpu.readyReplicas",
        "description": "Ready GPU replicas",
    },
    {
        "name": "CPU",
        "type": "integer",
        "jsonPath": ".status.tiers.cpu.readyReplicas",
        "description": "Ready CPU replicas",
    },
    {"name": "Queue", "type": "integer", "jsonPath": ".status.queueDepth", "description": "Queued requests"},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]


def _resolve(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in node:
        target = defs[node["$ref"].rsplit("/", 1)[-1]]
        # Keys on the referring field (its description, default) win over the model's own.
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def _structural(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    node = _resolve(node, defs)
    if "anyOf" in node:
        branches = [_resolve(b, defs) for b in node["anyOf"] if b.get("type") != "null"]
        rest = {k: v for k, v in node.items() if k != "anyOf"}
        if rest.get("default", 0) is None:
            del rest["default"]  # "unset" needs no default in Kubernetes
        if sorted(b.get("type", "") for b in branches) == ["integer", "string"]:
            return {
                **{k: v for k, v in rest.items() if k in _KEPT},
                "anyOf": [{"type": "integer"}, {"type": "string"}],
                "pattern": QUANTITY_PATTERN,
                "x-kubernetes-int-or-string": True,
            }
        if len(branches) != 1:
            raise ValueError(f"cannot express a choice between {branches} in a structural schema")
        node = {**branches[0], **rest}
        return _structural(node, defs)
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "properties":
            out[key] = {name: _structural(sub, defs) for name, sub in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            out[key] = _structural(value, defs)
        elif key == "additionalProperties":
            # `false` (extra="forbid") is not structural; the API server prunes or rejects unknown fields
            continue
        elif key == "const":
            out["enum"] = [value]
        elif key in _KEPT or key.startswith("x-kubernetes-"):
            out[key] = value
    if "enum" in out and "type" not in out:
        out["type"] = "string"
    if out.get("type") == "object" and isinstance(out.get("default"), dict) and "properties" in out:
        # An empty default lets the API server fill nested defaults field by field.
        out["default"] = {}
    return out


def model_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The structural OpenAPI v3 schema of a model, camelCase field names."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    return _structural(raw, raw.get("$defs", {}))


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    """The model inside ``Model`` or ``Model | None`` (not inside lists or maps), if any."""
    union = get_origin(annotation) in (Union, UnionType)
    for candidate in (annotation, *(get_args(annotation) if union else ())):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _object_defaults(schema: dict[str, Any], model: type[BaseModel]) -> None:
    """Object-valued fields built by default_factory get ``default: {}`` so nested defaults apply."""
    for name, field in model.model_fields.items():
        nested = _nested_model(field.annotation)
        if nested is None:
            continue
        prop = schema["properties"][field.alias or name]
        if field.default_factory is not None:
            prop["default"] = {}
        _object_defaults(prop, nested)


def generate_crd() -> dict[str, Any]:
    spec = model_schema(TTSServiceSpec)
    _object_defaults(spec, TTSServiceSpec)
    status = model_schema(TTSServiceStatus)
    root = {
        "type": "object",
        "description": "A text-to-speech service: GPU and/or CPU replicas of the Voicefleet TTS server.",
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": spec,
            "status": status,
        },
        "x-kubernetes-validations": [
            {
                "rule": f"size(self.metadata.name) <= {MAX_NAME_LENGTH}",
                "message": f"metadata.name must be at most {MAX_NAME_LENGTH} characters (children add -gpu/-cpu)",  # noqa: E501
            }
        ],
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{PLURAL}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": KIND.lower(),
                "shortNames": SHORT_NAMES,
                "categories": ["voicefleet"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": PRINTER_COLUMNS,
                    "schema": {"openAPIV3Schema": root},
                }
            ],
        },
    }


def render_yaml() -> str:
    header = "# Generated from operator/tts_operator/spec.py by `python -m tts_operator.crd`; do not edit.\n"
    # A JSON round trip unshares sub-schemas used twice (scaleUp/scaleDown), so YAML needs no &anchors.
    return header + yaml.safe_dump(json.loads(json.dumps(generate_crd())), sort_keys=False, width=110)


if __name__ == "__main__":
    sys.stdout.write(render_yaml())
