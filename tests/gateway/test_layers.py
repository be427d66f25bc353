"""The gateway's domain speaks no protobuf: only the adapters at its edges import `grpc`,
`google.protobuf` or a generated `_pb2` module (issue 18). Imports are read with `ast`,
so a type-only import counts too."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import gateway

ROOT = Path(gateway.__file__).parent.parent
GATEWAY = Path(gateway.__file__).parent

# The edges, each allowed to speak protobuf for the reason given; anything else is domain.
ADAPTERS = {
    # gRPC doors: wire messages in, domain calls, wire messages out.
    "gateway/notifications/servicer.py",
    "gateway/status/servicer.py",
    "gateway/receipts/servicer.py",
    "gateway/callbacks/servicer.py",
    # Who calls a gRPC door, from the call's metadata.
    "gateway/callers.py",
    # protobuf ⇄ domain converters the servicers use.
    "gateway/notifications/protos.py",
    "gateway/status/reports.py",
    # The send's SendRequest encoding: the idempotency hash stored keys hold.
    "gateway/notifications/payload.py",
    # The herald.v1 enum numbers the domain carries as opaque ints.
    "gateway/wire.py",
    # The client of userd and templated (answers become Recipient and Rendered).
    "gateway/notifications/peers.py",
    # The delivery job on the queue: built, read, rebuilt; and the outbox publishing it.
    "gateway/jobs.py",
    "gateway/outbox.py",
    # Wiring: channels, servers, health.
    "gateway/core.py",
    # The REST edge's calls to userd and templated over gRPC, and their conversions.
    "gateway/http/backends.py",
    "gateway/http/convert/common.py",
    "gateway/http/convert/notifications.py",
    "gateway/http/convert/templates.py",
    "gateway/http/convert/users.py",
    "gateway/http/edge.py",
    "gateway/http/errors.py",
    "gateway/http/health.py",
    "gateway/http/routes/templates.py",
    "gateway/http/routes/users.py",
}
FORBIDDEN_ROOTS = ("grpc", "grpc_health", "grpc_status", "google.protobuf")


def forbidden(module: str) -> bool:
    """Whether importing `module` means speaking protobuf or gRPC."""
    if any(module == root or module.startswith(root + ".") for root in FORBIDDEN_ROOTS):
        return True
    return any(part.endswith(("_pb2", "_pb2_grpc")) for part in module.split("."))


def protobuf_imports(source: str) -> list[str]:
    """The modules `source` imports that speak protobuf or gRPC (`from a import b` is
    both `a` and `a.b`: b may be a module, such as `herald.v1.user_pb2`)."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if forbidden(a.name)]
        elif isinstance(node, ast.ImportFrom):
            base = f"{node.module}." if node.module else ""
            names = [node.module or ""] + [base + a.name for a in node.names]
            found += [name for name in names if forbidden(name)][:1]
    return found


def modules() -> list[str]:
    return sorted(str(p.relative_to(ROOT)) for p in GATEWAY.rglob("*.py"))


def test_only_the_adapters_import_protobuf_or_grpc() -> None:
    speaking = {
        path: imports
        for path in modules()
        if (imports := protobuf_imports((ROOT / path).read_text()))
    }
    assert {p: i for p, i in speaking.items() if p not in ADAPTERS} == {}


def test_every_adapter_named_exists() -> None:
    assert ADAPTERS - set(modules()) == set()


@pytest.mark.parametrize(
    ("source", "found"),
    [
        ("import grpc", ["grpc"]),
        ("import grpc.aio", ["grpc.aio"]),
        ("from grpc import aio", ["grpc"]),
        ("from herald.v1 import user_pb2", ["herald.v1.user_pb2"]),
        ("from herald.v1.user_pb2_grpc import UserServiceStub", ["herald.v1.user_pb2_grpc"]),
        ("from google.protobuf import struct_pb2", ["google.protobuf"]),
        ("from grpc_health.v1 import health_pb2", ["grpc_health.v1"]),
        (
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
            "    from herald.v1 import delivery_pb2",
            ["herald.v1.delivery_pb2"],
        ),
        ("from gateway import jobs\nimport grpclib_like", []),
        ("from . import user_pb2", ["user_pb2"]),
        ("from herald.v1 import common", []),
    ],
)
def test_what_counts_as_speaking_protobuf(source: str, found: list[str]) -> None:
    assert protobuf_imports(source) == found
