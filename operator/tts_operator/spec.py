"""Pydantic models of TTSService ``spec`` and ``status``: the single source of truth.

The CRD's OpenAPI schema is generated from these models (see ``crd.py``), so field descriptions here are
what ``kubectl explain tts.spec...`` prints, and defaults here are the defaults the API server applies.
Cross-field rules that the API server must enforce at apply time are CEL expressions attached with
``cel(...)``; the same rules are checked by the models so unit tests and the server agree.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, model_validator
from pydantic.alias_generators import to_camel

# Kubernetes resource.Quantity, as controller-gen writes it for int-or-string fields.
QUANTITY_PATTERN = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
    r"(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
# A qualified extended resource name such as nvidia.com/gpu or amd.com/gpu.
RESOURCE_NAME_PATTERN = (  # fmt: skip
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
)
DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
PROM_LABEL_PATTERN = r"^[a-zA-Z_][a-zA-Z0-9_]*$"
# Five space-separated fields of digits, '*', ',', '-', '/' (the semantic check is triggers.parse_cron).
CRON_PATTERN = r"^[0-9*,/-]+( +[0-9*,/-]+){4}$"
RESERVED_LABEL_PREFIX = "voicefleet.io/"
# Children are named <name>-gpu / <name>-cpu and the name is a label value (<= 63 characters).
MAX_NAME_LENGTH = 52

# The names tts-server's engine registry knows (a contract test keeps the two lists equal).
Engine = Literal["baker", "baker-litert", "sambert-hifigan", "emotivoice"]
Precision = Literal["fp16", "bf16", "fp32"]
Quantity = int | Annotated[str, StringConstraints(pattern=QUANTITY_PATTERN)]


def cel(rule: str, message: str) -> dict[str, Any]:
    """A CEL validation rule for the generated CRD (``x-kubernetes-validations``)."""
    return {"x-kubernetes-validations": [{"rule": rule, "message": message}]}


class _Model(BaseModel):
    """camelCase on the wire (Kubernetes convention), snake_case in Python; unknown fields are errors."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class ModelCache(_Model):
    """Where downloaded model files are kept inside the pod."""

    size_limit: Quantity = Field(
        "20Gi", description="Size limit of the model cache emptyDir (unused with claimName)."
    )
    mount_path: str = Field(
        "/models", max_length=255, pattern=r"^/", description="Where the cache is mounted."
    )
    claim_name: str | None = Field(
        None,
        max_length=253,
        pattern=DNS_SUBDOMAIN_PATTERN,
        description=(
            "An existing PersistentVolumeClaim to keep the cache on instead of a per-pod emptyDir, so "
            "replicas and restarts reuse one download; it must be ReadWriteMany when pods of this "
            "service run on several nodes."
        ),
    )


class ModelSpec(_Model):
    """The model the server loads."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "self.source != 'local' || has(self.path)",
                    "message": "model.path is required when source is local",
                },
                {
                    "rule": "self.source == 'local' || has(self.id)",
                    "message": "model.id is required unless source is local",
                },
                {
                    "rule": "self.source in ['huggingface', 'modelscope'] || "
                    "(!has(self.endpoint) && !has(self.tokenSecretRef))",
                    "message": "model.endpoint and model.tokenSecretRef apply only to hub sources",
                },
            ]
        }
    )

    source: Literal["builtin", "huggingface", "modelscope", "local"] = Field(
        description="Where the model comes from: in the image (builtin), a hub, or a local path in the pod."
    )
    id: str | None = Field(
        None,
        min_length=1,
        max_length=255,
        description="Model id on the hub (or builtin name); required unless source is local.",
    )
    path: str | None = Field(
        None,
        max_length=255,
        pattern=r"^/",
        description="Absolute path of the model inside the pod; required when source is local.",
    )
    revision: str | None = Field(
        None, max_length=128, description="Hub revision (branch, tag or commit) to pin."
    )
    cache: ModelCache = Field(default_factory=ModelCache, description="Model cache volume.")
    endpoint: str | None = Field(
        None,
        max_length=2048,
        pattern=r"^https?://[^\s]+$",
        description="Hub URL to fetch from instead of the public hub, e.g. an internal mirror.",
    )
    token_secret_ref: HubTokenSecretRef | None = Field(
        None,
        description=(
            "Secret holding a hub access token for private or gated models "
            "(given to the fetch as HF_TOKEN or MODELSCOPE_API_TOKEN)."
        ),
    )

    @model_validator(mode="after")
    def _source_needs_location(self) -> ModelSpec:
        if self.source == "local" and self.path is None:
            raise ValueError("model.path is required when source is local")
        if self.source != "local" and self.id is None:
            raise ValueError("model.id is required unless source is local")
        hub = self.source in ("huggingface", "modelscope")
        if not hub and (self.endpoint is not None or self.token_secret_ref is not None):
            raise ValueError("model.endpoint and model.tokenSecretRef apply only to hub sources")
        return self


class SecretKeyRef(_Model):
    """A key in a Secret in the TTSService's namespace."""

    name: str = Field(max_length=253, pattern=DNS_SUBDOMAIN_PATTERN, description="Secret name.")
    key: str = Field(
        "api-key", max_length=253, pattern=r"^[-._a-zA-Z0-9]+$", description="Key in the Secret."
    )


class HubTokenSecretRef(SecretKeyRef):
    """A key in a Secret holding a hub access token."""

    key: str = Field(
        "token", max_length=253, pattern=r"^[-._a-zA-Z0-9]+$", description="Key in the Secret."
    )


class ServerSpec(_Model):
    """Settings of the TTS server process (rendered into the ConfigMap)."""

    queue_size: int = Field(
        64, ge=1, le=10000, description="Requests that may wait per pod; more get 429 with Retry-After."
    )
    batch_size: int = Field(8, ge=1, le=256, description="Largest dynamic batch per engine call.")
    max_text_length: int = Field(
        2000, ge=1, le=100000, description="Longest accepted input text, in characters."
    )
    api_key_secret_ref: SecretKeyRef | None = Field(
        None, description="Secret holding the API key clients must send; none means open."
    )
    drain_seconds: int = Field(
        30,
        ge=0,
        le=3600,
        description="How long a stopping pod keeps finishing in-flight requests after SIGTERM.",
    )
    startup_seconds: int = Field(
        600,
        ge=10,
        le=7200,
        description="Budget for model download, load and warm-up before the pod counts as failed.",
    )


class Toleration(_Model):
    """A pod toleration (same fields as the core API)."""

    key: str | None = Field(None, max_length=316)
    operator: Literal["Exists", "Equal"] = "Equal"
    value: str | None = Field(None, max_length=63)
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    toleration_seconds: int | None = Field(None, ge=0)


class Resources(_Model):
    """Container resource requests and limits (CPU, memory, ...)."""

    requests: dict[str, Quantity] = Field(
        default_factory=dict, max_length=16, description="Resource requests."
    )
    limits: dict[str, Quantity] = Field(default_factory=dict, max_length=16, description="Resource limits.")


_REPLICA_BOUNDS = {
    "x-kubernetes-validations": [
        {
            "rule": "self.minReplicas <= self.maxReplicas",
            "message": "minReplicas must be less than or equal to maxReplicas",
        }
    ]
}


class _TierBounds(_Model):
    min_replicas: int = Field(
        1, ge=0, le=1000, description="Fewest replicas (the replica count while autoscaling is off)."
    )
    max_replicas: int = Field(4, ge=1, le=1000, description="Most replicas the autoscaler may run.")

    @model_validator(mode="after")
    def _bounds(self) -> _TierBounds:
        if self.min_replicas > self.max_replicas:
            raise ValueError("minReplicas must be less than or equal to maxReplicas")
        return self


class GPUTier(_TierBounds):
    """Replicas that run the model on GPUs."""

    model_config = ConfigDict(json_schema_extra=_REPLICA_BOUNDS)

    gpus: int = Field(1, ge=1, le=16, description="GPUs per replica.")
    resource_name: str = Field(
        "nvidia.com/gpu",
        max_length=253,
        pattern=RESOURCE_NAME_PATTERN,
        description="Extended resource that counts GPUs.",
    )
    node_selector: dict[str, str] | None = Field(
        None,
        max_length=32,
        description="Node labels GPU pods need. Unset: nvidia.com/gpu.present=true for nvidia GPUs; {} none.",
    )
    tolerations: list[Toleration] | None = Field(
        None,
        max_length=32,
        description="Unset: tolerate the <resourceName> NoSchedule taint GPU nodes usually carry.",
    )
    resources: Resources = Field(
        default_factory=Resources, description="CPU/memory; the GPU limit is added from gpus."
    )
    precision: Precision = Field("fp16", description="Numeric precision of inference on the GPU.")


class CPUTier(_TierBounds):
    """Replicas that run the model on CPUs (fallback and overflow)."""

    model_config = ConfigDict(json_schema_extra=_REPLICA_BOUNDS)

    resources: Resources = Field(default_factory=Resources, description="CPU/memory requests and limits.")


class Tiers(_Model):
    """Which kinds of replicas to run; at least one."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "has(self.gpu) || has(self.cpu)",
                    "message": "at least one tier (gpu or cpu) is required",
                }
            ]
        }
    )

    gpu: GPUTier | None = Field(None, description="GPU replicas.")
    cpu: CPUTier | None = Field(None, description="CPU replicas.")

    @model_validator(mode="after")
    def _at_least_one(self) -> Tiers:
        if self.gpu is None and self.cpu is None:
            raise ValueError("at least one tier (gpu or cpu) is required")
        return self


def _check_cron(expr: str) -> str:
    # Imported here: triggers imports this module for the models.
    from tts_operator.triggers import parse_cron

    parse_cron(expr)
    return expr


def _check_timezone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise ValueError(f"unknown IANA time zone {name!r}") from error
    return name


CronExpression = Annotated[
    str,
    StringConstraints(max_length=100, pattern=CRON_PATTERN),
    AfterValidator(_check_cron),
]


_SCHEDULE_RULES = {
    "x-kubernetes-validations": [
        {"rule": "self.start != self.end", "message": "a schedule's start and end must differ"},
        {
            "rule": "has(self.minReplicas) || has(self.maxReplicas) || has(self.warmFloor)",
            "message": "a schedule needs at least one of minReplicas, maxReplicas, warmFloor",
        },
        {
            "rule": "!has(self.minReplicas) || !has(self.maxReplicas) "
            "|| self.minReplicas <= self.maxReplicas",
            "message": "a schedule's minReplicas must be less than or equal to its maxReplicas",
        },
        {
            "rule": "!has(self.warmFloor) || !has(self.maxReplicas) || self.warmFloor <= self.maxReplicas",
            "message": "a schedule's warmFloor must be less than or equal to its maxReplicas",
        },
    ]
}


class Schedule(_Model):
    """A cron window that changes a tier's replica bounds while it is open.

    `minReplicas` becomes a KEDA cron trigger ("at least N" while open, other triggers may ask for
    more). `maxReplicas` and `warmFloor` have no KEDA equivalent (no per-window min/max there), so the
    operator sets the ScaledObject's maxReplicaCount / minReplicaCount while the window is open.
    """

    # Windows may cross midnight (start '0 22 * * *', end '0 6 * * *'); day-of-week fields are the days
    # the window starts and ends, so a Friday-night window is start '0 22 * * 5', end '0 6 * * 6'.

    model_config = ConfigDict(json_schema_extra=_SCHEDULE_RULES)

    name: str = Field(max_length=63, pattern=DNS_LABEL_PATTERN, description="Unique name of the window.")
    start: CronExpression = Field(
        description="Cron expression (5 fields) for the window's start, e.g. '50 7 * * 1-5'."
    )
    end: CronExpression = Field(
        description="Cron expression (5 fields) for the window's end; may be after midnight."
    )
    timezone: Annotated[str, AfterValidator(_check_timezone)] = Field(
        "UTC", max_length=64, pattern=r"^[A-Za-z0-9_+\-]+(/[A-Za-z0-9_+\-]+)*$",
        description="IANA time zone of start and end, e.g. Asia/Shanghai.",
    )  # fmt: skip
    tier: Literal["gpu", "cpu"] = Field("gpu", description="The tier the window applies to.")
    min_replicas: int | None = Field(
        None, ge=1, le=1000,
        description="Replicas to hold at least during the window (a KEDA cron trigger).",
    )  # fmt: skip
    max_replicas: int | None = Field(
        None, ge=1, le=1000,
        description="Ceiling during the window (the operator lowers maxReplicaCount); capped at the tier's "
        "maxReplicas. Overlapping windows: the lowest ceiling wins, but never below the floor in force.",
    )  # fmt: skip
    warm_floor: int | None = Field(
        None, ge=0, le=1000,
        description="The tier's floor during the window, instead of autoscaling.warmFloor; may be lower "
        "(0 lets the tier sleep at night) or higher. Overlapping windows: a raising window wins, else "
        "the lowest.",
    )  # fmt: skip

    @model_validator(mode="after")
    def _consistent(self) -> Schedule:
        if self.start == self.end:
            raise ValueError("a schedule's start and end must differ")
        if self.min_replicas is None and self.max_replicas is None and self.warm_floor is None:
            raise ValueError("a schedule needs at least one of minReplicas, maxReplicas, warmFloor")
        if self.max_replicas is not None:
            if self.min_replicas is not None and self.min_replicas > self.max_replicas:
                raise ValueError("a schedule's minReplicas must be less than or equal to its maxReplicas")
            if self.warm_floor is not None and self.warm_floor > self.max_replicas:
                raise ValueError("a schedule's warmFloor must be less than or equal to its maxReplicas")
        return self


class DCGMLabels(_Model):
    """Label names that tie dcgm-exporter's GPU series to our pods.

    dcgm-exporter writes `pod` and `namespace`; behind a ServiceMonitor without honorLabels Prometheus
    renames them to `exported_pod` / `exported_namespace` (the default here), scraped directly they stay
    `pod` / `namespace`.
    """

    pod: str = Field("exported_pod", max_length=63, pattern=PROM_LABEL_PATTERN, description="Pod label.")
    namespace: str = Field(
        "exported_namespace", max_length=63, pattern=PROM_LABEL_PATTERN, description="Namespace label."
    )


class WarmFloor(_Model):
    """Replicas each tier keeps while autoscaling, however idle (warm models answer at once)."""

    gpu: int = Field(
        2, ge=0, le=1000, description="GPU tier floor; 0 lets the tier sleep and wake on the service's queue."
    )
    cpu: int = Field(1, ge=0, le=1000, description="CPU tier floor.")


class ScalingPolicy(_Model):
    """An HPA scaling policy: at most `value` pods (or percent) per `periodSeconds`."""

    type: Literal["Pods", "Percent"] = Field(description="Count pods or a percentage of current pods.")
    value: int = Field(ge=1, le=1000, description="Pods or percent per period.")
    period_seconds: int = Field(ge=1, le=1800, description="Length of the period.")


class ScalingRules(_Model):
    """One direction of HPA behaviour; unset fields take the operator's defaults."""

    stabilization_window_seconds: int | None = Field(
        None, ge=0, le=3600, description="Act on the highest (up) / lowest (down) advice of this window."
    )
    select_policy: Literal["Max", "Min", "Disabled"] | None = Field(
        None, description="Which policy wins when several apply; Disabled stops scaling this way."
    )
    policies: list[ScalingPolicy] = Field(
        default_factory=list, max_length=8, description="Rate limits; empty: the operator's defaults.",
        json_schema_extra={"x-kubernetes-list-type": "atomic"},
    )  # fmt: skip


class Behavior(_Model):
    """HPA behaviour. Defaults: up at once by up to 4 pods or 100 % a minute; down after 10 min of calm,
    one pod every 2 min (a GPU pod is expensive to bring back)."""

    scale_up: ScalingRules = Field(default_factory=ScalingRules, description="Scale-up behaviour.")
    scale_down: ScalingRules = Field(default_factory=ScalingRules, description="Scale-down behaviour.")


class CPUFallback(_Model):
    """Serve from the CPU tier while GPU pods cannot be scheduled (no free GPU, quota, node pool down)."""

    enabled: bool = Field(True, description="Raise the CPU tier's floor while GPU pods stay Pending.")
    after_seconds: int = Field(
        120, ge=0, le=3600,
        description="How long GPU pods must have been unschedulable before the CPU floor rises.",
    )  # fmt: skip


class Prewarm(_Model):
    """Predictive pre-warm from the service's own queue-depth history in Prometheus.

    The forecast is always shown in status.prewarm while autoscaling is on; it raises floors only when
    enabled.
    """

    enabled: bool = Field(False, description="Raise floors ahead of a forecast peak (else status only).")
    lookback_days: int = Field(7, ge=1, le=28, description="Days of history the forecast reads.")
    horizon_minutes: int = Field(
        60, ge=5, le=360, description="How far ahead to look for a recurring peak."
    )


class Autoscaling(_Model):
    """How tiers scale: one KEDA ScaledObject per tier, bounded by the tier's maxReplicas and warm floor."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            "!has(self.timeToFirstAudioP95Seconds) || self.timeToFirstAudioP95Seconds > 0",
            "timeToFirstAudioP95Seconds must be positive",
        )
    )

    enabled: bool = Field(
        False,
        description="When true an autoscaler owns Deployment replicas and the operator stops setting them.",
    )
    paused: bool = Field(
        False, description="Freeze replicas where they are (KEDA's paused annotation)."
    )
    prometheus_address: str | None = Field(
        None, max_length=512, pattern=r"^https?://[^\s]+$",
        description="Prometheus that KEDA queries; unset: the operator's --prometheus-address.",
    )  # fmt: skip
    queue_depth_target: int = Field(
        8, ge=1, le=10000, description="Queued requests per replica to aim for (the primary signal)."
    )
    queue_depth_window_seconds: int = Field(
        120, ge=15, le=3600, description="The queue must stay above target this long before scaling up."
    )
    gpu_utilization_target: int = Field(
        75, ge=1, le=100, description="Average GPU utilization (%) per GPU pod to aim for (DCGM)."
    )
    gpu_utilization_window_seconds: int = Field(
        180, ge=30, le=3600, description="Window GPU utilization is averaged over."
    )
    dcgm_labels: DCGMLabels = Field(
        default_factory=DCGMLabels, description="Pod/namespace label names on DCGM_FI_DEV_GPU_UTIL."
    )
    time_to_first_audio_p95_seconds: float | None = Field(
        None, gt=0, le=600, description="Optional: add replicas while p95 time to first audio is above it."
    )
    warm_floor: WarmFloor = Field(default_factory=WarmFloor, description="Fewest replicas per tier.")
    scale_down_stabilization_seconds: int = Field(
        600, ge=0, le=3600, description="Wait before removing replicas (behavior.scaleDown can override)."
    )
    scale_to_zero_cooldown_seconds: int = Field(
        600, ge=0, le=86400,
        description="A tier whose floor is 0 goes to 0 only after this long without queued work (KEDA "
        "cooldownPeriod); a new tier waits as long before it may first go to 0 (initialCooldownPeriod).",
    )  # fmt: skip
    behavior: Behavior = Field(default_factory=Behavior, description="HPA scale-up/down behaviour.")
    schedules: list[Schedule] = Field(
        default_factory=list,
        max_length=16,
        description="Cron windows that raise the floor (minReplicas), lower the ceiling (maxReplicas) or "
        "replace the warm floor (warmFloor) of one tier.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    cpu_fallback: CPUFallback = Field(
        default_factory=CPUFallback,
        description="Raise the CPU tier's floor while GPU pods are unschedulable.",
    )
    prewarm: Prewarm = Field(default_factory=Prewarm, description="Predictive pre-warm (forecast).")


class ServiceSpec(_Model):
    """The Service in front of all tiers."""

    type: Literal["ClusterIP", "NodePort", "LoadBalancer"] = Field("ClusterIP", description="Service type.")
    port: int = Field(80, ge=1, le=65535, description="Service port (the pods listen on 8080).")


class PodOverrides(_Model):
    """Extra metadata and scheduling settings for every pod."""

    annotations: dict[str, str] = Field(default_factory=dict, max_length=64, description="Pod annotations.")
    labels: dict[str, str] = Field(
        default_factory=dict,
        max_length=64,
        description="Pod labels; keys under voicefleet.io/ are reserved.",
        json_schema_extra=cel(
            "self.all(k, !k.startsWith('voicefleet.io/'))",
            "pod labels under voicefleet.io/ are reserved for the operator",
        ),
    )
    priority_class_name: str | None = Field(None, max_length=253, description="PriorityClass of the pods.")
    service_account_name: str | None = Field(
        None, max_length=253, description="ServiceAccount the pods run as."
    )


_SCHEDULE_FITS_TIER = (
    "!has(self.autoscaling) || !has(self.autoscaling.schedules) || !self.autoscaling.enabled || "
    "self.autoscaling.schedules.all(s, "
    "s.tier == 'gpu' ? has(self.tiers.gpu) "
    "&& (!has(s.minReplicas) || s.minReplicas <= self.tiers.gpu.maxReplicas) "
    "&& (!has(s.warmFloor) || s.warmFloor <= self.tiers.gpu.maxReplicas) "
    ": has(self.tiers.cpu) "
    "&& (!has(s.minReplicas) || s.minReplicas <= self.tiers.cpu.maxReplicas) "
    "&& (!has(s.warmFloor) || s.warmFloor <= self.tiers.cpu.maxReplicas))"
)


class TTSServiceSpec(_Model):
    """Desired state of a text-to-speech service."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            _SCHEDULE_FITS_TIER,
            "each autoscaling schedule needs its tier, and minReplicas and warmFloor <= that tier's "
            "maxReplicas",
        )
    )

    engine: Engine = Field(description="TTS engine the server runs.")
    model: ModelSpec = Field(description="Model to load.")
    image: str = Field(
        "ghcr.io/voicefleet/tts-server:0.1.0",
        min_length=1,
        max_length=512,
        description="Container image of the TTS server.",
    )
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = Field(
        "IfNotPresent", description="Image pull policy."
    )
    voices: list[str] = Field(
        default_factory=list,
        max_length=256,
        description="Voices to preload; empty means the engine's defaults.",
        json_schema_extra={
            "items": {"type": "string", "maxLength": 64, "pattern": r"^[A-Za-z0-9][-_.A-Za-z0-9]*$"}
        },
    )
    server: ServerSpec = Field(default_factory=ServerSpec, description="Server settings.")
    tiers: Tiers = Field(description="GPU and/or CPU replicas.")
    autoscaling: Autoscaling = Field(default_factory=Autoscaling, description="Autoscaling settings.")
    service: ServiceSpec = Field(default_factory=ServiceSpec, description="Service settings.")
    pod: PodOverrides = Field(
        default_factory=PodOverrides, description="Pod metadata and scheduling overrides."
    )

    @model_validator(mode="after")
    def _schedules_fit_tiers(self) -> TTSServiceSpec:
        if not self.autoscaling.enabled:
            return self
        for schedule in self.autoscaling.schedules:
            tier = self.tiers.gpu if schedule.tier == "gpu" else self.tiers.cpu
            floors = [n for n in (schedule.min_replicas, schedule.warm_floor) if n is not None]
            if tier is None or any(n > tier.max_replicas for n in floors):
                raise ValueError(
                    "each autoscaling schedule needs its tier, and minReplicas and warmFloor <= that "
                    "tier's maxReplicas"
                )
        return self


# ---- status -------------------------------------------------------------------------------------------


class Condition(_Model):
    """A condition in the Kubernetes convention."""

    type: Literal["Ready", "Progressing", "Degraded", "AutoscalingUnavailable", "MetricsUnavailable"] = Field(
        description="Condition type."
    )
    status: Literal["True", "False", "Unknown"] = Field(description="Condition status.")
    reason: str = Field(max_length=1024, description="CamelCase reason for the status.")
    message: str = Field("", max_length=32768, description="Human-readable details.")
    last_transition_time: str | None = Field(None, description="When the status last changed (RFC 3339).")
    observed_generation: int | None = Field(None, description="The spec generation the condition describes.")


class TierStatus(_Model):
    """Replica counts of one tier."""

    desired_replicas: int | None = Field(None, description="Replicas the Deployment wants.")
    ready_replicas: int = Field(0, description="Replicas that pass their readiness probe.")
    updated_replicas: int = Field(0, description="Replicas running the current pod template.")
    unschedulable_replicas: int = Field(0, description="Pods the scheduler cannot place.")
    min_replicas: int | None = Field(
        None, description="Floor in force now (warm floor, schedule windows, fallback, pre-warm)."
    )
    max_replicas: int | None = Field(
        None, description="Ceiling in force now (tier maximum or a schedule window)."
    )
    queue_depth: float | None = Field(None, description="Queued requests over the tier's pods (Prometheus).")
    gpu_utilization: float | None = Field(
        None, description="Mean GPU utilization of the tier's pods in percent (dcgm-exporter via Prometheus)."
    )
    time_to_first_audio_p95_seconds: float | None = Field(
        None, description="p95 time to first audio of the tier (Prometheus)."
    )
    active_triggers: list[str] = Field(
        default_factory=list, max_length=32,
        description="Triggers of the tier's ScaledObject that currently ask for replicas (KEDA/HPA status).",
        json_schema_extra={"x-kubernetes-list-type": "atomic"},
    )  # fmt: skip


class ScalingDecision(_Model):
    """One scaling decision, from the operator's own policy or read back from KEDA / the HPA."""

    time: str = Field(description="When it was taken or first seen (RFC 3339).")
    tier: Literal["gpu", "cpu"] = Field(description="The tier it concerns.")
    source: Literal["operator", "keda", "hpa"] = Field(description="Who decided.")
    action: str = Field(max_length=256, description="What changed, e.g. 'replicas 2 -> 4' or 'floor 2 -> 0'.")
    reason: str = Field(max_length=1024, description="Why, in words (the trigger or policy that drove it).")


class PrewarmStatus(_Model):
    """The pre-warm forecast: computed whenever history is available, acted on only when enabled."""

    acting: bool = Field(
        False, description="True when spec.autoscaling.prewarm.enabled and the floor is raised."
    )
    forecast_queue_depth: float | None = Field(
        None, description="Forecast peak queue depth over the horizon (whole service)."
    )
    peak_at: str | None = Field(None, description="When the forecast peak is expected (RFC 3339).")
    recommended_floor: dict[str, int] = Field(
        default_factory=dict, description="Per tier: the floor the forecast asks for."
    )
    message: str = Field("", max_length=2048, description="How the forecast was made, or why there is none.")


class TTSServiceStatus(_Model):
    """Observed state, written by the operator."""

    observed_generation: int | None = Field(None, description="The spec generation last applied.")
    conditions: list[Condition] = Field(
        default_factory=list,
        description="Ready, Progressing, Degraded; AutoscalingUnavailable while autoscaling is on.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    tiers: dict[str, TierStatus] = Field(
        default_factory=dict, description="Per tier (gpu, cpu) replica counts."
    )
    ready_replicas: int = Field(0, description="Ready replicas over all tiers.")
    queue_depth: int | None = Field(
        None, description="Queued requests over all pods (from metrics, when known)."
    )
    endpoint: str | None = Field(None, description="In-cluster URL of the Service.")
    decisions: list[ScalingDecision] = Field(
        default_factory=list, max_length=10, description="The last 10 scaling decisions, newest last.",
        json_schema_extra={"x-kubernetes-list-type": "atomic"},
    )  # fmt: skip
    prewarm: PrewarmStatus | None = Field(None, description="Pre-warm forecast (spec.autoscaling.prewarm).")
    metrics_observed_at: str | None = Field(
        None, description="When live metrics (queue depth, GPU utilization) were last read from Prometheus."
    )
