"""SQL for the `receipts` table: provider receipts, each kept once, matched to the attempt
it is about (see migration 012)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from gateway.receipts.model import Receipt, ReceiptEvent
from gateway.store.db import Conn


@dataclass(frozen=True)
class AttemptRef:
    """The recorded attempt a receipt is about."""

    id: UUID
    notification_id: UUID
    generation: int
    channel: int
    attempt: int
    provider: str
    provider_message_id: str


@dataclass(frozen=True)
class ReceiptRecord:
    """A receipt as the trail shows it, under its attempt."""

    attempt_id: UUID
    event: str
    reason: str
    code: str
    occur_time: datetime
    receive_time: datetime
    effect: str


@dataclass(frozen=True)
class Waiting:
    """A stored receipt not applied yet."""

    row_id: UUID
    receipt: Receipt
    receive_time: datetime


def _uuid(text: str | None) -> UUID | None:
    if not text:
        return None
    try:
        return UUID(text)
    except ValueError:
        return None


async def insert(conn: Conn, receipt: Receipt) -> UUID | None:
    """Keeps the receipt; its row id, or None when this provider event is already kept."""
    cur = await conn.execute(
        """INSERT INTO receipts (id, provider, receipt_id, event, provider_message_id,
               attempt_id, notification_id, occur_time, reason, code)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
           ON CONFLICT (provider, receipt_id) DO NOTHING
           RETURNING id""",
        (
            uuid.uuid4(),
            receipt.provider,
            receipt.receipt_id[:500],
            receipt.event.value,
            receipt.provider_message_id[:500],
            _uuid(receipt.attempt_id),
            _uuid(receipt.notification_id),
            receipt.occurred_at,
            receipt.reason[:2000],
            receipt.code[:100],
        ),
    )
    row = await cur.fetchone()
    return row["id"] if row else None


_ATTEMPT = """SELECT id, notification_id, generation, channel, attempt, provider,
                     provider_message_id FROM delivery_attempts"""


async def find_attempt(conn: Conn, receipt: Receipt) -> AttemptRef | None:
    """The recorded attempt the receipt is about: by the attempt id the message carried,
    else by the provider's message id; None when it is not (yet) in the trail. Only an
    attempt the receipt's provider made: one provider's signature vouches for nothing
    another provider was given."""
    attempt_id = _uuid(receipt.attempt_id)
    if attempt_id is not None:
        cur = await conn.execute(
            f"{_ATTEMPT} WHERE id = %s AND provider = %s", (attempt_id, receipt.provider)
        )
    elif receipt.provider_message_id:
        cur = await conn.execute(
            f"""{_ATTEMPT} WHERE provider = %s AND provider_message_id = %s
                ORDER BY start_time DESC LIMIT 1""",
            (receipt.provider, receipt.provider_message_id),
        )
    else:
        return None
    row = await cur.fetchone()
    return AttemptRef(**row) if row else None


async def mark_applied(
    conn: Conn, row_id: UUID, *, effect: str, attempt: AttemptRef | None
) -> None:
    await conn.execute(
        """UPDATE receipts SET applied_time = now(), effect = %s,
               attempt_id = COALESCE(%s, attempt_id),
               notification_id = COALESCE(%s, notification_id)
           WHERE id = %s""",
        (
            effect,
            attempt.id if attempt else None,
            attempt.notification_id if attempt else None,
            row_id,
        ),
    )


async def waiting(conn: Conn, *, limit: int) -> list[Waiting]:
    """Receipts not applied yet, oldest first, locked for this transaction (others skip
    them)."""
    cur = await conn.execute(
        """SELECT id, provider, receipt_id, event, provider_message_id, attempt_id,
                  notification_id, occur_time, reason, code, receive_time
           FROM receipts WHERE applied_time IS NULL
           ORDER BY receive_time LIMIT %s FOR UPDATE SKIP LOCKED""",
        (limit,),
    )
    return [_waiting(row) for row in await cur.fetchall()]


def _waiting(row: dict[str, Any]) -> Waiting:
    return Waiting(
        row["id"],
        Receipt(
            provider=row["provider"],
            event=ReceiptEvent(row["event"]),
            receipt_id=row["receipt_id"],
            provider_message_id=row["provider_message_id"],
            attempt_id=str(row["attempt_id"]) if row["attempt_id"] else None,
            notification_id=str(row["notification_id"]) if row["notification_id"] else None,
            occurred_at=row["occur_time"],
            reason=row["reason"],
            code=row["code"],
            contact="",
        ),
        row["receive_time"],
    )


async def for_notification(conn: Conn, notification_id: UUID) -> list[ReceiptRecord]:
    """The applied receipts of a notification's attempts, oldest first."""
    cur = await conn.execute(
        """SELECT attempt_id, event, reason, code, occur_time, receive_time, effect
           FROM receipts
           WHERE notification_id = %s AND attempt_id IS NOT NULL AND applied_time IS NOT NULL
           ORDER BY occur_time, receive_time""",
        (notification_id,),
    )
    return [ReceiptRecord(**row) for row in await cur.fetchall()]


async def first_use(conn: Conn, provider: str, nonce: str) -> bool:
    """Remembers a signature's single-use value; False when it was seen before."""
    cur = await conn.execute(
        """INSERT INTO webhook_nonces (provider, nonce) VALUES (%s, %s)
           ON CONFLICT DO NOTHING RETURNING 1""",
        (provider, nonce[:200]),
    )
    return await cur.fetchone() is not None


async def forget_nonces(conn: Conn, *, seen_before: datetime) -> None:
    await conn.execute("DELETE FROM webhook_nonces WHERE seen_time < %s", (seen_before,))
