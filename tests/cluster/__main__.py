"""`python -m tests.cluster up|down|status [--dir DIR]`: the control plane for humans (make cluster-up)."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

from tests.cluster.build import BuildError
from tests.cluster.cluster import ClusterError, attach, start, stop


def _link_binaries(root: Path, binaries: dict[str, Path]) -> None:
    bin_dir = root / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    for name, path in binaries.items():
        link = bin_dir / name
        link.unlink(missing_ok=True)
        link.symlink_to(path)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.cluster")
    parser.add_argument("command", choices=["up", "down"])
    parser.add_argument(
        "--dir", default=".cluster", type=Path, help="state, logs, kubeconfig and bin/ go here"
    )
    args = parser.parse_args()
    root: Path = args.dir.resolve()
    if args.command == "down":
        stop(root)
        # Keep bin/ (links into the build cache); drop the cluster's state so the next `up` starts clean.
        for sub in ("etcd", "logs", "run", "pki", "apiserver-certs"):
            shutil.rmtree(root / sub, ignore_errors=True)
        print(f"cluster in {root} stopped")
        return 0
    started = time.monotonic()
    try:
        cluster = attach(root)
        print(f"cluster in {root} is already up")
    except ClusterError:
        cluster = None
    try:
        cluster = cluster or start(root)
    except (ClusterError, BuildError) as error:
        print(f"cluster-up failed: {error}", file=sys.stderr)
        return 1
    _link_binaries(root, cluster.binaries.all())
    print(f"cluster up after {time.monotonic() - started:.1f} s")
    print(f"  export KUBECONFIG={os.path.relpath(cluster.kubeconfig)}")
    print(f"  export PATH=$PWD/{os.path.relpath(root / 'bin')}:$PATH")
    print(f"  logs: {os.path.relpath(root / 'logs')};  stop with: make cluster-down")
    return 0


if __name__ == "__main__":
    sys.exit(main())
