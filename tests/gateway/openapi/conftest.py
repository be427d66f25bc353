"""The edge fixtures of tests/gateway/http, instantiated anew for this package: the
schema-driven run creates, updates and deletes at random, so it gets a fake mesh (and an
edge, keys and seed data) of its own and never disturbs the state other tests read."""

from tests.gateway.http.conftest import admin, edge, fakes, http, keys, seeded

__all__ = ["admin", "edge", "fakes", "http", "keys", "seeded"]
