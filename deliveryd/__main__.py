"""`python -m deliveryd email|sms|push`: the delivery worker of one channel."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from deliveryd import providers
from deliveryd.alerts import AlertConsumer, Alerter
from deliveryd.audience import device_remover
from deliveryd.chain import OPEN, Breakers, ProviderChain, StateListener
from deliveryd.channels import ChannelSender, EmailSender, PushSender, SmsSender
from deliveryd.clients import MAX_BATCH, StatusClient, UserClient
from deliveryd.pacing import Pacer
from deliveryd.pipeline import Pipeline
from deliveryd.providers.base import EmailMessage
from deliveryd.settings import DeliverydSettings
from deliveryd.worker import Consumer
from herald.v1 import status_pb2_grpc, user_pb2_grpc
from mesh import amqp
from mesh.client import internal_channel
from mesh.health import NOT_SERVING, SERVING, Dependency, HealthMonitor
from mesh.logging import configure_logging
from mesh.ratelimit import SharedLimits
from mesh.runtime import Runtime, run
from mesh.settings import load_settings
from userd.client_cache import start_local_users

USAGE = "usage: python -m deliveryd email|sms|push"
PROVIDER_HEALTH_PREFIX = "herald.provider."


def parse_channel(argv: list[str]) -> str:
    """The channel named on the command line, or exit 2 with the usage line."""
    if len(argv) != 1 or argv[0] not in amqp.CHANNELS:
        sys.stderr.write(USAGE + "\n")
        raise SystemExit(2)
    return argv[0]


async def _ping(channel: grpc.aio.Channel) -> None:
    await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=1.0)


def _circuit_health(health: HealthMonitor) -> StateListener:
    """Mirrors each provider's circuit in the health entry `herald.provider.<name>`."""

    async def publish(provider: str, state: str) -> None:
        status = NOT_SERVING if state == OPEN else SERVING
        await health.servicer.set(PROVIDER_HEALTH_PREFIX + provider, status)

    return publish


def build_sender(
    channel: str,
    settings: DeliverydSettings,
    breakers: Breakers,
    users: UserClient,
    pacer: Pacer | None = None,
) -> tuple[ChannelSender, ProviderChain[Any]]:
    """The channel's sender and its configured provider chain."""
    wait = settings.provider_throttle_wait_seconds
    if channel == "email":
        email = ProviderChain(
            "email", providers.email_providers(settings), breakers, pacer=pacer, throttle_wait=wait
        )
        return EmailSender(email), email
    if channel == "sms":
        sms = ProviderChain(
            "sms", providers.sms_providers(settings), breakers, pacer=pacer, throttle_wait=wait
        )
        return SmsSender(sms), sms
    push = ProviderChain(
        "push", providers.push_providers(settings), breakers, pacer=pacer, throttle_wait=wait
    )
    return PushSender(push, device_remover(users, settings.rpc_timeout_seconds)), push


async def main() -> None:
    channel = parse_channel(sys.argv[1:])
    settings = load_settings(DeliverydSettings)
    name = f"deliveryd-{channel}"
    configure_logging(name, settings.log_level)
    # Blocking SDKs (SendGrid, Twilio) run in threads: as many as jobs can be in flight.
    asyncio.get_running_loop().set_default_executor(
        ThreadPoolExecutor(max_workers=settings.prefetch + 4, thread_name_prefix="provider")
    )
    token = settings.service_token.get_secret_value()
    async with Runtime(name, settings) as runtime:
        runtime.metrics(settings.metrics_port(channel))
        connection = await runtime.rabbitmq(required=True)
        gateway = internal_channel(settings.gateway_addr, token)
        userd = internal_channel(settings.userd_addr, token)
        runtime.on_shutdown(gateway.close)
        runtime.on_shutdown(userd.close)
        runtime.health.add_dependency(Dependency("gateway", lambda: _ping(gateway), False))
        runtime.health.add_dependency(Dependency("userd", lambda: _ping(userd), False))
        # Calls of concurrent jobs travel together (no more of them than jobs in flight).
        batch = min(settings.prefetch, MAX_BATCH)
        users = UserClient(
            user_pb2_grpc.UserServiceStub(userd),
            max_batch=batch,
            max_running=settings.batch_calls,
            kept=start_local_users(runtime, settings),
        )

        breakers = Breakers(
            threshold=settings.breaker_threshold,
            cooldown=settings.breaker_cooldown_seconds,
            listener=_circuit_health(runtime.health),
        )
        pacer = Pacer(
            SharedLimits(
                settings.redis_url,
                prefix=settings.redis_prefix,
                timeout=settings.rate_limit_timeout_seconds,
            ),
            settings.provider_rates,
        )
        sender, chain = build_sender(channel, settings, breakers, users, pacer)
        chains: list[ProviderChain[Any]] = [chain]
        alert_chain: ProviderChain[EmailMessage] | None = None
        if settings.alert_email:
            # Alerts go out through the email chain, even from the SMS and push workers.
            if isinstance(sender, EmailSender):
                alert_chain = sender.chain
            else:
                alert_chain = ProviderChain("email", providers.email_providers(settings), breakers)
                chains.append(alert_chain)
        for each in chains:
            await each.start()
            runtime.on_shutdown(each.close)
        alerter = Alerter(
            webhook_url=settings.alert_webhook_url,
            email=settings.alert_email,
            email_chain=alert_chain,
            timeout=settings.alert_timeout_seconds,
        )
        runtime.on_shutdown(alerter.close)
        pipeline = Pipeline(
            sender=sender,
            status=StatusClient(
                status_pb2_grpc.StatusServiceStub(gateway),
                max_batch=batch,
                max_running=settings.batch_calls,
            ),
            users=users,
            worker=f"{socket.gethostname()}:{os.getpid()}",
            lease_seconds=settings.lease_seconds,
            rpc_timeout=settings.rpc_timeout_seconds,
            report_retry_seconds=settings.report_retry_seconds,
        )
        consumer = Consumer(
            connection=connection,
            channel=channel,
            pipeline=pipeline,
            prefetch=settings.prefetch,
            grace_seconds=settings.grace_seconds,
            requeue_pause=settings.requeue_pause_seconds,
            queue_type=settings.amqp_queue_type,
        )
        alerts = AlertConsumer(
            connection=connection, alerter=alerter, queue_type=settings.amqp_queue_type
        )
        # The worker's own health name (`herald.deliveryd.email`), for readiness probes.
        runtime.health.add_service(f"herald.deliveryd.{channel}")
        await runtime.serve_grpc(settings.grpc_port(channel), [])
        await consumer.start()
        await alerts.start()
        # Registered last, so they run first: stop taking work before anything closes.
        runtime.on_shutdown(alerts.stop)
        runtime.on_shutdown(consumer.stop)
        await runtime.wait_for_shutdown()


if __name__ == "__main__":
    run(main)
