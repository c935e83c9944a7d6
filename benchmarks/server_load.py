"""Load benchmark: tts-server vs a naive one-at-a-time baseline, same engine, same machine, same run.

    .venv/bin/python benchmarks/server_load.py [--seconds 20] [--clients 1 4 16 64]

N closed-loop clients each send requests back to back for a fixed time. Reported per server and
concurrency: requests/s, audio seconds/s, latency p50/p95/p99, time to first audio byte, client-side
RTF (latency / audio seconds), 429 count and errors. Results are printed and saved as JSON under
benchmarks/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
TEXT = "欢迎使用语音合成服务，今天天气很好。我们正在测试离线中文语音合成的速度和质量，请大家多多指教。"


@dataclass
class Result:
    server: str
    clients: int
    seconds: float
    ok: int = 0
    rejected: int = 0
    errors: int = 0
    latencies: list[float] = field(default_factory=list)
    ttfa: list[float] = field(default_factory=list)
    audio_s: float = 0.0

    def summary(self) -> dict[str, float | int | str]:
        def pct(values: list[float], q: float) -> float:
            return round(float(np.percentile(values, q)), 3) if values else float("nan")

        rtf = [lat / a for lat, a in self._rtf_pairs] if self._rtf_pairs else []
        return {
            "server": self.server,
            "clients": self.clients,
            "requests_per_s": round(self.ok / self.seconds, 3),
            "audio_s_per_s": round(self.audio_s / self.seconds, 2),
            "p50_s": pct(self.latencies, 50),
            "p95_s": pct(self.latencies, 95),
            "p99_s": pct(self.latencies, 99),
            "ttfa_p50_s": pct(self.ttfa, 50),
            "ttfa_p95_s": pct(self.ttfa, 95),
            "rtf_p50": pct(rtf, 50),
            "ok": self.ok,
            "rejected_429": self.rejected,
            "errors": self.errors,
        }

    _rtf_pairs: list[tuple[float, float]] = field(default_factory=list)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url} exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} not ready")


async def client_loop(client: httpx.AsyncClient, body: dict, stop_at: float, result: Result) -> None:
    while time.monotonic() < stop_at:
        started = time.monotonic()
        try:
            async with client.stream("POST", "/tts", json=body) as r:
                if r.status_code == 429:
                    result.rejected += 1
                    await r.aread()
                    await asyncio.sleep(min(float(r.headers.get("retry-after", "1")), 1.0))
                    continue
                if r.status_code != 200:
                    result.errors += 1
                    await r.aread()
                    continue
                first: float | None = None
                size = 0
                async for chunk in r.aiter_bytes():
                    if first is None and chunk:
                        first = time.monotonic() - started
                    size += len(chunk)
        except httpx.HTTPError:
            result.errors += 1
            continue
        latency = time.monotonic() - started
        audio = (size - 44) / 2 / 24000
        result.ok += 1
        result.latencies.append(latency)
        result.ttfa.append(first or latency)
        result.audio_s += audio
        result._rtf_pairs.append((latency, audio))


async def run_level(url: str, name: str, clients: int, seconds: float, stream: bool) -> Result:
    result = Result(name, clients, seconds)
    body = {"text": TEXT, "stream": True} if stream else {"text": TEXT}
    limits = httpx.Limits(max_connections=clients + 4)
    async with httpx.AsyncClient(base_url=url, timeout=600, limits=limits) as client:
        stop_at = time.monotonic() + seconds
        await asyncio.gather(*(client_loop(client, body, stop_at, result) for _ in range(clients)))
    # Closed loop: requests still running at stop_at finish late; rate over the real span.
    result.seconds = max(seconds, time.monotonic() - (stop_at - seconds))
    return result


def start(cmd: list[str], health: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    wait_ready(health, proc)
    return proc


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16, 64])
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--server-args", default="", help="extra tts-server flags, e.g. '--max-queue 16'")
    parser.add_argument(
        "--out", default="server_load.json", help="file name under benchmarks/results/ (or an absolute path)"
    )
    args = parser.parse_args()

    ours_port, naive_port = free_port(), free_port()
    py = sys.executable
    servers = {
        "tts-server": (
            [py, "-m", "tts_server.cli", "--port", str(ours_port), "--threads", str(args.threads),
             "--log-level", "warning", *args.server_args.split()],
            f"http://127.0.0.1:{ours_port}",
            True,
        ),
        "naive-baseline": (
            [py, str(ROOT / "benchmarks" / "naive_server.py"), "--port", str(naive_port),
             "--threads", str(args.threads)],
            f"http://127.0.0.1:{naive_port}",
            False,
        ),
    }  # fmt: skip
    rows: list[dict] = []
    procs = {
        name: start(cmd, url + ("/readyz" if name == "tts-server" else "/"))
        for name, (cmd, url, _) in servers.items()
    }
    try:
        # Both servers stay up and levels interleave, alternating which goes first, so background
        # load on the machine drifts onto both sides alike; the idle one costs nothing.
        for level, clients in enumerate(args.clients):
            order = list(servers) if level % 2 == 0 else list(reversed(servers))
            for name in order:
                _, url, stream = servers[name]
                result = asyncio.run(run_level(url, name, clients, args.seconds, stream))
                rows.append(result.summary())
                print(json.dumps(rows[-1]), flush=True)
    finally:
        for proc in procs.values():
            proc.terminate()
            proc.wait(30)
    rows.sort(key=lambda r: (r["server"] != "tts-server", r["clients"]))

    by = {(r["server"], r["clients"]): r for r in rows}
    ratios = {
        str(c): round(
            by[("tts-server", c)]["requests_per_s"] / max(by[("naive-baseline", c)]["requests_per_s"], 1e-9),
            2,
        )
        for c in args.clients
    }
    header = (
        f"{'server':<15}{'clients':>8}{'req/s':>8}{'audio/s':>9}{'p50':>8}{'p95':>8}{'p99':>8}{'ttfa50':>8}"
    )
    header += f"{'rtf50':>7}{'429':>6}{'err':>5}"
    print("\n" + header)
    for r in rows:
        print(
            f"{r['server']:<15}{r['clients']:>8}{r['requests_per_s']:>8}{r['audio_s_per_s']:>9}{r['p50_s']:>8}"
            f"{r['p95_s']:>8}{r['p99_s']:>8}{r['ttfa_p50_s']:>8}{r['rtf_p50']:>7}{r['rejected_429']:>6}{r['errors']:>5}"
        )
    print(f"\nthroughput ratio tts-server / naive by clients: {ratios}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / args.out
    out.write_text(
        json.dumps(
            {
                "benchmark": "server_load",
                "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "machine": {
                    "cpus": os.cpu_count(),
                    "platform": platform.platform(),
                    "python": platform.python_version(),
                },
                "text": TEXT,
                "seconds_per_level": args.seconds,
                "threads": args.threads,
                "server_args": args.server_args,
                "rows": rows,
                "throughput_ratio_by_clients": ratios,
            },
            indent=2,
            ensure_ascii=False,
        )
    )
    print(f"saved {out}")


if __name__ == "__main__":
    main()
