"""Session-wide fixtures: real servers, one isolation per run, service processes."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support import forkserver
from tests.support.infra import InfrastructureMissing, Isolation, check_servers, free_port
from tests.support.processes import ServiceProcess

# The pyramid's tiers (README, "Tests"), told apart by what a test's fixtures need:
#   unit         no server at all: pure logic (`make test-fast`, `-m unit`)
#   integration  the real PostgreSQL, Redis and RabbitMQ (this run's `isolation`), in process
#   e2e          Herald's own processes too (`service_factory`)
# A test that reaches a server some other way says so with its own mark.
TIERS = ("unit", "integration", "e2e")
E2E_FIXTURES = frozenset({"service_factory"})
SERVER_FIXTURES = frozenset({"isolation"})


def tier_of(item: pytest.Item) -> str:
    marked = [m.name for m in item.iter_markers() if m.name in TIERS]
    if marked:
        return marked[0]
    needs = set(getattr(item, "fixturenames", ()))
    if needs & E2E_FIXTURES:
        return "e2e"
    return "integration" if needs & SERVER_FIXTURES else "unit"


# Packages whose stack is package-scoped: run whole on one xdist worker (`--dist
# loadgroup`), so the stack starts once, not each time a worker comes back to the package.
# Every other test file is a group of its own, as `--dist loadfile` would make it.
PACKAGE_GROUPS = ("tests/gateway/http/", "tests/gateway/core/", "tests/gateway/openapi/")


def xdist_group_of(item: pytest.Item) -> str:
    path = item.nodeid.split("::", 1)[0]
    return next((p.rstrip("/") for p in PACKAGE_GROUPS if path.startswith(p)), path)


# The longest groups go out first (`--no-loadscope-reorder` keeps this order), so the run
# never ends waiting on a long one started late: the schema-driven run, the edge's package,
# the bench's smoke run, the console's browser tests.
FIRST = (
    "tests/gateway/openapi",
    "tests/gateway/http",
    "tests/bench/test_smoke.py",
    "tests/console",
)


def _start_order(item: pytest.Item) -> int:
    group = xdist_group_of(item)
    return next((i for i, p in enumerate(FIRST) if group.startswith(p)), len(FIRST))


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by these marks, and before xdist
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        item.add_marker(tier_of(item))
        item.add_marker(pytest.mark.xdist_group(xdist_group_of(item)))
    items.sort(key=_start_order)  # stable: within a group, the order as collected


def pytest_xdist_node_collection_finished(node: object, ids: list[str]) -> None:
    """Stops a run whose groups did not take: xdist marks a grouped test's id with
    `@group`, and when it cannot (pytest-xdist#1386, pytest 9.2) it hands one module's
    tests to every worker without a word, each starting that module's stack again."""
    config = getattr(node, "config", None)
    if config is None or config.getoption("dist", None) != "loadgroup":
        return
    ungrouped = [i for i in ids if i.rfind("@") <= i.rfind("]")]
    if ungrouped:
        raise pytest.UsageError(
            f"--dist loadgroup did not group {len(ungrouped)} tests (e.g. {ungrouped[0]}): "
            "pytest-xdist cannot mark this pytest's node ids (pytest-xdist#1386); "
            "see the pytest pin in pyproject.toml"
        )


def pytest_sessionstart(session: pytest.Session) -> None:
    if session.config.getoption("markexpr") == "unit":
        return  # the fast loop needs no server
    try:
        check_servers()
    except InfrastructureMissing as exc:
        pytest.exit(str(exc), returncode=3)


@pytest.fixture(autouse=True)
def _signals_restored() -> Iterator[None]:
    """A Runtime run in process ignores SIGTERM and SIGINT once it stops (a process that
    is shutting down must not be cut short: mesh/runtime.py). The test process must not go
    on ignoring them, nor hand that on to every process it starts afterwards."""
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    yield
    for sig, handler in saved.items():
        if handler is not None and signal.getsignal(sig) is not handler:
            signal.signal(sig, handler)


@pytest.fixture(scope="session")
def isolation() -> Iterator[Isolation]:
    """This run's databases, vhost and Redis prefix; dropped at the end."""
    iso = Isolation()
    iso.create()
    yield iso
    iso.destroy()


@pytest.fixture(scope="session")
def logs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("service-logs")


ServiceFactory = Callable[..., ServiceProcess]
TEST_DB_POOL_SIZE = "8"
TEST_PASSWORD_HASH_PROFILE = "cheapest"


def _port_variables(module: str, args: tuple[str, ...]) -> tuple[str, str]:
    """The variables of a process's gRPC port and of its own /metrics port ("" for the
    gateway's: its HTTP port serves /metrics)."""
    if module == "deliveryd":
        channel = args[0].upper()
        return f"HERALD_DELIVERYD_{channel}_GRPC_PORT", f"HERALD_DELIVERYD_{channel}_METRICS_PORT"
    if args == ("callbacks",):
        return "HERALD_CALLBACKS_GRPC_PORT", "HERALD_CALLBACKS_METRICS_PORT"
    if module == "gateway":
        return "HERALD_GATEWAY_GRPC_PORT", ""
    prefix = f"HERALD_{module.upper()}"
    return f"{prefix}_GRPC_PORT", f"{prefix}_METRICS_PORT"


@pytest.fixture(scope="session")
def service_factory(isolation: Isolation, logs_dir: Path) -> Iterator[ServiceFactory]:
    """Starts Herald processes on free ports with this run's isolation; stops them after.

    `service_factory("userd")`, `service_factory("deliveryd", "email", env={...})`,
    `service_factory("gateway", "callbacks", env={...})`.
    """
    started: list[ServiceProcess] = []

    def start(
        module: str, *args: str, env: dict[str, str] | None = None, wait: bool = True
    ) -> ServiceProcess:
        port_env, metrics_env = _port_variables(module, args)
        # A port given in `env` is shared with a process already on it (SO_REUSEPORT).
        port = int((env or {}).get(port_env) or free_port())
        full_env = {**isolation.env(), port_env: str(port)}
        if module == "gateway":  # the gateway, or the callbacks process
            # Stacks live for a module or the run beside one another on each xdist worker:
            # a gateway's 20 connections each would crowd PostgreSQL's 100.
            full_env["HERALD_GATEWAY_DB_POOL_SIZE"] = TEST_DB_POOL_SIZE
        if module == "userd":
            # A production hash costs ~0.1-0.3 s of CPU, and the suite creates users by the
            # hundred; the same argon2id code runs with the cheapest parameters.
            full_env["HERALD_USERD_PASSWORD_HASH_PROFILE"] = TEST_PASSWORD_HASH_PROFILE
        if metrics_env:
            full_env[metrics_env] = str(free_port())
        edge = module == "gateway" and not args
        if edge:
            full_env["HERALD_GATEWAY_HTTP_PORT"] = str(free_port())
        full_env.update(env or {})
        http_port = full_env.get("HERALD_GATEWAY_HTTP_PORT") if edge else None
        name = "-".join((module, *args))
        proc = ServiceProcess(
            name=name,
            args=[module, *args],
            env=full_env,
            grpc_port=port,
            log_path=logs_dir / f"{name}-{port}-{len(started)}.log",
            http_port=int(http_port) if http_port else None,
        )
        started.append(proc)
        return proc.start(wait=wait)

    yield start
    # Every process still running is told at once, so their graceful stops overlap.
    running = [p for p in started if p.process is not None and p.process.poll() is None]
    if running:
        with contextlib.suppress(AssertionError):  # one that ignored SIGTERM was killed
            running[0].stop_together(*running[1:])
    forkserver.close_all()
