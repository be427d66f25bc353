"""An aiohttp session that connects only where `mesh.outbound` allows.

Its resolver drops every address the rule refuses (and refuses a name left with none),
so the addresses checked are the ones connected to: a name cannot be re-pointed between
the check and the connection. IP literals never reach a resolver, so every request, each
redirect included, is checked by URL first (a client middleware).
"""

from __future__ import annotations

import socket

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from mesh.outbound import OutboundRefused, OutboundRule


class PublicResolver(AbstractResolver):
    """aiohttp's default resolver, less the addresses `rule` refuses."""

    def __init__(self, rule: OutboundRule, resolver: AbstractResolver | None = None) -> None:
        self._rule = rule
        self._resolver = resolver or aiohttp.DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        kept: list[ResolveResult] = []
        refused: list[str] = []
        for result in await self._resolver.resolve(host, port, family):
            try:
                self._rule.check_address(result["host"])
            except OutboundRefused as exc:
                refused.append(str(exc))
            else:
                kept.append(result)
        if not kept:
            raise OutboundRefused(f"resolves to no public address ({'; '.join(refused)})")
        return kept

    async def close(self) -> None:
        await self._resolver.close()


def public_session(rule: OutboundRule, *, timeout: float) -> aiohttp.ClientSession:
    """A session whose requests raise `OutboundRefused` instead of going where `rule` forbids,
    each within `timeout` seconds in all.

    Created inside the running loop (an aiohttp session belongs to it). It keeps no
    cookies: what one user-given host sets is no state of Herald's.
    """

    async def check(
        request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
    ) -> aiohttp.ClientResponse:
        rule.check_url(str(request.url), names=False)
        return await handler(request)

    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(resolver=PublicResolver(rule)),
        middlewares=(check,),
        cookie_jar=aiohttp.DummyCookieJar(),
        timeout=aiohttp.ClientTimeout(total=timeout),
        trust_env=False,  # a proxy from the environment would connect for us, unchecked
    )
