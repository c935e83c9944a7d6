"""kantts and ttsfrd must never resolve from the default index: PyPI's kantts 0.1.0 and ttsfrd 0.1.0 are
placeholder packages, and modelscope's audio extras require kantts unpinned."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[2]
TRAPS = ("kantts", "ttsfrd")
FIND_LINKS = "https://modelscope.oss-cn-beijing.aliyuncs.com/releases/repo.html"
SKIP_DIRS = {".git", ".venv", "node_modules", ".cluster", ".pytest_cache", ".ruff_cache"}


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(line: str) -> tuple[str, str]:
    """(normalized name, extras) of a requirement line; ("", "") for options and comments."""
    line = line.split(" #")[0].strip()
    if not line or line.startswith(("#", "-")):
        return "", ""
    match = re.match(r"([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?", line)
    return (normalize(match.group(1)), match.group(2) or "") if match else ("", "")


def trap_problems(text: str) -> list[str]:
    """Why a requirements/constraints file could let pip pick a placeholder; empty when it cannot."""
    text = re.sub(r"\\\n", " ", text)
    lines = [line.strip() for line in text.splitlines()]
    options = " ".join(line for line in lines if line.startswith("-"))
    problems: list[str] = []
    for line in lines:
        name, extras = requirement_name(line)
        if name == "modelscope" and "audio" in extras:
            problems.append(f"{line!r}: modelscope's audio extras require kantts unpinned")
        if name not in TRAPS:
            continue
        if not re.search(rf"{name}\s*==\s*\d", line, re.IGNORECASE):
            problems.append(f"{line!r}: not pinned with ==")
        if "--no-index" not in options.split():
            problems.append(f"{line!r}: the file does not say --no-index, so the default index is searched")
        if not re.search(rf"(--find-links|-f)[ =]{re.escape(FIND_LINKS)}", options):
            problems.append(f"{line!r}: no --find-links to ModelScope's page")
    return problems


SAFE = f"--no-index\n--find-links {FIND_LINKS}\nkantts==1.0.1\nttsfrd==0.2.1\n"


@pytest.mark.parametrize(
    ("text", "count"),
    [
        (SAFE, 0),
        (f"--no-index -f {FIND_LINKS}\nttsfrd==0.2.1\n", 0),
        ("numpy==2.4.6\nscipy==1.17.1\n", 0),
        ("kantts\n", 3),
        ("kantts==1.0.1\n", 2),
        (f"--find-links {FIND_LINKS}\nttsfrd==0.2.1\n", 1),  # find-links alone: PyPI is still searched
        ("--no-index\nttsfrd==0.2.1\n", 1),
        (f"--no-index\n--find-links {FIND_LINKS}\nkantts>=1.0\n", 1),
        ("modelscope[audio]==1.9.5\n", 1),
        ("ModelScope[audio-tts]\n", 1),
        ("modelscope==1.40.2\n", 0),
        ("Kantts==0.1.0 \\\n    --hash=sha256:00\n", 2),
        ("# kantts is absent on purpose\n", 0),
    ],
)
def test_trap_rule(text: str, count: int) -> None:
    assert len(trap_problems(text)) == count, trap_problems(text)


def project_files() -> list[Path]:
    files = []
    for path in ROOT.rglob("*"):
        if SKIP_DIRS & set(path.relative_to(ROOT).parts) or not path.is_file():
            continue
        if re.fullmatch(r"(requirements|constraints)[\w.-]*\.(txt|lock|in)", path.name):
            files.append(path)
    return sorted(files)


def test_the_project_has_requirement_files_to_check() -> None:
    names = {p.name for p in project_files()}
    assert {"constraints.txt", "requirements-sambert.lock", "requirements-sambert-modelscope.txt"} <= names


@pytest.mark.parametrize("path", project_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_requirements_file_can_resolve_a_placeholder(path: Path) -> None:
    assert trap_problems(path.read_text(encoding="utf-8")) == []


def test_only_the_find_links_file_names_kantts_or_ttsfrd() -> None:
    naming = {
        p.name
        for p in project_files()
        if any(requirement_name(line)[0] in TRAPS for line in p.read_text(encoding="utf-8").splitlines())
    }
    assert naming == {"requirements-sambert-modelscope.txt"}


def test_pyproject_never_names_them() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = list(project.get("dependencies", []))
    for extra in project.get("optional-dependencies", {}).values():
        requirements += extra
    for requirement in requirements:
        name, extras = requirement_name(requirement)
        assert name not in TRAPS, requirement
        assert not (name == "modelscope" and "audio" in extras), requirement


def test_dockerfile_installs_them_only_without_an_index() -> None:
    for dockerfile in ROOT.glob("Dockerfile*"):
        text = re.sub(r"\\\n", " ", dockerfile.read_text())
        for command in re.findall(r"pip install[^&\n]*", text):
            if any(trap in command for trap in (*TRAPS, "sambert-modelscope")):
                assert "--no-index" in command.split(), command
