"""Pure functions from a TTSService spec to the manifests of its children (no I/O here)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tts_operator.render.common import Owner, TierName, content_hash
from tts_operator.render.configmap import render_config_map
from tts_operator.render.deployment import render_deployment
from tts_operator.render.pdb import render_pdb
from tts_operator.render.scaledobject import DEFAULT_PROMETHEUS_ADDRESS, TierBounds, render_scaled_object
from tts_operator.render.service import render_service
from tts_operator.spec import TTSServiceSpec


def tiers_of(spec: TTSServiceSpec) -> list[TierName]:
    tiers: list[TierName] = []
    if spec.tiers.gpu is not None:
        tiers.append("gpu")
    if spec.tiers.cpu is not None:
        tiers.append("cpu")
    return tiers


def render_children(
    owner: Owner,
    spec: TTSServiceSpec,
    *,
    prometheus_address: str = DEFAULT_PROMETHEUS_ADDRESS,
    keda_available: bool = True,
    bounds: Mapping[TierName, TierBounds] | None = None,
) -> list[dict[str, Any]]:
    """Every child in apply order: config before the pods that read it, the Service last.

    With autoscaling on, each tier gets a ScaledObject and its Deployment leaves replicas to KEDA's HPA.
    Without KEDA's CRDs there is nothing to own replicas, so the Deployment runs at the tier's warm
    floor instead (the status says AutoscalingUnavailable).

    `bounds` are the operator policy's per-tier bounds in force now (``policy.decide``): they go into
    the ScaledObjects, or, without KEDA, fix the Deployments' replicas.
    """
    config_map = render_config_map(owner, spec)
    config_hash = content_hash(config_map["data"])
    children = [config_map]
    autoscaled = spec.autoscaling.enabled and keda_available
    for tier in tiers_of(spec):
        tier_bounds = (bounds or {}).get(tier)
        replicas = tier_bounds.replicas if tier_bounds is not None and spec.autoscaling.enabled else None
        children.append(
            render_deployment(owner, spec, tier, config_hash, autoscaled=autoscaled, replicas=replicas)
        )
        children.append(render_pdb(owner, tier))
        if autoscaled:
            children.append(render_scaled_object(owner, spec, tier, prometheus_address, tier_bounds))
    children.append(render_service(owner, spec))
    return children


__all__ = ["Owner", "TierBounds", "render_children", "tiers_of"]
