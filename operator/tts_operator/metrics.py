"""The operator's own Prometheus metrics, defined once."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, start_http_server

RECONCILES = Counter("voicefleet_operator_reconciles_total", "Reconciles of a TTSService", ["result"])
RECONCILE_SECONDS = Histogram(
    "voicefleet_operator_reconcile_duration_seconds",
    "Render + apply time of one TTSService",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
APPLY_ERRORS = Counter("voicefleet_operator_apply_errors_total", "Failed server-side applies", ["kind"])
DRIFT_REPAIRS = Counter(
    "voicefleet_operator_drift_repairs_total", "Children re-applied after drift", ["kind"]
)
STATUS_UPDATES = Counter("voicefleet_operator_status_updates_total", "Status patches written")
EVENTS_POSTED = Counter("voicefleet_operator_events_total", "Events posted on condition changes", ["reason"])
MANAGED = Gauge("voicefleet_operator_managed_services", "TTSServices this operator has reconciled")


def serve(address: str, port: int) -> None:
    start_http_server(port, addr=address)
