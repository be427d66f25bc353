"""`python -m deliveryd email|sms|push`: the delivery worker of one channel."""

from __future__ import annotations

import sys

from deliveryd.settings import DeliverydSettings
from mesh import amqp
from mesh.logging import configure_logging
from mesh.runtime import Runtime, run
from mesh.settings import load_settings

USAGE = "usage: python -m deliveryd email|sms|push"


def parse_channel(argv: list[str]) -> str:
    """The channel named on the command line, or exit 2 with the usage line."""
    if len(argv) != 1 or argv[0] not in amqp.CHANNELS:
        sys.stderr.write(USAGE + "\n")
        raise SystemExit(2)
    return argv[0]


async def main() -> None:
    channel = parse_channel(sys.argv[1:])
    settings = load_settings(DeliverydSettings)
    configure_logging(f"deliveryd-{channel}", settings.log_level)
    async with Runtime(f"deliveryd-{channel}", settings) as runtime:
        runtime.metrics(settings.metrics_port(channel))
        runtime.redis(required=True)
        connection = await runtime.rabbitmq(required=True)
        async with connection.channel() as amqp_channel:
            await amqp.declare_topology(amqp_channel)
        await runtime.serve_grpc(settings.grpc_port(channel), [])
        await runtime.wait_for_shutdown()


if __name__ == "__main__":
    run(main)
