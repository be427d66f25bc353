"""`python -m mesh.probe HOST:PORT [SERVICE]`: exit 0 when the gRPC health answers SERVING.

For container health checks; Kubernetes uses its native `grpc:` probe instead. `accepts`
is the plainer probe: something listens on a TCP port.
"""

from __future__ import annotations

import socket
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def probe(address: str, service: str = "", timeout: float = 2.0) -> bool:
    """True when the server at `address` reports SERVING for `service`."""
    with grpc.insecure_channel(address) as channel:
        try:
            answer = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout
            )
        except grpc.RpcError:
            return False
    return bool(answer.status == health_pb2.HealthCheckResponse.SERVING)


def accepts(host: str, port: int, timeout: float = 1.0) -> bool:
    """True when a TCP connection to `host:port` is accepted."""
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError:
        return False
    return True


def main(argv: list[str]) -> int:
    if not 1 <= len(argv) <= 2:
        sys.stderr.write("usage: python -m mesh.probe HOST:PORT [SERVICE]\n")
        return 2
    return 0 if probe(argv[0], argv[1] if len(argv) == 2 else "") else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
