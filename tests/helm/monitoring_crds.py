"""prometheus-operator's own PrometheusRule, ServiceMonitor and PodMonitor CRDs, for the chart tests.

They come from the prometheus-operator Go module (its example/prometheus-operator-crd/ folder), fetched
once through the Go module proxy into the module cache under ``$VOICEFLEET_CACHE`` (keyed by version,
like the control plane's binaries) and never copied into the repository.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.cluster.build import BuildError, _go, _go_env, _locked, cache_root

PROMETHEUS_OPERATOR_MODULE = "github.com/prometheus-operator/prometheus-operator"
PROMETHEUS_OPERATOR_VERSION = "v0.85.0"
CRD_FILES = tuple(
    f"monitoring.coreos.com_{kind}.yaml" for kind in ("prometheusrules", "servicemonitors", "podmonitors")
)


def monitoring_crd_files() -> list[Path]:
    """The CRD files, downloading the module first if the cache lacks it."""
    module = f"{PROMETHEUS_OPERATOR_MODULE}@{PROMETHEUS_OPERATOR_VERSION}"
    with _locked("prometheus-operator"):
        proc = subprocess.run([_go(), "mod", "download", "-json", module], cwd=cache_root(), env=_go_env(),
                              capture_output=True, text=True, timeout=600, check=False)  # fmt: skip
        if proc.returncode != 0:
            raise BuildError(f"go mod download {module} failed:\n{proc.stdout}\n{proc.stderr}")
    folder = Path(json.loads(proc.stdout)["Dir"]) / "example" / "prometheus-operator-crd"
    files = [folder / name for name in CRD_FILES]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise BuildError(f"{module} has no {missing}")
    return files
