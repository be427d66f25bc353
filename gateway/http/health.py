"""`GET /health`: the gateway's own health plus its peers' gRPC health, aggregated."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from mesh.health import HealthMonitor

PEER_TIMEOUT = 1.0


@dataclass(frozen=True)
class Peer:
    """A service the edge depends on, probed with grpc.health.v1 on service ""."""

    name: str
    channel: grpc.aio.Channel


async def _peer_status(peer: Peer) -> str:
    stub = health_pb2_grpc.HealthStub(peer.channel)
    try:
        answer = await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=PEER_TIMEOUT)
    except grpc.aio.AioRpcError as exc:
        return f"UNREACHABLE ({exc.code().name})"
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status))


async def aggregate(monitor: HealthMonitor, peers: list[Peer]) -> tuple[bool, dict[str, str]]:
    """(all serving?, status per component) for the gateway and every peer."""
    statuses = await asyncio.gather(*(_peer_status(p) for p in peers))
    detail = {"gateway": "SERVING" if monitor.healthy else "NOT_SERVING"}
    detail.update({p.name: s for p, s in zip(peers, statuses, strict=True)})
    return all(s == "SERVING" for s in detail.values()), detail
