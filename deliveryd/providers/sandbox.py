"""The sandbox: the default provider of every channel, which sends nothing.

It keeps exactly what would have been sent (recipient and rendered parts, bounded) in the
attempt's `detail`, so the delivery trail shows it, and answers `sandbox-<uuid>`.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, replace
from typing import Any, Generic

import orjson

from deliveryd.providers.base import EmailMessage, M, Provider, PushMessage, Sent, SmsMessage
from deliveryd.providers.sandbox_receipts import SandboxReceipts

# Each text part is kept whole up to this many characters, and marked when cut, so that
# the record fits the trail's detail (the gateway keeps 4000 characters of it).
MAX_PART_CHARS = 1000


def _bounded(value: Any) -> Any:
    if isinstance(value, str) and len(value) > MAX_PART_CHARS:
        return value[:MAX_PART_CHARS] + f"…[{len(value) - MAX_PART_CHARS} more characters]"
    if isinstance(value, dict):
        return {k: _bounded(v) for k, v in value.items()}
    return value


def record(message: EmailMessage | SmsMessage | PushMessage) -> str:
    """The JSON the sandbox stores for `message`."""
    fields = asdict(message)
    fields.pop("key", None)
    fields.pop("notification_id", None)
    fields.pop("attempt_id", None)
    if isinstance(message, PushMessage):
        fields["data"] = dict(message.data)
    return orjson.dumps({"sandbox": _bounded(fields)}).decode()


class SandboxProvider(Provider[M], Generic[M]):
    """Accepts everything and records it; with `receipts`, a message to a reserved contact
    point gets the receipts a real provider would send (`sandbox_receipts`)."""

    name = "sandbox"

    def __init__(self, *, timeout: float, receipts: SandboxReceipts | None = None) -> None:
        super().__init__(timeout=timeout)
        self._receipts = receipts

    async def send(self, message: M) -> Sent:
        assert isinstance(message, EmailMessage | SmsMessage | PushMessage)
        sent = Sent(message_id=f"sandbox-{uuid.uuid4()}", detail=record(message))
        if self._receipts is None or isinstance(message, PushMessage):
            return sent
        simulated = self._receipts.receipts_for(message)
        if not simulated:
            return sent
        self._receipts.emit(message, sent.message_id, simulated)
        return replace(sent, awaits_receipt=True)

    async def close(self) -> None:
        if self._receipts is not None:
            await self._receipts.close()
