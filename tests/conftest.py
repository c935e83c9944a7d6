"""Session-wide fixtures: the real control plane (built from Go modules on first use)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.cluster.cluster import Cluster, attach, start, stop


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Cluster:
    """A running cluster. Never skipped: if it cannot be built or started, the error says why.

    VOICEFLEET_TEST_CLUSTER=.cluster reuses a cluster started by `make cluster-up` (quick iteration).
    """
    reuse = os.environ.get("VOICEFLEET_TEST_CLUSTER")
    if reuse:
        yield attach(Path(reuse))
        return
    root = tmp_path_factory.mktemp("cluster")
    running = start(root)
    try:
        yield running
    finally:
        stop(root)
