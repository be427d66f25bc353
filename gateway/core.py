"""The core of the gateway, assembled: the notification, status, suppression and callback
domains, the outbox, the watches behind WatchNotification(s). The gateway registers
callback endpoints and decides every status change (the trigger writes its callback
events); it posts none: that is the callbacks process's job (`gateway.callbacks.process`).

`start_core` builds the domain objects over the process's pool, broker connection and
peer channels, starts the outbox's background tasks (relay, batched published-marks) and
registers their shutdown, so `__main__` stays wiring only. Shutdown runs in reverse:
the gRPC server and the REST edge (registered later) stop first, then the relay, then the
last marks are flushed, then the publisher's channel closes. The gRPC servicers and the
REST routes are two doors to the same domain objects.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

import grpc
from aio_pika.abc import AbstractRobustConnection
from psycopg_pool import AsyncConnectionPool

from gateway.apikeys import ApiKeys, Authenticator
from gateway.callbacks import servicer as callback_servicer
from gateway.callbacks.endpoints import CallbackEndpoints
from gateway.callbacks.history import CallbackHistory
from gateway.callbacks.watches import Watches
from gateway.lifecycle import RetryPolicy
from gateway.notifications import servicer as notification_servicer
from gateway.notifications.accept import Acceptor, Timing
from gateway.notifications.inbox import SandboxInbox
from gateway.notifications.peers import Peers
from gateway.notifications.routing import RoutePolicy
from gateway.notifications.service import Notifications
from gateway.notifications.validation import Limits
from gateway.notifications.watch import Watching
from gateway.outbox import Outbox, start_outbox
from gateway.providers.circuits import CircuitReader
from gateway.providers.stats import ProviderStats
from gateway.receipts import servicer as suppression_servicer
from gateway.receipts.service import Receipts
from gateway.receipts.suppressions import SuppressionList
from gateway.settings import GatewaySettings
from gateway.status import servicer as status_servicer
from gateway.status.claims import Claims
from gateway.status.service import Statuses
from gateway.timing.limits import ClientLimits, FrequencyCaps
from gateway.timing.quiet import QuietPolicy, QuietWindow
from gateway.timing.scheduler import Scheduler
from gateway.wire import CHANNELS_BY_NAME
from mesh.health import Dependency
from mesh.ratelimit import SharedLimits
from mesh.rules import MAX_BATCH_ITEMS
from mesh.runtime import GrpcService, Runtime
from userd.client_cache import LocalUsers

# How often waiting receipts are retried and `sent` notifications past the window settled.
RECEIPT_SWEEP_SECONDS = 2.0


@dataclass(frozen=True)
class Core:
    """The domain objects, and the gRPC services that serve them."""

    acceptor: Acceptor
    notifications: Notifications
    statuses: Statuses
    authenticator: Authenticator
    keys: ApiKeys
    receipts: Receipts
    suppressions: SuppressionList
    callbacks: CallbackEndpoints
    callback_history: CallbackHistory
    providers: ProviderStats
    inbox: SandboxInbox
    services: list[GrpcService]


def retry_policy(settings: GatewaySettings) -> RetryPolicy:
    """Retries per channel, as configured."""
    return RetryPolicy(
        max_attempts={
            CHANNELS_BY_NAME["email"]: settings.email_max_attempts,
            CHANNELS_BY_NAME["sms"]: settings.sms_max_attempts,
            CHANNELS_BY_NAME["push"]: settings.push_max_attempts,
        },
        base=settings.backoff_base_seconds,
        maximum=settings.backoff_max_seconds,
    )


async def start_core(
    runtime: Runtime,
    settings: GatewaySettings,
    *,
    pool: AsyncConnectionPool,
    connection: AbstractRobustConnection,
    userd: grpc.aio.Channel,
    templated: grpc.aio.Channel,
    users: LocalUsers | None,
) -> Core:
    """Starts the outbox and returns the domain and the gRPC services to serve."""
    running = await start_outbox(
        pool,
        connection,
        publish_timeout=settings.publish_timeout_seconds,
        interval=settings.outbox_interval_seconds,
        grace=settings.outbox_grace_seconds,
        batch_size=settings.outbox_batch_size,
        queue_type=settings.amqp_queue_type,
    )
    runtime.on_shutdown(running.stop)
    outbox = running.outbox
    scheduler = await start_scheduler(runtime, settings, pool, outbox)
    limits = SharedLimits(
        settings.redis_url,
        prefix=settings.redis_prefix,
        timeout=settings.rate_limit_timeout_seconds,
    )

    acceptor = Acceptor(
        pool=pool,
        peers=Peers(
            userd=userd,
            templated=templated,
            timeout=settings.peer_timeout_seconds,
            users=users,
        ),
        outbox=outbox,
        policy=RoutePolicy.from_names(settings.route_policy),
        limits=Limits(
            settings.max_variables_bytes,
            settings.max_metadata_bytes,
            settings.schedule_horizon_seconds,
        ),
        deadline_seconds=settings.delivery_deadline_seconds,
        max_batch=MAX_BATCH_ITEMS,
        concurrency=settings.accept_concurrency,
        runs=settings.accept_runs,
        timing=Timing(
            quiet=QuietPolicy(
                frozenset(settings.quiet_hours_types), QuietWindow.parse(settings.quiet_hours)
            ),
            client_limits=ClientLimits(
                limits, default=(settings.client_rate_per_second, settings.client_rate_burst)
            ),
            caps=FrequencyCaps(limits, settings.frequency_caps),
            on_scheduled=scheduler.wake,
        ),
    )
    notifications = Notifications(
        pool=pool, outbox=outbox, deadline_seconds=settings.delivery_deadline_seconds
    )
    statuses = Statuses(
        pool=pool,
        outbox=outbox,
        policy=retry_policy(settings),
        receipt_providers=settings.receipt_providers,
    )
    receipts = Receipts(
        pool=pool,
        outbox=outbox,
        window_seconds=settings.receipt_window_seconds,
        # A signature older than twice the tolerance is refused as stale anyway.
        nonce_seconds=2 * settings.receipt_tolerance_seconds,
    )
    _in_background(runtime, receipts.sweep_forever(RECEIPT_SWEEP_SECONDS), "receipt-sweeper")
    authenticator = Authenticator(pool, ttl=settings.api_key_cache_seconds)
    revocations = authenticator.listener(settings.database_url(settings.database))
    await revocations.start()
    runtime.on_shutdown(revocations.stop)
    runtime.health.add_dependency(
        Dependency("api-key-revocations", revocations.ping, required=False)
    )
    suppressions = SuppressionList(pool)
    callbacks = CallbackEndpoints(
        pool, rule=settings.outbound_rule(), max_per_client=settings.callback_max_endpoints
    )
    callback_history = CallbackHistory(pool)
    circuits = CircuitReader(settings.worker_metrics_urls, timeout=settings.peer_timeout_seconds)
    runtime.on_shutdown(circuits.close)
    watches = await start_watches(runtime, settings, pool)
    watching = Watching(pool=pool, notifications=notifications, watches=watches)
    return Core(
        acceptor=acceptor,
        notifications=notifications,
        statuses=statuses,
        authenticator=authenticator,
        keys=ApiKeys(pool, authenticator),
        receipts=receipts,
        suppressions=suppressions,
        callbacks=callbacks,
        callback_history=callback_history,
        providers=ProviderStats(pool=pool, circuits=circuits),
        inbox=SandboxInbox(pool=pool, max_items=settings.console_inbox_size),
        services=[
            notification_servicer.service(
                notification_servicer.NotificationServicer(
                    acceptor, notifications, authenticator, watching
                )
            ),
            status_servicer.service(status_servicer.StatusServicer(statuses, Claims(pool=pool))),
            suppression_servicer.service(
                suppression_servicer.SuppressionServicer(suppressions, authenticator)
            ),
            callback_servicer.service(
                callback_servicer.CallbackServicer(callbacks, callback_history, authenticator)
            ),
        ],
    )


async def start_scheduler(
    runtime: Runtime, settings: GatewaySettings, pool: AsyncConnectionPool, outbox: Outbox
) -> Scheduler:
    """The scheduler that releases due notifications, and the LISTEN that wakes it when
    another gateway schedules one (a degraded dependency: it still wakes at least every
    HERALD_SCHEDULER_IDLE_SECONDS)."""
    scheduler = Scheduler(
        pool,
        outbox,
        idle=settings.scheduler_idle_seconds,
        batch_size=settings.scheduler_batch_size,
    )
    listener = scheduler.listener(settings.database_url(settings.database))
    await listener.start()
    runtime.on_shutdown(listener.stop)
    runtime.health.add_dependency(Dependency("scheduled-notifications", listener.ping, False))
    _in_background(runtime, scheduler.run(), "scheduler")
    return scheduler


async def start_watches(
    runtime: Runtime, settings: GatewaySettings, pool: AsyncConnectionPool
) -> Watches:
    """The watches behind WatchNotification(s): their LISTEN (a degraded dependency: the
    periodic check still serves one-notification watches), their leases' upkeep, and
    their end as soon as shutdown begins, so open streams do not hold the gRPC server's
    grace period."""
    watches = Watches(pool, check_seconds=settings.watch_check_seconds)
    listener = watches.listener(settings.database_url(settings.database))
    await listener.start()
    runtime.on_shutdown(listener.stop)
    runtime.health.add_dependency(Dependency("status-changes", listener.ping, required=False))
    _in_background(runtime, watches.run(), "watch-upkeep")

    async def end_on_shutdown() -> None:
        await runtime.wait_for_shutdown()
        watches.close()

    _in_background(runtime, end_on_shutdown(), "watch-shutdown")
    return watches


def _in_background(runtime: Runtime, work: Coroutine[Any, Any, None], name: str) -> None:
    """Runs `work` as a task, cancelled at shutdown if still running."""
    task = asyncio.create_task(work, name=name)

    async def stop() -> None:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    runtime.on_shutdown(stop)
