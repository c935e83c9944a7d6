"""Glue between the pure policy (``policy.py``, ``forecast.py``) and the kopf handlers.

What the operator remembers per TTSService (the plan last applied, decisions not yet in status, the
last forecast), and two asyncio tasks started from the startup handler: one re-plans every TTSService
at the earliest window edge or fallback deadline (or every minute), one refreshes forecasts. Neither is
a kopf timer or daemon: those put a finalizer on every TTSService, and this operator adds none.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from typing import Any

import kopf
from pydantic import ValidationError

from tts_operator import forecast as fc
from tts_operator.policy import Observation, Plan, decide
from tts_operator.spec import TTSServiceSpec

Key = tuple[str, str]
# handlers.replan(key, memo, logger, **indexes)
Replan = Callable[..., Awaitable[None]]

# Re-plan at least this often even without a known next change (a missed wake-up costs a minute).
POLICY_RECHECK_SECONDS = 60
# Queue history changes slowly; a forecast per service every 10 minutes is plenty.
FORECAST_REFRESH_SECONDS = 600
# How soon a new service (or new forecast settings) gets its first forecast.
FORECAST_TICK_SECONDS = 5
INDEXES = ("ttsservices", "tier_deployments", "unschedulable_pods", "gpu_pending_since")


def _first(index: Any, key: Key) -> Any:
    return next(iter(index[key])) if key in index else None


def _parse_time(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def plan_for(
    key: Key, spec: TTSServiceSpec, memo: kopf.Memo, indexes: dict[str, Any], now: datetime | None = None
) -> Plan:
    """The policy's plan at `now` (default: the present), from the indexes, the last forecast and the
    bounds in force before."""
    now = now or datetime.now(timezone.utc)
    pending = list(indexes["gpu_pending_since"].get(key, []))
    since = [t for t in map(_parse_time, pending) if t is not None]
    applied = memo.plans.get(key)
    if applied is not None:
        previous = applied.bounds()
    else:  # after a restart: what status says was in force
        entry = _first(indexes["ttsservices"], key)
        tiers = ((memo.last_status.get(key) or (entry or {}).get("status") or {}).get("tiers")) or {}
        previous = {
            t: (v["minReplicas"], v["maxReplicas"]) for t, v in tiers.items()
            if t in ("gpu", "cpu") and v.get("minReplicas") is not None and v.get("maxReplicas") is not None
        }  # fmt: skip
    if pending and not since:  # no transition time on the pods: count from when we first saw them
        since = [memo.pending_seen.setdefault(key, now)]
    elif not pending:
        memo.pending_seen.pop(key, None)
    seen = Observation(
        gpu_unschedulable=len(pending),
        gpu_unschedulable_since=min(since) if since else None,
        forecast=memo.forecasts.get(key),
        previous=previous,
    )
    return decide(spec, now, seen)


def remember(key: Key, plan: Plan, memo: kopf.Memo) -> None:
    """The plan is being applied: keep it (drift repair and status use it), queue its decisions for
    status, and wake the policy loop if this plan must be looked at again sooner than it planned."""
    before = memo.plans.get(key)
    memo.plans[key] = plan
    memo.pending_decisions.setdefault(key, []).extend(plan.decisions)
    wake_if_sooner(before, plan, memo)


def wake_if_sooner(before: Plan | None, plan: Plan, memo: kopf.Memo) -> None:
    if plan.next_change is not None and (before is None or before.next_change is None
                                         or plan.next_change < before.next_change):  # fmt: skip
        memo.policy_wakeup.set()


def forget(key: Key, plan: Plan, before: Plan | None, memo: kopf.Memo) -> None:
    if before is None:
        memo.plans.pop(key, None)
    else:
        memo.plans[key] = before
    pending = memo.pending_decisions.get(key, [])
    del pending[len(pending) - len(plan.decisions):]


def drop_recorded(key: Key, memo: kopf.Memo, recorded: list[dict[str, Any]]) -> None:
    # Decisions queued while the status patch was in flight stay queued for the next write.
    if recorded:
        memo.pending_decisions[key] = memo.pending_decisions.get(key, [])[len(recorded):]


def forget_service(key: Key, memo: kopf.Memo) -> None:
    for state in (memo.plans, memo.pending_decisions, memo.forecasts, memo.plan_locks, memo.pending_seen):
        state.pop(key, None)


def start(memo: kopf.Memo, logger: logging.Logger, indexes: dict[str, Any], replan: Replan) -> None:
    """From the startup handler: the per-service state, and the two tasks. `indexes` are the handler's
    kwargs (kopf passes its indexes to startup handlers too, as live views)."""
    memo.plans = {}  # Key -> Plan last applied
    memo.pending_decisions = {}  # Key -> the policy's decisions not yet in status
    memo.forecasts = {}  # Key -> forecast.Forecast
    memo.pending_seen = {}  # Key -> when GPU pods without a PodScheduled transition time were first seen
    memo.plan_locks = defaultdict(asyncio.Lock)
    memo.policy_wakeup = asyncio.Event()
    live = {name: indexes[name] for name in INDEXES}  # kopf's indexes are live views
    memo.policy_tasks = [
        asyncio.create_task(_policy_loop(memo, logger, live, replan), name="voicefleet policy"),
        asyncio.create_task(_forecast_loop(memo, logger, live), name="voicefleet forecasts"),
    ]


async def stop(memo: kopf.Memo) -> None:
    for task in getattr(memo, "policy_tasks", []):
        task.cancel()
    await asyncio.gather(*getattr(memo, "policy_tasks", []), return_exceptions=True)


async def _policy_loop(
    memo: kopf.Memo, logger: logging.Logger, indexes: dict[str, Any], replan: Replan
) -> None:
    """Re-plan every service, then sleep until the earliest next change, a wake-up, or a minute."""
    while True:
        memo.policy_wakeup.clear()
        for key in list(indexes["ttsservices"]):
            try:
                await replan(key, memo, logger, **indexes)
            except Exception:  # one service's failure must not stop the others' windows
                logger.exception("re-planning %s/%s failed", *key)
        now = datetime.now(timezone.utc)
        edges = [p.next_change for p in memo.plans.values() if p.next_change is not None]
        wait = min([(e - now).total_seconds() for e in edges] + [POLICY_RECHECK_SECONDS])
        try:
            await asyncio.wait_for(memo.policy_wakeup.wait(), timeout=max(wait, 0.2))
        except TimeoutError:
            pass


async def _forecast_loop(memo: kopf.Memo, logger: logging.Logger, indexes: dict[str, Any]) -> None:
    """Forecast each autoscaled service when it has none, when its forecast settings changed, and
    every FORECAST_REFRESH_SECONDS after that."""
    made: dict[Key, tuple[float, str]] = {}  # Key -> (monotonic time, settings) of its last forecast
    while True:
        for key in list(indexes["ttsservices"]):
            entry = _first(indexes["ttsservices"], key)
            try:
                spec = TTSServiceSpec.model_validate((entry or {}).get("spec"))
            except ValidationError:
                continue
            if not spec.autoscaling.enabled:
                memo.forecasts.pop(key, None)
                made.pop(key, None)
                continue
            settings = f"{spec.autoscaling.prometheus_address}|{spec.autoscaling.prewarm.model_dump_json()}"
            last = made.get(key)
            fresh = last is not None and time.monotonic() - last[0] < FORECAST_REFRESH_SECONDS
            if fresh and last is not None and last[1] == settings:
                continue
            made[key] = (time.monotonic(), settings)
            memo.forecasts[key] = await _forecast(key, spec, memo)
            memo.policy_wakeup.set()
        for key in set(made) - set(indexes["ttsservices"]):
            made.pop(key)
        await asyncio.sleep(FORECAST_TICK_SECONDS)


async def _forecast(key: Key, spec: TTSServiceSpec, memo: kopf.Memo) -> fc.Forecast:
    now = datetime.now(timezone.utc)
    prewarm = spec.autoscaling.prewarm
    url = spec.autoscaling.prometheus_address or memo.prometheus_address
    query = fc.history_query(key[0], key[1], spec.autoscaling.queue_depth_window_seconds)
    try:
        samples = await asyncio.to_thread(fc.fetch_history, url, query, now, prewarm.lookback_days)
    except Exception as error:  # any failure of the metrics path means "no forecast", never a crash
        reason = f"{type(error).__name__}: {error}"[:500]
        message = f"no forecast: reading queue history from {url} failed ({reason})"
        return fc.Forecast(now, None, None, 0, message)
    return fc.forecast(samples, now, prewarm.lookback_days, prewarm.horizon_minutes)
