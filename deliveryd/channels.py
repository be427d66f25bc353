"""One hop's send on each channel: the job's rendered parts through the channel's chain.

Email and SMS send one message. Push sends to every device of the user that a configured
provider can reach, at once; it is delivered when at least one device accepted it, and a
device the provider says is gone is removed from the user through userd.
"""

from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from deliveryd.audience import Audience
from deliveryd.chain import ChainResult, Outcome, ProviderChain
from deliveryd.providers.base import EmailMessage, PushDevice, PushMessage, SmsMessage
from herald.v1 import common_pb2, delivery_pb2

CHANNEL_NAMES = {
    common_pb2.CHANNEL_EMAIL: "email",
    common_pb2.CHANNEL_SMS: "sms",
    common_pb2.CHANNEL_PUSH: "push",
}
CHANNELS_BY_NAME = {name: value for value, name in CHANNEL_NAMES.items()}
RemoveDevice = Callable[[str, PushDevice], Awaitable[bool]]


@dataclass(frozen=True)
class HopResult:
    """What one hop's send came to, as one row of the trail."""

    outcome: Outcome
    start: datetime
    duration: float = 0.0
    provider: str = ""
    message_id: str = ""
    error: str = ""
    detail: dict[str, Any] = field(default_factory=dict)
    # Not sent because the user's current choices forbid it (not a failure).
    suppressed: bool = False
    # Delivered to a provider that will call back with the message's receipts.
    awaits_receipt: bool = False


def skipped(reason: str, *, suppressed: bool = False) -> HopResult:
    """A hop that sends nothing (preference off, no contact point, nothing to send)."""
    return HopResult(Outcome.SKIPPED, datetime.now(UTC), error=reason, suppressed=suppressed)


def hop_key(job: delivery_pb2.DeliveryJob) -> str:
    """Stable per notification, generation and channel: the same across retries of a hop."""
    return f"{job.notification_id}:{job.generation}:{CHANNEL_NAMES.get(job.channel, '?')}"


def _provider_detail(text: str) -> dict[str, Any]:
    if text.startswith("{"):
        parsed = orjson.loads(text)
        if isinstance(parsed, dict):
            return parsed
    return {"note": text}


def from_chain(result: ChainResult, began: float, start: datetime) -> HopResult:
    """One message's chain result as a hop result."""
    decisive = result.decisive
    detail: dict[str, Any] = {}
    if decisive is not None and decisive.detail:
        detail.update(_provider_detail(decisive.detail))
    outcome = result.outcome
    waited = any(t.throttled or t.waited for t in result.tries)
    if len(result.tries) > 1 or outcome is not Outcome.DELIVERED or waited:
        detail["tries"] = [t.summary() for t in result.tries]
    delivered = outcome is Outcome.DELIVERED
    error = "" if delivered else result.error or "no provider can carry it"
    return HopResult(
        outcome=outcome,
        start=start,
        duration=time.monotonic() - began,
        provider=decisive.provider if decisive else "",
        message_id=decisive.message_id if decisive and delivered else "",
        error=error,
        detail=detail,
        awaits_receipt=bool(decisive and delivered and decisive.awaits_receipt),
    )


class ChannelSender(ABC):
    """Turns a job and its audience into provider sends on one channel."""

    channel: common_pb2.Channel.ValueType

    @property
    def name(self) -> str:
        return CHANNEL_NAMES[self.channel]

    @abstractmethod
    def missing(self, job: delivery_pb2.DeliveryJob, audience: Audience) -> str | None:
        """Why this hop cannot be sent at all (no contact point, no content), or None."""

    @abstractmethod
    async def deliver(
        self, job: delivery_pb2.DeliveryJob, audience: Audience, deadline: float, *, attempt_id: str
    ) -> HopResult:
        """Sends the hop as attempt `attempt_id`; never raises for a provider's failure."""


class EmailSender(ChannelSender):
    channel = common_pb2.CHANNEL_EMAIL

    def __init__(self, chain: ProviderChain[EmailMessage]) -> None:
        self.chain = chain

    def missing(self, job: delivery_pb2.DeliveryJob, audience: Audience) -> str | None:
        if not audience.email:
            return "no email address"
        if not job.content.HasField("email"):
            return "the notification has no email content"
        return None

    async def deliver(
        self, job: delivery_pb2.DeliveryJob, audience: Audience, deadline: float, *, attempt_id: str
    ) -> HopResult:
        began, start = time.monotonic(), datetime.now(UTC)
        part = job.content.email
        message = EmailMessage(
            to=audience.email,
            subject=part.subject,
            html=part.html_body,
            text=part.text_body,
            key=hop_key(job),
            notification_id=job.notification_id,
            attempt_id=attempt_id,
        )
        return from_chain(await self.chain.send(message, deadline=deadline), began, start)


class SmsSender(ChannelSender):
    channel = common_pb2.CHANNEL_SMS

    def __init__(self, chain: ProviderChain[SmsMessage]) -> None:
        self.chain = chain

    def missing(self, job: delivery_pb2.DeliveryJob, audience: Audience) -> str | None:
        if not audience.phone:
            return "no phone number"
        if not job.content.HasField("sms"):
            return "the notification has no sms content"
        return None

    async def deliver(
        self, job: delivery_pb2.DeliveryJob, audience: Audience, deadline: float, *, attempt_id: str
    ) -> HopResult:
        began, start = time.monotonic(), datetime.now(UTC)
        message = SmsMessage(
            to=audience.phone,
            text=job.content.sms.text,
            key=hop_key(job),
            notification_id=job.notification_id,
            attempt_id=attempt_id,
        )
        return from_chain(await self.chain.send(message, deadline=deadline), began, start)


class PushSender(ChannelSender):
    channel = common_pb2.CHANNEL_PUSH

    def __init__(self, chain: ProviderChain[PushMessage], remove: RemoveDevice) -> None:
        self.chain = chain
        self._remove = remove

    def _messages(self, job: delivery_pb2.DeliveryJob, audience: Audience) -> list[PushMessage]:
        part = job.content.push
        messages = [
            PushMessage(
                device=device,
                title=part.title,
                body=part.body,
                data=dict(part.data),
                key=hop_key(job),
                notification_id=job.notification_id,
            )
            for device in audience.devices
        ]
        return [m for m in messages if self.chain.accepts(m)]

    def missing(self, job: delivery_pb2.DeliveryJob, audience: Audience) -> str | None:
        if not audience.devices:
            return "no push target"
        if not job.content.HasField("push"):
            return "the notification has no push content"
        if not self._messages(job, audience):
            return f"no push target for the providers in use ({', '.join(self.chain.names)})"
        return None

    async def deliver(
        self, job: delivery_pb2.DeliveryJob, audience: Audience, deadline: float, *, attempt_id: str
    ) -> HopResult:
        began, start = time.monotonic(), datetime.now(UTC)
        messages = self._messages(job, audience)
        results = await asyncio.gather(*(self.chain.send(m, deadline=deadline) for m in messages))
        rows: list[dict[str, Any]] = []
        removed: list[str] = []
        for message, result in zip(messages, results, strict=True):
            decisive = result.decisive
            row: dict[str, Any] = {
                "device": message.device.label,
                "platform": message.device.platform.value,
                "outcome": result.outcome.value,
            }
            if decisive is not None:
                row["provider"] = decisive.provider
                if result.outcome is Outcome.DELIVERED:
                    row["message_id"] = decisive.message_id
            if result.error:
                row["error"] = result.error
            rows.append(row)
            if any(t.gone for t in result.tries) and await self._remove(
                audience.user_id, message.device
            ):
                removed.append(message.device.label)
        return _aggregate(results, rows, removed, began, start)


def _aggregate(
    results: list[ChainResult],
    rows: list[dict[str, Any]],
    removed: list[str],
    began: float,
    start: datetime,
) -> HopResult:
    delivered = [r for r in results if r.outcome is Outcome.DELIVERED]
    if delivered:
        outcome = Outcome.DELIVERED
    elif any(r.outcome is Outcome.TRANSIENT for r in results):
        outcome = Outcome.TRANSIENT
    else:
        outcome = Outcome.PERMANENT
    settled = [r.decisive for r in (delivered or results) if r.decisive is not None]
    detail: dict[str, Any] = {"devices": rows}
    if removed:
        detail["removed_devices"] = removed
    errors = [f"{row['device']}: {row['error']}" for row in rows if row.get("error")]
    return HopResult(
        outcome=outcome,
        start=start,
        duration=time.monotonic() - began,
        provider=",".join(dict.fromkeys(t.provider for t in settled)),
        message_id=",".join(t.message_id for t in settled if t.message_id)[:500]
        if delivered
        else "",
        error="" if delivered else "; ".join(errors)[:1000],
        detail=detail,
    )
