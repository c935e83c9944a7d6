"""The chart against the real control plane: dry run, install, upgrade (values and CRD), rollback,
uninstall, and the ServiceAccount's RBAC as the API server enforces it."""

from __future__ import annotations

import json
import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster.cluster import Cluster
from tests.helm.conftest import ALL_ON, CHART, CRD_NAME, Helm, adopt_crd, restore_crd
from tests.operator.conftest import wait_for

# Every kind the chart creates, namespaced or not; uninstall must leave none with the release's label.
NAMESPACED_KINDS = (
    "deployments.apps",
    "serviceaccounts",
    "services",
    "rolebindings.rbac.authorization.k8s.io",
    "configmaps",
    "prometheusrules.monitoring.coreos.com",
    "servicemonitors.monitoring.coreos.com",
    "podmonitors.monitoring.coreos.com",
    "kopfpeerings.kopf.dev",
    "poddisruptionbudgets.policy",
)
CLUSTER_KINDS = (
    "clusterroles.rbac.authorization.k8s.io",
    "clusterrolebindings.rbac.authorization.k8s.io",
    "clusterkopfpeerings.kopf.dev",
)


def _names(cluster: Cluster, kind: str, release: str, where: str | None) -> list[str]:
    """Objects of `kind` labelled with `release`: in namespace `where`, or everywhere when None."""
    args = ["get", kind, "-l", f"app.kubernetes.io/instance={release}", "-o", "name"]
    return cluster.kubectl(*args, *(["-n", where] if where else ["--all-namespaces"])).split()


def _crd(cluster: Cluster) -> dict:
    return json.loads(cluster.kubectl("get", "crd", CRD_NAME, "-o", "json"))


def _printer_columns(cluster: Cluster) -> list[str]:
    return [c["name"] for c in _crd(cluster)["spec"]["versions"][0]["additionalPrinterColumns"]]


def _deployment(cluster: Cluster, namespace: str, release: str) -> dict:
    return json.loads(
        cluster.kubectl("-n", namespace, "get", "deployment", f"{release}-voicefleet", "-o", "json")
    )


def _operator_args(cluster: Cluster, namespace: str, release: str) -> list[str]:
    return _deployment(cluster, namespace, release)["spec"]["template"]["spec"]["containers"][0]["args"]


def _peered_pods(cluster: Cluster, namespace: str, release: str) -> list[str]:
    """Running operator pods of `release` whose container has --peering and POD_ID from the pod name."""
    selector = f"app.kubernetes.io/instance={release}"
    pods = json.loads(cluster.kubectl("-n", namespace, "get", "pods", "-l", selector, "-o", "json"))["items"]
    names = []
    for pod in pods:
        [container] = pod["spec"]["containers"]
        env = {e["name"]: e.get("valueFrom") for e in container.get("env", [])}
        if (
            pod["status"].get("phase") == "Running"
            and not pod["metadata"].get("deletionTimestamp")
            and f"--peering={release}-voicefleet" in container["args"]
            and env.get("POD_ID") == {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}
        ):
            names.append(pod["metadata"]["name"])
    return names


def _chart_with_crd_change(tmp: Path) -> Path:
    """A copy of the chart whose CRD has one more printer column: a CRD change as a release would ship it."""
    chart = tmp / "voicefleet"
    shutil.copytree(CHART, chart)
    crd = chart / "templates" / "crd-ttsservices.yaml"
    text = crd.read_text()
    text, count = re.subn(
        r"\n( *)- name: Engine\n",
        lambda m: (
            f"\n{m[1]}- name: Generation\n{m[1]}  type: integer\n{m[1]}  jsonPath: .metadata.generation\n"
            f"{m[1]}- name: Engine\n"
        ),
        text,
    )
    assert count == 1, "the CRD template changed shape; update this test"
    crd.write_text(text)
    return chart


def test_template_is_accepted_by_server_side_dry_run(
    helm: Helm, cluster: Cluster, namespace: str, monitoring_crds: list[str]
) -> None:
    ha = ["--set", "operator.replicas=2"]
    for extra, kinds in (
        ([], []),
        (["--set", f"watchNamespaces={{{namespace}}}", "--set", "metrics.service.enabled=false"], []),
        # Everything optional on, judged by the real prometheus-operator and kopf peering CRD schemas.
        ([*ALL_ON, *ha], ["prometheusrule.monitoring.coreos.com/dry-voicefleet-tts",
                          "servicemonitor.monitoring.coreos.com/dry-voicefleet",
                          "podmonitor.monitoring.coreos.com/dry-voicefleet-tts",
                          "configmap/dry-voicefleet-dashboard", "clusterkopfpeering.kopf.dev/dry-voicefleet",
                          "clusterrole.rbac.authorization.k8s.io/dry-voicefleet-peering",
                          "poddisruptionbudget.policy/dry-voicefleet"]),
        ([*ha, "--set", f"watchNamespaces={{{namespace}}}"], ["kopfpeering.kopf.dev/dry-voicefleet",
                                                               "rolebinding.rbac.authorization.k8s.io/dry-voicefleet-peering"]),
    ):  # fmt: skip
        rendered = helm.run("template", "dry", str(CHART), "-n", namespace, *extra).stdout
        out = cluster.kubectl("apply", "--dry-run=server", "--server-side", "--field-manager=helm-test",
                              "-f", "-", stdin=rendered)  # fmt: skip
        assert "deployment.apps/dry-voicefleet serverside-applied (server dry run)" in out, out
        assert "clusterrole.rbac.authorization.k8s.io/dry-voicefleet serverside-applied" in out, out
        for kind in kinds:
            assert f"{kind} serverside-applied (server dry run)" in out, out
    # A dry run creates nothing.
    assert not _names(cluster, "deployments.apps", "dry", None)


def test_monitoring_crd_schemas_are_live(
    helm: Helm, cluster: Cluster, namespace: str, monitoring_crds: list[str]
) -> None:
    # The acceptance above means something: the same CRDs refuse a ServiceMonitor and a PrometheusRule
    # that break their schemas.
    docs = helm.template("-n", namespace, *ALL_ON)
    [monitor] = [d for d in docs if d["kind"] == "ServiceMonitor"]
    monitor["spec"]["endpoints"][0]["interval"] = "every 30 seconds"
    [rule] = [d for d in docs if d["kind"] == "PrometheusRule"]
    rule["spec"]["groups"][0]["rules"][0]["for"] = "a while"
    for broken, field in ((monitor, "spec.endpoints[0].interval"), (rule, "spec.groups[0].rules[0].for")):
        out = cluster.kubectl("apply", "--dry-run=server", "-f", "-", stdin=json.dumps(broken), check=False,
                              stderr=True)  # fmt: skip
        assert "Invalid value" in out and field in out, out


def test_install_upgrade_rollback_uninstall(
    helm: Helm, cluster: Cluster, namespace: str, tmp_path: Path, monitoring_crds: list[str]
) -> None:
    release = "vf"
    adopt_crd(cluster, release, namespace)
    try:
        # install, monitoring on: the CRD (adopted), every operator object and the monitoring objects exist.
        helm.run("install", release, str(CHART), "-n", namespace, *ALL_ON)
        assert _names(cluster, "deployments.apps", release, namespace) == ["deployment.apps/vf-voicefleet"]
        assert _names(cluster, "serviceaccounts", release, namespace) == ["serviceaccount/vf-voicefleet"]
        assert _names(cluster, "services", release, namespace) == ["service/vf-voicefleet-metrics"]
        assert sorted(_names(cluster, CLUSTER_KINDS[0], release, None)) == [
            "clusterrole.rbac.authorization.k8s.io/vf-voicefleet",
            "clusterrole.rbac.authorization.k8s.io/vf-voicefleet-cluster",
        ]
        assert len(_names(cluster, CLUSTER_KINDS[1], release, None)) == 2
        assert _names(cluster, "prometheusrules.monitoring.coreos.com", release, namespace) == [
            "prometheusrule.monitoring.coreos.com/vf-voicefleet-tts"
        ]
        assert _names(cluster, "servicemonitors.monitoring.coreos.com", release, namespace) == [
            "servicemonitor.monitoring.coreos.com/vf-voicefleet"
        ]
        assert _names(cluster, "podmonitors.monitoring.coreos.com", release, namespace) == [
            "podmonitor.monitoring.coreos.com/vf-voicefleet-tts"
        ]
        assert _names(cluster, "configmaps", release, namespace) == ["configmap/vf-voicefleet-dashboard"]
        assert _deployment(cluster, namespace, release)["spec"]["strategy"]["type"] == "Recreate"
        assert not _names(cluster, "clusterkopfpeerings.kopf.dev", release, None)
        crd = _crd(cluster)
        assert crd["metadata"]["annotations"]["meta.helm.sh/release-name"] == release
        assert crd["metadata"]["labels"]["app.kubernetes.io/instance"] == release
        assert "Generation" not in _printer_columns(cluster)
        assert "--verbose" not in _operator_args(cluster, namespace, release)

        # upgrade with changed values, two peered replicas: the Deployment follows, the peering appears.
        helm.run(
            "upgrade",
            release,
            str(CHART),
            "-n",
            namespace,
            "--reuse-values",
            "--set",
            "operator.verbose=true",
            "--set",
            "operator.replicas=2",
        )
        assert "--verbose" in _operator_args(cluster, namespace, release)
        assert "--peering=vf-voicefleet" in _operator_args(cluster, namespace, release)
        assert _deployment(cluster, namespace, release)["spec"]["strategy"]["type"] == "RollingUpdate"
        assert _names(cluster, "clusterkopfpeerings.kopf.dev", release, None) == [
            "clusterkopfpeering.kopf.dev/vf-voicefleet"
        ]
        assert _names(cluster, "poddisruptionbudgets.policy", release, namespace) == [
            "poddisruptionbudget.policy/vf-voicefleet"
        ]
        # The pods themselves (kwok runs them): two, each with the peering argument and its own POD_ID.
        wait_for(lambda: len(_peered_pods(cluster, namespace, release)) == 2, timeout=60,
                 what="two operator pods with --peering")  # fmt: skip

        # upgrade with a CRD change: Helm updates the templated CRD (it would not touch crds/).
        helm.run("upgrade", release, str(_chart_with_crd_change(tmp_path)), "-n", namespace, "--reuse-values")
        assert "Generation" in _printer_columns(cluster)
        assert "--verbose" in _operator_args(cluster, namespace, release)

        # rollback to the first revision: value and CRD both go back.
        helm.run("rollback", release, "1", "-n", namespace, "--wait", "--timeout=60s")
        assert "Generation" not in _printer_columns(cluster)
        assert "--verbose" not in _operator_args(cluster, namespace, release)
        assert _deployment(cluster, namespace, release)["spec"]["strategy"]["type"] == "Recreate"
        assert not _names(cluster, "clusterkopfpeerings.kopf.dev", release, None)
        assert not _names(cluster, "poddisruptionbudgets.policy", release, namespace)
        history = helm.history(release, namespace)
        assert [h["revision"] for h in history] == [1, 2, 3, 4]
        assert history[-1]["status"] == "deployed" and "Rollback to 1" in history[-1]["description"]

        # uninstall: no operator object is left; the CRD stays (helm.sh/resource-policy: keep).
        helm.run("uninstall", release, "-n", namespace, "--wait", "--timeout=60s")
        for kind in NAMESPACED_KINDS:
            assert not _names(cluster, kind, release, None), kind
        for kind in CLUSTER_KINDS:
            assert not _names(cluster, kind, release, None), kind
        assert _crd(cluster)["spec"]["versions"][0]["name"] == "v1alpha1"
        assert helm.run("status", release, "-n", namespace, check=False).returncode != 0
    finally:
        helm.run("uninstall", release, "-n", namespace, "--ignore-not-found", check=False)
        restore_crd(cluster)
    crd = _crd(cluster)
    assert "meta.helm.sh/release-name" not in crd["metadata"].get("annotations", {})
    assert "Generation" not in _printer_columns(cluster)


# ---- RBAC: what the chart's ServiceAccount may do, as the API server decides ------------------------

# What the operator does (operator/tts_operator/handlers.py, kube.py), per namespace it serves.
NEEDED_IN_NAMESPACE = [
    *(f"{verb} ttsservices.voicefleet.io" for verb in ("get", "list", "watch", "patch")),
    "patch ttsservices.voicefleet.io --subresource=status",
    *(
        f"{verb} {resource}"
        for resource in ("deployments.apps", "services", "configmaps", "poddisruptionbudgets.policy")
        for verb in ("get", "list", "watch", "create", "patch", "delete")
    ),
    *(
        f"{verb} scaledobjects.keda.sh"
        for verb in ("get", "list", "watch", "create", "patch", "update", "delete")
    ),
    *(f"{verb} pods" for verb in ("get", "list", "watch")),
    *(f"{verb} horizontalpodautoscalers.autoscaling" for verb in ("get", "list", "watch")),
    "create events",
]
# kopf's discovery of resources and namespaces.
NEEDED_CLUSTER_WIDE = [
    "list customresourcedefinitions.apiextensions.k8s.io",
    "watch customresourcedefinitions.apiextensions.k8s.io",
    "list namespaces",
    "watch namespaces",
]
# Never needed, in any namespace.
REFUSED_ANYWHERE = [
    "create secrets",
    "get secrets",
    "list secrets",
    "create pods",
    "delete pods",
    "create pods --subresource=exec",
    "delete ttsservices.voicefleet.io",
    "create serviceaccounts",
    "create rolebindings.rbac.authorization.k8s.io",
    "update deployments.apps",
    "patch horizontalpodautoscalers.autoscaling",  # KEDA owns them; the operator only reads
]
REFUSED_CLUSTER_WIDE = [
    "create customresourcedefinitions.apiextensions.k8s.io",
    "patch customresourcedefinitions.apiextensions.k8s.io",
    "delete namespaces",
    "create clusterroles.rbac.authorization.k8s.io",
    "create clusterrolebindings.rbac.authorization.k8s.io",
    "list nodes",
    "impersonate serviceaccounts",
]


class Rights:
    def __init__(self, cluster: Cluster, user: str) -> None:
        self.cluster, self.user = cluster, user

    def can(self, check: str, namespace: str | None) -> bool:
        where = ["-n", namespace] if namespace else []
        out = self.cluster.kubectl("auth", "can-i", *check.split(), f"--as={self.user}", *where, check=False)
        return out.strip() == "yes"

    def wrong(self, checks: list[str], namespace: str | None, expected: bool) -> list[str]:
        return [f"{c} -n {namespace}" for c in checks if self.can(c, namespace) is not expected]


@pytest.fixture
def namespaces(cluster: Cluster) -> Iterator[tuple[str, str, str]]:
    """(where the operator runs, a namespace it serves, a namespace it does not serve)."""
    names = tuple(f"h-{role}-{uuid.uuid4().hex[:6]}" for role in ("op", "served", "other"))
    for name in names:
        cluster.kubectl("create", "namespace", name)
    try:
        yield names
    finally:
        for name in names:
            cluster.kubectl("delete", "namespace", name, "--wait=false")


@pytest.mark.parametrize("scope", ["namespaces", "cluster"])
def test_service_account_rights(
    helm: Helm, cluster: Cluster, namespaces: tuple[str, str, str], scope: str
) -> None:
    op_ns, served, other = namespaces
    release = f"rb{scope[0]}"
    args = ["--set", "crds.install=false"]  # the CRD belongs to another release (or to kubectl)
    if scope == "namespaces":
        args += ["--set", f"watchNamespaces={{{served}}}"]
    helm.run("install", release, str(CHART), "-n", op_ns, *args)
    try:
        rights = Rights(cluster, f"system:serviceaccount:{op_ns}:{release}-voicefleet")
        wrong = rights.wrong(NEEDED_IN_NAMESPACE, served, True)
        wrong += rights.wrong(NEEDED_CLUSTER_WIDE, None, True)
        wrong += rights.wrong(REFUSED_CLUSTER_WIDE, None, False)
        for ns in (served, other, op_ns, "kube-system"):
            wrong += rights.wrong(REFUSED_ANYWHERE, ns, False)
        if scope == "namespaces":
            # Nothing at all outside the served namespace, and no cluster-wide reads of its resources.
            wrong += rights.wrong(NEEDED_IN_NAMESPACE, other, False)
            wrong += rights.wrong(
                ["list ttsservices.voicefleet.io -A", "watch deployments.apps -A"], None, False
            )
        else:
            wrong += rights.wrong(NEEDED_IN_NAMESPACE, other, True)
        assert not wrong, f"permissions differ from the operator's needs: {wrong}"
    finally:
        helm.run("uninstall", release, "-n", op_ns, "--wait", "--timeout=60s", check=False)
    assert not rights.can("list namespaces", None), "uninstall left the ServiceAccount's bindings behind"


@pytest.mark.parametrize("scope", ["namespaces", "cluster"])
def test_peering_rights(helm: Helm, cluster: Cluster, namespaces: tuple[str, str, str], scope: str) -> None:
    # Two replicas: kopf watches its peering object and patches its own entry, nothing more.
    op_ns, served, other = namespaces
    release = f"pr{scope[0]}"
    args = ["--set", "crds.install=false", "--set", "operator.replicas=2"]
    if scope == "namespaces":
        args += ["--set", f"watchNamespaces={{{served}}}"]
    helm.run("install", release, str(CHART), "-n", op_ns, *args)
    name = f"{release}-voicefleet"
    try:
        rights = Rights(cluster, f"system:serviceaccount:{op_ns}:{name}")
        if scope == "namespaces":
            kind = "kopfpeerings.kopf.dev"
            needed = [(f"{verb} {kind}/{name}", served) for verb in ("get", "patch")]
            needed += [(f"{verb} {kind}", served) for verb in ("list", "watch")]
            refused = [(f"{verb} {kind}/{name}", ns) for verb in ("get", "patch") for ns in (other, op_ns)]
            refused += [(f"list {kind}", other), ("list clusterkopfpeerings.kopf.dev", None)]
            assert cluster.kubectl("-n", served, "get", "kopfpeering", name, "-o", "name").strip()
        else:
            kind = "clusterkopfpeerings.kopf.dev"
            needed = [(f"{verb} {kind}/{name}", None) for verb in ("get", "patch")]
            needed += [(f"{verb} {kind}", None) for verb in ("list", "watch")]
            refused = [("list kopfpeerings.kopf.dev", served)]
            assert cluster.kubectl("get", "clusterkopfpeering", name, "-o", "name").strip()
        refused += [(f"{verb} {kind}/someone-else", ns) for verb in ("get", "patch") for ns in (served, None)]
        refused += [
            (f"{verb} {kind}", ns) for verb in ("create", "delete", "update") for ns in (served, None)
        ]
        wrong = [f"{c} -n {ns}" for c, ns in needed if not rights.can(c, ns)]
        wrong += [f"{c} -n {ns}" for c, ns in refused if rights.can(c, ns)]
        assert not wrong, f"peering permissions differ from kopf's needs: {wrong}"
    finally:
        helm.run("uninstall", release, "-n", op_ns, "--wait", "--timeout=60s", check=False)


def test_operator_pod_meets_the_restricted_pod_security_standard(
    helm: Helm, cluster: Cluster, namespace: str
) -> None:
    # The API server's own Pod Security admission judges the Deployment's pod template.
    cluster.kubectl("label", "namespace", namespace, "pod-security.kubernetes.io/warn=restricted",
                    "pod-security.kubernetes.io/warn-version=latest")  # fmt: skip
    rendered = helm.run("template", "psa", str(CHART), "-n", namespace, "--set", "crds.install=false").stdout
    warnings = cluster.kubectl("apply", "--dry-run=server", "--server-side", "--field-manager=helm-test",
                               "-f", "-", stdin=rendered, stderr=True)  # fmt: skip
    assert "PodSecurity" not in warnings, warnings
    # The check is live: a root container in the same namespace draws the warning.
    root_pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "root", "namespace": namespace},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]}}  # fmt: skip
    warned = cluster.kubectl("apply", "--dry-run=server", "-f", "-", stdin=json.dumps(root_pod), stderr=True)
    assert 'would violate PodSecurity "restricted:latest"' in warned, warned


def test_notes_tts_service_is_valid(helm: Helm, cluster: Cluster, namespace: str) -> None:
    # The TTSService NOTES.txt tells the reader to apply passes the CRD's validation as written.
    notes = helm.run(
        "install", "n", str(CHART), "-n", namespace, "--dry-run=client", "--set", "crds.install=false"
    )
    body = notes.stdout.split("<<'YAML'\n", 1)[1].split("\n     YAML\n", 1)[0]
    manifest = "\n".join(line.removeprefix("     ") for line in body.splitlines())
    assert "kind: TTSService" in manifest
    out = cluster.kubectl("-n", namespace, "apply", "--dry-run=server", "-f", "-", stdin=manifest)
    assert "ttsservice.voicefleet.io/hello created (server dry run)" in out, out
