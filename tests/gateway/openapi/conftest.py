"""The edge fixtures of tests/gateway/http, instantiated anew for this package: the
schema-driven run creates, updates and deletes at random, so it gets a stack of its own
(userd, templated and a gateway on databases of their own, keys and seed data) and never
disturbs the state other tests read."""

import pytest

from tests.gateway.http.conftest import stack_fixtures

stack, edge, keys, http, admin, seeded = stack_fixtures("package")[1:]


@pytest.fixture(scope="package")
def edge_timeout() -> str:
    """Every schema-valid password is hashed with argon2 here, thousands of requests on a
    busy machine: a deadline for slow answers, not the 504 test's one second. Within
    schemathesis' --request-timeout (10 s), so a late answer is still the edge's."""
    return "5"
