"""Has a child drifted from what we rendered? Pure comparison, no I/O."""

from __future__ import annotations

from typing import Any


def matches(desired: Any, actual: Any) -> bool:
    """True when every field we render is present in `actual` with the same value.

    Fields we do not render (defaults the API server adds, status, replicas an autoscaler owns) are
    ignored, so only a hand edit or deletion of *our* fields counts as drift. Lists must match item by
    item because we own them whole (containers, env, ports).
    """
    if isinstance(desired, dict):
        if not isinstance(actual, dict):
            return False
        return all(key in actual and matches(value, actual[key]) for key, value in desired.items())
    if isinstance(desired, list):
        if not isinstance(actual, list) or len(desired) != len(actual):
            return False
        return all(matches(d, a) for d, a in zip(desired, actual, strict=True))
    return bool(desired == actual)
