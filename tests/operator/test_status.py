"""Status and conditions as pure functions of what the operator observed."""

from __future__ import annotations

import pytest
from tts_operator import conditions as c
from tts_operator.drift import matches
from tts_operator.render import Owner
from tts_operator.spec import TTSServiceSpec
from tts_operator.status import (
    DeploymentState,
    Observed,
    changed_conditions,
    compute_status,
    invalid_spec_status,
    record_decisions,
    status_patch,
)

OWNER = Owner("voice", "ns", "uid")
SPEC = TTSServiceSpec.model_validate(
    {
        "engine": "baker",
        "model": {"source": "builtin", "id": "x"},
        "tiers": {"gpu": {"minReplicas": 2}, "cpu": {}},
    }
)


def dep(replicas=2, ready=2, updated=2, total=2, gen=1, observed=1):
    return DeploymentState(replicas, gen, observed, ready, updated, total)


def conds(status):
    return {cond["type"]: (cond["status"], cond["reason"]) for cond in status["conditions"]}


@pytest.mark.parametrize(
    ("observed", "ready", "progressing", "degraded"),
    [
        (
            Observed(1, None),
            ("False", c.REPLICAS_NOT_READY),
            ("True", c.RECONCILING),
            ("False", c.AS_EXPECTED),
        ),
        (Observed(1, 1), ("False", c.REPLICAS_NOT_READY), ("True", c.CREATING), ("False", c.AS_EXPECTED)),
        (
            Observed(1, 1, {"gpu": dep(), "cpu": dep(replicas=1, ready=1, updated=1, total=1)}),
            ("True", c.ALL_REPLICAS_READY),
            ("False", c.ROLLOUT_COMPLETE),
            ("False", c.AS_EXPECTED),
        ),
        (
            Observed(
                1,
                1,
                {
                    "gpu": dep(ready=1, updated=1, total=3),
                    "cpu": dep(replicas=1, ready=1, updated=1, total=1),
                },
            ),
            ("False", c.REPLICAS_NOT_READY),
            ("True", c.ROLLING_OUT),
            ("False", c.AS_EXPECTED),
        ),
        (
            Observed(
                1,
                1,
                {"gpu": dep(ready=0), "cpu": dep(replicas=1, ready=1, updated=1, total=1)},
                {"gpu": ["0/2 nodes are available: 1 Insufficient nvidia.com/gpu."]},
            ),
            ("False", c.GPU_UNSCHEDULABLE),
            ("False", c.ROLLOUT_COMPLETE),
            ("True", c.GPU_UNSCHEDULABLE),
        ),
        (
            Observed(
                1,
                1,
                {"gpu": dep(ready=0), "cpu": dep(replicas=1, ready=1, updated=1, total=1)},
                {"cpu": ["0/2 nodes are available: 2 Insufficient memory."]},
            ),
            ("False", c.UNSCHEDULABLE),
            ("False", c.ROLLOUT_COMPLETE),
            ("True", c.UNSCHEDULABLE),
        ),
        (
            Observed(2, 1, error=(c.APPLY_FAILED, "boom")),
            ("False", c.REPLICAS_NOT_READY),
            ("True", c.RECONCILING),
            ("True", c.APPLY_FAILED),
        ),
        (
            Observed(
                1,
                1,
                {
                    "gpu": dep(replicas=0, ready=0, updated=0, total=0),
                    "cpu": dep(replicas=0, ready=0, updated=0, total=0),
                },
            ),
            ("False", c.NO_REPLICAS),
            ("False", c.ROLLOUT_COMPLETE),
            ("False", c.AS_EXPECTED),
        ),
    ],
)
def test_conditions(observed, ready, progressing, degraded):
    status = compute_status(OWNER, SPEC, observed, {}, "t0")
    assert conds(status) == {c.READY: ready, c.PROGRESSING: progressing, c.DEGRADED: degraded}


def test_tier_counts_and_endpoint():
    observed = Observed(
        3, 3, {"gpu": dep(ready=1), "cpu": dep(replicas=1, ready=1, updated=1, total=1)}, {"gpu": ["x"]}
    )
    status = compute_status(OWNER, SPEC, observed, {}, "t0")
    assert status["observedGeneration"] == 3
    assert status["tiers"]["gpu"] == {
        "desiredReplicas": 2,
        "readyReplicas": 1,
        "updatedReplicas": 2,
        "unschedulableReplicas": 1,
    }
    assert status["readyReplicas"] == 2
    assert status["endpoint"] == "http://voice.ns.svc:80"


def test_transition_time_kept_until_status_flips_and_events_only_on_change():
    observed = Observed(1, 1, {"gpu": dep(), "cpu": dep(replicas=1, ready=1, updated=1, total=1)})
    first = compute_status(OWNER, SPEC, observed, {}, "t0")
    assert changed_conditions({}, first) == []  # a new object's first status is not a change
    again = compute_status(OWNER, SPEC, observed, first, "t1")
    assert again == first and status_patch(first, again) is None and changed_conditions(first, again) == []
    worse = Observed(1, 1, {"gpu": dep(ready=1), "cpu": dep(replicas=1, ready=1, updated=1, total=1)})
    third = compute_status(OWNER, SPEC, worse, first, "t2")
    ready = next(x for x in third["conditions"] if x["type"] == c.READY)
    progressing = next(x for x in third["conditions"] if x["type"] == c.PROGRESSING)
    assert (ready["lastTransitionTime"], progressing["lastTransitionTime"]) == ("t2", "t0")
    assert [x["type"] for x in changed_conditions(first, third)] == [c.READY]


def test_status_patch_removes_tiers_that_left_the_spec():
    previous = {"tiers": {"gpu": {}, "cpu": {}}, "conditions": []}
    new = {"tiers": {"gpu": {"readyReplicas": 1}}, "conditions": []}
    assert status_patch(previous, new)["tiers"] == {"gpu": {"readyReplicas": 1}, "cpu": None}


@pytest.mark.parametrize(
    ("desired", "actual", "expected"),
    [
        ({"a": 1}, {"a": 1, "b": 2}, True),
        ({"a": 1}, {"a": 2}, False),
        ({"a": {"b": [1, {"c": 1}]}}, {"a": {"b": [1, {"c": 1, "d": 0}]}}, True),
        ({"a": [1, 2]}, {"a": [1]}, False),
        ({"a": "x"}, {}, False),
        ({"spec": {"replicas": 1}}, {"spec": {"replicas": 1, "paused": False}}, True),
    ],
)
def test_drift_detection(desired, actual, expected):
    assert matches(desired, actual) is expected


def test_invalid_spec_status():
    status = invalid_spec_status(Observed(4, 3), "tiers: at least one tier", {}, "t0")
    assert conds(status) == {
        c.READY: ("False", c.INVALID_SPEC),
        c.PROGRESSING: ("False", c.INVALID_SPEC),
        c.DEGRADED: ("True", c.INVALID_SPEC),
    }
    assert status["conditions"][2]["message"] == "tiers: at least one tier"


R, P, D = c.READY, c.PROGRESSING, c.DEGRADED


@pytest.mark.parametrize(
    ("before", "after", "events"),
    [
        ((P, "True", c.RECONCILING), (P, "True", c.ROLLING_OUT), []),
        ((P, "True", c.ROLLING_OUT), (P, "False", c.ROLLOUT_COMPLETE), [c.ROLLOUT_COMPLETE]),
        ((D, "True", c.APPLY_FAILED), (D, "True", c.GPU_UNSCHEDULABLE), [c.GPU_UNSCHEDULABLE]),
        ((R, "False", c.REPLICAS_NOT_READY), (R, "False", c.GPU_UNSCHEDULABLE), [c.GPU_UNSCHEDULABLE]),
        ((R, "False", c.GPU_UNSCHEDULABLE), (R, "True", c.ALL_REPLICAS_READY), [c.ALL_REPLICAS_READY]),
    ],
)
def test_which_changes_are_events(before, after, events):
    def status(kind, value, reason):
        return {"conditions": [{"type": kind, "status": value, "reason": reason}]}

    assert [x["reason"] for x in changed_conditions(status(*before), status(*after))] == events


def _decision(time: str, action: str, tier: str = "gpu") -> dict:
    return {"time": time, "tier": tier, "source": "hpa", "action": action, "reason": "queue-depth"}


@pytest.mark.parametrize(
    ("previous", "new", "expected_actions"),
    [
        (None, [_decision("t1", "replicas 1 -> 2")], ["replicas 1 -> 2"]),
        # The same decision read again later is not recorded twice ...
        ([_decision("t1", "replicas 1 -> 2")], [_decision("t2", "replicas 1 -> 2")], ["replicas 1 -> 2"]),
        # ... but the same action on the other tier is a decision of its own.
        ([_decision("t1", "replicas 1 -> 2")], [_decision("t2", "replicas 1 -> 2", "cpu")],
         ["replicas 1 -> 2", "replicas 1 -> 2"]),
        # Only the last ten are kept, oldest dropped first.
        ([_decision(f"t{i}", f"replicas {i} -> {i + 1}") for i in range(10)],
         [_decision("t10", "replicas 10 -> 11")],
         [f"replicas {i} -> {i + 1}" for i in range(1, 11)]),
    ],
)
def test_record_decisions(previous, new, expected_actions):
    assert [d["action"] for d in record_decisions(previous, new)] == expected_actions
