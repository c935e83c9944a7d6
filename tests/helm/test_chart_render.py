"""The chart rendered offline: lint, generated CRD in sync, schema, hardening, labels, options."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import yaml

from tests.helm.conftest import CHART, CRD_NAME, Helm

ROOT = CHART.parents[1]


def _gen_crd():
    spec = importlib.util.spec_from_file_location("gen_crd", ROOT / "charts" / "gen_crd.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _by_kind(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d["kind"] == kind]


@pytest.mark.parametrize("args", [[], ["--set", "watchNamespaces={a,b}"], ["--set", "crds.install=false"]])
def test_lint_is_clean(helm: Helm, args: list[str]) -> None:
    out = helm.run("lint", "--strict", str(CHART), *args)
    assert "0 chart(s) failed" in out.stdout
    assert "[WARNING]" not in out.stdout and "[ERROR]" not in out.stdout, out.stdout


def test_crd_template_is_what_the_generator_writes() -> None:
    # Fails when spec.py changed and `charts/gen_crd.py` was not run.
    gen = _gen_crd()
    assert gen.TEMPLATE.read_text() == gen.render()
    assert gen.main(["--check"]) == 0


def test_chart_crd_equals_crds_folder(helm: Helm) -> None:
    # Two copies of one CRD: the kubectl one (crds/) and the chart's; they must not drift apart.
    [crd] = _by_kind(
        helm.template("--show-only", "templates/crd-ttsservices.yaml"), "CustomResourceDefinition"
    )
    plain = yaml.safe_load((ROOT / "crds" / f"{CRD_NAME}.yaml").read_text())
    assert crd["metadata"]["name"] == plain["metadata"]["name"] == CRD_NAME
    assert crd["spec"] == plain["spec"]
    assert crd["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
    unkept = helm.template("--set", "crds.keep=false", "--show-only", "templates/crd-ttsservices.yaml")
    assert "annotations" not in unkept[0]["metadata"]
    assert not _by_kind(helm.template("--set", "crds.install=false"), "CustomResourceDefinition")


@pytest.mark.parametrize(
    "bad",
    ["operator.logFormat=xml", "noSuchKey=1", "watchNamespaces={Bad_NS}", "image.pullPolicy=Sometimes",
     "operator.metricsPort=0"],
)  # fmt: skip
def test_schema_rejects_bad_values(helm: Helm, bad: str) -> None:
    proc = helm.run("template", "rel", str(CHART), "--set", bad, check=False)
    assert proc.returncode != 0
    assert "values don't meet the specifications of the schema" in proc.stderr, proc.stderr


def test_operator_deployment_is_hardened(helm: Helm) -> None:
    [dep] = _by_kind(helm.template("-n", "vf"), "Deployment")
    spec = dep["spec"]
    assert spec["replicas"] == 1 and spec["strategy"] == {"type": "Recreate"}
    pod = spec["template"]["spec"]
    assert pod["serviceAccountName"] == "rel-voicefleet"
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
    [container] = pod["containers"]
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/metrics", "port": "metrics"}
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
    assert container["image"] == "voicefleet/tts-operator:0.1.0"
    assert "--liveness=http://0.0.0.0:8080/healthz" in container["args"]
    assert not [a for a in container["args"] if a.startswith("--namespace")]
    digest = "sha256:" + "a" * 64
    [pinned] = _by_kind(helm.template("--set", f"image.digest={digest}"), "Deployment")
    assert pinned["spec"]["template"]["spec"]["containers"][0]["image"] == f"voicefleet/tts-operator@{digest}"


def test_every_object_carries_the_standard_labels(helm: Helm) -> None:
    docs = helm.template("--set", "watchNamespaces={a}", "--set", "metrics.serviceMonitor.enabled=true")
    assert {d["kind"] for d in docs} >= {
        "CustomResourceDefinition",
        "Deployment",
        "ServiceAccount",
        "Service",
        "ClusterRole",
        "ClusterRoleBinding",
        "RoleBinding",
        "ServiceMonitor",
    }
    for doc in docs:
        labels = doc["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == "voicefleet", doc["kind"]
        assert labels["app.kubernetes.io/instance"] == "rel"
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
        assert labels["app.kubernetes.io/version"] == "0.1.0"
        assert labels["app.kubernetes.io/part-of"] == "voicefleet"


def test_service_monitor_is_optional(helm: Helm) -> None:
    assert not _by_kind(helm.template(), "ServiceMonitor")
    [sm] = _by_kind(
        helm.template("-n", "vf", "--set", "metrics.serviceMonitor.enabled=true"), "ServiceMonitor"
    )
    [svc] = _by_kind(helm.template("-n", "vf"), "Service")
    assert sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    assert sm["spec"]["endpoints"][0]["port"] == svc["spec"]["ports"][0]["name"] == "metrics"


def test_watch_namespaces_bind_per_namespace(helm: Helm) -> None:
    docs = helm.template("-n", "vf", "--set", "watchNamespaces={tts-a,tts-b}")
    bindings = _by_kind(docs, "RoleBinding")
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["tts-a", "tts-b"]
    assert {b["roleRef"]["name"] for b in bindings} == {"rel-voicefleet"}
    # Cluster-wide only the discovery reads: the namespaced role is not bound cluster-wide.
    [crb] = _by_kind(docs, "ClusterRoleBinding")
    assert crb["roleRef"]["name"] == "rel-voicefleet-cluster"
    [dep] = _by_kind(docs, "Deployment")
    args = dep["spec"]["template"]["spec"]["containers"][0]["args"]
    assert [a for a in args if a.startswith("--namespace")] == ["--namespace=tts-a", "--namespace=tts-b"]


def test_rbac_rules_are_explicit(helm: Helm) -> None:
    for role in _by_kind(helm.template(), "ClusterRole"):
        for rule in role["rules"]:
            for key in ("apiGroups", "resources", "verbs"):
                assert "*" not in rule[key], (role["metadata"]["name"], rule)
        resources = {r for rule in role["rules"] for r in rule["resources"]}
        assert "secrets" not in resources


def test_notes_say_what_to_do_next(helm: Helm) -> None:
    # The CRD off: a dry-run install still checks who owns the cluster's CRD (the lifecycle test covers it).
    notes = helm.run(
        "install",
        "rel",
        str(CHART),
        "-n",
        "vf",
        "--dry-run=client",
        "--set",
        "crds.install=false",
        "--set",
        "watchNamespaces={tts-a}",
    ).stdout
    assert "kubectl -n vf rollout status deployment/rel-voicefleet" in notes
    assert "kind: TTSService" in notes and "/v1/audio/speech" in notes and '"voice": "baker"' in notes
    assert "serves only these namespaces: tts-a" in notes
    assert "does not manage the TTSService CRD" in notes


def test_generator_refuses_template_braces(monkeypatch: pytest.MonkeyPatch) -> None:
    gen = _gen_crd()
    monkeypatch.setattr(
        gen,
        "generate_crd",
        lambda: {
            "apiVersion": "v1",
            "kind": "K",
            "metadata": {"name": "n"},
            "spec": {"description": "{{ oops }}"},
        },
    )
    with pytest.raises(ValueError, match="template action"):
        gen.render()


def test_generator_check_reports_stale(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gen = _gen_crd()
    stale = tmp_path / "crd.yaml"
    stale.write_text("old\n")
    monkeypatch.setattr(gen, "TEMPLATE", stale)
    assert gen.main(["--check"]) == 1
    assert gen.main([]) == 0 and gen.main(["--check"]) == 0


def test_yaml_booleans_stay_strings(helm: Helm) -> None:
    # A release called "n" or a namespace called "no" must not turn into YAML booleans.
    out = helm.run("template", "n", str(CHART), "-n", "no", "--set", "watchNamespaces={y}").stdout
    docs = [d for d in yaml.safe_load_all(out) if d]
    for doc in docs:
        assert doc["metadata"]["labels"]["app.kubernetes.io/instance"] == "n"
        if doc["kind"] != "RoleBinding" and "namespace" in doc["metadata"]:
            assert doc["metadata"]["namespace"] == "no", doc["kind"]
    [binding] = _by_kind(docs, "RoleBinding")
    assert binding["metadata"]["namespace"] == "y"
    assert binding["subjects"][0]["namespace"] == "no"
