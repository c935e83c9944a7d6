"""`tts-operator`: run the operator in-cluster or against $KUBECONFIG, in all or some namespaces."""

from __future__ import annotations

import argparse
import logging
import os
import random

import kopf

from tts_operator import metrics


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tts-operator", description=__doc__)
    parser.add_argument(
        "-n", "--namespace", action="append", default=[],
        help="watch only this namespace (repeatable; globs like 'tts-*' work); default: all namespaces",
    )  # fmt: skip
    parser.add_argument("--metrics-address", default="0.0.0.0", help="address of the /metrics endpoint")
    parser.add_argument("--metrics-port", type=int, default=9090, help="port of /metrics; 0 disables it")
    parser.add_argument(
        "--liveness", default=None, help="kopf liveness endpoint, e.g. http://0.0.0.0:8080/healthz"
    )
    parser.add_argument(
        "--peering", default=None,
        help="KopfPeering/ClusterKopfPeering name for HA (several replicas, one active); default: standalone",
    )  # fmt: skip
    parser.add_argument(
        "--priority", type=int, default=None,
        help="peering priority; replicas need distinct values (default: random) or all of them pause",
    )  # fmt: skip
    parser.add_argument(
        "--prometheus-address", default=os.environ.get("VOICEFLEET_PROMETHEUS_ADDRESS"),
        help="Prometheus KEDA queries unless a TTSService sets autoscaling.prometheusAddress "
        "(default: $VOICEFLEET_PROMETHEUS_ADDRESS, else http://prometheus-operated.monitoring.svc:9090)",
    )  # fmt: skip
    parser.add_argument(
        "--metrics-interval", type=float, default=_float_env("VOICEFLEET_METRICS_INTERVAL", 30.0),
        help="seconds between reads of live metrics (queue depth, GPU utilization, latency) from Prometheus "
        "for the status of autoscaled services (default: $VOICEFLEET_METRICS_INTERVAL, else 30)",
    )  # fmt: skip
    parser.add_argument("--log-format", choices=["json", "plain"], default="json")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser


def _float_env(name: str, default: float) -> float:
    value = os.environ.get(name)
    return float(value) if value else default


class _QuietWatchHandlers(logging.Filter):
    """Drop kopf's per-event "Handler ... succeeded" lines of watch handlers: thousands, saying nothing."""

    NOISY = (
        "Handler 'child_changed' succeeded",
        "Handler 'pod_changed' succeeded",
        "Handler 'service_gone' succeeded",
        "Handler 'scaling_changed' succeeded",
    )

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.NOISY)


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    kopf.configure(
        verbose=args.verbose,
        log_format=kopf.LogFormat.JSON if args.log_format == "json" else kopf.LogFormat.PLAIN,
    )
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    for handler in logging.getLogger().handlers:
        handler.addFilter(_QuietWatchHandlers())
    if args.prometheus_address:
        # The handlers read it at startup; the environment is how it reaches them through kopf.
        os.environ["VOICEFLEET_PROMETHEUS_ADDRESS"] = args.prometheus_address
    if args.metrics_interval <= 0:
        raise SystemExit("--metrics-interval must be positive")
    os.environ["VOICEFLEET_METRICS_INTERVAL"] = str(args.metrics_interval)
    if args.metrics_port:
        metrics.serve(args.metrics_address, args.metrics_port)
    # Registers the handlers with kopf's default registry.
    import tts_operator.handlers  # noqa: F401

    peering = args.peering is not None
    kopf.run(
        clusterwide=not args.namespace,
        namespaces=args.namespace,
        standalone=not peering,
        peering_name=args.peering,
        priority=args.priority if args.priority is not None else random.randint(1, 2**31 - 1),
        liveness_endpoint=args.liveness,
    )


if __name__ == "__main__":
    main()
