"""What KEDA and its HPA are doing for one tier, read from their status: pure functions, no I/O.

Shapes are KEDA 2.20's ScaledObject status (``apis/keda/v1alpha1``: conditions Ready/Active/Fallback/
Paused, ``triggersActivity`` and ``health`` keyed by external metric name, ``pausedReplicaCount``) and
autoscaling/v2 HorizontalPodAutoscaler status (``currentMetrics``, ``currentReplicas``,
``desiredReplicas``, ``lastScaleTime``, conditions AbleToScale/ScalingActive/ScalingLimited).

KEDA names the external metric of trigger *i* ``s<i>-<scaler metric>`` (``s0-prometheus``,
``s3-cron-Asia-Shanghai-507xx-09xx``), so the index prefix is how a metric maps back to our trigger
names (``queue-depth``, ``schedule-morning``); cpu/memory triggers become HPA Resource metrics.

Decisions are changes between two readings of the same tier: the HPA's desiredReplicas moving (with the
metric that asks for most, as the HPA itself takes the highest proposal), KEDA's Active, Fallback and
Paused flipping, and the HPA saying a limit (max, min, rate) holds the count back.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tts_operator.render.common import TierName

KEDA = "keda"
HPA = "hpa"
# The KEDA conditions whose flips are decisions (Ready is about the object's validity, not scaling).
KEDA_CONDITIONS = ("Paused", "Active", "Fallback")
# (status, reason, message) of one condition.
Cond = tuple[str, str, str]
_METRIC_INDEX = re.compile(r"^s(\d+)-")
_QUANTITY = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)([a-zA-Z]*)$")
_SUFFIXES = {
    "": 1.0, "n": 1e-9, "u": 1e-6, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15,
    "E": 1e18, "Ki": 2.0**10, "Mi": 2.0**20, "Gi": 2.0**30, "Ti": 2.0**40, "Pi": 2.0**50, "Ei": 2.0**60,
}  # fmt: skip


def quantity(text: str | int | float) -> float:
    """A Kubernetes resource.Quantity ("83", "41500m", "1.5k", "2Gi") as a number."""
    if isinstance(text, (int, float)):
        return float(text)
    found = _QUANTITY.match(text.strip())
    if not found or found.group(2) not in _SUFFIXES:
        raise ValueError(f"not a quantity: {text!r}")
    return float(found.group(1)) * _SUFFIXES[found.group(2)]


@dataclass(frozen=True)
class Reading:
    """One HPA metric as the HPA saw it, with the replica count it asks for."""

    trigger: str
    kind: str  # AverageValue | Value | Utilization
    current: float  # the tier's total for AverageValue, the value for Value, percent for Utilization
    target: float
    proposal: int  # replicas this metric alone asks for (the HPA takes the highest)
    schedule: bool = False  # a KEDA cron trigger: the metric is the window's replica count

    def describe(self) -> str:
        if self.schedule:
            return f"{self.trigger} window open ({self.proposal} replicas)"
        if self.kind == "AverageValue":
            return f"{self.trigger} {_fmt(self.current)} (target {_fmt(self.target)} per replica)"
        if self.kind == "Utilization":
            return f"{self.trigger} {_fmt(self.current)}% (target {_fmt(self.target)}% per pod)"
        return f"{self.trigger} {_fmt(self.current)} (target {_fmt(self.target)})"


@dataclass(frozen=True)
class TierScaling:
    """One reading of a tier's ScaledObject and HPA status."""

    tier: TierName
    active_triggers: tuple[str, ...] = ()
    keda: tuple[tuple[str, Cond], ...] = ()  # (type, condition) for Active, Fallback, Paused
    failing: tuple[tuple[str, int], ...] = ()  # (trigger, failures) KEDA counts as Failing
    fallback: str = ""  # what the fallback holds, in words
    paused_replicas: int | None = None
    hpa_seen: bool = False
    current_replicas: int | None = None
    desired_replicas: int | None = None
    min_replicas: int | None = None
    max_replicas: int | None = None
    limited: Cond | None = None  # the HPA's ScalingLimited condition
    scaling_active: Cond | None = None  # the HPA's ScalingActive condition
    readings: tuple[Reading, ...] = ()
    last_scale_time: str | None = None

    def condition(self, kind: str) -> Cond | None:
        return dict(self.keda).get(kind)

    def driver(self) -> Reading | None:
        """The metric that asks for most replicas (first of equals, in trigger order)."""
        return max(self.readings, key=lambda r: r.proposal, default=None)


def _fmt(value: float) -> str:
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"


def _conditions(status: Mapping[str, Any]) -> dict[str, Cond]:
    return {
        c["type"]: (c.get("status", "Unknown"), c.get("reason", ""), c.get("message", ""))
        for c in status.get("conditions") or []
        if c.get("type")
    }


def _triggers(scaled_object: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(name, type) per trigger in spec order; KEDA allows unnamed triggers, shown by their type."""
    return [
        (t.get("name") or t.get("type", "?"), t.get("type", ""))
        for t in (scaled_object.get("spec") or {}).get("triggers") or []
    ]


def _trigger_of(metric_name: str, triggers: list[tuple[str, str]]) -> tuple[str, str]:
    found = _METRIC_INDEX.match(metric_name)
    if found and int(found.group(1)) < len(triggers):
        return triggers[int(found.group(1))]
    if metric_name == "composite-metric":
        return "scaling formula", ""
    return metric_name, ""


def trim_scaled_object(body: Mapping[str, Any]) -> dict[str, Any]:
    """What tier_scaling reads of a ScaledObject (kept in the operator's index instead of the body)."""
    spec = body.get("spec") or {}
    return {
        "spec": {
            "triggers": [{"name": t.get("name"), "type": t.get("type")} for t in spec.get("triggers") or []],
            "fallback": dict(spec.get("fallback") or {}),
        },
        "status": dict(body.get("status") or {}),
    }


def trim_hpa(body: Mapping[str, Any]) -> dict[str, Any]:
    """What tier_scaling reads of an HPA."""
    spec = body.get("spec") or {}
    return {
        "spec": {k: spec[k] for k in ("metrics", "minReplicas", "maxReplicas") if k in spec},
        "status": dict(body.get("status") or {}),
    }


def _target(metric: Mapping[str, Any], kind: str) -> Mapping[str, Any]:
    return metric.get(kind.lower() if kind != "ContainerResource" else "containerResource") or {}


def _metric_key(metric: Mapping[str, Any]) -> tuple[str, str]:
    """(type, name) identifying a metric in spec.metrics and status.currentMetrics alike."""
    kind = metric.get("type", "")
    inner = _target(metric, kind)
    name = (inner.get("metric") or {}).get("name") or inner.get("name") or ""
    return kind, name


def _readings(hpa: Mapping[str, Any], triggers: list[tuple[str, str]], replicas: int) -> tuple[Reading, ...]:
    targets = {_metric_key(m): m for m in (hpa.get("spec") or {}).get("metrics") or []}
    out = []
    for current_metric in (hpa.get("status") or {}).get("currentMetrics") or []:
        key = _metric_key(current_metric)
        spec_metric = targets.get(key)
        if spec_metric is None:
            continue
        target = _target(spec_metric, key[0]).get("target") or {}
        current = _target(current_metric, key[0]).get("current") or {}
        name, trigger_type = _trigger_of(key[1], triggers) if key[0] == "External" else (key[1], key[0])
        reading = _reading(name, trigger_type, target, current, replicas)
        if reading is not None:
            out.append(reading)
    return tuple(out)


def _reading(
    name: str, trigger_type: str, target: Mapping[str, Any], current: Mapping[str, Any], replicas: int
) -> Reading | None:
    kind = target.get("type", "")
    try:
        if kind == "AverageValue" and "averageValue" in current:
            goal = quantity(target["averageValue"])
            # The HPA reports the total divided by the current replicas; the total is what it scales on.
            total = quantity(current["averageValue"]) * max(replicas, 1)
            return Reading(name, kind, total, goal, math.ceil(round(total / goal, 6)), trigger_type == "cron")
        if kind == "Value" and "value" in current:
            goal, value = quantity(target["value"]), quantity(current["value"])
            return Reading(name, kind, value, goal, math.ceil(round(max(replicas, 1) * value / goal, 6)))
        if kind == "Utilization" and "averageUtilization" in current:
            goal, value = float(target["averageUtilization"]), float(current["averageUtilization"])
            return Reading(name, kind, value, goal, math.ceil(round(max(replicas, 1) * value / goal, 6)))
    except (KeyError, ValueError, ZeroDivisionError):
        return None
    return None


def _fallback_words(fallback: Mapping[str, Any]) -> str:
    replicas = fallback.get("replicas")
    behavior = fallback.get("behavior", "static")
    if replicas is None:
        return ""
    if behavior == "currentReplicasIfHigher":
        return f"holding the current replicas, at least {replicas}"
    if behavior == "currentReplicasIfLower":
        return f"holding the current replicas, at most {replicas}"
    if behavior == "currentReplicas":
        return "holding the current replicas"
    return f"running {replicas} replicas"


def tier_scaling(
    tier: TierName, scaled_object: Mapping[str, Any] | None, hpa: Mapping[str, Any] | None
) -> TierScaling:
    """Read one tier's ScaledObject and HPA (either may be absent, or present without status yet)."""
    scaled_object = scaled_object or {}
    so_status = scaled_object.get("status") or {}
    triggers = _triggers(scaled_object)
    order = {name: i for i, (name, _type) in enumerate(triggers)}
    active = {
        _trigger_of(metric, triggers)[0]
        for metric, activity in (so_status.get("triggersActivity") or {}).items()
        if (activity or {}).get("isActive")
    }
    failing = sorted(
        (_trigger_of(metric, triggers)[0], int(health.get("numberOfFailures") or 0))
        for metric, health in (so_status.get("health") or {}).items()
        if (health or {}).get("status") == "Failing"
    )
    keda_conditions = _conditions(so_status)
    paused = so_status.get("pausedReplicaCount")
    fields: dict[str, Any] = {
        "tier": tier,
        "active_triggers": tuple(sorted(active, key=lambda n: (order.get(n, len(order)), n))),
        "keda": tuple((k, keda_conditions[k]) for k in KEDA_CONDITIONS if k in keda_conditions),
        "failing": tuple(failing),
        "fallback": _fallback_words((scaled_object.get("spec") or {}).get("fallback") or {}),
        "paused_replicas": int(paused) if paused is not None else None,
    }
    if hpa:
        status, spec = hpa.get("status") or {}, hpa.get("spec") or {}
        hpa_conditions = _conditions(status)
        current = status.get("currentReplicas")
        fields.update(
            hpa_seen=True,
            current_replicas=int(current) if current is not None else None,
            desired_replicas=int(status["desiredReplicas"]) if "desiredReplicas" in status else None,
            min_replicas=spec.get("minReplicas", 1),
            max_replicas=spec.get("maxReplicas"),
            limited=hpa_conditions.get("ScalingLimited"),
            scaling_active=hpa_conditions.get("ScalingActive"),
            readings=_readings(hpa, triggers, int(current or 0)),
            last_scale_time=status.get("lastScaleTime"),
        )
    return TierScaling(**fields)


def _decision(time: str, tier: TierName, source: str, action: str, reason: str) -> dict[str, Any]:
    return {"time": time, "tier": tier, "source": source, "action": action[:256], "reason": reason[:1024]}


def _limit_words(scaling: TierScaling) -> str:
    if scaling.limited is None or scaling.limited[0] != "True":
        return ""
    reason = scaling.limited[1]
    if reason == "TooManyReplicas":
        return f"capped at max {scaling.max_replicas}"
    if reason == "TooFewReplicas":
        return f"held at min {scaling.min_replicas}"
    if reason == "ScaleUpLimit":
        return "scale-up rate limited"
    if reason == "ScaleDownLimit":
        return "scale-down rate limited"
    return f"limited ({reason})"


def _why_replicas(scaling: TierScaling) -> str:
    driver = scaling.driver()
    if driver is not None:
        why = driver.describe() if driver.schedule else f"{driver.describe()} asks for {driver.proposal}"
        others = [r for r in scaling.readings if r is not driver]
        if others:
            why += "; " + ", ".join(f"{r.trigger} {r.proposal}" for r in others)
    elif scaling.scaling_active is not None and scaling.scaling_active[0] != "True":
        why = f"{scaling.scaling_active[1]}: {scaling.scaling_active[2]}"
    else:
        why = "no metric readings in the HPA status"
    limit = _limit_words(scaling)
    return f"{why}; {limit}" if limit else why


def _flipped(before: Cond | None, after: Cond | None) -> str | None:
    """'on' when a condition became True, 'off' when it went from True to False, else None."""
    if before is None or after is None or before[0] == after[0]:
        return None
    if after[0] == "True":
        return "on"
    return "off" if before[0] == "True" and after[0] == "False" else None


def decisions(previous: TierScaling | None, current: TierScaling, now: str) -> list[dict[str, Any]]:
    """The scaling decisions between two readings of a tier, oldest first (none on the first reading:
    what changed before the operator looked is unknown)."""
    if previous is None:
        return []
    tier, out = current.tier, []
    for kind in KEDA_CONDITIONS:
        flip = _flipped(previous.condition(kind), current.condition(kind))
        cond = current.condition(kind)
        if flip is None or cond is None:
            continue
        message = cond[2] or cond[1]
        if kind == "Paused":
            action = "paused" if flip == "on" else "resumed"
            if flip == "on" and current.paused_replicas is not None:
                message += f" at {current.paused_replicas} replicas"
        elif kind == "Active":
            action = "active" if flip == "on" else "inactive"
            if flip == "on" and current.active_triggers:
                message += ": " + ", ".join(current.active_triggers)
        else:
            action = "fallback on" if flip == "on" else "fallback off"
            if flip == "on":
                failing = ", ".join(f"{name} ({n} failures)" for name, n in current.failing)
                message += "".join(f"; {part}" for part in (f"failing: {failing}" if failing else "",
                                                             current.fallback) if part)  # fmt: skip
        out.append(_decision(now, tier, KEDA, action, message))
    if (
        previous.hpa_seen
        and current.desired_replicas is not None
        and previous.desired_replicas is not None
        and current.desired_replicas != previous.desired_replicas
    ):
        action = f"replicas {previous.desired_replicas} -> {current.desired_replicas}"
        out.append(_decision(current.last_scale_time or now, tier, HPA, action, _why_replicas(current)))
    elif previous.hpa_seen and _flipped(previous.limited, current.limited) == "on" and current.limited:
        reason = f"{current.limited[1]}: {current.limited[2]}"
        out.append(_decision(now, tier, HPA, _limit_words(current), reason))
    return out
