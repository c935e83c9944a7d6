"""Thin kopf handlers: read spec -> render -> server-side apply -> status and Events.

Reconcile is level-based and idempotent: create, update and resume all apply the full desired state.
Children are watched (by our managed-by label) instead of polled by a timer, so a deleted or hand-edited
child is re-applied within a second and no finalizer is ever added to a TTSService. Live metrics come from
an asyncio task started with the operator (a kopf timer would add finalizers); KEDA's and the HPA's
decisions from watches on ScaledObjects and HPAs.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import defaultdict
from datetime import datetime, timezone
from typing import Any

import kopf
from pydantic import ValidationError

from tts_operator import (
    API_VERSION,
    FIELD_MANAGER,
    GROUP,
    KIND,
    PLURAL,
    VERSION,
    metrics,
    observe,
    policy_runtime,
)  # fmt: skip
from tts_operator import conditions as c
from tts_operator.credentials import load as load_credentials
from tts_operator.drift import matches
from tts_operator.kube import ApiError, KubeClient
from tts_operator.policy import Plan
from tts_operator.render import Owner, render_children, tiers_of
from tts_operator.render.common import LABEL_MANAGED_BY, LABEL_SERVICE, LABEL_TIER, TierName, tier_name
from tts_operator.render.scaledobject import DEFAULT_PROMETHEUS_ADDRESS
from tts_operator.scaling_status import decisions, tier_scaling, trim_hpa, trim_scaled_object
from tts_operator.spec import TTSServiceSpec
from tts_operator.status import (
    DECISIONS_KEPT,
    DeploymentState,
    Live,
    Observed,
    changed_conditions,
    compute_status,
    invalid_spec_status,
    metrics_verdict,
    status_patch,
    with_live,
    with_policy,
)

MANAGED = {LABEL_MANAGED_BY: FIELD_MANAGER}
PROMETHEUS_ADDRESS_ENV = "VOICEFLEET_PROMETHEUS_ADDRESS"
METRICS_INTERVAL_ENV = "VOICEFLEET_METRICS_INTERVAL"
DEFAULT_METRICS_INTERVAL = 30.0
# Services read from Prometheus at once; the rest wait for a slot (each read is a worker thread).
OBSERVE_CONCURRENCY = 8
KEDA_API = ("keda.sh/v1alpha1", "scaledobjects")
REPAIR_BACKOFF = (1, 2, 4, 8, 16)
Key = tuple[str, str]


# ---- setup ------------------------------------------------------------------------------------------


@kopf.on.login()
def login(**_: Any) -> kopf.ConnectionInfo:
    creds = load_credentials()
    return kopf.ConnectionInfo(
        server=creds.server,
        ca_path=creds.ca_path,
        ca_data=creds.ca_data,
        insecure=creds.insecure,
        certificate_path=creds.certificate_path,
        certificate_data=creds.certificate_data,
        private_key_path=creds.private_key_path,
        private_key_data=creds.private_key_data,
        scheme="Bearer" if creds.bearer_token() else None,
        token=creds.bearer_token(),
        default_namespace=creds.default_namespace,
    )


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **kwargs: Any) -> None:
    # Kopf adds a finalizer only for timers, daemons and non-optional delete handlers; we have none, but
    # name it after our group so that, if that ever changes, it is recognisable (see operator/README.md).
    settings.persistence.finalizer = f"{GROUP}/finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration"
    )
    # Kopf would post an Event per handler run; we post our own, only when a condition changes.
    settings.posting.enabled = False
    memo.client = KubeClient(load_credentials())
    memo.applied = {}  # Key -> generation applied successfully
    memo.errors = {}  # Key -> (reason, message) of the last failed reconcile
    memo.last_status = {}  # Key -> status we last wrote (newer than the watch may have delivered)
    memo.locks = defaultdict(asyncio.Lock)
    # Operator-wide default for spec.autoscaling.prometheusAddress (tts-operator --prometheus-address).
    memo.prometheus_address = os.environ.get(PROMETHEUS_ADDRESS_ENV) or DEFAULT_PROMETHEUS_ADDRESS
    # Re-checked on every reconcile, so installing KEDA later takes effect on the next change. A dict,
    # not an attribute: kopf gives each watched object a shallow copy of this memo, so only mutations of
    # shared containers reach the handlers of other objects (Deployments, Pods).
    memo.keda = {"available": True}
    policy_runtime.start(memo, kwargs["logger"], kwargs, replan)
    _start_observer(memo, kwargs)


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    memo.observer.cancel()
    await policy_runtime.stop(memo)
    await memo.client.close()


# ---- indexes: in-memory views the handlers read instead of calling the API ---------------------------


@kopf.index(GROUP, VERSION, PLURAL)
def ttsservices(
    namespace: str, name: str, uid: str, meta: kopf.Meta, spec: kopf.Spec, status: kopf.Status, **_: Any
) -> dict:
    return {
        (namespace, name): {
            "uid": uid,
            "generation": meta.get("generation", 0),
            "deleting": meta.get("deletionTimestamp") is not None,
            "spec": dict(spec),
            "status": dict(status),
        }
    }


@kopf.index("apps", "v1", "deployments", labels=MANAGED)
def tier_deployments(namespace: str, labels: kopf.Labels, body: kopf.Body, **_: Any) -> dict:
    service, tier = labels.get(LABEL_SERVICE), labels.get(LABEL_TIER)
    if not service or tier not in ("gpu", "cpu"):
        return {}
    return {(namespace, service): (tier, DeploymentState.from_body(dict(body)))}


@kopf.index("v1", "pods", labels=MANAGED)
def unschedulable_pods(namespace: str, labels: kopf.Labels, status: kopf.Status, **_: Any) -> dict:
    for cond in status.get("conditions") or []:
        if (
            cond.get("type") == "PodScheduled"
            and cond.get("status") == "False"
            and cond.get("reason") == "Unschedulable"
        ):
            return {
                (namespace, labels.get(LABEL_SERVICE, "")): (labels.get(LABEL_TIER), cond.get("message", ""))
            }
    return {}


@kopf.index("keda.sh", "v1alpha1", "scaledobjects", labels=MANAGED)
def tier_scaled_objects(namespace: str, labels: kopf.Labels, body: kopf.Body, **_: Any) -> dict:
    return _by_tier(namespace, labels, trim_scaled_object(body))


# KEDA copies the ScaledObject's labels onto the HPA it creates, ours included. kopf starts no handler
# before every index is filled, so without list/watch on HPAs (chart RBAC) the operator would stall.
@kopf.index("autoscaling", "v2", "horizontalpodautoscalers", labels=MANAGED)
def tier_hpas(namespace: str, labels: kopf.Labels, body: kopf.Body, **_: Any) -> dict:
    return _by_tier(namespace, labels, trim_hpa(body))


def _by_tier(namespace: str, labels: kopf.Labels, value: dict[str, Any]) -> dict:
    service, tier = labels.get(LABEL_SERVICE), labels.get(LABEL_TIER)
    if not service or tier not in ("gpu", "cpu"):
        return {}
    return {(namespace, service): (tier, value)}


def _first(index: kopf.Index, key: Key) -> Any:
    return next(iter(index[key])) if key in index else None


def _of_tier(index: kopf.Index, key: Key, tier: TierName) -> Any:
    return next((value for t, value in index.get(key, []) if t == tier), None)


# ---- reconcile ----------------------------------------------------------------------------------------


@kopf.on.resume(GROUP, VERSION, PLURAL)
@kopf.on.create(GROUP, VERSION, PLURAL)
@kopf.on.update(GROUP, VERSION, PLURAL)
async def reconcile(
    name: str,
    namespace: str,
    uid: str,
    spec: kopf.Spec,
    meta: kopf.Meta,
    memo: kopf.Memo,
    logger: logging.Logger,
    **kwargs: Any,
) -> None:
    key = (namespace, name)
    started = time.monotonic()
    try:
        parsed = TTSServiceSpec.model_validate(dict(spec))
    except ValidationError as error:
        metrics.RECONCILES.labels("invalid").inc()
        await refresh_status(key, memo, logger, **kwargs)
        raise kopf.PermanentError(f"invalid spec: {error}") from error
    owner = Owner(name, namespace, uid)
    memo.keda["available"] = await memo.client.serves(*KEDA_API)
    async with memo.plan_locks[key]:
        plan = policy_runtime.plan_for(key, parsed, memo, kwargs)
        policy_runtime.remember(key, plan, memo)  # before applying: drift repair of a child renders with it
        children = _render(owner, parsed, memo, plan)
        results = await asyncio.gather(*(memo.client.apply(ch) for ch in children), return_exceptions=True)
    failures = [
        (child, r) for child, r in zip(children, results, strict=True) if isinstance(r, BaseException)
    ]
    if failures and all(isinstance(r, ApiError) and r.namespace_gone for _, r in failures):
        return  # the whole namespace is going away, this TTSService with it
    await _prune_removed_tiers(owner, parsed, memo, kwargs["tier_deployments"])
    metrics.RECONCILE_SECONDS.observe(time.monotonic() - started)
    if failures:
        for child, _error in failures:
            metrics.APPLY_ERRORS.labels(child["kind"]).inc()
        message = "; ".join(
            f"{child['kind']} {child['metadata']['name']}: {error}" for child, error in failures
        )
        memo.errors[key] = (c.APPLY_FAILED, message[:2000])
        metrics.RECONCILES.labels("error").inc()
        await refresh_status(key, memo, logger, **kwargs)
        raise kopf.TemporaryError(f"apply failed: {message}", delay=10)
    memo.errors.pop(key, None)
    memo.applied[key] = meta.get("generation")
    metrics.MANAGED.set(len(memo.applied))
    metrics.RECONCILES.labels("ok").inc()
    logger.info("applied %d children for generation %s", len(children), meta.get("generation"))
    await refresh_status(key, memo, logger, **kwargs)


def _render(
    owner: Owner, spec: TTSServiceSpec, memo: kopf.Memo, plan: Plan | None = None
) -> list[dict[str, Any]]:
    """`plan`: the policy's bounds to apply; by default the last applied (drift repair keeps them)."""
    plan = plan or memo.plans.get((owner.namespace, owner.name))
    return render_children(
        owner, spec, prometheus_address=memo.prometheus_address, keda_available=memo.keda["available"],
        bounds=plan.tiers if plan is not None else None,
    )  # fmt: skip


async def _prune_removed_tiers(
    owner: Owner, spec: TTSServiceSpec, memo: kopf.Memo, deployments: kopf.Index
) -> None:
    """A tier dropped from the spec takes its Deployment, PDB and ScaledObject with it; autoscaling
    switched off takes the ScaledObjects (deleting one that is not there is a cheap 404)."""
    present = {tier for tier, _state in deployments.get((owner.namespace, owner.name), [])}
    kinds = ("Deployment", "PodDisruptionBudget", "ScaledObject") if memo.keda["available"] else (
        "Deployment", "PodDisruptionBudget")  # fmt: skip
    for tier in present - set(tiers_of(spec)):
        for kind in kinds:
            await memo.client.delete(kind, owner.namespace, tier_name(owner, tier))
    if memo.keda["available"] and not spec.autoscaling.enabled:
        for tier in tiers_of(spec):
            await memo.client.delete("ScaledObject", owner.namespace, tier_name(owner, tier))


# ---- children: drift repair and status refresh ---------------------------------------------------------


@kopf.on.event("apps", "v1", "deployments", labels=MANAGED)
@kopf.on.event("v1", "services", labels=MANAGED)
@kopf.on.event("v1", "configmaps", labels=MANAGED)
@kopf.on.event("policy", "v1", "poddisruptionbudgets", labels=MANAGED)
@kopf.on.event("keda.sh", "v1alpha1", "scaledobjects", labels=MANAGED)
async def child_changed(
    type: str | None, body: kopf.Body, resource: kopf.Resource, namespace: str, name: str,
    labels: kopf.Labels, memo: kopf.Memo, logger: logging.Logger, **kwargs: Any,
) -> None:  # fmt: skip
    key = (namespace, labels.get(LABEL_SERVICE, ""))
    owner_entry = _first(kwargs["ttsservices"], key)
    if owner_entry is None or owner_entry["deleting"] or key not in memo.applied:
        return  # the owner is gone (the garbage collector handles the child) or not reconciled yet
    try:
        spec = TTSServiceSpec.model_validate(owner_entry["spec"])
    except ValidationError:
        return
    owner = Owner(key[1], namespace, owner_entry["uid"])
    kind = resource.kind  # listed objects carry no kind of their own
    desired = next(
        (ch for ch in _render(owner, spec, memo) if ch["kind"] == kind and ch["metadata"]["name"] == name),
        None,
    )
    if desired is None:
        if type != "DELETED":
            logger.info("deleting %s %s: its tier left the spec", kind, name)
            await memo.client.delete(kind, namespace, name)
    elif type == "DELETED" or not matches(desired, dict(body)):
        if type == "DELETED" and not await _owner_alive(memo.client, owner):
            return  # collected with its owner, whose own DELETED event is still on its way
        logger.info("repairing %s %s (%s)", kind, name, "deleted" if type == "DELETED" else "edited")
        metrics.DRIFT_REPAIRS.labels(kind).inc()
        await _repair(memo.client, desired, logger)
    if kind == "Deployment":
        await refresh_status(key, memo, logger, **kwargs)


async def _owner_alive(client: KubeClient, owner: Owner) -> bool:
    """Ask the API server, not the index: the watches of a TTSService and of its children are separate
    streams, so a child's deletion by the garbage collector can arrive before its owner's deletion, and
    re-creating the child then would only feed the collector again. One GET, on deletions only."""
    try:
        found = await client.get(KIND, owner.namespace, owner.name)
    except ApiError:
        return True  # cannot tell: repairing a live service's child matters more than a wasted apply
    return (
        found is not None
        and found["metadata"].get("uid") == owner.uid
        and found["metadata"].get("deletionTimestamp") is None
    )


async def _repair(client: KubeClient, desired: dict[str, Any], logger: logging.Logger) -> None:
    """Re-apply one child, retrying here: kopf never retries event handlers, and after a deletion no
    further event may come to try again."""
    kind, name = desired["kind"], desired["metadata"]["name"]
    for delay in (*REPAIR_BACKOFF, None):
        try:
            await client.apply(desired)
            return
        except ApiError as error:
            if error.namespace_gone:
                return
            metrics.APPLY_ERRORS.labels(kind).inc()
            if delay is None:
                break
            logger.warning("repair of %s %s failed (%s); retrying in %s s", kind, name, error, delay)
            await asyncio.sleep(delay)
    logger.error("giving up repairing %s %s; the next change or operator restart retries", kind, name)


@kopf.on.event("v1", "pods", labels=MANAGED)
async def pod_changed(
    namespace: str, labels: kopf.Labels, memo: kopf.Memo, logger: logging.Logger, **kwargs: Any
) -> None:
    # Only scheduling matters here (GPU shortage); readiness arrives through the Deployment's status.
    key = (namespace, labels.get(LABEL_SERVICE, ""))
    await replan(key, memo, logger, **kwargs)  # GPU pods stuck or placed again: CPU fallback
    await refresh_status(key, memo, logger, **kwargs)


@kopf.on.event(GROUP, VERSION, PLURAL)
async def service_gone(type: str | None, namespace: str, name: str, memo: kopf.Memo, **_: Any) -> None:
    if type == "DELETED":
        key = (namespace, name)
        for state in (memo.applied, memo.errors, memo.last_status, memo.locks, memo.live, memo.scaling_seen,
                      memo.scaling_decisions):  # fmt: skip
            state.pop(key, None)
        policy_runtime.forget_service(key, memo)
        metrics.MANAGED.set(len(memo.applied))


async def refresh_status(key: Key, memo: kopf.Memo, logger: logging.Logger, **kwargs: Any) -> None:
    """Recompute status from the indexes; patch it and post Events only when something changed."""
    async with memo.locks[key]:
        entry = _first(kwargs["ttsservices"], key)
        if entry is None or entry["deleting"]:
            return
        try:
            spec: TTSServiceSpec | None = TTSServiceSpec.model_validate(entry["spec"])
            invalid = ""
        except ValidationError as error:
            spec, invalid = None, str(error).replace("\n", " ")[:1000]
        previous = memo.last_status.get(key) or entry["status"]
        owner = Owner(key[1], key[0], entry["uid"])
        deployments: dict[TierName, DeploymentState] = dict(kwargs["tier_deployments"].get(key, []))
        unschedulable: dict[TierName, list[str]] = {}
        for tier, message in kwargs["unschedulable_pods"].get(key, []):
            unschedulable.setdefault(tier, []).append(message)
        observed = Observed(
            generation=entry["generation"],
            applied_generation=memo.applied.get(key, previous.get("observedGeneration")),
            deployments=deployments,
            unschedulable=unschedulable,
            error=memo.errors.get(key),
            keda_available=memo.keda["available"],
        )
        now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        recorded: list[dict[str, Any]] = []  # the policy's decisions this status write records
        if spec is None:
            new = invalid_spec_status(observed, invalid, previous, now)
        else:
            new = compute_status(owner, spec, observed, previous, now)
            recorded = list(memo.pending_decisions.get(key, ()))
            new = with_policy(new, memo.plans.get(key), previous, recorded)
        new = with_live(new, previous, _live(key, spec, memo, previous, kwargs), entry["generation"], now)
        patch = status_patch(previous, new)
        if patch is None:
            policy_runtime.drop_recorded(key, memo, recorded)
            return
        try:
            await memo.client.patch_status(key[0], key[1], patch)
        except ApiError as error:
            if error.status == 404:
                return
            raise
        metrics.STATUS_UPDATES.inc()
        policy_runtime.drop_recorded(key, memo, recorded)
        for cond in changed_conditions(previous, new):
            await _post_event(memo.client, owner, cond, logger)
        memo.last_status[key] = new



# ---- live status: Prometheus read by a background loop, KEDA/HPA state by watches ----------------------


def _start_observer(memo: kopf.Memo, kwargs: dict[str, Any]) -> None:
    """Start the loop that reads live metrics. An asyncio task, not a kopf timer: timers put a finalizer
    on every TTSService, and this operator adds none."""
    memo.live = {}  # Key -> (LiveMetrics, MetricsVerdict, tiers ready at that read)
    memo.scaling_seen = {}  # Key -> {tier: TierScaling last read}
    memo.scaling_decisions = {}  # Key -> KEDA/HPA decisions not yet in the status
    interval = float(os.environ.get(METRICS_INTERVAL_ENV) or DEFAULT_METRICS_INTERVAL)
    indices = {name: value for name, value in kwargs.items() if isinstance(value, kopf.Index)}
    logger = logging.getLogger("tts_operator.observe")
    memo.observer = asyncio.create_task(_observe_forever(memo, indices, interval, logger))


async def _observe_forever(
    memo: kopf.Memo, indices: dict[str, kopf.Index], interval: float, logger: logging.Logger
) -> None:
    limit = asyncio.Semaphore(OBSERVE_CONCURRENCY)
    timeout = min(observe.DEFAULT_TIMEOUT_SECONDS, max(1.0, interval))
    while True:
        started = time.monotonic()
        # Only services this operator reconciled: a standby replica (peering) reconciles nothing.
        keys = [key for key in list(indices["ttsservices"]) if key in memo.applied]
        await asyncio.gather(*(_observe_one(key, memo, indices, limit, timeout, logger) for key in keys))
        await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))


def _live_spec(services: kopf.Index, key: Key) -> TTSServiceSpec | None:
    """The spec of a TTSService that exists, is not being deleted and passes the models; else None."""
    entry = _first(services, key)
    if entry is None or entry["deleting"]:
        return None
    try:
        return TTSServiceSpec.model_validate(entry["spec"])
    except ValidationError:
        return None


async def _observe_one(
    key: Key, memo: kopf.Memo, indices: dict[str, kopf.Index], limit: asyncio.Semaphore, timeout: float,
    logger: logging.Logger,
) -> None:  # fmt: skip
    try:
        spec = _live_spec(indices["ttsservices"], key)
        if spec is None:
            return
        if not spec.autoscaling.enabled:
            memo.live.pop(key, None)  # the reconcile of that spec change took the live keys out
            return
        address = spec.autoscaling.prometheus_address or memo.prometheus_address
        ready_now = {tier for tier, state in indices["tier_deployments"].get(key, []) if state.ready > 0}
        async with limit:
            found = await observe.observe(key[0], key[1], spec, address, timeout)
        ready_before = memo.live[key][2] if key in memo.live else set()
        memo.live[key] = (found, metrics_verdict(spec, found, ready_now & ready_before), ready_now)
        await refresh_status(key, memo, logger, **indices)
    except Exception:  # one service's trouble must not end the loop for all
        logger.exception("live status of %s/%s failed", *key)


def _live(
    key: Key, spec: TTSServiceSpec | None, memo: kopf.Memo, previous: dict[str, Any], kwargs: dict[str, Any]
) -> Live | None:
    """What with_live adds to the status of `key`; None when autoscaling is off (the live keys go)."""
    if spec is None or not spec.autoscaling.enabled:
        return None
    found, verdict, _ready = memo.live.get(key, (None, None, set()))
    active = {}
    for tier in tiers_of(spec):
        scaled_object = _of_tier(kwargs["tier_scaled_objects"], key, tier)
        if scaled_object is not None:
            active[tier] = list(tier_scaling(tier, scaled_object, None).active_triggers)
    recorded = previous.get("decisions") or []
    pending = [d for d in memo.scaling_decisions.get(key, []) if d not in recorded][-DECISIONS_KEPT:]
    memo.scaling_decisions[key] = pending
    return Live(found, verdict, active, pending)


@kopf.on.event("keda.sh", "v1alpha1", "scaledobjects", labels=MANAGED)
@kopf.on.event("autoscaling", "v2", "horizontalpodautoscalers", labels=MANAGED)
async def scaling_changed(
    namespace: str, labels: kopf.Labels, memo: kopf.Memo, logger: logging.Logger, **kwargs: Any
) -> None:
    """A tier's ScaledObject or HPA changed: note KEDA's and the HPA's decisions, refresh the status."""
    key, tier = (namespace, labels.get(LABEL_SERVICE, "")), labels.get(LABEL_TIER)
    if tier not in ("gpu", "cpu"):
        return
    current = tier_scaling(
        tier, _of_tier(kwargs["tier_scaled_objects"], key, tier), _of_tier(kwargs["tier_hpas"], key, tier)
    )
    seen = memo.scaling_seen.setdefault(key, {})
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    found = decisions(seen.get(tier), current, now)
    seen[tier] = current
    if key not in memo.applied:
        return
    for decision in found:
        logger.info("%s tier: %s %s (%s)", tier, decision["source"], decision["action"], decision["reason"])
    memo.scaling_decisions.setdefault(key, []).extend(found)
    await refresh_status(key, memo, logger, **kwargs)


async def _post_event(client: KubeClient, owner: Owner, cond: dict[str, Any], logger: logging.Logger) -> None:
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    warning = (cond["type"], cond["status"]) in c.WARNING_STATES
    event = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{owner.name}.", "namespace": owner.namespace},
        "involvedObject": {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "name": owner.name,
            "namespace": owner.namespace,
            "uid": owner.uid,
        },
        "type": "Warning" if warning else "Normal",
        "reason": cond["reason"],
        "message": f"{cond['type']}={cond['status']}: {cond['message']}",
        "source": {"component": FIELD_MANAGER},
        "reportingComponent": FIELD_MANAGER,
        "reportingInstance": FIELD_MANAGER,
        "firstTimestamp": now.split(".")[0] + "Z",
        "lastTimestamp": now.split(".")[0] + "Z",
        "count": 1,
    }
    try:
        await client.create_event(owner.namespace, event)
        metrics.EVENTS_POSTED.labels(cond["reason"]).inc()
    except ApiError as error:  # an Event is best effort; never fail a reconcile over it
        logger.warning("could not post event %s: %s", cond["reason"], error)


# ---- operator policy: schedule bounds, CPU fallback, pre-warm (policy.py decides, policy_runtime.py ----
# keeps its state and loops; here only the pod index it reads and the re-plan that applies it)


@kopf.index("v1", "pods", labels=MANAGED)
def gpu_pending_since(namespace: str, labels: kopf.Labels, status: kopf.Status, **_: Any) -> dict:
    """GPU pods the scheduler cannot place, with since when (their PodScheduled=False transition)."""
    if labels.get(LABEL_TIER) != "gpu":
        return {}
    for cond in status.get("conditions") or []:
        if (cond.get("type"), cond.get("status"), cond.get("reason")) == (
            "PodScheduled", "False", "Unschedulable"
        ):
            return {(namespace, labels.get(LABEL_SERVICE, "")): cond.get("lastTransitionTime") or ""}
    return {}


async def replan(key: Key, memo: kopf.Memo, logger: logging.Logger, **kwargs: Any) -> None:
    """Decide again and, when the bounds moved, apply the ScaledObjects (or, without KEDA, the
    Deployments) and refresh status. Cheap when nothing changed: no API call."""
    spec = _live_spec(kwargs["ttsservices"], key) if key in memo.applied else None
    if spec is None or not spec.autoscaling.enabled:
        return
    uid = _first(kwargs["ttsservices"], key)["uid"]
    async with memo.plan_locks[key]:
        plan = policy_runtime.plan_for(key, spec, memo, kwargs)
        before = memo.plans.get(key)
        if before is not None and before.tiers == plan.tiers and before.prewarm == plan.prewarm:
            memo.plans[key] = plan  # same bounds; keep the fresher next_change
            policy_runtime.wake_if_sooner(before, plan, memo)
            return
        kind = "ScaledObject" if memo.keda["available"] else "Deployment"
        owner = Owner(key[1], key[0], uid)
        policy_runtime.remember(key, plan, memo)
        children = [ch for ch in _render(owner, spec, memo, plan) if ch["kind"] == kind]
        try:
            for child in children:
                await memo.client.apply(child)
        except ApiError as error:
            policy_runtime.forget(key, plan, before, memo)  # so the next pass of the policy loop tries again
            logger.warning("applying the policy's bounds failed (%s)", error)
            return
    logger.info("policy bounds now %s", plan.bounds())
    await refresh_status(key, memo, logger, **kwargs)
