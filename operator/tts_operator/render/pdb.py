"""A PodDisruptionBudget per tier: node drains take replicas down one at a time."""

from __future__ import annotations

from typing import Any

from tts_operator.render.common import Owner, TierName, metadata, selector_labels, tier_name


def render_pdb(owner: Owner, tier: TierName) -> dict[str, Any]:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": metadata(owner, tier_name(owner, tier), tier),
        "spec": {
            "maxUnavailable": 1,
            "selector": {"matchLabels": selector_labels(owner, tier)},
            # A pod stuck loading a model must not block a node drain forever.
            "unhealthyPodEvictionPolicy": "AlwaysAllow",
        },
    }
