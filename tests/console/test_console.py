"""The console in a real browser against a real stack: signing in, Activity updating
live, a notification's story, retrying a failed one until it is delivered, the template
preview, what a read-only operator and a request without a CSRF token cannot do, and a
`<script>` typed as a variable shown as text. Every page is photographed."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from typing import Any

import pytest
from playwright.async_api import Page, expect

from tests.console.conftest import BULK_RETRY_MAX, NARROW, Console, shoot
from tests.deliveryd.e2e_stack import TEMPLATE

# The sandbox bounces an email to this address, reports an SMS to this number
# undelivered, to that one delivered (mesh/sandbox_receipts.py).
BOUNCE = "bounce@simulator.herald.example"
UNREACHABLE, DELIVERS = "+14155550191", "+14155550190"


async def make_user(console: Console, **fields: Any) -> dict[str, Any]:
    body = {
        "name": "Ada Lovelace",
        "email": f"ada.{uuid.uuid4().hex[:8]}@example.com",
        "password": "correct horse battery",
        "preferences": {"email": True, "sms": True, "push": False},
        **fields,
    }
    answer = await console.http.post("/api/v1/users/", json=body)
    assert answer.status_code == 201, answer.text
    user: dict[str, Any] = answer.json()
    return user


async def send(console: Console, user: dict[str, Any], name: str = "Ada") -> str:
    """A notification sent through REST, as a backend would."""
    answer = await console.http.post(
        "/api/v1/notifications/",
        json={
            "notification_type": "email",
            "user_id": user["id"],
            "template_code": TEMPLATE,
            "request_id": f"console-{uuid.uuid4().hex}",
            "variables": {"name": name},
            "metadata": {"campaign": "console-tests"},
        },
    )
    assert answer.status_code == 202, answer.text
    return str(answer.json()["notification_id"])


async def settled(console: Console, notification_id: str, status: str) -> dict[str, Any]:
    """Waits until the notification has `status` (read through REST)."""
    deadline = time.monotonic() + 45
    while True:
        answer = await console.http.get(f"/api/v1/notifications/{notification_id}")
        found: dict[str, Any] = answer.json()
        if found["status"] == status:
            return found
        assert time.monotonic() < deadline, f"{notification_id} is {found['status']}: {found}"
        await asyncio.sleep(0.1)


async def failed_one(console: Console) -> tuple[dict[str, Any], str]:
    """A notification that failed on every channel, and its user: email is off in their
    preferences (suppressed), and the sandbox reports their phone unreachable."""
    user = await make_user(
        console, phone=UNREACHABLE, preferences={"email": False, "sms": True, "push": False}
    )
    notification_id = await send(console, user)
    await settled(console, notification_id, "failed")
    return user, notification_id


async def csrf_of(page: Page) -> str:
    """The session's CSRF token, as the page carries it for htmx."""
    headers = await page.locator("body").get_attribute("hx-headers")
    assert headers
    found = re.search(r'"X-CSRF-Token": "([^"]+)"', headers)
    assert found
    return found.group(1)


@pytest.fixture(scope="module")
async def admin(console: Console) -> Page:
    return await console.signed_in(console.admin_key)


async def test_signing_in(console: Console) -> None:
    context = await console.context()
    page = await context.new_page()
    await page.goto(f"{console.base}/console/providers")
    await expect(page).to_have_url(f"{console.base}/console/login")
    await shoot(page, "login")

    await page.get_by_label("API key").fill("hk_000000000000_" + "x" * 43)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("alert")).to_contain_text("not valid")

    await page.get_by_label("API key").fill(console.admin_key)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", name="Activity")).to_be_visible()
    [cookie] = [c for c in await context.cookies() if c["name"] == "herald_console"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["expires"] > 0
    assert console.admin_key not in await page.content()
    assert console.admin_key not in page.url

    # Signing out ends the session on the server: the old cookie opens nothing.
    await page.get_by_role("button", name="Sign out").click()
    await expect(page).to_have_url(f"{console.base}/console/login")
    answer = await console.http.get(
        "/console/", headers={"Cookie": f"herald_console={cookie['value']}"}
    )
    assert answer.status_code == 303 and answer.headers["location"].endswith("/login")
    await context.close()


async def test_a_notification_sent_through_rest_appears_in_activity_live(
    console: Console, admin: Page
) -> None:
    await admin.goto(f"{console.base}/console/")
    csp = (await admin.request.get(f"{console.base}/console/")).headers
    assert "script-src 'self'" in csp["content-security-policy"]
    await admin.evaluate("window.notReloaded = true")

    user = await make_user(console)
    notification_id = await send(console, user)

    link = admin.locator(f'a[href$="/notifications/{notification_id}"]').first
    row = admin.locator("#rows tr", has=link)
    await expect(row).to_be_visible(timeout=15_000)
    await expect(row).to_contain_text("delivered", timeout=15_000)
    assert await admin.evaluate("window.notReloaded") is True
    await shoot(admin, "activity")


async def test_opening_a_notifications_story(console: Console, admin: Page) -> None:
    user = await make_user(console)
    notification_id = await send(console, user, name="Grace")
    await settled(console, notification_id, "delivered")
    await admin.goto(f"{console.base}/console/")
    await admin.locator(f'#rows a[href$="/notifications/{notification_id}"]').first.click()

    await expect(admin.get_by_role("heading", name="Timeline")).to_be_visible()
    timeline = admin.locator(".timeline")
    await expect(timeline).to_contain_text("Accepted")
    await expect(timeline).to_contain_text("Attempt 1 on email: delivered")
    await expect(timeline).to_contain_text("sandbox")
    await expect(admin.get_by_text("Subject: Hello Grace")).to_be_visible()
    frame = admin.locator("iframe.email")
    assert await frame.get_attribute("sandbox") == ""
    await expect(admin.frame_locator("iframe.email").locator("b")).to_have_text("Grace")
    await expect(admin.locator("section[aria-labelledby=meta-h]")).to_contain_text("console-tests")
    await shoot(admin, "story")


async def test_retrying_a_failed_one_until_it_is_delivered(console: Console, admin: Page) -> None:
    # The email bounces (a receipt), the route fails over to SMS, which is undelivered.
    user = await make_user(console, email=BOUNCE, phone=UNREACHABLE)
    notification_id = await send(console, user)
    await settled(console, notification_id, "failed")
    await admin.goto(f"{console.base}/console/failed")
    await expect(admin.locator(f'a[href$="/notifications/{notification_id}"]')).to_be_visible()
    await shoot(admin, "failed")
    await admin.goto(f"{console.base}/console/notifications/{notification_id}")
    timeline = admin.locator(".timeline")
    await expect(timeline).to_contain_text("Receipt from sandbox")
    await expect(timeline).to_contain_text("failed over to sms")
    await expect(timeline).to_contain_text("Final: failed")
    await shoot(admin, "story-failed")

    # The cause goes away (a phone that answers); the retry then delivers by SMS (the
    # bounced address is suppressed now).
    answer = await console.http.patch(f"/api/v1/users/{user['id']}", json={"phone": DELIVERS})
    assert answer.status_code == 200, answer.text
    await admin.get_by_label("Reason").fill("phone number fixed")
    await admin.get_by_role("button", name="Retry", exact=True).click()
    await expect(timeline).to_contain_text("Retried by hand")

    found = await settled(console, notification_id, "delivered")
    [retry] = found["retries"]
    assert retry["requested_by"].startswith("console:apikey:")
    assert retry["reason"] == "phone number fixed"
    await admin.reload()
    await expect(admin.locator("h1 .status")).to_have_text("delivered")
    await expect(timeline).to_contain_text("console:apikey:")


async def test_retry_all_that_match_counts_confirms_and_records_who_asked(
    console: Console, admin: Page
) -> None:
    user = await make_user(
        console, phone=UNREACHABLE, preferences={"email": False, "sms": True, "push": False}
    )
    sent = [await send(console, user) for _ in range(BULK_RETRY_MAX + 1)]
    for notification_id in sent:
        await settled(console, notification_id, "failed")
    await admin.goto(f"{console.base}/console/failed?user={user['id']}")
    await admin.get_by_role("button", name="Retry all that match").click()
    # Bounded: more match than one bulk retry takes; the newest are retried.
    heading = f"Retry {BULK_RETRY_MAX} failed notifications?"
    await expect(admin.get_by_role("heading")).to_have_text(heading)
    await expect(admin.locator("main")).to_contain_text(f"More than {BULK_RETRY_MAX} match")
    await admin.get_by_role("button", name=f"Yes, retry {BULK_RETRY_MAX}").click()
    await expect(admin.get_by_role("heading", name=f"Retried {BULK_RETRY_MAX}")).to_be_visible()
    retried = []
    for notification_id in sent:
        answer = await console.http.get(f"/api/v1/notifications/{notification_id}")
        retried += [r["requested_by"] for r in answer.json()["retries"]]
    assert len(retried) == BULK_RETRY_MAX
    assert all(who.startswith("console:apikey:") for who in retried)


async def test_filters_page_by_keyset_and_bad_ones_are_named(console: Console, admin: Page) -> None:
    user = await make_user(console)
    sent = {await send(console, user) for _ in range(3)}
    url = f"{console.base}/console/?user={user['id']}&size=2"
    await admin.goto(url)
    first = {
        await a.get_attribute("href") for a in await admin.locator("#rows td:first-child a").all()
    }
    await admin.get_by_role("link", name="Older").click()
    second = {
        await a.get_attribute("href") for a in await admin.locator("tbody td:first-child a").all()
    }
    assert len(first) == 2 and len(second) == 1 and not first & second
    assert {h.rsplit("/", 1)[1] for h in first | second if h} == sent

    for query, field in [("status=lost", "status"), ("user=ada", "user"), ("since=soon", "since")]:
        answer = await admin.request.get(f"{console.base}/console/?{query}")
        assert answer.status == 400
        assert field in await answer.text()


async def test_the_template_preview_renders_what_was_typed(console: Console, admin: Page) -> None:
    await admin.goto(f"{console.base}/console/templates")
    await shoot(admin, "templates")
    await admin.get_by_role("link", name=TEMPLATE).click()

    # A new version, published from the console, becomes active; the diff shows the change.
    await admin.get_by_label("SMS", exact=True).fill("Hi {{ name }}, welcome aboard")
    await admin.get_by_label("Change note").fill("warmer SMS")
    await admin.get_by_role("button", name="Publish and make active").click()
    versions = admin.locator("section[aria-labelledby=versions-h]")
    await expect(versions.locator("tbody tr").first).to_contain_text("v2 active")
    await expect(admin.locator("pre.diff .d-add")).to_contain_text(["welcome aboard"])
    await expect(admin.locator("pre.diff .d-del")).to_contain_text(["Hi {{ name }}, welcome"])

    await admin.wait_for_load_state()  # htmx listens once the page has loaded
    await admin.get_by_label("name", exact=True).fill("Hedy")
    preview = admin.locator("#preview")
    await expect(preview.locator(".preview-subject")).to_have_text("Hello Hedy")
    await expect(preview.locator(".preview-sms")).to_have_text("Hi Hedy, welcome aboard")
    await expect(admin.frame_locator("#preview iframe.email").locator("b")).to_have_text("Hedy")
    await shoot(admin, "template")

    # Version 1 active again.
    await versions.locator("tr", has_text="v1").get_by_role("button", name="Make active").click()
    await expect(versions.locator("tr", has_text="v1")).to_contain_text("active")
    answer = await console.http.get(f"/api/v1/templates/{TEMPLATE}")
    assert answer.json()["active_version"] == 1


async def test_a_script_typed_as_a_variable_is_shown_as_text(console: Console, admin: Page) -> None:
    await admin.goto(f"{console.base}/console/templates/view?code={TEMPLATE}")
    typed = '<script>window.pwned = true</script><img src=x onerror="window.pwned=true">'
    await admin.get_by_label("name", exact=True).fill(typed)
    preview = admin.locator("#preview")
    await expect(preview.locator(".preview-subject")).to_have_text(f"Hello {typed}")
    await expect(preview.locator(".preview-sms")).to_contain_text("<script>")
    assert await preview.locator(".preview-subject script, .preview-subject img").count() == 0
    email = admin.frame_locator("#preview iframe.email")
    await expect(email.locator("b")).to_have_text(typed)  # escaped by the renderer too
    assert await admin.evaluate("window.pwned") is None

    # Sent for real, the story and the inbox show it as text as well.
    user = await make_user(console)
    notification_id = await send(console, user, name=typed)
    await settled(console, notification_id, "delivered")
    await admin.goto(f"{console.base}/console/notifications/{notification_id}")
    await expect(admin.get_by_text(f"Subject: Hello {typed}")).to_be_visible()
    await admin.goto(f"{console.base}/console/inbox")
    await expect(admin.get_by_text(f"Subject: Hello {typed}").first).to_be_visible()
    assert await admin.evaluate("window.pwned") is None


async def test_a_read_only_operator_cannot_retry(console: Console) -> None:
    _, notification_id = await failed_one(console)
    page = await console.signed_in(console.operator_key)
    await expect(page.locator(".who")).to_contain_text("read-only")
    await page.goto(f"{console.base}/console/notifications/{notification_id}")
    await expect(page.locator(".timeline")).to_contain_text("Final: failed")
    await expect(page.get_by_role("button", name="Retry")).to_have_count(0)

    # Even with the session's own CSRF token, the domain refuses: the key may not send.
    answer = await page.request.post(
        f"{console.base}/console/notifications/{notification_id}/retry",
        form={"csrf_token": await csrf_of(page), "reason": "sneaky"},
        max_redirects=0,
    )
    assert answer.status == 403
    assert (await settled(console, notification_id, "failed"))["retries"] == []
    # Nor any other change: retry all, a key, a template version.
    token = await csrf_of(page)
    for path, form in [
        ("/failed/retry-all", {"confirm": "yes", "expected": "1"}),
        ("/keys", {"name": "mine", "scopes": "admin"}),
        ("/templates/publish", {"code": TEMPLATE, "language": "en", "sms_text": "pwned"}),
    ]:
        answer = await page.request.post(
            f"{console.base}/console{path}", form={**form, "csrf_token": token}, max_redirects=0
        )
        assert answer.status == 403, path
    await expect(page.get_by_role("button", name="Retry all that match")).to_have_count(0)
    await page.context.close()


async def test_a_change_without_the_csrf_token_is_refused(console: Console, admin: Page) -> None:
    _, notification_id = await failed_one(console)
    await admin.goto(f"{console.base}/console/notifications/{notification_id}")
    url = f"{console.base}/console/notifications/{notification_id}/retry"
    forms: list[dict[str, str | float | bool]] = [
        {"reason": "no token"},
        {"reason": "forged", "csrf_token": "x" * 43},
    ]
    for form in forms:
        answer = await admin.request.post(url, form=form, max_redirects=0)
        assert answer.status == 403
        assert "CSRF" in await answer.text()
    assert (await settled(console, notification_id, "failed"))["retries"] == []


async def test_an_api_key_is_shown_once_and_revoked(console: Console, admin: Page) -> None:
    await admin.goto(f"{console.base}/console/keys")
    await admin.get_by_label("Name").fill("reporting")
    await admin.get_by_label("notifications:read", exact=True).check()
    await admin.get_by_role("button", name="Create").click()
    created = admin.get_by_label("The key")
    key = await created.input_value()
    assert key.startswith("hk_")
    answer = await console.http.get(
        "/api/v1/notifications/", headers={"Authorization": f"Bearer {key}"}
    )
    assert answer.status_code == 200
    await admin.goto(f"{console.base}/console/keys")
    assert key not in await admin.content()  # shown once
    row = admin.locator("tr", has_text="reporting")
    await row.get_by_role("button", name="Revoke").click()
    await expect(admin.locator("tr", has_text="reporting")).to_contain_text("revoked")
    answer = await console.http.get(
        "/api/v1/notifications/", headers={"Authorization": f"Bearer {key}"}
    )
    assert answer.status_code == 401


async def test_every_page_photographed(console: Console, admin: Page) -> None:
    """The pages not photographed above, wide and at a phone's width."""
    user = await make_user(console, phone=DELIVERS)
    await settled(console, await send(console, user), "delivered")
    for path, name in [
        ("/", "activity-later"),
        ("/failed", "failed-later"),
        ("/providers", "providers"),
        (f"/users?q={user['email']}", "users"),
        ("/inbox", "inbox"),
        ("/keys", "keys"),
    ]:
        await admin.goto(f"{console.base}/console{path}")
        await expect(admin.locator("main h1")).to_be_visible()
        await admin.wait_for_load_state("networkidle")  # the inbox's frames
        await shoot(admin, name)
    await expect(admin.locator("main")).to_contain_text("console-viewer")  # keys list
    await admin.goto(f"{console.base}/console/providers")
    await expect(admin.locator(".provider h2").first).to_have_text("sandbox")
    await expect(admin.locator(".circuit").first).to_contain_text("circuit closed")
    last_hour = admin.locator(".window", has_text="Last 60 min").first
    sends = int(await last_hour.locator("dd").first.inner_text())
    assert sends >= 10  # every attempt of this module's notifications went to the sandbox

    page = await console.signed_in(console.admin_key, NARROW)
    for path, name in [("/", "activity-390"), ("/providers", "providers-390")]:
        await page.goto(f"{console.base}/console{path}")
        await shoot(page, name)
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= NARROW["width"], f"{path} scrolls sideways at 390 px ({width})"
    await page.context.close()
