"""Predictive pre-warm: forecast the service's queue depth over the next hour from its own history.

Method (seasonal, daily): the queue a service sees at 08:00 today is best predicted by what it saw at
08:00 on the previous days. For every minute ``T`` of the horizon (now, now + horizon], each of the
``lookbackDays`` previous days contributes the highest queue depth it had within ±``JITTER_MINUTES``
of ``T - d days`` (a peak that starts at 07:58 one day and 08:03 the next is the same peak). The level
at ``T`` is the value reached on at least half of the days that have data (the upper median: with 7
days, the 4th highest), so a peak on weekdays only (5 of 7 days) is forecast and a one-off burst is
not. The forecast is the highest level over the horizon and the first minute it is reached.

Days are UTC days: a peak that follows local time in a zone with daylight saving shifts by an hour in
UTC for the days around a clock change, and the jitter does not cover an hour; the forecast recovers
once most of the lookback is on the new offset.

History is the operator's own queue query (``triggers.queue_depth_query`` over both tiers, scoped to
the namespace and the service's pods) read with ``PrometheusConnect.custom_query_range`` at a
one-minute step, the same numbers KEDA sees. Only ``fetch_history`` does I/O.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from tts_operator import triggers as t

STEP_SECONDS = 60
JITTER_MINUTES = 5
# Fewer days than this is no season: one day's accident would become tomorrow's forecast.
MIN_DAYS = 2
QUERY_TIMEOUT_SECONDS = 30


@dataclass(frozen=True)
class Forecast:
    """Forecast peak queue depth (whole service) over the horizon; `peak` None when there is none."""

    made_at: datetime
    peak: float | None
    peak_at: datetime | None
    days: int
    message: str


def history_query(namespace: str, name: str, window_seconds: int) -> str:
    """The queue KEDA scales on, over the whole service (both tiers: a sleeping tier has no series)."""
    return t.queue_depth_query(namespace, name, ("gpu", "cpu"), window_seconds)


def _minute(ts: float) -> int:
    return int(ts // STEP_SECONDS)


def forecast(
    samples: Iterable[tuple[float, float]], now: datetime, lookback_days: int, horizon_minutes: int
) -> Forecast:
    """Pure: the forecast from (unix time, queue depth) samples of the lookback before `now`."""
    per_minute: dict[int, float] = {}
    for ts, value in samples:
        if math.isfinite(value):
            key = _minute(ts)
            per_minute[key] = max(value, per_minute.get(key, value))
    now_minute = _minute(now.timestamp())
    day = 24 * 60
    days_seen = {(now_minute - m - 1) // day for m in per_minute if m <= now_minute}
    days = len({d for d in days_seen if 0 <= d < lookback_days})
    if days < MIN_DAYS:
        message = f"{days} day(s) of queue history in the last {lookback_days}; need {MIN_DAYS}"
        return Forecast(now, None, None, days, message)
    best, best_at = -1.0, now_minute
    for ahead in range(1, horizon_minutes + 1):
        target = now_minute + ahead
        values = []
        for back in range(1, lookback_days + 1):
            centre = target - back * day
            near = [per_minute[m] for m in range(centre - JITTER_MINUTES, centre + JITTER_MINUTES + 1)
                    if m in per_minute]  # fmt: skip
            if near:
                values.append(max(near))
        if len(values) < MIN_DAYS:
            continue
        values.sort(reverse=True)
        level = values[math.ceil(len(values) / 2) - 1]
        if level > best:
            best, best_at = level, target
    if best < 0:
        return Forecast(now, None, None, days, f"no history around the next {horizon_minutes} min")
    at = datetime.fromtimestamp(best_at * STEP_SECONDS, timezone.utc)
    return Forecast(now, best, at, days,
                    f"upper median over {days} day(s) of the queue depth at the same time of day (±"
                    f"{JITTER_MINUTES} min), next {horizon_minutes} min")  # fmt: skip


def replicas_for(peak: float, target: int) -> int:
    """Replicas KEDA would have run at the peak: queue / per-replica target, rounded up (AverageValue)."""
    return math.ceil(peak / target) if peak > 0 else 0


def fetch_history(
    url: str, query: str, now: datetime, lookback_days: int
) -> Sequence[tuple[float, float]]:
    """Read the query over the lookback at one-minute steps (blocking; run it in a thread).

    7 days is 10 080 points per series, under Prometheus' 11 000-point limit; longer lookbacks are
    read in chunks of at most 7 days.
    """
    # Imported here: the pure part above (and the tests of it) need no HTTP client.
    from prometheus_api_client import PrometheusConnect

    prom = PrometheusConnect(url=url, timeout=QUERY_TIMEOUT_SECONDS)
    out: list[tuple[float, float]] = []
    start = now - timedelta(days=lookback_days)
    while start < now:
        end = min(start + timedelta(days=7), now)
        for series in prom.custom_query_range(query, start_time=start, end_time=end, step=str(STEP_SECONDS)):
            out.extend((float(ts), float(value)) for ts, value in series.get("values", []))
        start = end
    return out
