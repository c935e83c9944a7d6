"""A real Prometheus (Debian's `prometheus`) and the DCGM stand-in exporter, for tests and benchmarks.

The DCGM exporter is the one stand-in in the test suite: there is no GPU here, so a small HTTP server
publishes `DCGM_FI_DEV_GPU_UTIL` in dcgm-exporter's format (gpu, UUID, modelName, namespace, pod,
container labels). Its series can be changed while Prometheus scrapes it.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.operator.conftest import free_port, wait_for
from tests.server.conftest import ServerProcess

# (namespace, pod, gpu index, utilization percent)
GPUSeries = tuple[str, str, str, float]


class DCGMStandIn:
    """Serves /metrics like dcgm-exporter; assign `series` to change what the next scrape sees."""

    def __init__(self, series: Sequence[GPUSeries] = ()) -> None:
        self.series: list[GPUSeries] = list(series)
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                lines = ["# HELP DCGM_FI_DEV_GPU_UTIL GPU utilization (in %).",
                         "# TYPE DCGM_FI_DEV_GPU_UTIL gauge"]  # fmt: skip
                for namespace, pod, gpu, value in list(stand_in.series):
                    labels = (f'gpu="{gpu}",UUID="GPU-{gpu}",modelName="NVIDIA H100",'
                              f'namespace="{namespace}",pod="{pod}",container="tts-server"')  # fmt: skip
                    lines.append(f"DCGM_FI_DEV_GPU_UTIL{{{labels}}} {value:g}")
                body = ("\n".join(lines) + "\n").encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> DCGMStandIn:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()


class Prometheus:
    """HTTP API client of a running Prometheus."""

    def __init__(self, url: str) -> None:
        self.url = url

    def query(self, promql: str, at: float | None = None) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"query": promql}
        if at is not None:
            params["time"] = at
        resp = httpx.get(f"{self.url}/api/v1/query", params=params, timeout=10)
        body = resp.json()
        assert body["status"] == "success", f"{promql}: {body}"
        return body["data"]["result"]

    def scalar(self, promql: str, at: float | None = None) -> float | None:
        """The single value KEDA would read (it requires a single-element result), or None if empty."""
        result = self.query(promql, at)
        assert len(result) <= 1, f"{promql} returned {len(result)} series; KEDA needs one"
        return float(result[0]["value"][1]) if result else None

    def targets_up(self) -> int:
        try:
            up = self.query("up")
        except (httpx.TransportError, ValueError):  # ValueError: not JSON yet (503 while loading the TSDB)
            return -1
        return sum(r["value"][1] == "1" for r in up)


def binary() -> str:
    found = shutil.which("prometheus")
    assert found, "Debian's prometheus package is required (apt-get install prometheus; .ci/run does it)"
    return found


def static_job(name: str, target: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    """A scrape job for one target; `labels` stand in for what Kubernetes service discovery adds."""
    config: dict[str, Any] = {"targets": [target]}
    if labels:
        config["labels"] = labels
    return {"job_name": name, "static_configs": [config]}


@contextmanager
def running_prometheus(
    root: Path,
    jobs: Sequence[dict[str, Any]],
    *,
    rule_files: Sequence[Path] = (),
    interval: str = "1s",
    extra_args: Sequence[str] = (),
    timeout: float = 60,
) -> Iterator[Prometheus]:
    """Start Prometheus scraping `jobs` every `interval`; yields once every target is up."""
    root.mkdir(parents=True, exist_ok=True)
    config: dict[str, Any] = {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "scrape_configs": list(jobs),
    }
    if rule_files:
        config["rule_files"] = [str(p) for p in rule_files]
    (root / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    log_path = root / "prometheus.log"
    args = [binary(), f"--config.file={root / 'prometheus.yml'}", f"--storage.tsdb.path={root / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}", *extra_args]  # fmt: skip
    with log_path.open("wb") as log:
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        prom = Prometheus(f"http://127.0.0.1:{port}")
        try:
            try:
                wait_for(lambda: prom.targets_up() == len(jobs), timeout=timeout, interval=0.5,
                         what="Prometheus scraping all targets")  # fmt: skip
            except AssertionError as exc:
                raise AssertionError(f"{exc}\n{log_path.read_text()[-3000:]}") from exc
            yield prom
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def wait_for_value(prom: Prometheus, promql: str, predicate: Any, timeout: float = 60) -> float | None:
    """Poll `promql` until `predicate(value)` holds; return that value."""
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = prom.scalar(promql, time.time())
        if predicate(value):
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout} s waiting on {promql} (last value {value})")


@contextmanager
def queueing_server(log_dir: Path, max_queue: int = 16) -> Iterator[ServerProcess]:
    """A real tts-server with one worker thread, so concurrent requests queue: the scaling signal the
    Prometheus tests read (tts_queue_depth)."""
    server = ServerProcess(["--threads", "1", "--max-queue", str(max_queue), "--request-timeout-s", "300"],
                           {}, log_dir / "server.log")  # fmt: skip
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop(timeout=10)
