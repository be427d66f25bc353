"""A notification's story as one list of events, oldest first: accepted, each attempt
(with the backoff before its retry, or the failover to the next channel), the receipts
about it, each manual retry with who asked, and where it stands now."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from console.render import OUTCOMES
from gateway.store.notifications import AttemptRecord, NotificationRecord
from gateway.wire import CHANNEL_NAMES


@dataclass(frozen=True)
class Event:
    time: datetime
    # accepted, delivered, transient, permanent, skipped, reported, receipt, retry, final
    kind: str
    title: str
    facts: list[tuple[str, str]] = field(default_factory=list)
    # What the worker recorded (e.g. what the sandbox would have sent), as JSON.
    detail: dict[str, Any] = field(default_factory=dict)


def _detail(attempt: AttemptRecord) -> dict[str, Any]:
    try:
        found = orjson.loads(attempt.detail) if attempt.detail else {}
    except orjson.JSONDecodeError:
        return {"text": attempt.detail}
    return found if isinstance(found, dict) else {"value": found}


def _attempt(attempt: AttemptRecord) -> Event:
    outcome = OUTCOMES.get(attempt.outcome, str(attempt.outcome))
    channel = CHANNEL_NAMES.get(attempt.channel, str(attempt.channel))
    detail = _detail(attempt)
    facts = [
        ("channel", channel),
        ("provider", attempt.provider or "—"),
        ("outcome", outcome),
        ("duration", f"{attempt.duration_us / 1000:.1f} ms"),
        ("try", f"generation {attempt.generation}, attempt {attempt.attempt}"),
    ]
    if attempt.error:
        facts.append(("error", attempt.error))
    if "retry_in_seconds" in detail:
        facts.append(
            (
                "then",
                f"retry in {detail['retry_in_seconds']} s (attempt {detail.get('next_attempt')})",
            )
        )
    if "next_channel" in detail:
        facts.append(("then", f"failover to {detail['next_channel']}"))
    if attempt.provider_message_id:
        facts.append(("provider message id", attempt.provider_message_id))
    if attempt.worker:
        facts.append(("worker", attempt.worker))
    shown = {
        k: v
        for k, v in detail.items()
        if k not in {"retry_in_seconds", "next_attempt", "next_channel", "final"}
    }
    title = f"Attempt {attempt.attempt} on {channel}: {outcome}"
    if outcome == "reported":
        title = f"Reported as {detail.get('reported_status', '?')} by {detail.get('reporter', '?')}"
    return Event(attempt.start_time, outcome, title, facts, shown)


def events(record: NotificationRecord) -> list[Event]:
    found = [
        Event(
            record.create_time,
            "accepted",
            "Accepted",
            [
                ("route", " → ".join(CHANNEL_NAMES.get(c, str(c)) for c in record.route) or "—"),
                ("template", f"{record.template_code} v{record.template_version}"),
            ],
        )
    ]
    for attempt in record.attempts:
        found.append(_attempt(attempt))
        for receipt in record.receipts_of(attempt.id):
            facts = [("event", receipt.event)]
            if receipt.reason:
                facts.append(("reason", receipt.reason))
            if receipt.code:
                facts.append(("code", receipt.code))
            if receipt.effect:
                facts.append(("effect", receipt.effect))
            found.append(
                Event(receipt.occur_time, "receipt", f"Receipt from {attempt.provider}", facts)
            )
    for retry in record.retries:
        facts = [("requested by", retry.requested_by), ("generation", str(retry.generation))]
        if retry.reason:
            facts.append(("reason", retry.reason))
        found.append(Event(retry.request_time, "retry", "Retried by hand", facts))
    found.sort(key=lambda e: e.time)
    if record.status in {"delivered", "failed", "suppressed"}:
        facts = [("reason", record.status_reason)] if record.status_reason else []
        if record.delivered_provider:
            facts.append(
                (
                    "through",
                    f"{CHANNEL_NAMES.get(record.delivered_channel, '')} / "
                    f"{record.delivered_provider}",
                )
            )
        found.append(Event(record.update_time, "final", f"Final: {record.status}", facts))
    return found
