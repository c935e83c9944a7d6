"""Condition types and reasons, in one place (as KEDA's eventreason and NIM's conditions packages do)."""

from __future__ import annotations

READY = "Ready"
PROGRESSING = "Progressing"
DEGRADED = "Degraded"
# Present only while spec.autoscaling.enabled.
AUTOSCALING_UNAVAILABLE = "AutoscalingUnavailable"
# Present only while spec.autoscaling.enabled: the operator cannot read live metrics from Prometheus.
METRICS_UNAVAILABLE = "MetricsUnavailable"

# Ready
ALL_REPLICAS_READY = "AllReplicasReady"
REPLICAS_NOT_READY = "ReplicasNotReady"
NO_REPLICAS = "NoReplicas"
# Progressing
CREATING = "Creating"
ROLLING_OUT = "RollingOut"
ROLLOUT_COMPLETE = "RolloutComplete"
RECONCILING = "Reconciling"
# Degraded
AS_EXPECTED = "AsExpected"
GPU_UNSCHEDULABLE = "GPUUnschedulable"
UNSCHEDULABLE = "Unschedulable"
APPLY_FAILED = "ApplyFailed"
INVALID_SPEC = "InvalidSpec"
# AutoscalingUnavailable
KEDA_MISSING = "KEDACRDsMissing"
SCALED_OBJECTS_APPLIED = "ScaledObjectsApplied"
# MetricsUnavailable (unattributed GPU series land here, not in Degraded: the service still serves)
METRICS_AVAILABLE = "MetricsAvailable"
PROMETHEUS_UNREACHABLE = "PrometheusUnreachable"
SERVER_METRICS_MISSING = "ServerMetricsMissing"
GPU_METRICS_UNATTRIBUTED = "GPUMetricsUnattributed"

# Events for these (type, status) pairs are Warnings; every other transition is Normal.
WARNING_STATES = {
    (READY, "False"), (DEGRADED, "True"), (AUTOSCALING_UNAVAILABLE, "True"), (METRICS_UNAVAILABLE, "True")
}
