"""Optional bearer API key for synthesis and catalogue routes."""

from __future__ import annotations

import hmac

from fastapi import Request

from tts_server.api.errors import ApiError
from tts_server.api.state import server_state


def require_api_key(request: Request) -> None:
    key = server_state(request).settings.api_key
    if key is None:
        return
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        token.strip().encode(), key.get_secret_value().encode()
    ):
        raise ApiError(401, "invalid_api_key", "missing or invalid API key (Authorization: Bearer <key>)")
