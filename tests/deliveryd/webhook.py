"""The admin alert webhook deliveryd posts to when a critical notification failed."""

from __future__ import annotations

from aiohttp import web

from tests.fakes.base import FakeServer


class AlertWebhook(FakeServer):
    """Receives the admin alerts."""

    name = "webhook"

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/alerts", self._alert)

    async def _alert(self, request: web.Request) -> web.Response:
        self.deliveries.append(self.recorded(request).json)
        return web.json_response({"ok": True})
