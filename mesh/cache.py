"""Redis: one asyncio client per process, with short timeouts so an outage fails fast."""

from __future__ import annotations

import redis.asyncio as aioredis


def create_redis(url: str) -> aioredis.Redis:
    """A lazily connecting client; calls fail within about a second when Redis is down."""
    client: aioredis.Redis = aioredis.Redis.from_url(
        url,
        socket_timeout=1.0,
        socket_connect_timeout=1.0,
        health_check_interval=15,
        decode_responses=False,
    )
    return client


async def ping(client: aioredis.Redis) -> None:
    """Raises when Redis does not answer PING."""
    await client.ping()
