"""Static checks of the images: no Docker engine runs here, so every claim a build would test is read
from the Dockerfiles themselves."""

from __future__ import annotations

import ast
import importlib.metadata
import json
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import tomllib
import yaml

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


def pip_install_is_pinned(part: str) -> bool:
    """Pinned means: constrained by files that exist, hash-checked, or resolved from no index at all."""
    words = shlex.split(part)
    constraints = [words[i + 1] for i, w in enumerate(words[:-1]) if w == "-c"]
    if constraints:
        return all((ROOT / c).is_file() for c in constraints)
    return "--require-hashes" in words or "--no-index" in words


@pytest.mark.parametrize(
    ("part", "pinned"),
    [
        ("pip install -c constraints.txt '.[server]'", True),
        ("pip install -c constraints.txt -c constraints-emotivoice.txt -r requirements-emotivoice.txt", True),
        ("pip install -c constraints-missing.txt torch", False),
        ("pip install --require-hashes --no-deps -r requirements-sambert.lock", True),
        ("pip install --no-deps --no-index -r requirements-sambert-modelscope.txt", True),
        ("pip install torch", False),
        ("pip install modelscope[audio-tts]", False),
    ],
)
def test_pinned_install_rule(part: str, pinned: bool) -> None:
    assert pip_install_is_pinned(part) is pinned


def test_every_pip_install_is_constrained(dockerfile) -> None:
    _, _, stages = dockerfile
    installs = [rest for s in stages for kw, rest in s.instructions if kw == "RUN" and "pip install" in rest]
    assert installs
    for command in installs:
        for part in command.split("&&"):
            if "pip install" in part:
                assert pip_install_is_pinned(part), part


def test_server_image_has_a_readiness_healthcheck() -> None:
    _, stages = parse(ROOT / "Dockerfile.tts")
    checks = [rest for kw, rest in stages[-1].instructions if kw == "HEALTHCHECK"]
    assert checks and "/readyz" in checks[0]


TTS_TARGETS = ("embedded", "embedded-cuda", "sambert", "emotivoice")


def tts_stages() -> tuple[dict[str, str], dict[str, Stage]]:
    args, stages = parse(ROOT / "Dockerfile.tts")
    return args, {s.name: s for s in stages}


@pytest.mark.parametrize("target", TTS_TARGETS)
def test_every_server_target_is_a_non_root_server_with_a_healthcheck(target: str) -> None:
    _, stages = tts_stages()
    stage = stages[target]
    kinds = dict(stage.instructions)
    uid = [rest for kw, rest in stage.instructions if kw == "USER"][-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0
    assert json.loads(kinds["ENTRYPOINT"]) == ["tts-server"]
    assert "/readyz" in kinds["HEALTHCHECK"]
    # Runtime stages start from a pinned Python image, not from a build stage with compilers in it.
    assert stage.base.startswith("${PYTHON")


def test_docs_name_only_targets_that_exist() -> None:
    _, stages = tts_stages()
    for doc in ("README.md", "Dockerfile.tts"):
        named = set(re.findall(r"--target[= ]([\w.-]+)\s+-", (ROOT / doc).read_text()))
        assert named, doc
        assert named <= set(stages), f"{doc} names missing targets {named - set(stages)}"
    # The header lists targets indented by three spaces: "#   name (default, ...): what it is".
    listed = re.findall(r"^#   ([\w-]+)(?: \(default[^)]*\))?:", (ROOT / "Dockerfile.tts").read_text(), re.M)
    assert set(TTS_TARGETS) <= set(listed) <= set(stages)


def test_copy_from_names_an_earlier_stage(dockerfile) -> None:
    _, _, stage_list = dockerfile
    stages = {s.name: s for s in stage_list}
    seen: set[str] = set()
    for name, stage in stages.items():
        for keyword, rest in stage.instructions:
            source = re.search(r"--from=(\S+)", rest)
            if keyword == "COPY" and source:
                assert source.group(1) in seen, f"{name}: COPY --from={source.group(1)}"
        if stage.base in stages:
            assert stage.base in seen
        seen.add(name)


def test_sambert_runs_on_python_310_and_emotivoice_on_a_pinned_commit() -> None:
    args, stages = tts_stages()
    for name in ("sambert-build", "sambert"):
        assert re.match(r"python:3\.10\.\d+-", resolve(stages[name].base, args))
    assert re.fullmatch(r"[0-9a-f]{40}", args["EMOTIVOICE_COMMIT"])
    adds = [rest for kw, rest in stages["emotivoice-build"].instructions if kw == "ADD"]
    repo = "https://github.com/netease-youdao/EmotiVoice.git"
    assert adds == [f"--keep-git-dir=false {repo}#${{EMOTIVOICE_COMMIT}} /opt/emotivoice"]


def test_sambert_image_build_check_runs_and_fails_without_kantts() -> None:
    # The image's own build-time check, run here: this interpreter lacks kantts/ttsfrd, so it must fail.
    _, stages = tts_stages()
    runs = " && ".join(rest for kw, rest in stages["sambert-build"].instructions if kw == "RUN")
    check = next(p for p in runs.split("&&") if "missing_requirements" in p)
    words = shlex.split(check)
    assert words[0] == "/opt/venv/bin/python" and words[1] == "-c"
    command = [sys.executable, "-c", words[2]]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 1, result.stderr
    assert "kantts" in result.stdout and "ttsfrd" in result.stdout
    assert "model directory" not in result.stdout  # the image has no model yet: that check is for pods


# ---- Dockerfile.operator ------------------------------------------------------------------------------


def operator_stages() -> tuple[dict[str, str], dict[str, Stage]]:
    args, stages = parse(ROOT / "Dockerfile.operator")
    return args, {s.name: s for s in stages}


def test_operator_image_is_slim_and_multi_stage() -> None:
    args, stages = operator_stages()
    final = stages["operator"]
    # The runtime starts from a pinned slim Python image, not from the build stage, and takes only the venv.
    assert re.fullmatch(r"python:3\.\d+\.\d+-slim-\w+", resolve(final.base, args)), final.base
    assert [rest for kw, rest in final.instructions if kw == "COPY"] == ["--from=build /opt/venv /opt/venv"]
    runs = " ".join(rest for kw, rest in final.instructions if kw == "RUN")
    assert "pip" not in runs and "apt" not in runs, runs
    # The build stage sees the operator's sources and nothing of the server (no model code, no torch).
    sources = [s for kw, rest in stages["build"].instructions if kw == "COPY" for s in shlex.split(rest)[:-1]]
    assert "operator/tts_operator" in sources and not [s for s in sources if "tts_server" in s]


def test_operator_image_runs_as_the_charts_user() -> None:
    _, stages = operator_stages()
    final = stages["operator"]
    [user] = [rest for kw, rest in final.instructions if kw == "USER"]
    uid, gid = user.split(":")
    deployment = (ROOT / "charts" / "voicefleet" / "templates" / "deployment.yaml").read_text()
    assert re.search(rf"^\s+runAsUser: {uid}$", deployment, re.M), "the chart runs another uid"
    assert re.search(rf"^\s+runAsGroup: {gid}$", deployment, re.M), "the chart runs another gid"
    runs = " ".join(rest for kw, rest in final.instructions if kw == "RUN")
    assert f"--uid {uid}" in runs and f"--gid {gid}" in runs
    # Nothing writes into the (read-only) root filesystem: no bytecode caches.
    env = " ".join(rest for kw, rest in final.instructions if kw == "ENV")
    assert "PYTHONDONTWRITEBYTECODE=1" in env


def test_operator_entrypoint_healthcheck_and_ports_match_the_cli_and_chart() -> None:
    from tts_operator.cli import _parser

    _, stages = operator_stages()
    kinds = dict(stages["operator"].instructions)
    assert json.loads(kinds["ENTRYPOINT"]) == ["tts-operator"]
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["tts-operator"] == "tts_operator.cli:main"
    metrics_port = _parser().get_default("metrics_port")
    assert f"http://127.0.0.1:{metrics_port}/metrics" in kinds["HEALTHCHECK"]
    values = yaml.safe_load((ROOT / "charts" / "voicefleet" / "values.yaml").read_text())["operator"]
    assert set(kinds["EXPOSE"].split()) == {str(values["metricsPort"]), str(values["healthPort"])}
    assert values["metricsPort"] == metrics_port


def test_operator_image_build_check_runs_here() -> None:
    # The image's own build-time checks, run with this interpreter: the package imports with its handlers
    # registered and the console script parses its arguments.
    _, stages = operator_stages()
    runs = " && ".join(rest for kw, rest in stages["build"].instructions if kw == "RUN")
    parts = [shlex.split(part) for part in runs.split("&&")]
    venv = ("/opt/venv/bin/python", "/opt/venv/bin/tts-operator")
    commands = {words[0]: words for words in parts if words[0] in venv}
    assert set(commands) == set(venv), runs
    python, cli = commands["/opt/venv/bin/python"], commands["/opt/venv/bin/tts-operator"]
    for command in ([sys.executable, *python[1:]], [sys.executable, "-m", "tts_operator.cli", *cli[1:]]):
        result = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=ROOT)
        assert result.returncode == 0, (command, result.stderr[-2000:])


def _operator_imports() -> set[str]:
    modules: set[str] = set()
    for path in (ROOT / "operator" / "tts_operator").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules.add(node.module.split(".")[0])
    return modules - set(sys.stdlib_module_names) - {"__future__", "tts_operator"}


def _dist(requirement: str) -> str:
    return re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def test_operator_extra_installs_what_the_operator_imports() -> None:
    # Slim means: the image's `.[operator]` install brings what the code imports, and little else.
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {_dist(r) for r in project["optional-dependencies"]["operator"] + project["dependencies"]}
    providers = importlib.metadata.packages_distributions()
    imported = {_dist(providers[module][0]) for module in _operator_imports()}
    assert "tts-server" not in imported and "tts_server" not in _operator_imports()
    assert imported <= declared, f"imported but not in the operator extra: {imported - declared}"
    # kopf logs in through the kubernetes client when it is installed (kubeconfig exec plugins).
    assert declared - imported == {"kubernetes"}, declared - imported


def _closure(requirements: list[str]) -> set[str]:
    """Distributions `pip install` pulls for `requirements` (no extras), from the installed metadata."""
    from packaging.requirements import Requirement

    seen: set[str] = set()
    todo = [Requirement(r) for r in requirements]
    while todo:
        req = todo.pop()
        name = _dist(req.name)
        if name in seen or (req.marker is not None and not req.marker.evaluate({"extra": ""})):
            continue
        seen.add(name)
        todo.extend(Requirement(r) for r in importlib.metadata.requires(req.name) or [])
    return seen


def test_operator_install_pulls_no_heavy_libraries() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    closure = _closure(project["optional-dependencies"]["operator"] + project["dependencies"])
    assert {"kopf", "aiohttp", "pydantic"} <= closure
    heavy = {"torch", "numpy", "scipy", "pandas", "matplotlib", "fastapi", "uvicorn", "av", "ai-edge-litert"}
    assert not closure & heavy, closure & heavy
