"""Generate the TTSService field reference (Markdown) from the CRD schema that ``crd.py`` builds.

The schema is walked, not a list of fields, so a field added to ``spec.py`` appears here as soon as the
reference is regenerated: ``python -m tts_operator.reference > docs/ttsservice-reference.md``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from tts_operator import API_VERSION, KIND
from tts_operator.crd import SHORT_NAMES, generate_crd

REFERENCE_FILE = "docs/ttsservice-reference.md"
REGENERATE = f"python -m tts_operator.reference > {REFERENCE_FILE}"

# Schema keywords shown as constraints, in this order, with how each reads.
_CONSTRAINTS = (
    ("minimum", "≥ {}"),
    ("maximum", "≤ {}"),
    ("minLength", "length ≥ {}"),
    ("maxLength", "length ≤ {}"),
    ("minItems", "items ≥ {}"),
    ("maxItems", "items ≤ {}"),
    ("minProperties", "keys ≥ {}"),
    ("maxProperties", "keys ≤ {}"),
    ("pattern", "pattern `{}`"),
)


@dataclass
class Field:
    path: str
    type: str
    required: bool
    default: str
    constraints: list[str]
    description: str


@dataclass
class Section:
    """One object in the schema and the fields directly inside it."""

    path: str
    description: str
    fields: list[Field] = field(default_factory=list)


@dataclass
class Rule:
    path: str
    rule: str
    message: str


def type_name(node: dict[str, Any]) -> str:
    """How a schema node's type reads in the reference: `integer`, `[]string`, `map[string]string`, ..."""
    if node.get("x-kubernetes-int-or-string"):
        return "quantity (integer or string, e.g. 500m, 4Gi)"
    kind = node.get("type", "")
    if kind == "array":
        return "[]" + type_name(node.get("items", {}))
    if kind == "object" and isinstance(node.get("additionalProperties"), dict):
        return "map[string]" + type_name(node["additionalProperties"])
    if "enum" in node:
        return "enum"
    return str(kind)


def constraints(node: dict[str, Any]) -> list[str]:
    # A quantity's pattern is Kubernetes' own grammar; its type name already says "quantity".
    shown = [
        (key, text)
        for key, text in _CONSTRAINTS
        if key != "pattern" or not node.get("x-kubernetes-int-or-string")
    ]
    found = [template.format(node[key]) for key, template in shown if key in node]
    if "enum" in node:
        found.insert(0, "one of " + ", ".join(f"`{value}`" for value in node["enum"]))
    item = node.get("items")
    if isinstance(item, dict) and item.get("type") != "object":
        found += [f"each item: {text}" for text in constraints(item)]
    value = node.get("additionalProperties")
    if isinstance(value, dict) and value.get("type") != "object":
        found += [f"each value: {text}" for text in constraints(value)]
    if node.get("x-kubernetes-list-type") == "map":
        keys = ", ".join(node.get("x-kubernetes-list-map-keys", []))
        found.append(f"items unique by {keys}")
    return found


def _object_inside(node: dict[str, Any], path: str) -> tuple[dict[str, Any], str] | None:
    """The object schema a field holds (itself, its items or its map values) and that object's path."""
    if "properties" in node:
        return node, path
    items = node.get("items")
    if isinstance(items, dict) and "properties" in items:
        return items, f"{path}[]"
    values = node.get("additionalProperties")
    if isinstance(values, dict) and "properties" in values:
        return values, f"{path}.{{key}}"
    return None


def _one_line(text: str) -> str:
    return " ".join(text.split())


def walk(node: dict[str, Any], path: str) -> Iterator[Section | Rule]:
    """Sections (objects with their fields) and CEL rules, depth first, in the schema's field order."""
    for validation in node.get("x-kubernetes-validations", []):
        yield Rule(path, validation["rule"], validation["message"])
    section = Section(path, _one_line(node.get("description", "")))
    required = set(node.get("required", []))
    nested: list[tuple[dict[str, Any], str]] = []
    rules: list[Rule] = []
    for name, sub in node.get("properties", {}).items():
        sub_path = f"{path}.{name}"
        default = json.dumps(sub["default"], ensure_ascii=False) if "default" in sub else ""
        section.fields.append(
            Field(sub_path, type_name(sub), name in required, default, constraints(sub),
                  _one_line(sub.get("description", "")))
        )  # fmt: skip
        inner = _object_inside(sub, sub_path)
        if inner is not None:
            nested.append(inner)
        if inner is None or inner[0] is not sub:
            # Rules on the object itself come with its own section; rules on lists, maps and scalars here.
            rules += [
                Rule(sub_path, v["rule"], v["message"]) for v in sub.get("x-kubernetes-validations", [])
            ]
    yield section
    yield from rules
    for inner_node, inner_path in nested:
        yield from walk(inner_node, inner_path)


def anchor(heading: str) -> str:
    """The id GitHub gives a heading: lower case, punctuation other than '-' and '_' dropped."""
    return "".join(ch for ch in heading.lower().replace(" ", "-") if ch.isalnum() or ch in "-_")


def _cell(text: str) -> str:
    # A pipe ends a table cell even inside a code span unless escaped.
    return text.replace("|", "\\|")


def _field_row(item: Field) -> str:
    constraint = "; ".join((["required"] if item.required else []) + item.constraints)
    default = f"`{item.default}`" if item.default else ""
    cells = (f"`{item.path}`", item.type, default, constraint, item.description)
    return "| " + " | ".join(_cell(cell) for cell in cells) + " |"


def render_markdown() -> str:
    version = generate_crd()["spec"]["versions"][0]
    root = version["schema"]["openAPIV3Schema"]
    parts = list(walk({**root, "properties": {}}, "")) + [
        part for top in ("spec", "status") for part in walk(root["properties"][top], top)
    ]
    sections = [part for part in parts if isinstance(part, Section) and part.fields]
    rules = [part for part in parts if isinstance(part, Rule)]
    lines = [
        "# TTSService reference",
        "",
        "<!-- Generated from operator/tts_operator/spec.py by `python -m tts_operator.reference`; "
        "do not edit. -->",
        "",
        f"`apiVersion: {API_VERSION}`, `kind: {KIND}` (short name `{', '.join(SHORT_NAMES)}`), namespaced.",
        "Defaults are applied by the API server; constraints and the rules below are enforced by it at apply",
        "time, so a manifest that breaks one is refused with the message shown. `kubectl explain tts.spec` "
        "prints the same descriptions.",
        "",
        "## Contents",
        "",
    ]
    lines += [f"- [`{section.path}`](#{anchor(section.path)})" for section in sections]
    for section in sections:
        lines += ["", f"## {section.path}", ""]
        if section.description:
            lines += [section.description, ""]
        lines += ["| field | type | default | constraints | description |", "|---|---|---|---|---|"]
        lines += [_field_row(item) for item in section.fields]
    lines += ["", "## Validation rules (CEL)", "", "| on | rule | message when broken |", "|---|---|---|"]
    for rule in rules:
        where = f"`{rule.path or 'the object'}`"
        lines.append("| " + " | ".join(_cell(c) for c in (where, f"`{rule.rule}`", rule.message)) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render_markdown())
