"""Writing what the lifecycle decided: the next hop, or the status a notification ends in
(with its dead letter), in the caller's transaction. Worker reports and provider receipts
both end here."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from gateway import jobs, lifecycle
from gateway.outbox import Publication
from gateway.status.reports import MAX_TEXT
from gateway.store import db, hops


@dataclass(frozen=True)
class DeliveredBy:
    """The attempt a `sent` or `delivered` notification records as its delivery."""

    channel: int
    provider: str
    provider_message_id: str
    at: datetime


async def settle(
    conn: db.Conn,
    state: hops.HopState,
    job: jobs.Job,
    decision: lifecycle.Decision,
    *,
    by: DeliveredBy,
    grace: float,
) -> Publication | None:
    """Writes the decided state; returns the hop (or dead letter) to publish, if any."""
    if decision.status == "pending" and decision.next_hop is not None:
        nxt = decision.next_hop
        moved = jobs.next_job(
            job, nxt, generation=state.generation, last_error=decision.carried[:MAX_TEXT]
        )
        deliver_after = None
        if nxt.delay > 0:
            deliver_after = datetime.now(UTC) + timedelta(seconds=nxt.delay)
        hop = await hops.set_hop(
            conn,
            state.id,
            generation=state.generation,
            route_index=nxt.route_index,
            channel=nxt.channel,
            attempt=nxt.attempt,
            job=moved.SerializeToString(),
            status_reason=decision.reason[:MAX_TEXT],
            deliver_after=deliver_after,
            grace=grace,
        )
        return Publication(state.id, hop, moved, deliver_after)
    if decision.status in ("delivered", "sent"):
        sent = decision.status == "sent"
        await hops.finish(
            conn,
            state.id,
            status=decision.status,
            reason="",
            delivered_channel=by.channel,
            delivered_provider=by.provider,
            provider_message_id=by.provider_message_id,
            deliver_time=None if sent else by.at,
            sent_time=by.at if sent else None,
        )
    elif decision.status == "suppressed":
        await hops.finish(conn, state.id, status="suppressed", reason=decision.reason)
    elif decision.dead_letter:
        reason = decision.reason[:MAX_TEXT]
        dead = jobs.dead_letter(job, str(state.id), reason)
        hop = await hops.finish(
            conn,
            state.id,
            status="failed",
            reason=reason,
            dead_letter=dead.SerializeToString(),
            grace=grace,
        )
        return Publication(state.id, hop, dead, dead=True)
    return None
