"""Static checks of the images: no Docker engine runs here, so every claim a build would test is read
from the Dockerfiles themselves."""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILES = {"Dockerfile.tts": "embedded", "Dockerfile.operator": "operator"}


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)


def parse(path: Path) -> tuple[dict[str, str], list[Stage]]:
    text = re.sub(r"\\\n", " ", path.read_text())
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "ARG" and not stages:
            name, _, default = rest.partition("=")
            args[name] = default
        elif keyword == "FROM":
            match = re.match(r"(\S+)(?:\s+AS\s+(\S+))?", rest, re.IGNORECASE)
            assert match, line
            stages.append(Stage(match.group(2) or f"stage{len(stages)}", match.group(1)))
        else:
            stages[-1].instructions.append((keyword, rest))
    return args, stages


@pytest.fixture(params=sorted(DOCKERFILES))
def dockerfile(request: pytest.FixtureRequest) -> tuple[str, dict[str, str], list[Stage]]:
    args, stages = parse(ROOT / request.param)
    return request.param, args, stages


def resolve(base: str, args: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], base)


def test_default_target_is_the_last_stage(dockerfile) -> None:
    name, _, stages = dockerfile
    assert stages[-1].name == DOCKERFILES[name]


def test_base_images_are_pinned(dockerfile) -> None:
    _, args, stages = dockerfile
    names = {s.name for s in stages}
    for stage in stages:
        image = resolve(stage.base, args)
        if image in names:
            continue
        _, _, tag = image.partition(":")
        assert tag and tag != "latest", f"{image} is not pinned"
        assert re.search(r"\d+\.\d+\.\d+", tag) or "@sha256:" in image, f"{image}: pin a full version"


def test_copy_sources_exist(dockerfile) -> None:
    _, _, stages = dockerfile
    for stage in stages:
        for keyword, rest in stage.instructions:
            if keyword != "COPY" or "--from=" in rest:
                continue
            parts = [p for p in shlex.split(rest) if not p.startswith("--")]
            for source in parts[:-1]:
                assert (ROOT / source).exists(), f"COPY source {source} does not exist"


def test_runtime_stage_is_non_root_with_a_real_entrypoint(dockerfile) -> None:
    _, _, stages = dockerfile
    final = stages[-1]
    users = [rest for keyword, rest in final.instructions if keyword == "USER"]
    assert users, "final stage sets no USER"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0, "run as a numeric non-root uid (runAsNonRoot can verify it)"
    entry = [rest for keyword, rest in final.instructions if keyword == "ENTRYPOINT"]
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert entry and json.loads(entry[-1])[0] in scripts  # exec (JSON array) form, naming a console script


def test_every_pip_install_is_constrained(dockerfile) -> None:
    _, _, stages = dockerfile
    installs = [rest for s in stages for kw, rest in s.instructions if kw == "RUN" and "pip install" in rest]
    assert installs
    for command in installs:
        for part in command.split("&&"):
            if "pip install" in part:
                assert "-c constraints.txt" in part, part


def test_server_image_has_a_readiness_healthcheck() -> None:
    _, stages = parse(ROOT / "Dockerfile.tts")
    checks = [rest for kw, rest in stages[-1].instructions if kw == "HEALTHCHECK"]
    assert checks and "/readyz" in checks[0]
