"""The README's metric tables and the metrics the code registers agree both ways: names, types, labels."""

from __future__ import annotations

import re

import tts_operator.metrics as operator_metrics
from prometheus_client.metrics import MetricWrapperBase

from tests.readme import section, table_first_column
from tts_server.metrics import Metrics

# How a family of each type is named in the exposition format (what users query).
_SUFFIX = {"counter": "_total", "info": "_info"}


def _documented() -> dict[str, tuple[str, set[str]]]:
    """README metric name -> (type, label names), from the tables of its Metrics section."""
    text = section("Metrics")
    found: dict[str, tuple[str, set[str]]] = {}
    for line in text.splitlines():
        match = re.match(r"^\| `([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([a-z_,]*)\})?` \| (\w+) \|", line)
        if match:
            name, labels, kind = match[1], match[2], match[3]
            assert name not in found, f"{name} is documented twice"
            found[name] = (kind, set(labels.split(",")) if labels else set())
    # Every row of the tables must be a metric this parser understood.
    assert len(found) == len(table_first_column(text)), "a metric row is not `name{labels}` | type |"
    return found


def _registered(collectors: list[MetricWrapperBase]) -> dict[str, tuple[str, set[str]]]:
    out = {}
    for collector in collectors:
        [family] = collector.describe()
        labels = set(collector._labelnames)
        if family.type == "info":
            # An Info's labels are its value: read them from what the collector exposes, if anything yet.
            # tts_engine_info is filled when an engine loads: tests/server/test_quickstart.py checks it live.
            samples = [s for f in collector.collect() for s in f.samples if s.labels]
            labels = set(samples[0].labels) if samples else None
        out[family.name + _SUFFIX.get(family.type, "")] = (family.type, labels)
    return out


def _server_collectors() -> list[MetricWrapperBase]:
    metrics = Metrics()
    return [value for value in vars(metrics).values() if isinstance(value, MetricWrapperBase)]


def _operator_collectors() -> list[MetricWrapperBase]:
    return [value for value in vars(operator_metrics).values() if isinstance(value, MetricWrapperBase)]


def test_every_registered_metric_is_documented_and_every_documented_one_exists():
    documented = _documented()
    registered = _registered(_server_collectors() + _operator_collectors())
    assert sorted(set(registered) - set(documented)) == [], "registered but missing from README's tables"
    assert sorted(set(documented) - set(registered)) == [], "in README's tables but not registered"


def test_types_and_labels_match():
    documented = _documented()
    for name, (kind, labels) in _registered(_server_collectors() + _operator_collectors()).items():
        doc_kind, doc_labels = documented[name]
        assert doc_kind == kind, f"{name}: README says {doc_kind}, the code registers a {kind}"
        if labels is not None:
            assert doc_labels == labels, f"{name}: README labels {sorted(doc_labels)}, code {sorted(labels)}"
