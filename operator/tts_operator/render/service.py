"""One Service in front of every tier: clients need not know which tier answers."""

from __future__ import annotations

from typing import Any

from tts_operator.render.common import Owner, metadata, selector_labels
from tts_operator.spec import TTSServiceSpec


def render_service(owner: Owner, spec: TTSServiceSpec) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(owner, owner.name),
        "spec": {
            "type": spec.service.type,
            "selector": selector_labels(owner),
            "ports": [{"name": "http", "port": spec.service.port, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def endpoint(owner: Owner, spec: TTSServiceSpec) -> str:
    return f"http://{owner.name}.{owner.namespace}.svc:{spec.service.port}"
