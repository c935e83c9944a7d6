"""Build the test control plane's binaries from Go modules and cache them outside the repo.

Binaries are cached under ``$VOICEFLEET_CACHE`` (default ``~/.cache/voicefleet``) in one folder per
component and version, so a warm start builds nothing and two versions can live side by side.
GOMODCACHE and GOCACHE live there too, so a fresh clone on the same machine reuses the downloads.

Run ``python -m tests.cluster.build`` to build the control plane (it prints where the binaries are), and
``python -m tests.cluster.build --keda`` to build the KEDA operator and metrics adapter.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

K8S_VERSION = "v1.36.3"
ETCD_VERSION = "v3.6.14"
KWOK_VERSION = "v0.8.0"
HELM_VERSION = "v3.21.4"
KEDA_VERSION = "v2.20.2"
KEDA_MODULE = "github.com/kedacore/keda/v2"

# k8s.io/kubernetes requires its staging modules at v0.0.0 and replaces them with local paths, so a
# consumer module must replace each with its published v0.<minor>.<patch> tag to build it.
K8S_STAGING_MODULES = (
    "api apiextensions-apiserver apimachinery apiserver cli-runtime client-go cloud-provider "
    "cluster-bootstrap code-generator component-base component-helpers controller-manager cri-api "
    "cri-client cri-streaming csi-translation-lib dynamic-resource-allocation endpointslice externaljwt "
    "kms kube-aggregator kube-controller-manager kube-proxy kube-scheduler kubectl kubelet metrics "
    "mount-utils pod-security-admission sample-apiserver streaming"
).split()
K8S_BINARIES = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")


KEDA_BINARIES = {"keda-operator": "cmd/operator", "keda-adapter": "cmd/adapter"}


class BuildError(RuntimeError):
    """The control plane could not be built; the message says why (shown by failing tests)."""


@dataclass(frozen=True)
class Binaries:
    kube_apiserver: Path
    kube_controller_manager: Path
    kube_scheduler: Path
    kubectl: Path
    etcd: Path
    kwok: Path
    helm: Path

    def all(self) -> dict[str, Path]:
        return {
            "kube-apiserver": self.kube_apiserver,
            "kube-controller-manager": self.kube_controller_manager,
            "kube-scheduler": self.kube_scheduler,
            "kubectl": self.kubectl,
            "etcd": self.etcd,
            "kwok": self.kwok,
            "helm": self.helm,
        }


def cache_root() -> Path:
    return Path(os.environ.get("VOICEFLEET_CACHE", Path.home() / ".cache" / "voicefleet"))


# Where Go's official tarball installs, for shells whose PATH lacks it.
GO_FALLBACKS = ("/usr/local/go/bin/go",)


def _go() -> str:
    go = shutil.which("go") or next((g for g in GO_FALLBACKS if Path(g).exists()), None)
    if go is None:
        raise BuildError(
            "Go is not installed (no `go` on PATH or /usr/local/go/bin/go): the test control plane is built "
            "from Go modules; install Go 1.26.x"
        )
    return go


def _go_env() -> dict[str, str]:
    root = cache_root() / "go"
    env = dict(os.environ)
    env.update(
        GOMODCACHE=str(root / "mod"),
        GOCACHE=str(root / "build"),
        GOPATH=str(root / "path"),
        GOFLAGS="-mod=mod",
        # Go 1.27's JSON rewrite breaks k8s 1.36's OpenAPI handler; never let go.mod pull a newer toolchain.
        GOTOOLCHAIN="local",
        CGO_ENABLED="0",
    )
    return env


def _run(cmd: list[str], cwd: Path, log: Path) -> None:
    with log.open("a") as out:
        out.write(f"$ {' '.join(cmd)}  (in {cwd})\n")
        out.flush()
        proc = subprocess.run(cmd, cwd=cwd, env=_go_env(), stdout=out, stderr=subprocess.STDOUT, check=False)
    if proc.returncode != 0:
        tail = log.read_text(errors="replace")[-3000:]
        raise BuildError(f"`{' '.join(cmd)}` failed with exit code {proc.returncode}; log {log}:\n{tail}")


@contextmanager
def _locked(name: str) -> Iterator[None]:
    """Serialise builds: `make cluster-up` and a pytest session may ask at the same time."""
    lock_dir = cache_root() / "locks"
    lock_dir.mkdir(parents=True, exist_ok=True)
    with (lock_dir / f"{name}.lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _done(out_dir: Path, names: tuple[str, ...]) -> bool:
    return all(os.access(out_dir / name, os.X_OK) for name in names)


def _build_consumer_module(
    name: str, go_mod: str, tools_go: str, packages: dict[str, str], ldflags: str = ""
) -> Path:
    """Build `packages` (binary name -> Go package) from a throwaway module; return the output folder."""
    out_dir = cache_root() / "bin" / name
    if _done(out_dir, tuple(packages)):
        return out_dir
    with _locked(name):
        if _done(out_dir, tuple(packages)):
            return out_dir
        work = cache_root() / "src" / name
        work.mkdir(parents=True, exist_ok=True)
        (work / "go.mod").write_text(go_mod)
        (work / "tools.go").write_text(tools_go)
        log = cache_root() / "logs" / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        go = _go()
        _run([go, "mod", "tidy"], work, log)
        staging = out_dir.with_name(out_dir.name + ".partial")
        staging.mkdir(parents=True, exist_ok=True)
        for binary, package in packages.items():
            cmd = [go, "build", "-trimpath", f"-ldflags={ldflags}", "-o", str(staging / binary), package]
            _run(cmd, work, log)
        # Publish atomically so an interrupted build never looks complete.
        shutil.rmtree(out_dir, ignore_errors=True)
        staging.rename(out_dir)
    return out_dir


def _go_install(name: str, package: str, binary: str) -> Path:
    out_dir = cache_root() / "bin" / name
    if _done(out_dir, (binary,)):
        return out_dir
    with _locked(name):
        if _done(out_dir, (binary,)):
            return out_dir
        log = cache_root() / "logs" / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        gobin = out_dir.with_name(out_dir.name + ".partial")
        gobin.mkdir(parents=True, exist_ok=True)
        env_cmd = ["env", f"GOBIN={gobin}", "GOFLAGS=", _go(), "install", "-trimpath", package]
        _run(env_cmd, cache_root(), log)
        shutil.rmtree(out_dir, ignore_errors=True)
        gobin.rename(out_dir)
    return out_dir


def build_kubernetes() -> Path:
    minor = "v0." + K8S_VERSION.removeprefix("v1.")
    replaces = "\n".join(f"\tk8s.io/{mod} => k8s.io/{mod} {minor}" for mod in K8S_STAGING_MODULES)
    go_mod = (
        "module voicefleet.local/k8sbuild\n\ngo 1.26\n\n"
        f"require k8s.io/kubernetes {K8S_VERSION}\n\nreplace (\n{replaces}\n)\n"
    )
    tools_go = (
        "//go:build tools\n\n// Blank imports keep `go mod tidy` from dropping what we build.\n"
        "package tools\n\nimport (\n"
        '\t_ "k8s.io/kubernetes/cmd/kube-apiserver/app"\n'
        '\t_ "k8s.io/kubernetes/cmd/kube-controller-manager/app"\n'
        '\t_ "k8s.io/kubernetes/cmd/kube-scheduler/app"\n'
        '\t_ "k8s.io/kubectl/pkg/cmd"\n'
        ")\n"
    )
    packages = {binary: f"k8s.io/kubernetes/cmd/{binary}" for binary in K8S_BINARIES}
    # Without the version stamped in, binaries report v0.0.0-master and kubectl cannot parse it.
    major, minor = K8S_VERSION.removeprefix("v").split(".")[:2]
    stamp = {"gitVersion": K8S_VERSION, "gitMajor": major, "gitMinor": minor, "gitTreeState": "clean"}
    ldflags = " ".join(
        f"-X {pkg}.{key}={value}"
        for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version")
        for key, value in stamp.items()
    )
    return _build_consumer_module(f"kubernetes-{K8S_VERSION}", go_mod, tools_go, packages, ldflags)


def build_etcd() -> Path:
    go_mod = (
        f"module voicefleet.local/etcdbuild\n\ngo 1.26\n\nrequire go.etcd.io/etcd/server/v3 {ETCD_VERSION}\n"
    )
    tools_go = '//go:build tools\n\npackage tools\n\nimport _ "go.etcd.io/etcd/server/v3/embed"\n'
    return _build_consumer_module(
        f"etcd-{ETCD_VERSION}", go_mod, tools_go, {"etcd": "go.etcd.io/etcd/server/v3"}
    )


def _go_output(cmd: list[str], log: Path) -> str:
    log.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(cmd, cwd=cache_root(), env=_go_env(), capture_output=True, text=True, check=False)
    with log.open("a") as out:
        out.write(f"$ {' '.join(cmd)}\n{proc.stderr}")
    if proc.returncode != 0:
        raise BuildError(f"`{' '.join(cmd)}` failed with exit code {proc.returncode}: {proc.stderr[-2000:]}")
    return proc.stdout


def keda_replaces() -> dict[str, str]:
    """KEDA's own replace directives (module -> version), read from its go.mod in the module cache.

    They pin k8s.io/* to v0.35.5, controller-runtime to v0.23.3, cel-go and the Prometheus libraries;
    `go install module@version` ignores replace directives, so the consumer module must repeat them.
    """
    go, log = _go(), cache_root() / "logs" / f"keda-{KEDA_VERSION}.log"
    module_dir = keda_module_dir()
    if not (module_dir / "go.mod").exists():
        _go_output([go, "mod", "download", f"{KEDA_MODULE}@{KEDA_VERSION}"], log)
    edit = json.loads(_go_output([go, "mod", "edit", "-json", str(module_dir / "go.mod")], log))
    replaces: dict[str, str] = {}
    for rule in edit.get("Replace") or []:
        old, new = rule["Old"], rule["New"]
        if "Version" not in new or "Version" in old:
            # A local path or a version-specific rule cannot be repeated from outside KEDA's tree.
            raise BuildError(f"KEDA {KEDA_VERSION} has a replace directive this build cannot repeat: {rule}")
        replaces[old["Path"]] = f"{new['Path']} {new['Version']}"
    return replaces


def build_keda() -> Path:
    """KEDA's operator and metrics adapter (keda-metrics-apiserver); cold, this compiles every cloud SDK."""
    out_dir = cache_root() / "bin" / f"keda-{KEDA_VERSION}"
    if _done(out_dir, tuple(KEDA_BINARIES)):
        return out_dir
    replaces = "\n".join(f"\t{mod} => {target}" for mod, target in keda_replaces().items())
    go_mod = (
        "module voicefleet.local/kedabuild\n\ngo 1.26\n\n"
        f"require {KEDA_MODULE} {KEDA_VERSION}\n\nreplace (\n{replaces}\n)\n"
    )
    imports = "".join(f'\t_ "{KEDA_MODULE}/{pkg}"\n' for pkg in ("pkg/scaling", "pkg/provider"))
    tools_go = (
        "//go:build tools\n\n// Blank imports keep `go mod tidy` from dropping what we build.\n"
        f"package tools\n\nimport (\n{imports})\n"
    )
    packages = {binary: f"{KEDA_MODULE}/{pkg}" for binary, pkg in KEDA_BINARIES.items()}
    # KEDA logs and reports this version (its Makefile stamps it the same way).
    ldflags = f"-X={KEDA_MODULE}/version.Version={KEDA_VERSION.removeprefix('v')}"
    return _build_consumer_module(f"keda-{KEDA_VERSION}", go_mod, tools_go, packages, ldflags)


def keda_module_dir() -> Path:
    """KEDA's module source in GOMODCACHE (its CRDs and manifests are read from here, never copied)."""
    return cache_root() / "go" / "mod" / Path(KEDA_MODULE).parent / f"{Path(KEDA_MODULE).name}@{KEDA_VERSION}"


def ensure_keda() -> dict[str, Path]:
    """Build KEDA if missing; binary name -> path. Apart from the control plane: only KEDA tests need it."""
    out_dir = build_keda()
    return {binary: out_dir / binary for binary in KEDA_BINARIES}


KWOK_STAGES = (
    "node/fast/node-initialize.yaml",
    "node/heartbeat/node-heartbeat.yaml",
    "pod/fast/pod-ready.yaml",
    "pod/fast/pod-complete.yaml",
    "pod/fast/pod-delete.yaml",
)


def kwok_stage_files() -> list[Path]:
    """kwok's own node/pod lifecycle stages, read from its module in GOMODCACHE (never copied here)."""
    module = cache_root() / "go" / "mod" / "sigs.k8s.io" / f"kwok@{KWOK_VERSION}"
    if not module.exists():
        log = cache_root() / "logs" / "kwok.log"
        _run([_go(), "mod", "download", f"sigs.k8s.io/kwok@{KWOK_VERSION}"], cache_root(), log)
    files = [module / "kustomize" / "stage" / stage for stage in KWOK_STAGES]
    missing = [str(f) for f in files if not f.exists()]
    if missing:
        raise BuildError(f"kwok stage files missing from the module cache: {missing}")
    return files


def ensure_binaries() -> Binaries:
    """Build whatever is missing (minutes on a cold cache, nothing when warm) and return the paths."""
    etcd = build_etcd()
    kwok = _go_install(f"kwok-{KWOK_VERSION}", f"sigs.k8s.io/kwok/cmd/kwok@{KWOK_VERSION}", "kwok")
    helm = _go_install(f"helm-{HELM_VERSION}", f"helm.sh/helm/v3/cmd/helm@{HELM_VERSION}", "helm")
    k8s = build_kubernetes()
    return Binaries(
        kube_apiserver=k8s / "kube-apiserver",
        kube_controller_manager=k8s / "kube-controller-manager",
        kube_scheduler=k8s / "kube-scheduler",
        kubectl=k8s / "kubectl",
        etcd=etcd / "etcd",
        kwok=kwok / "kwok",
        helm=helm / "helm",
    )


def main(argv: list[str]) -> int:
    started = time.monotonic()
    want_keda = "--keda" in argv
    try:
        binaries = ensure_keda() if want_keda else ensure_binaries().all()
    except BuildError as error:
        print(f"{'KEDA' if want_keda else 'control plane'} build failed: {error}", file=sys.stderr)
        return 1
    for name, path in binaries.items():
        print(f"{name}: {path}")
    print(f"built or found in {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
