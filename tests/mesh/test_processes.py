"""Every Herald process starts, serves health and reflection, and exits 0 on SIGTERM."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx
import pytest

from tests.conftest import ServiceFactory
from tests.support.processes import SERVING, health_status

GRPCURL = str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "grpcurl")


@pytest.mark.parametrize(
    ("module", "args", "service_name"),
    [
        ("userd", (), "herald.v1.UserService"),
        ("templated", (), "herald.v1.TemplateService"),
        ("gateway", (), "herald.v1.NotificationService"),
        ("deliveryd", ("email",), "herald.deliveryd.email"),
        ("deliveryd", ("sms",), "herald.deliveryd.sms"),
        ("deliveryd", ("push",), "herald.deliveryd.push"),
        ("gateway", ("callbacks",), "herald.callbacks"),
    ],
)
def test_process_serves_health_and_reflection_then_stops_cleanly(
    service_factory: ServiceFactory, module: str, args: tuple[str, ...], service_name: str
) -> None:
    proc = service_factory(module, *args)
    assert health_status(proc.grpc_port) == SERVING
    listed = subprocess.run(
        [GRPCURL, "-plaintext", proc.address, "list"],
        capture_output=True,
        text=True,
        check=True,
        timeout=10,
    ).stdout.split()
    assert "grpc.health.v1.Health" in listed
    assert "grpc.reflection.v1alpha.ServerReflection" in listed
    if module != "deliveryd" and not args:  # the workers and callbacks serve no API
        assert service_name in listed
    # What Kubernetes' grpc: probes ask (deploy/k8s): readiness the service's own name,
    # liveness and start-up `herald.live`.
    assert health_status(proc.grpc_port, service_name) == SERVING
    assert health_status(proc.grpc_port, "herald.live") == SERVING

    # Every process's /metrics passes Prometheus's own lint of metric names and help.
    metrics_port = proc.http_port or int(
        next(
            v
            for k, v in proc.env.items()
            if k.endswith("_METRICS_PORT") and k != "HERALD_GATEWAY_METRICS_PORT"
        )
    )
    scraped = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).text
    assert "herald_serving 1.0" in scraped
    lint = subprocess.run(
        ["promtool", "check", "metrics"],
        input=scraped,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr

    # stop() fails the test if the process outlives HERALD_GRACE_SECONDS (5) plus slack.
    assert proc.stop(timeout=7) == 0
    assert "Traceback" not in proc.logs()
