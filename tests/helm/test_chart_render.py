"""The chart rendered offline: lint, generated CRD in sync, schema, hardening, labels, options."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest
import tomllib
import yaml

from tests.helm.conftest import ALL_ON, CHART, CRD_NAME, PEERING_CRDS, Helm

ROOT = CHART.parents[1]


def _gen_crd():
    spec = importlib.util.spec_from_file_location("gen_crd", ROOT / "charts" / "gen_crd.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _by_kind(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d["kind"] == kind]


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["--set", "watchNamespaces={a,b}"],
        ["--set", "crds.install=false"],
        [*ALL_ON, "--set", "operator.replicas=2"],
        [
            "--set",
            "operator.replicas=3",
            "--set",
            "watchNamespaces={a}",
            "--set",
            "monitoring.dashboard.enabled=true",
        ],
    ],
)
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
     "operator.metricsPort=0", "operator.replicas=0", "operator.peering.name=Not_A_Name",
     "monitoring.prometheusRule.dcgmLabels.pod=not-a-label", "monitoring.prometheusRule.interval=soon",
     "monitoring.dashboard.namespace=Bad_NS", "monitoring.prometheusRule.noSuchKey=1"],
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
    assert not [a for a in container["args"] if a.startswith(("--namespace", "--peering"))]
    assert "env" not in container and "affinity" not in pod
    digest = "sha256:" + "a" * 64
    [pinned] = _by_kind(helm.template("--set", f"image.digest={digest}"), "Deployment")
    assert pinned["spec"]["template"]["spec"]["containers"][0]["image"] == f"voicefleet/tts-operator@{digest}"


def test_every_object_carries_the_standard_labels(helm: Helm) -> None:
    docs = helm.template("--set", "watchNamespaces={a}", "--set", "operator.replicas=2", *ALL_ON)
    docs += _by_kind(helm.template("--set", "operator.replicas=2"), "ClusterKopfPeering")
    assert {d["kind"] for d in docs} >= {
        "PrometheusRule",
        "ConfigMap",
        "KopfPeering",
        "ClusterKopfPeering",
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


@pytest.mark.parametrize("args", [[], ["--set", "operator.replicas=2"]])
def test_rbac_rules_are_explicit(helm: Helm, args: list[str]) -> None:
    for role in _by_kind(helm.template(*args), "ClusterRole"):
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


# ---- high availability: kopf peering ----------------------------------------------------------------


def _operator(docs: list[dict]) -> tuple[dict, dict]:
    [dep] = _by_kind(docs, "Deployment")
    return dep["spec"], dep["spec"]["template"]["spec"]["containers"][0]


def test_replicas_above_one_peer_cluster_wide(helm: Helm) -> None:
    docs = helm.template("-n", "vf", "--set", "operator.replicas=2")
    spec, container = _operator(docs)
    assert spec["replicas"] == 2
    assert spec["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
    }
    assert "--peering=rel-voicefleet" in container["args"]
    # No fixed --priority: every replica draws its own (equal priorities would pause them all).
    assert not [a for a in container["args"] if a.startswith("--priority")]
    assert container["env"] == [{"name": "POD_ID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]
    anti = spec["template"]["spec"]["affinity"]["podAntiAffinity"][
        "preferredDuringSchedulingIgnoredDuringExecution"
    ]
    assert anti[0]["podAffinityTerm"]["labelSelector"]["matchLabels"] == spec["selector"]["matchLabels"]
    [peering] = _by_kind(docs, "ClusterKopfPeering")
    assert peering["metadata"]["name"] == "rel-voicefleet" and not _by_kind(docs, "KopfPeering")
    [budget] = _by_kind(docs, "PodDisruptionBudget")
    assert budget["spec"] == {"minAvailable": 1, "selector": spec["selector"]}
    [role] = [r for r in _by_kind(docs, "ClusterRole") if r["metadata"]["name"] == "rel-voicefleet-peering"]
    assert role["rules"] == [
        {"apiGroups": ["kopf.dev"], "resources": ["clusterkopfpeerings"], "resourceNames": ["rel-voicefleet"],
         "verbs": ["get", "patch"]},
        {"apiGroups": ["kopf.dev"], "resources": ["clusterkopfpeerings"], "verbs": ["list", "watch"]},
    ]  # fmt: skip
    [binding] = [
        b for b in _by_kind(docs, "ClusterRoleBinding") if b["roleRef"]["name"] == "rel-voicefleet-peering"
    ]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "rel-voicefleet", "namespace": "vf"}]


def test_replicas_above_one_peer_per_watched_namespace(helm: Helm) -> None:
    docs = helm.template("-n", "vf", "--set", "operator.replicas=3", "--set", "watchNamespaces={tts-a,tts-b}",
                         "--set", "operator.peering.name=tts-ha")  # fmt: skip
    _, container = _operator(docs)
    assert "--peering=tts-ha" in container["args"]
    peerings = _by_kind(docs, "KopfPeering")
    assert sorted((p["metadata"]["namespace"], p["metadata"]["name"]) for p in peerings) == [
        ("tts-a", "tts-ha"), ("tts-b", "tts-ha")]  # fmt: skip
    assert not _by_kind(docs, "ClusterKopfPeering")
    [role] = [r for r in _by_kind(docs, "ClusterRole") if r["metadata"]["name"] == "rel-voicefleet-peering"]
    assert {res for rule in role["rules"] for res in rule["resources"]} == {"kopfpeerings"}
    bindings = [b for b in _by_kind(docs, "RoleBinding") if b["roleRef"]["name"] == "rel-voicefleet-peering"]
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["tts-a", "tts-b"]
    # The peering role is bound only where the peering objects are: nothing cluster-wide.
    assert not [b for b in _by_kind(docs, "ClusterRoleBinding") if b["roleRef"]["name"].endswith("-peering")]


def test_one_replica_has_no_peering(helm: Helm) -> None:
    docs = helm.template("--set", "watchNamespaces={a}")
    for kind in ("KopfPeering", "ClusterKopfPeering", "PodDisruptionBudget"):
        assert not _by_kind(docs, kind)
    assert not [d for d in docs if d["metadata"]["name"].endswith("-peering")]


def test_user_affinity_wins_over_the_default_spread(helm: Helm) -> None:
    affinity = (
        "affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution"
        ".nodeSelectorTerms[0].matchExpressions[0].key=pool"
    )
    spec, _ = _operator(helm.template("--set", "operator.replicas=2", "--set", affinity))
    assert list(spec["template"]["spec"]["affinity"]) == ["nodeAffinity"]


def test_chart_peering_crds_equal_crds_folder() -> None:
    # The chart's crds/ folder holds kopf's peering CRDs one per file (Helm skips a file whose first
    # object exists); together they are crds/kopf-peering.yaml, which the test cluster applies.
    plain = [d for d in yaml.safe_load_all((ROOT / "crds" / "kopf-peering.yaml").read_text()) if d]
    chart = {p.stem: yaml.safe_load(p.read_text()) for p in sorted((CHART / "crds").glob("*.yaml"))}
    assert set(chart) == set(PEERING_CRDS)
    assert {d["metadata"]["name"]: d for d in plain} == chart


# ---- monitoring: PrometheusRule and the Grafana dashboard ---------------------------------------------


def test_monitoring_is_optional_and_configurable(helm: Helm) -> None:
    docs = helm.template("-n", "vf")
    assert not _by_kind(docs, "PrometheusRule") and not _by_kind(docs, "ConfigMap")
    docs = helm.template(
        "-n", "vf", *ALL_ON, "--set", "monitoring.prometheusRule.namespace=monitoring",
        "--set", "monitoring.prometheusRule.labels.release=kube-prometheus-stack",
        "--set", "monitoring.prometheusRule.interval=30s", "--set", "monitoring.dashboard.namespace=grafana",
        "--set", "monitoring.dashboard.labels.grafana_dashboard=yes",
    )  # fmt: skip
    [rule] = _by_kind(docs, "PrometheusRule")
    assert rule["metadata"]["namespace"] == "monitoring"
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    [group] = rule["spec"]["groups"]
    assert group["interval"] == "30s" and all(r["record"].startswith("tts:") for r in group["rules"])
    [dashboard] = _by_kind(docs, "ConfigMap")
    assert dashboard["metadata"]["namespace"] == "grafana"
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "yes"
    # Defaults: the release namespace, the sidecar's usual label, the group interval left to Prometheus.
    docs = helm.template("-n", "vf", *ALL_ON)
    [rule], [dashboard] = _by_kind(docs, "PrometheusRule"), _by_kind(docs, "ConfigMap")
    assert rule["metadata"]["namespace"] == dashboard["metadata"]["namespace"] == "vf"
    assert "interval" not in rule["spec"]["groups"][0]
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"


def test_dcgm_label_names_reach_the_gpu_rules(helm: Helm) -> None:
    docs = helm.template("--set", "monitoring.prometheusRule.enabled=true",
                         "--set", "monitoring.prometheusRule.dcgmLabels.pod=gpu_pod")  # fmt: skip
    [rule] = _by_kind(docs, "PrometheusRule")
    gpu = [r["expr"] for r in rule["spec"]["groups"][0]["rules"] if "DCGM_FI_DEV_GPU_UTIL" in r["expr"]]
    assert gpu and all(
        'gpu_pod=~"' in e and "exported_namespace" in e and "exported_pod" not in e for e in gpu
    )


def test_notes_tell_about_ha_and_monitoring(helm: Helm) -> None:
    values = [
        "--set",
        "crds.install=false",
        "--set",
        "operator.replicas=2",
        "--set",
        "monitoring.dashboard.enabled=true",
    ]
    notes = helm.run("install", "rel", str(CHART), "-n", "vf", "--dry-run=client", *values).stdout
    assert "2 operator replicas share the peering object" in notes
    assert "kubectl get clusterkopfpeering rel-voicefleet" in notes
    assert "ConfigMap vf/rel-voicefleet-dashboard" in notes and "grafana_dashboard=1)" in notes
    assert "monitoring.prometheusRule.enabled is false" in notes


def test_chart_versions() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    # The appVersion is the operator's (the image tag defaults to it); the chart has its own version.
    assert chart["appVersion"] == project["version"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", chart["version"]), chart["version"]


def _gen_rules():
    spec = importlib.util.spec_from_file_location("gen_rules", ROOT / "charts" / "gen_rules.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_rules_generator_check_reports_stale(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gen = _gen_rules()
    assert gen.main(["--check"]) == 0
    stale = tmp_path / "prometheusrule.yaml"
    stale.write_text("old\n")
    monkeypatch.setattr(gen, "TEMPLATE", stale)
    assert gen.main(["--check"]) == 1
    assert gen.main([]) == 0 and gen.main(["--check"]) == 0


def test_rules_generator_refuses_template_braces(monkeypatch: pytest.MonkeyPatch) -> None:
    gen = _gen_rules()
    monkeypatch.setattr(gen, "rules", lambda: [gen.Rule("tts:x", 'up{job="{{ x }}"}', "help")])
    with pytest.raises(ValueError, match="template action"):
        gen.render()


def test_rules_table_documents_every_rule(capsys: pytest.CaptureFixture[str]) -> None:
    gen = _gen_rules()
    assert gen.main(["--table"]) == 0
    table = capsys.readouterr().out
    for rule in gen.rules():
        assert f"| `{rule.record}` | {rule.help} |" in table


def test_pod_monitor_selects_the_pods_the_operator_renders(helm: Helm) -> None:
    from tts_operator.render.common import Owner
    from tts_operator.render.deployment import render_deployment
    from tts_operator.spec import TTSServiceSpec

    assert not _by_kind(helm.template(), "PodMonitor")
    enabled = ("--set", "monitoring.podMonitor.enabled=true")
    [monitor] = _by_kind(helm.template("-n", "vf", *enabled), "PodMonitor")
    assert monitor["metadata"]["namespace"] == "vf" and monitor["spec"]["namespaceSelector"] == {"any": True}
    spec = TTSServiceSpec.model_validate(
        {"engine": "baker", "model": {"source": "builtin", "id": "baker"}, "tiers": {"gpu": {}, "cpu": {}}}
    )
    for tier in ("gpu", "cpu"):
        pod = render_deployment(Owner("voice", "team-a", "uid"), spec, tier, "hash")["spec"]["template"]
        assert monitor["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items(), tier
        ports = {p["name"] for c in pod["spec"]["containers"] for p in c.get("ports", [])}
        assert monitor["spec"]["podMetricsEndpoints"][0]["port"] in ports
    [scoped] = _by_kind(helm.template(*enabled, "--set", "watchNamespaces={tts-a,tts-b}"), "PodMonitor")
    assert scoped["spec"]["namespaceSelector"] == {"matchNames": ["tts-a", "tts-b"]}
