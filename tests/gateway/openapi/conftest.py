"""The edge fixtures of tests/gateway/http, instantiated anew for this package: the
schema-driven run creates, updates and deletes at random, so it gets a stack of its own
(userd, templated and a gateway on databases of their own, keys and seed data) and never
disturbs the state other tests read."""

from tests.gateway.http.conftest import admin, edge, http, keys, seeded, stack

__all__ = ["admin", "edge", "http", "keys", "seeded", "stack"]
