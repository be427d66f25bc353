"""Send and SendBatch: accept notifications durably, exactly once per idempotency key.

One pipeline serves both: validate → look the idempotency keys up (one query) → get the
users (several in one BatchGetUsers call) → per item, render the template (each distinct
rendering done once, several in one BatchRender call) → plan the route → insert every row
in one transaction → after the commit, publish the first hops with confirms. A SendBatch
is one run of it; concurrent Sends are too (`mesh.coalesce.Batcher`: the Sends that
arrive in one turn of the event loop), so under load a Send costs a share of one key
lookup, one user call, one render call and one INSERT transaction, not one of each. A
lone Send: one key lookup (only with a request_id), one GetUser, one Render, one
autocommit INSERT, one confirmed publish; the "published" mark is batched
(`outbox.PublishedMarks`). Each item keeps its own caller (API client, correlation id)
and its own outcome; only a failure of the whole run is shared: a database outage fails
every call of the run (UNAVAILABLE), as nothing is accepted that is not stored. A broker
outage does not: the rows are stored, so the calls answer OK and the relay publishes the
hops when the broker is back.

Time (docs/scheduling.md): a send with `send_at`, or one the user's quiet hours hold, is
stored `scheduled` with its due time and a HELD row in its trail, and nothing is
published: the scheduler releases it when due. A send over the user's frequency cap for
its message type is stored `suppressed` (a CAPPED row says which cap). An API key over its
send rate is refused before anything is read or stored. A send with none of these costs
what it did, plus one Redis round trip for the key's rate (none for internal services).

Idempotency is per (API client, request_id): the same key with the same payload (hash of
the normalized request) answers the first notification with `duplicate=True` and
publishes nothing; with another payload it is FAILED_PRECONDITION. Two concurrent
identical Sends in one run: the first is stored, the second answers as its duplicate; in
different runs (or gateways) they race on the unique index: one insert wins, the other
re-reads the key.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import structlog
from psycopg_pool import AsyncConnectionPool

from gateway import jobs, lifecycle, wire
from gateway.apikeys.scopes import Scope
from gateway.notifications.fetches import Memo, Rendering, RenderKey
from gateway.notifications.items import IdempotencyKey, Item, follow, prefixed, replay
from gateway.notifications.metrics import RUN_ITEMS, stage
from gateway.notifications.model import Accepted, Caller, NewSend, Outcome, Recipient, Rendered
from gateway.notifications.peers import Peers
from gateway.notifications.routing import Route, RoutePolicy, plan_route
from gateway.notifications.validation import Limits, SendCommand, validate_send, violations
from gateway.outbox import Outbox, Publication
from gateway.store import db, notifications, scheduling
from gateway.timing.limits import ClientLimits, FrequencyCaps
from gateway.timing.quiet import QuietPolicy
from gateway.timing.scheduler import Clock, utc_now
from gateway.wire import CHANNELS_BY_NAME, MESSAGE_TYPES_BY_NAME
from mesh.coalesce import Batcher
from mesh.errors import DomainError, FieldViolation, InvalidArgument

log = structlog.get_logger(__name__)

# An item's route and, unless it is suppressed, the rendering it needs.
Plan = tuple[Route, Rendering | None]


@dataclass(frozen=True)
class Timing:
    """What decides when an accepted notification goes out, and whether it may."""

    quiet: QuietPolicy
    client_limits: ClientLimits | None = None
    caps: FrequencyCaps | None = None
    clock: Clock = utc_now
    # Told of each notification scheduled here (its due time): the local scheduler.
    on_scheduled: Callable[[datetime], None] = field(default=lambda _: None)


@dataclass(frozen=True)
class When:
    """When an accepted notification goes out: now (pending), later (scheduled, `due`),
    or never (`capped`: over a frequency cap)."""

    status: str = "pending"
    reason: str = ""
    due: datetime | None = None
    marks: tuple[scheduling.Mark, ...] = ()
    capped: bool = False


class Acceptor:
    """Turns sends into stored, published notifications (`send`, `send_batch`)."""

    def __init__(
        self,
        *,
        pool: AsyncConnectionPool,
        peers: Peers,
        outbox: Outbox,
        policy: RoutePolicy,
        limits: Limits,
        deadline_seconds: int,
        max_batch: int,
        timing: Timing,
        concurrency: int,
        runs: int,
    ) -> None:
        self._pool = pool
        self._timing = timing
        self._peers = peers
        self._outbox = outbox
        self._policy = policy
        self._limits = limits
        self._deadline = timedelta(seconds=deadline_seconds)
        self._max_batch = max_batch
        self._slots = asyncio.Semaphore(concurrency)
        # Sends go in at most `runs` runs at a time; the others gather for the next.
        self._sends: Batcher[Item, Accepted] = Batcher(
            self._accept, max_batch=max_batch, max_running=runs
        )

    async def send(self, *, notification: NewSend, caller: Caller) -> Accepted:
        """Accepts one notification (raises the item's error), in one run with the Sends
        that arrive at the same moment."""
        caller.principal.require(Scope.NOTIFICATIONS_SEND)
        await self._take_rate(caller, 1)
        command = validate_send(notification, limits=self._limits, now=self._timing.clock())
        return await self._sends(Item(command, caller))

    async def _take_rate(self, caller: Caller, cost: int) -> None:
        """Refuses the call (RESOURCE_EXHAUSTED) when the caller's key is over its rate."""
        principal, limits = caller.principal, self._timing.client_limits
        if limits is not None and principal.rate_key:
            await limits.take(key=principal.rate_key, rate=principal.rate, cost=cost)

    def violations(self, notification: NewSend, prefix: str = "") -> list[FieldViolation]:
        """What `send` would refuse in `notification`, without sending it (for a door
        that has refused some fields already and must name every field at fault)."""
        return violations(notification, limits=self._limits, prefix=prefix)

    def check_batch_size(self, size: int) -> None:
        """INVALID_ARGUMENT `requests` unless a batch of `size` items may be sent."""
        if size < 1:
            raise InvalidArgument.field("requests", "at least one item")
        if size > self._max_batch:
            raise InvalidArgument.field("requests", f"at most {self._max_batch} items")

    async def send_batch(
        self, *, notifications: Sequence[NewSend], caller: Caller
    ) -> list[Outcome]:
        """Accepts many notifications; one outcome per item, in order (errors name the
        items as `requests[i].<field>`)."""
        caller.principal.require(Scope.NOTIFICATIONS_SEND)
        self.check_batch_size(len(notifications))
        await self._take_rate(caller, len(notifications))
        now = self._timing.clock()
        outcomes: list[Outcome | None] = [None] * len(notifications)
        valid: list[tuple[int, SendCommand]] = []
        for index, notification in enumerate(notifications):
            try:
                command = validate_send(
                    notification, limits=self._limits, prefix=f"requests[{index}].", now=now
                )
            except InvalidArgument as exc:
                outcomes[index] = exc
            else:
                valid.append((index, command))
        accepted = await self._accept([Item(c, caller, f"requests[{i}].") for i, c in valid])
        for (index, _), outcome in zip(valid, accepted, strict=True):
            outcomes[index] = outcome
        return [o for o in outcomes if o is not None]

    async def _accept(self, items: Sequence[Item]) -> list[Outcome]:
        """One run of the pipeline (each stage timed: `gateway.notifications.metrics`)."""
        RUN_ITEMS.observe(len(items))
        outcomes: list[Outcome | None] = [None] * len(items)
        keys = sorted({item.key for item in items if item.key})
        known: dict[IdempotencyKey, notifications.KnownKey] = {}
        if keys:
            with stage["keys"].time():
                async with db.connection(self._pool) as conn:
                    known = {k.key: k for k in await notifications.find_keys(conn, keys)}
        leaders: dict[IdempotencyKey, int] = {}
        followers: list[tuple[int, int]] = []
        fresh: list[int] = []
        for index, item in enumerate(items):
            key = item.key
            if key in known:
                outcomes[index] = replay(known[key], item.command)
            elif key and key in leaders:
                followers.append((index, leaders[key]))
            else:
                if key:
                    leaders[key] = index
                fresh.append(index)

        users: Memo[str, Recipient] = Memo()
        user_ids = {items[i].command.user_key for i in fresh}
        if user_ids:
            with stage["users"].time():
                await self._prefetch_users(users, user_ids)
        # Each item's route and rendering, planned once, for the items whose user is known.
        plans: dict[int, Plan] = {}
        for index in fresh:
            command = items[index].command
            user = users.known(command.user_key)
            if user is not None:
                plans[index] = self._plan(command, user)
        renders: Memo[RenderKey, Rendered] = Memo()
        await self._prefetch_renders(renders, plans.values())
        with stage["prepare"].time():
            prepared = await asyncio.gather(
                *(self._prepare(items[i], users, renders, plans.get(i)) for i in fresh)
            )
        rows: list[tuple[int, notifications.NewNotification]] = []
        for index, row in zip(fresh, prepared, strict=True):
            if isinstance(row, DomainError):
                outcomes[index] = row
            else:
                rows.append((index, row))
        await self._store(rows, items, outcomes)
        for index, leader in followers:
            outcomes[index] = follow(outcomes[leader], items[leader].command, items[index].command)
        assert all(o is not None for o in outcomes)
        return [o for o in outcomes if o is not None]

    async def _prefetch_users(self, users: Memo[str, Recipient], user_ids: set[str]) -> None:
        """Every user the items need, before the items run: several in one BatchGetUsers
        call rather than a GetUser each (and known up front, for `_prefetch_renders`)."""
        if len(user_ids) == 1:
            [user_id] = user_ids
            try:
                users.seed(user_id, await self._peers.get_user(user_id))
            except DomainError as exc:
                users.seed(user_id, exc)
            return
        found = await self._peers.get_users(sorted(user_ids)) if user_ids else None
        for user_id, user in (found or {}).items():
            users.seed(user_id, user)

    async def _prefetch_renders(
        self,
        renders: Memo[RenderKey, Rendered],
        plans: Iterable[Plan],
    ) -> None:
        """Every rendering the planned items need, timed as the `renders` stage: one Render
        for a single one, one BatchRender call for several (items whose user is not known
        yet, or failed, have no plan and are left to `_build`)."""
        wanted: dict[RenderKey, Rendering] = {}
        for _, rendering in plans:
            if rendering is not None:
                wanted.setdefault(rendering.key, rendering)
        if not wanted:
            return
        if len(wanted) == 1:
            [(key, rendering)] = wanted.items()
            with stage["renders"].time():
                try:
                    renders.seed(key, await self._peers.render(rendering))
                except DomainError as exc:
                    renders.seed(key, exc)
            return
        with stage["renders"].time():
            outcomes = await self._peers.render_many(list(wanted.values()))
        for key, outcome in zip(wanted, outcomes or [], strict=False):
            renders.seed(key, outcome)

    async def _store(
        self,
        rows: list[tuple[int, notifications.NewNotification]],
        items: Sequence[Item],
        outcomes: list[Outcome | None],
    ) -> None:
        """Inserts the prepared rows in one transaction, then publishes their first hops."""
        if not rows:
            return
        with stage["store"].time():
            async with db.connection(self._pool) as conn:
                new_rows = [row for _, row in rows]
                inserted = await self._insert(conn, new_rows)
                lost = [row.key for (_, row), ok in zip(rows, inserted, strict=True) if not ok]
                # A lost race waited for the winner's commit, so its row is there to read.
                winners = {k.key: k for k in await notifications.find_keys(conn, lost)}
        publications: list[Publication] = []
        for (index, row), ok in zip(rows, inserted, strict=True):
            if not ok:
                outcomes[index] = replay(winners[row.key], items[index].command)
                continue
            outcomes[index] = Accepted(row.id, row.status)
            if row.job is not None and row.status == "pending":
                publications.append(Publication(row.id, 1, jobs.read(row.job)))
            elif row.send_at is not None:
                self._timing.on_scheduled(row.send_at)
        with stage["publish"].time():
            await self._outbox.dispatch(publications)
        for (_, row), ok in zip(rows, inserted, strict=True):
            if ok:
                with structlog.contextvars.bound_contextvars(correlation_id=row.correlation_id):
                    log.info(
                        "notification accepted", notification_id=str(row.id), status=row.status
                    )

    async def _insert(self, conn: db.Conn, rows: list[notifications.NewNotification]) -> list[bool]:
        """Inserts the rows and, in the same transaction, the trail rows of those held or
        capped (a plain send: one autocommit INSERT, as before)."""
        if not any(row.marks for row in rows):
            return await notifications.insert(conn, rows, grace=self._outbox.grace)
        async with conn.transaction():
            inserted = await notifications.insert(conn, rows, grace=self._outbox.grace)
            marks = [m for row, ok in zip(rows, inserted, strict=True) if ok for m in row.marks]
            await scheduling.add_marks(conn, marks)
        return inserted

    async def _prepare(
        self,
        item: Item,
        users: Memo[str, Recipient],
        renders: Memo[RenderKey, Rendered],
        plan: Plan | None,
    ) -> notifications.NewNotification | DomainError:
        """The row of one notification (user fetched, route planned, content rendered)."""
        caller = item.caller
        given = caller.correlation_id if caller.given else ""
        correlation_id = given or item.command.send.request_id or caller.correlation_id
        async with self._slots:
            with structlog.contextvars.bound_contextvars(correlation_id=correlation_id):
                try:
                    return await self._build(
                        item.command, correlation_id, caller, users, renders, plan=plan
                    )
                except DomainError as exc:
                    return prefixed(exc, item.prefix)

    async def _build(
        self,
        command: SendCommand,
        correlation_id: str,
        caller: Caller,
        users: Memo[str, Recipient],
        renders: Memo[RenderKey, Rendered],
        *,
        plan: Plan | None,
    ) -> notifications.NewNotification:
        send = command.send
        user_id = command.user_key
        user = await users.get(user_id, lambda: self._peers.get_user(user_id))
        route, rendering = plan or self._plan(command, user)
        notification_id = uuid.uuid4()
        language = send.language or user.locale
        job: bytes | None = None
        version = send.template_version
        when = When()
        if rendering is not None:
            rendered = await renders.get(rendering.key, lambda: self._peers.render(rendering))
            version = rendered.version
            language = rendered.language or language
            when = await self._when(command, user, notification_id, route)
            if not when.capped:
                job = jobs.first_job(
                    notification_id,
                    command,
                    user,
                    route.channels,
                    rendered,
                    deadline=self._deadline,
                    correlation_id=correlation_id,
                    # A held notification's deadline counts from its due time.
                    start=when.due,
                )
        if job is None:
            log.info("notification suppressed", notification_id=str(notification_id))
        return notifications.NewNotification(
            id=notification_id,
            client_id=caller.client_id,
            request_id=send.request_id,
            payload_hash=command.payload_hash,
            correlation_id=correlation_id,
            user_id=send.user_id,
            channel=CHANNELS_BY_NAME[send.channel],
            route=route.channels,
            template_code=send.template_code,
            template_version=version,
            language=language,
            priority=int(send.priority),
            message_type=MESSAGE_TYPES_BY_NAME[send.message_type],
            metadata=command.encoded.metadata_json(),
            status=when.status if job is not None else "suppressed",
            status_reason=when.reason or route.reason,
            job=job,
            send_at=when.due,
            marks=when.marks,
        )

    async def _when(
        self,
        command: SendCommand,
        user: Recipient,
        notification_id: uuid.UUID,
        route: Route,
    ) -> When:
        """Whether the notification goes now, waits (send_at, quiet hours) or is over its
        user's frequency cap."""
        send = command.send
        channel = route.channels[0]
        now = self._timing.clock()
        caps = self._timing.caps
        if caps is not None and caps.applies(send.message_type):
            cap = await caps.over(user_id=command.user_key, message_type=send.message_type)
            if cap is not None:
                reason = lifecycle.capped(send.message_type, cap)
                mark = scheduling.Mark(notification_id, channel, wire.CAPPED, reason, now)
                return When(status="suppressed", reason=reason, marks=(mark,), capped=True)
        held = self._timing.quiet.held_until(
            at=send.send_at or now,
            message_type=send.message_type,
            choice=send.quiet_hours,
            window=user.quiet_hours,
            time_zone=user.time_zone,
        )
        if held is not None:
            reason = lifecycle.held_by_quiet_hours(held)
            due: datetime | None = held
        elif send.send_at is not None:
            reason, due = lifecycle.scheduled_for(send.send_at), send.send_at
        else:
            return When()
        mark = scheduling.Mark(notification_id, channel, wire.HELD, reason, now)
        return When(status="scheduled", reason=reason, due=due, marks=(mark,))

    def _plan(self, command: SendCommand, user: Recipient) -> Plan:
        """The item's route and, unless it is suppressed, the rendering it needs."""
        send = command.send
        route = plan_route(
            requested=CHANNELS_BY_NAME[send.channel],
            message_type=MESSAGE_TYPES_BY_NAME[send.message_type],
            user=user,
            policy=self._policy,
        )
        if not route.channels:
            return route, None
        return route, Rendering(
            code=send.template_code,
            language=send.language or user.locale,
            variables=command.encoded.variables,
            channels=route.channels,
            version=send.template_version,
        )
