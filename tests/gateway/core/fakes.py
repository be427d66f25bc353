"""Kept for tests/gateway/core/test_status.py, which imports `FakePeers` by this name:
they are the real userd and templated now (`tests.gateway.core.peers`)."""

from tests.gateway.core.peers import Peers as FakePeers

__all__ = ["FakePeers"]
