"""docs/ttsservice-reference.md is what the CRD schema generates, and it covers every field and rule."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from tts_operator.crd import generate_crd
from tts_operator.reference import REFERENCE_FILE, REGENERATE, Rule, Section, anchor, render_markdown, walk

ROOT = Path(__file__).resolve().parents[2]


def _schema() -> dict:
    return generate_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def _paths(node: dict, path: str) -> Iterator[str]:
    """Every field path under `node`, walked independently of the generator."""
    for name, sub in node.get("properties", {}).items():
        yield f"{path}.{name}"
        yield from _paths(sub, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        yield from _paths(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from _paths(node["additionalProperties"], f"{path}.{{key}}")


def _rules(node: dict) -> Iterator[str]:
    for rule in node.get("x-kubernetes-validations", []):
        yield rule["message"]
    for sub in node.get("properties", {}).values():
        yield from _rules(sub)
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            yield from _rules(node[key])


def test_committed_reference_is_current():
    committed = (ROOT / REFERENCE_FILE).read_text()
    assert committed == render_markdown(), f"{REFERENCE_FILE} is stale: run `{REGENERATE}`"


def test_every_field_and_rule_is_documented():
    text = render_markdown()
    rows = set(re.findall(r"^\| `([^`]+)` \|", text, re.MULTILINE))
    schema = _schema()
    expected = {p for top in ("spec", "status") for p in _paths(schema["properties"][top], top)}
    assert expected - rows == set()
    assert {"spec.autoscaling.schedules[].start", "status.tiers.{key}.readyReplicas"} <= rows
    for message in _rules(schema):
        assert message in text, message


def test_contents_links_resolve_to_headings():
    text = render_markdown()
    headings = {anchor(h) for h in re.findall(r"^## (.+)$", text, re.MULTILINE)}
    links = re.findall(r"^- \[`[^`]+`\]\(#([^)]+)\)$", text, re.MULTILINE)
    assert links and set(links) <= headings


def test_walk_reads_a_new_schema_without_a_field_list():
    """A field the generator has never seen: nested object, list of objects, map, CEL on each level."""
    schema = {
        "type": "object",
        "properties": {
            "windows": {
                "type": "array",
                "maxItems": 3,
                "items": {
                    "type": "object",
                    "required": ["name"],
                    "properties": {"name": {"type": "string", "pattern": "^[a-z]+$"}},
                    "x-kubernetes-validations": [{"rule": "size(self.name) > 1", "message": "too short"}],
                },
            },
            "limits": {
                "type": "object",
                "additionalProperties": {"type": "integer", "minimum": 0},
                "x-kubernetes-validations": [{"rule": "size(self) < 4", "message": "too many"}],
            },
            "mode": {"type": "string", "enum": ["a", "b"], "default": "a", "description": "The\n mode."},
        },
    }
    parts = list(walk(schema, "spec"))
    sections = {p.path: p for p in parts if isinstance(p, Section)}
    rules = {(r.path, r.message) for r in parts if isinstance(r, Rule)}
    assert [f.path for f in sections["spec"].fields] == ["spec.windows", "spec.limits", "spec.mode"]
    windows, limits, mode = sections["spec"].fields
    assert (windows.type, windows.constraints) == ("[]object", ["items ≤ 3"])
    assert (limits.type, limits.constraints) == ("map[string]integer", ["each value: ≥ 0"])
    assert (mode.type, mode.default, mode.constraints, mode.description) == (
        "enum", '"a"', ["one of `a`, `b`"], "The mode."
    )  # fmt: skip
    [name] = sections["spec.windows[]"].fields
    assert (name.required, name.constraints) == (True, ["pattern `^[a-z]+$`"])
    assert rules == {("spec.windows[]", "too short"), ("spec.limits", "too many")}


def test_pipes_in_rules_do_not_break_the_table():
    text = render_markdown()
    table = text.split("## Validation rules (CEL)", 1)[1]
    for row in (line for line in table.splitlines() if line.startswith("| `")):
        cells = re.split(r"(?<!\\)\|", row)[1:-1]
        assert len(cells) == 3, row
