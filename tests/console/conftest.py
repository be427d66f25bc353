"""The console's stack: the sandbox stack `make up` runs (userd, templated, the gateway
with the console, the email and SMS workers with the sandbox as their providers) and a
real browser: Debian's chromium driven by Playwright. Screenshots go to
artifacts/console/ (README, Console)."""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

from tests.conftest import ServiceFactory
from tests.deliveryd.conftest import Fakes, session_fakes
from tests.deliveryd.e2e_stack import Stack, open_sandbox_stack
from tests.gateway.http.conftest import create_key
from tests.support.infra import Isolation, free_port
from tests.support.processes import ROOT

__all__ = ["session_fakes"]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = ROOT / "artifacts" / "console"
SECRET = "whsec_" + base64.b64encode(os.urandom(24)).decode()
# "Retry all that match" retries at most this many (small, so the bound is tested).
BULK_RETRY_MAX = 2
WIDE, NARROW = {"width": 1280, "height": 900}, {"width": 390, "height": 844}


@dataclass(frozen=True)
class Console:
    stack: Stack
    base: str
    admin_key: str
    operator_key: str
    browser: Browser
    http: httpx.AsyncClient

    async def context(self, viewport: dict[str, int] = WIDE) -> BrowserContext:
        return await self.browser.new_context(viewport=viewport)  # type: ignore[arg-type]

    async def signed_in(self, key: str, viewport: dict[str, int] = WIDE) -> Page:
        """A new browser context signed in with `key`, on Activity."""
        context = await self.context(viewport)
        page = await context.new_page()
        await page.goto(f"{self.base}/console/")
        await page.get_by_label("API key").fill(key)
        await page.get_by_role("button", name="Sign in").click()
        await page.wait_for_url(f"{self.base}/console/")
        return page


async def shoot(page: Page, name: str) -> Path:
    """A full-page screenshot, artifacts/console/<name>.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path


@pytest.fixture(scope="module")
async def console(
    service_factory: ServiceFactory, isolation: Isolation, session_fakes: Fakes
) -> AsyncIterator[Console]:
    ports = {"email": free_port(), "sms": free_port()}
    urls = ",".join(f"http://127.0.0.1:{port}/metrics" for port in ports.values())
    async with (
        open_sandbox_stack(
            service_factory,
            isolation,
            session_fakes,
            name="console",
            secret=SECRET,
            gateway_env={
                "HERALD_CONSOLE_WORKER_METRICS_URLS": urls,
                "HERALD_CONSOLE_BULK_RETRY_MAX": str(BULK_RETRY_MAX),
            },
            worker_env={
                f"HERALD_DELIVERYD_{channel.upper()}_METRICS_PORT": str(port)
                for channel, port in ports.items()
            },
        ) as stack,
        async_playwright() as playwright,
    ):
        admin, operator = await asyncio.gather(
            asyncio.to_thread(create_key, stack.gateway, "console-admin", "admin"),
            asyncio.to_thread(create_key, stack.gateway, "console-viewer", "operator:read"),
        )
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        base = f"http://127.0.0.1:{stack.gateway.http_port}"
        async with httpx.AsyncClient(
            base_url=base, headers={"Authorization": f"Bearer {admin['key']}"}, timeout=10
        ) as http:
            yield Console(stack, base, admin["key"], operator["key"], browser, http)
        await browser.close()
