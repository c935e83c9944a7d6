"""Names, labels and owner references shared by every child manifest."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Literal

from tts_operator import API_VERSION, FIELD_MANAGER, KIND

TierName = Literal["gpu", "cpu"]

LABEL_SERVICE = "voicefleet.io/service"
LABEL_TIER = "voicefleet.io/tier"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
ANNOTATION_CONFIG_HASH = "voicefleet.io/config-hash"
CONTAINER_PORT = 8080
CONTAINER_NAME = "tts-server"


@dataclass(frozen=True)
class Owner:
    """The TTSService a child belongs to."""

    name: str
    namespace: str
    uid: str


def tier_name(owner: Owner, tier: TierName) -> str:
    return f"{owner.name}-{tier}"


def config_map_name(owner: Owner) -> str:
    return f"{owner.name}-config"


def selector_labels(owner: Owner, tier: TierName | None = None) -> dict[str, str]:
    """Labels selectors match on; stable forever because Deployment selectors are immutable."""
    labels = {LABEL_SERVICE: owner.name}
    if tier is not None:
        labels[LABEL_TIER] = tier
    return labels


def common_labels(owner: Owner, tier: TierName | None = None) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "voicefleet-tts",
        "app.kubernetes.io/instance": owner.name,
        "app.kubernetes.io/component": f"tts-{tier}" if tier else "tts",
        LABEL_MANAGED_BY: FIELD_MANAGER,
        **selector_labels(owner, tier),
    }


def metadata(owner: Owner, name: str, tier: TierName | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": owner.namespace,
        "labels": common_labels(owner, tier),
        # The controller owner reference makes the garbage collector delete children with the TTSService,
        # so the operator needs no delete handler (and no finalizer for it).
        "ownerReferences": [
            {
                "apiVersion": API_VERSION,
                "kind": KIND,
                "name": owner.name,
                "uid": owner.uid,
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ],
    }


def content_hash(data: Any) -> str:
    """Short stable hash, used to roll pods when their ConfigMap changes."""
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]
