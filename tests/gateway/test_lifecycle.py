"""The lifecycle's table, row by row: what each fact does to a notification."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest

from gateway.lifecycle import (
    SUPPRESSED_PREFIX,
    Decision,
    Hop,
    NextHop,
    Outcome,
    Position,
    RetryPolicy,
    on_attempt,
    on_external,
    on_receipt,
    on_retry,
)
from mesh.errors import Conflict

EMAIL, SMS, PUSH = 1, 2, 3
NAMES = {EMAIL: "email", SMS: "sms", PUSH: "push"}
POLICY = RetryPolicy(max_attempts={EMAIL: 3, SMS: 2}, base=1.0, maximum=60.0)
NOW = datetime.now(UTC)


def position(**fields: object) -> Position:
    base = Position(
        id=uuid.uuid4(),
        status="pending",
        generation=1,
        route=(EMAIL, SMS),
        route_index=0,
        channel=EMAIL,
        attempt=1,
        deadline=NOW + timedelta(hours=1),
        last_error="",
    )
    return replace(base, **fields)  # type: ignore[arg-type]


def attempt(here: Position, outcome: Outcome, error: str = "", hop: Hop | None = None) -> Decision:
    return on_attempt(
        here,
        hop=hop or here.hop,
        outcome=outcome,
        error=error,
        policy=POLICY,
        now=NOW,
        channel_names=NAMES,
    )


def test_backoff_grows_with_jitter_and_is_capped() -> None:
    policy = RetryPolicy(max_attempts={EMAIL: 10}, base=1.0, maximum=20.0)
    for _ in range(50):
        delays = [policy.delay(n) for n in range(1, 7)]
        assert all(b > a for a, b in pairwise(delays[:5]))
        assert 1.0 <= delays[0] <= 1.5
        assert 8.0 <= delays[3] <= 8.5
        assert delays[5] == 20.0
    assert len({policy.delay(2) for _ in range(20)}) > 1


def test_delivered_is_final_and_closes_the_hop() -> None:
    here = position()
    decision = attempt(here, Outcome.DELIVERED)
    assert (decision.status, decision.close, decision.next_hop) == ("delivered", here.hop, None)


def test_a_transient_failure_with_tries_left_is_retried_on_the_same_channel() -> None:
    decision = attempt(position(), Outcome.TRANSIENT, "503")
    assert decision.status == "pending"
    assert decision.next_hop is not None
    assert (decision.next_hop.channel, decision.next_hop.attempt) == (EMAIL, 2)
    assert 1.0 <= decision.next_hop.delay <= 1.5
    assert decision.carried == "503"
    assert decision.note["next_attempt"] == 2


def test_retries_used_up_move_to_the_next_channel() -> None:
    decision = attempt(position(attempt=3), Outcome.TRANSIENT, "503")
    assert decision.next_hop is not None
    assert (decision.next_hop.route_index, decision.next_hop.channel) == (1, SMS)
    assert (decision.next_hop.attempt, decision.next_hop.delay) == (1, 0)
    assert decision.carried == "503 (gave up after 3 tries)"
    assert decision.note == {"next_channel": "sms"}


def test_a_channel_the_policy_does_not_name_gets_one_try() -> None:
    here = position(route=(PUSH,), channel=PUSH)
    decision = attempt(here, Outcome.TRANSIENT, "503")
    assert decision.status == "failed"
    assert decision.reason == "503 (gave up after 1 tries)"


def test_the_deadline_ends_retries_and_the_route() -> None:
    soon = position(deadline=NOW + timedelta(seconds=0.5))
    decision = attempt(soon, Outcome.TRANSIENT, "503")
    assert decision.next_hop is not None and decision.next_hop.channel == SMS
    late = position(deadline=NOW - timedelta(seconds=1))
    decision = attempt(late, Outcome.SKIPPED, "deadline passed")
    assert decision.next_hop is None
    assert (decision.status, decision.reason) == ("failed", "deadline passed")
    assert decision.dead_letter


def test_a_permanent_failure_is_not_retried() -> None:
    decision = attempt(position(), Outcome.PERMANENT, "invalid")
    assert decision.next_hop is not None and decision.next_hop.channel == SMS


def test_the_last_channel_failing_is_final_with_a_dead_letter() -> None:
    last = position(channel=SMS, route_index=1, last_error="email down")
    decision = attempt(last, Outcome.PERMANENT, "21211")
    assert (decision.status, decision.reason) == ("failed", "21211")
    assert decision.dead_letter


def test_preferences_off_everywhere_is_suppressed_not_failed() -> None:
    first = attempt(position(), Outcome.SUPPRESSED, "email preference off")
    assert first.next_hop is not None
    assert first.carried == SUPPRESSED_PREFIX + "email preference off"
    second = attempt(
        position(channel=SMS, route_index=1, last_error=first.carried),
        Outcome.SUPPRESSED,
        "sms preference off",
    )
    assert (second.status, second.reason) == ("suppressed", "sms preference off")
    assert not second.dead_letter


def test_a_real_failure_before_a_suppression_is_what_fails() -> None:
    last = position(channel=SMS, route_index=1, last_error="sendgrid: 503")
    decision = attempt(last, Outcome.SUPPRESSED, "sms preference off")
    assert (decision.status, decision.reason) == ("failed", "sendgrid: 503")


def test_a_fact_about_an_older_hop_is_stale_except_delivered() -> None:
    here = position(attempt=2)
    older = Hop(1, EMAIL, 1)
    with pytest.raises(Conflict, match="stale report"):
        attempt(here, Outcome.TRANSIENT, "503", hop=older)
    assert attempt(here, Outcome.DELIVERED, hop=older).status == "delivered"


def test_a_final_notification_takes_only_its_own_status_again() -> None:
    done = position(status="delivered")
    assert not attempt(done, Outcome.DELIVERED).changed
    with pytest.raises(Conflict, match="is delivered"):
        attempt(done, Outcome.TRANSIENT, "503")
    assert not on_external(done, status="delivered").changed
    with pytest.raises(Conflict, match="cannot become pending"):
        on_external(done, status="pending")
    with pytest.raises(Conflict, match="cannot become failed"):
        on_external(done, status="failed")


@pytest.mark.parametrize("status", ["pending", "delivered", "failed", "suppressed"])
def test_an_external_report_never_moves_a_pending_notification(status: str) -> None:
    """It joins the trail (changed) but decides nothing: no status, no claim closed, no
    next hop, so a worker's claim and the route's fallback go on."""
    decision = on_external(position(), status=status)
    assert decision.changed
    assert (decision.status, decision.close, decision.next_hop) == (None, None, None)
    assert decision.note == {
        "reported_status": status,
        "acted_on": False,
        "current_status": "pending",
    }


def test_only_a_failed_notification_is_retried_from_the_first_channel() -> None:
    nxt = on_retry(position(status="failed", channel=SMS, route_index=1))
    assert (nxt.route_index, nxt.channel, nxt.attempt) == (0, EMAIL, 1)
    with pytest.raises(Conflict, match="only a failed notification"):
        on_retry(position())


def receipt(
    here: Position, event: str, *, permanent: bool = False, hop: Hop | None = None
) -> Decision:
    return on_receipt(
        here,
        hop=hop or here.hop,
        event=event,
        permanent_failure=permanent,
        reason="550 no such user",
        now=NOW,
        channel_names=NAMES,
    )


def test_a_provider_with_receipts_makes_a_delivery_sent() -> None:
    delivered = on_attempt(
        position(),
        hop=position().hop,
        outcome=Outcome.DELIVERED,
        error="",
        policy=POLICY,
        now=NOW,
        channel_names=NAMES,
        expects_receipt=True,
    )
    assert (delivered.status, delivered.close) == ("sent", position().hop)
    # `sent` is out of the workers' hands: a later attempt is refused, a repeat is none.
    sent = position(status="sent")
    with pytest.raises(Conflict, match="is sent"):
        attempt(sent, Outcome.TRANSIENT, "503")


def test_receipts_settle_a_sent_notification() -> None:
    sent = position(status="sent")
    assert receipt(sent, "delivered").status == "delivered"
    bounced = receipt(sent, "bounced", permanent=True)
    assert bounced.status == "pending" and bounced.next_hop == NextHop(1, SMS, 1)
    assert bounced.close is None  # the hop's claim closed when it became sent
    assert bounced.note["effect"] == "failed over to sms"
    assert "550 no such user" in bounced.carried
    last = receipt(
        position(status="sent", route_index=1, channel=SMS), "undelivered", permanent=True
    )
    assert (last.status, last.note["effect"]) == ("failed", "failed")
    assert last.reason.startswith("undelivered: 550")


@pytest.mark.parametrize(
    ("status", "event", "permanent", "hop"),
    [
        ("sent", "deferred", False, None),  # informational
        ("sent", "complained", False, None),
        ("sent", "bounced", True, Hop(1, EMAIL, 2)),  # about another hop
        ("delivered", "bounced", True, None),  # after it settled
        ("pending", "delivered", False, None),  # its attempt was no delivery
        ("failed", "delivered", False, None),
    ],
)
def test_other_receipts_are_recorded_and_move_nothing(
    status: str, event: str, permanent: bool, hop: Hop | None
) -> None:
    decision = receipt(position(status=status), event, permanent=permanent, hop=hop)
    assert decision.changed and decision.status is None and decision.next_hop is None
    assert decision.note == {"effect": "recorded"}
