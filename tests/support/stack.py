"""Herald's core processes (userd, templated, the gateway) started together for end-to-end
tests, each on databases of the test's own, and a RabbitMQ vhost to put them on."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from tests.conftest import ServiceFactory
from tests.support.infra import Isolation
from tests.support.processes import ServiceProcess


@dataclass(frozen=True)
class Core:
    userd: ServiceProcess
    templated: ServiceProcess
    gateway: ServiceProcess

    def stop(self) -> None:
        self.gateway.stop_together(self.templated, self.userd)


async def start_core(
    factory: ServiceFactory,
    isolation: Isolation,
    *,
    name: str,
    amqp_url: str,
    allow_loopback: bool,
    gateway_env: dict[str, str] | None = None,
) -> Core:
    """userd, templated and a gateway wired to them and to `amqp_url`; databases named
    after `name`, so two stacks of one run never share a table. `allow_loopback` lets
    userd take Web Push endpoints on 127.0.0.1 (the fake push service's)."""
    # userd and templated need nothing of each other: they start side by side.
    userd, templated = await asyncio.gather(
        asyncio.to_thread(
            factory,
            "userd",
            env={
                "HERALD_USERD_DATABASE": isolation.database(f"users_{name}"),
                "HERALD_OUTBOUND_ALLOW_LOOPBACK": str(allow_loopback).lower(),
            },
        ),
        asyncio.to_thread(
            factory,
            "templated",
            env={"HERALD_TEMPLATED_DATABASE": isolation.database(f"templates_{name}")},
        ),
    )
    gateway = await asyncio.to_thread(
        factory,
        "gateway",
        env={
            "HERALD_USERD_ADDR": userd.address,
            "HERALD_TEMPLATED_ADDR": templated.address,
            "HERALD_AMQP_URL": amqp_url,
            "HERALD_GATEWAY_DATABASE": isolation.database(f"notifications_{name}"),
            **(gateway_env or {}),
        },
    )
    return Core(userd, templated, gateway)
