"""Live metrics of one TTSService for its status, read from the Prometheus its ScaledObjects query.

One round per service: a few instant queries (composed in ``triggers.py``, scoped like the triggers to
the service's namespace and anchored pod names), all evaluated at the same whole second, which becomes
``status.metricsObservedAt``; anyone can re-run a query at that time and get the number the status shows.
The client is prometheus-api-client's ``PrometheusConnect`` (blocking ``requests``), so a round runs in a
worker thread under a deadline: a dead or hanging Prometheus costs one timeout, never a stalled loop. The
first failing query ends the round and becomes a one-line reason (address + what went wrong).
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone

import requests
from prometheus_api_client import PrometheusApiClientException
from prometheus_api_client.prometheus_connect import PrometheusConnect
from urllib3.util.retry import Retry

from tts_operator import triggers as t
from tts_operator.render import tiers_of
from tts_operator.render.common import TierName
from tts_operator.spec import TTSServiceSpec

DEFAULT_TIMEOUT_SECONDS = 5.0
QUEUE, GPU, TTFA = "queue", "gpu", "ttfa"
SERVICE = "service"
# (scope, signal): scope is a tier or the whole service.
QueryKey = tuple[str, str]


@dataclass(frozen=True)
class TierMetrics:
    queue_depth: float | None = None
    gpu_utilization: float | None = None
    time_to_first_audio_p95_seconds: float | None = None


@dataclass(frozen=True)
class LiveMetrics:
    """One round's result: values (None: Prometheus has no such series) or the error that ended it."""

    address: str
    observed_at: str  # RFC 3339, the evaluation time of every query
    tiers: dict[TierName, TierMetrics] = field(default_factory=dict)
    queue_depth: float | None = None  # whole service
    error: str | None = None


def queries(namespace: str, name: str, spec: TTSServiceSpec) -> dict[QueryKey, str]:
    """Every query of a round: the service's queue, and per tier its queue, GPU utilization (GPU tier)
    and p95 time to first audio (over the queue window, as the latency trigger reads it)."""
    autoscaling = spec.autoscaling
    tiers = tiers_of(spec)
    out = {(SERVICE, QUEUE): t.queue_depth_now_query(namespace, name, tiers)}
    for tier in tiers:
        out[(tier, QUEUE)] = t.queue_depth_now_query(namespace, name, (tier,))
        if tier == "gpu":
            out[(tier, GPU)] = t.gpu_utilization_mean_query(namespace, name, autoscaling.dcgm_labels)
        out[(tier, TTFA)] = t.time_to_first_audio_p95_observed_query(
            namespace, name, tier, autoscaling.queue_depth_window_seconds
        )
    return out


def scalar(result: list[dict]) -> float | None:
    """The one value of an aggregated instant query; None when empty or not a finite number."""
    if not result:
        return None
    if len(result) > 1:
        raise ValueError(f"expected one series, got {len(result)}")
    value = float(result[0]["value"][1])
    return value if math.isfinite(value) else None


def describe(error: BaseException, timeout: float) -> str:
    """A short reason for a failed query (requests' own messages repeat the whole URL and query)."""
    if isinstance(error, (requests.Timeout, TimeoutError, asyncio.TimeoutError)):
        return f"no answer within {timeout:g} s"
    if isinstance(error, requests.ConnectionError):
        if "timed out" in str(error):
            return f"no answer within {timeout:g} s"
        found = re.findall(r"\[Errno -?\d+\] ([^'\")]+)", str(error))
        return found[-1].strip().lower() if found else f"cannot connect ({type(error).__name__})"
    if isinstance(error, PrometheusApiClientException):
        text = str(error)
        status = re.search(r"HTTP Status Code (\d+)", text)
        detail = re.search(r'"error":"((?:[^"\\]|\\.)*)"', text)
        code = f"HTTP {status.group(1)}" if status else "error"
        if detail:
            return f"{code}: {detail.group(1)}"
        body = re.search(r"\(b?['\"](.*)['\"]\)$", text, re.S)
        return f"{code}: {body.group(1)[:300]}" if body and body.group(1) else code
    if isinstance(error, ValueError):
        return f"not a Prometheus query API answer ({str(error)[:200]})"
    return f"{type(error).__name__}: {str(error)[:300]}"


def read(
    address: str, round_queries: dict[QueryKey, str], at: float, timeout: float
) -> dict[QueryKey, float | None]:
    """Run the queries at time `at` (blocking); the first error is raised."""
    # No retries: the next round is the retry, and a dead Prometheus must cost one timeout. read=False
    # (as requests' own default) lets a read timeout surface as requests.ReadTimeout.
    client = PrometheusConnect(url=address, retry=Retry(total=0, read=False), timeout=timeout)
    try:
        return {
            key: scalar(client.custom_query(query, params={"time": f"{at:.3f}"}))
            for key, query in round_queries.items()
        }
    finally:
        client.close()


def _rounded(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


async def observe(
    namespace: str, name: str, spec: TTSServiceSpec, address: str, timeout: float = DEFAULT_TIMEOUT_SECONDS
) -> LiveMetrics:
    """One round for one service; never raises for Prometheus trouble (it is in `error`)."""
    at = float(int(time.time()))
    observed_at = datetime.fromtimestamp(at, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    round_queries = queries(namespace, name, spec)
    # Each request has `timeout`; the round's deadline catches what that misses (DNS, a busy machine).
    deadline = 2 * timeout + 1
    try:
        reading = asyncio.to_thread(read, address, round_queries, at, timeout)
        values = await asyncio.wait_for(reading, deadline)
    except (asyncio.TimeoutError, requests.RequestException, PrometheusApiClientException, ValueError) as e:
        waited = deadline if isinstance(e, asyncio.TimeoutError) else timeout
        reason = f"cannot read Prometheus at {address}: {describe(e, waited)}"
        return LiveMetrics(address, observed_at, error=reason)
    tiers = {
        tier: TierMetrics(
            queue_depth=_rounded(values.get((tier, QUEUE)), 3),
            gpu_utilization=_rounded(values.get((tier, GPU)), 2),
            time_to_first_audio_p95_seconds=_rounded(values.get((tier, TTFA)), 4),
        )
        for tier in tiers_of(spec)
    }
    return LiveMetrics(address, observed_at, tiers, _rounded(values.get((SERVICE, QUEUE)), 3))
