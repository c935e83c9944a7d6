"""README.md's promises that need no running process: its two set-up commands exist and CI runs the test
one, its diagram is a real SVG, its links resolve, and its TTSService manifests are valid."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest
import yaml
from tts_operator import API_VERSION, KIND
from tts_operator.spec import TTSServiceSpec

from tests.readme import README, ROOT, blocks, commands, quickstart

SVG = "{http://www.w3.org/2000/svg}"


def _make_targets() -> set[str]:
    return set(re.findall(r"^([a-z][a-z-]*):", (ROOT / "Makefile").read_text(), re.MULTILINE))


def test_the_first_block_is_the_two_set_up_commands():
    first = blocks()[0]
    assert first.quickstart == "setup"
    assert [c.split(" #")[0].strip() for c in commands(first.body)] == ["make serve", "make test"]
    assert {"serve", "test", "cluster-up", "cluster-down"} <= _make_targets()


def test_ci_runs_the_readme_test_command():
    ci = [c for c in commands((ROOT / ".ci" / "run").read_text()) if not c.startswith(("set ", "cd "))]
    assert ci[-1] == "make test"
    assert "make test" in quickstart("setup")


def test_readme_mentions_every_make_target_a_human_uses():
    text = README.read_text()
    for target in ("make serve", "make test", "make cluster-up", "make cluster-down"):
        assert f"`{target}`" in text or f"\n{target}" in text, target


def test_diagram_is_an_svg_image_the_readme_shows():
    text = README.read_text()
    assert re.search(r"!\[[^\]]+\]\(docs/architecture\.svg\)", text), "README must show docs/architecture.svg"
    root = ET.parse(ROOT / "docs" / "architecture.svg").getroot()
    assert root.tag == f"{SVG}svg"
    assert root.get("viewBox") and root.find(f"{SVG}title") is not None
    words = " ".join(t.text or "" for t in root.iter(f"{SVG}text"))
    for part in ("TTSService", "tts-operator", "KEDA", "HPA", "Prometheus", "dcgm-exporter", "GPU tier",
                 "CPU tier", "ScaledObject", "ConfigMap", "PodDisruptionBudget", "Service"):  # fmt: skip
        assert part in words, f"the diagram does not show {part}"


def test_relative_links_resolve():
    text = README.read_text()
    targets = re.findall(r"\]\((?!https?://|#)([^)#\s]+)", text)
    assert targets
    missing = [t for t in targets if not (ROOT / t).exists()]
    assert missing == []
    for path in set(re.findall(r"`?(examples/[a-z0-9-]+\.yaml)", text)):
        assert (ROOT / path).exists(), path


def test_anchor_links_name_headings():
    text = README.read_text()
    anchors = {
        re.sub(r"[^a-z0-9 _-]", "", h.lower()).replace(" ", "-") for h in re.findall(r"^#+ (.+)$", text, re.M)
    }
    for link in re.findall(r"\]\(#([^)]+)\)", text):
        assert link in anchors, link


def _manifests() -> list[dict]:
    docs = [yaml.safe_load(b.body) for b in blocks() if b.info == "yaml"]
    return [d for d in docs if isinstance(d, dict) and d.get("kind") == KIND]


def test_readme_has_the_three_cookbook_recipes():
    names = [m["metadata"]["name"] for m in _manifests()]
    assert names == ["support-voice", "lesson-reader", "npc-voices"]


@pytest.mark.parametrize("manifest", _manifests(), ids=lambda m: m["metadata"]["name"])
def test_readme_manifests_are_valid_ttsservices(manifest):
    assert manifest["apiVersion"] == API_VERSION
    TTSServiceSpec.model_validate(manifest["spec"])
