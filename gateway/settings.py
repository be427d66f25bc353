"""gateway configuration: the REST edge and its gRPC services."""

from __future__ import annotations

import json
from typing import Annotated

from pydantic import Field, SecretStr, TypeAdapter, field_validator
from pydantic_settings import NoDecode

from gateway.timing.quiet import QuietWindow
from mesh.ratelimit import check_quota
from mesh.rules import ChannelName, MessageTypeName
from mesh.settings import CommonSettings, Port, SharedSettings, concern

# The channel order per message type: the requested channel goes first, then these
# (skipping the requested one) as fallbacks. The seed's flow is email → SMS.
DEFAULT_ROUTE_POLICY: dict[MessageTypeName, list[ChannelName]] = {
    "transactional": ["email", "sms"],
    "alert": ["email", "sms", "push"],
    "marketing": [],
}
_POLICY = TypeAdapter(dict[MessageTypeName, list[ChannelName]])
DEFAULT_QUIET_TYPES: list[MessageTypeName] = ["marketing"]
DEFAULT_CAPS: dict[MessageTypeName, str] = {"marketing": "3/day"}
_CAPS = TypeAdapter(dict[MessageTypeName, str])


class NotificationsDbSettings(CommonSettings):
    """What the gateway and the callbacks process (`gateway.callbacks.process`) both read:
    the notifications database, and the pool each process opens on it."""

    database: str = Field(
        "herald_notifications",
        validation_alias="HERALD_GATEWAY_DATABASE",
        description="The notifications database on HERALD_POSTGRES_URL (created and migrated at "
        "start-up by the gateway or the callbacks process): notifications, attempts, API "
        "keys, callbacks.",
        json_schema_extra=concern("servers"),
    )
    db_pool_size: int = Field(
        20,
        ge=2,
        le=200,
        validation_alias="HERALD_GATEWAY_DB_POOL_SIZE",
        description="Most PostgreSQL connections one gateway, or one callbacks process, holds; "
        "keep processes x this below the server's max_connections (effect on throughput not "
        "measured).",
        json_schema_extra=concern("performance"),
    )


class GatewaySettings(SharedSettings, NotificationsDbSettings):
    http_port: Port = Field(
        8000,
        validation_alias="HERALD_GATEWAY_HTTP_PORT",
        description="Port of the REST edge (/api/v1, /webhooks, /docs, /metrics); several "
        "gateways on one machine may share it (SO_REUSEPORT).",
        json_schema_extra=concern("servers"),
    )
    grpc_port: Port = Field(
        50050,
        validation_alias="HERALD_GATEWAY_GRPC_PORT",
        description="Port of the gateway's gRPC services (notifications, statuses for the "
        "workers, suppressions, callbacks); several gateways may share it.",
        json_schema_extra=concern("servers"),
    )
    metrics_port: Port = Field(
        0,
        validation_alias="HERALD_GATEWAY_METRICS_PORT",
        description="This process's own Prometheus /metrics (0: none; /metrics on the HTTP "
        "port answers either way). Give each of several gateways sharing the HTTP port its "
        "own, to scrape each process.",
        json_schema_extra=concern("servers"),
    )
    userd_addr: str = Field(
        "127.0.0.1:50051",
        validation_alias="HERALD_USERD_ADDR",
        description="host:port of userd's gRPC server (read by the gateway and deliveryd).",
        json_schema_extra=concern("servers"),
    )
    templated_addr: str = Field(
        "127.0.0.1:50052",
        validation_alias="HERALD_TEMPLATED_ADDR",
        description="host:port of templated's gRPC server.",
        json_schema_extra=concern("servers"),
    )
    max_body_bytes: int = Field(
        256 * 1024,
        ge=1024,
        le=16 * 1024 * 1024,
        validation_alias="HERALD_GATEWAY_MAX_BODY_BYTES",
        description="Largest REST request body in bytes; a larger one is refused with 413 "
        "(at once when its Content-Length says so).",
        json_schema_extra=concern("security"),
    )
    route_policy: Annotated[dict[MessageTypeName, list[ChannelName]], NoDecode] = Field(
        default_factory=lambda: dict(DEFAULT_ROUTE_POLICY),
        validation_alias="HERALD_ROUTE_POLICY",
        description='Fallback channels per message type, JSON: {"transactional": ["email", '
        '"sms"], ...}. Types left out get no fallback.',
        json_schema_extra=concern("delivery"),
    )
    delivery_deadline_seconds: int = Field(
        3600,
        ge=1,
        le=7 * 86400,
        validation_alias="HERALD_DELIVERY_DEADLINE_SECONDS",
        description="After this long no retry is scheduled on a channel (DeliveryJob.deadline).",
        json_schema_extra=concern("delivery"),
    )
    # Retries of a hop whose attempt failed transiently: decided by the gateway
    # (gateway/lifecycle.py), sent through the channel's delay queues.
    email_max_attempts: int = Field(
        5,
        ge=1,
        le=50,
        validation_alias="HERALD_EMAIL_MAX_ATTEMPTS",
        description="Attempts of one notification on the email channel (the first "
        "included) before it fails over to the route's next channel, or fails.",
        json_schema_extra=concern("delivery"),
    )
    sms_max_attempts: int = Field(
        5,
        ge=1,
        le=50,
        validation_alias="HERALD_SMS_MAX_ATTEMPTS",
        description="Attempts of one notification on the SMS channel, as "
        "HERALD_EMAIL_MAX_ATTEMPTS.",
        json_schema_extra=concern("delivery"),
    )
    push_max_attempts: int = Field(
        5,
        ge=1,
        le=50,
        validation_alias="HERALD_PUSH_MAX_ATTEMPTS",
        description="Attempts of one notification on the push channel, as "
        "HERALD_EMAIL_MAX_ATTEMPTS.",
        json_schema_extra=concern("delivery"),
    )
    backoff_base_seconds: float = Field(
        2.0,
        gt=0,
        le=3600,
        validation_alias="HERALD_RETRY_BACKOFF_BASE_SECONDS",
        description="The first retry's delay; each next one doubles, plus up to half this "
        "in jitter.",
        json_schema_extra=concern("delivery"),
    )
    backoff_max_seconds: float = Field(
        300.0,
        gt=0,
        le=86400,
        validation_alias="HERALD_RETRY_BACKOFF_MAX_SECONDS",
        description="The longest delay in seconds between two attempts on a channel, "
        "however many doublings HERALD_RETRY_BACKOFF_BASE_SECONDS has had.",
        json_schema_extra=concern("delivery"),
    )
    outbox_interval_seconds: float = Field(
        1.0,
        gt=0,
        le=60,
        validation_alias="HERALD_OUTBOX_INTERVAL_SECONDS",
        description="Seconds between two rounds of the outbox relay, which publishes the "
        "jobs whose inline publish did not complete (broker away, process crash): the "
        "longest such a job waits once the broker is back.",
        json_schema_extra=concern("delivery"),
    )
    outbox_grace_seconds: float = Field(
        3.0,
        ge=0,
        le=300,
        validation_alias="HERALD_OUTBOX_GRACE_SECONDS",
        description="How long the relay leaves a fresh hop to the inline publish.",
        json_schema_extra=concern("delivery"),
    )
    outbox_batch_size: int = Field(
        200,
        ge=1,
        le=5000,
        validation_alias="HERALD_OUTBOX_BATCH_SIZE",
        description="Jobs one relay round takes and publishes in one transaction; a full "
        "round is followed at once by the next, so it bounds a transaction, not the "
        "relay's rate (effect not measured).",
        json_schema_extra=concern("performance"),
    )
    publish_timeout_seconds: float = Field(
        5.0,
        gt=0,
        le=60,
        validation_alias="HERALD_PUBLISH_TIMEOUT_SECONDS",
        description="How long a publish waits for RabbitMQ's confirm before the job is "
        "left to the outbox relay (the Send is still accepted: the job is in PostgreSQL).",
        json_schema_extra=concern("delivery"),
    )
    peer_timeout_seconds: float = Field(
        5.0,
        gt=0,
        le=60,
        validation_alias="HERALD_PEER_TIMEOUT_SECONDS",
        description="Deadline in seconds of each call a Send makes to userd and templated "
        "(the user, the rendering).",
        json_schema_extra=concern("delivery"),
    )
    accept_runs: int = Field(
        4,
        ge=1,
        le=64,
        validation_alias="HERALD_ACCEPT_RUNS",
        description="Accept runs one gateway has in flight; Sends arriving meanwhile gather "
        "into the next run (one lookup, render, INSERT and publish for all). Measured: 1, "
        "2, 4 and 8 did not separate from the noise (docs/performance.md).",
        json_schema_extra=concern("performance"),
    )
    accept_concurrency: int = Field(
        32,
        ge=1,
        le=1000,
        validation_alias="HERALD_ACCEPT_CONCURRENCY",
        description="Items of the runs in flight that one gateway prepares at once (user, "
        "route, rendering of each); effect not measured.",
        json_schema_extra=concern("performance"),
    )
    max_variables_bytes: int = Field(
        32 * 1024,
        ge=256,
        le=1024 * 1024,
        validation_alias="HERALD_MAX_VARIABLES_BYTES",
        description="Largest `variables` of one notification, in bytes serialized "
        "(protobuf Struct); a larger one is refused (INVALID_ARGUMENT / 400 naming the field).",
        json_schema_extra=concern("security"),
    )
    max_metadata_bytes: int = Field(
        8 * 1024,
        ge=256,
        le=1024 * 1024,
        validation_alias="HERALD_MAX_METADATA_BYTES",
        description="Largest `metadata` of one notification, in bytes serialized; a larger "
        "one is refused as `variables` is.",
        json_schema_extra=concern("security"),
    )
    # The REST edge.
    rpc_timeout_seconds: float = Field(
        5.0,
        gt=0,
        le=60,
        validation_alias="HERALD_GATEWAY_RPC_TIMEOUT_SECONDS",
        description="Deadline of each gRPC call the REST edge makes (to userd and templated).",
        json_schema_extra=concern("servers"),
    )
    api_key_cache_seconds: float = Field(
        10.0,
        ge=0,
        le=300,
        validation_alias="HERALD_GATEWAY_API_KEY_CACHE_SECONDS",
        description="How long a verified API key is kept without reading the database "
        "again. A revocation reaches every gateway at once through PostgreSQL's NOTIFY; "
        "this is the bound while a gateway's listening connection is down.",
        json_schema_extra=concern("security"),
    )

    sendgrid_webhook_public_key: SecretStr | None = Field(
        None,
        validation_alias="HERALD_SENDGRID_WEBHOOK_PUBLIC_KEY",
        description="The verification key of SendGrid's signed Event Webhook, as SendGrid's "
        "settings page shows it (base64). Set: SendGrid's receipts are taken at "
        "/webhooks/sendgrid and an email SendGrid takes is `sent` until its receipt.",
        json_schema_extra=concern("providers"),
    )
    mailgun_webhook_signing_key: SecretStr | None = Field(
        None,
        validation_alias="HERALD_MAILGUN_WEBHOOK_SIGNING_KEY",
        description="Mailgun's webhook signing key. Set: Mailgun's receipts are taken at "
        "/webhooks/mailgun.",
        json_schema_extra=concern("providers"),
    )
    twilio_webhook_auth_token: SecretStr | None = Field(
        None,
        validation_alias="HERALD_TWILIO_WEBHOOK_AUTH_TOKEN",
        description="The Twilio account's auth token, which signs its status callbacks. Set "
        "(with HERALD_RECEIPTS_BASE_URL on the SMS worker): Twilio's receipts are taken at "
        "/webhooks/twilio.",
        json_schema_extra=concern("providers"),
    )
    receipts_public_url: str = Field(
        "",
        validation_alias="HERALD_RECEIPTS_PUBLIC_URL",
        description="This edge's URL as providers call it (scheme and host, e.g. "
        "https://herald.example.com), when a proxy in front changes it: Twilio signs the "
        "URL it called. Empty: the URL of the request as received.",
        json_schema_extra=concern("providers"),
    )
    receipt_tolerance_seconds: float = Field(
        300.0,
        gt=0,
        le=3600,
        validation_alias="HERALD_RECEIPT_TOLERANCE_SECONDS",
        description="How far a webhook's signed timestamp may be from now: older ones are "
        "refused as replays.",
        json_schema_extra=concern("security"),
    )
    receipt_window_seconds: float = Field(
        259200.0,
        gt=0,
        validation_alias="HERALD_RECEIPT_WINDOW_SECONDS",
        description="How long a `sent` notification waits for its receipt; then it is taken "
        "as delivered (reason: no receipt within the window).",
        json_schema_extra=concern("delivery"),
    )

    callback_max_endpoints: int = Field(
        10,
        ge=1,
        le=1000,
        validation_alias="HERALD_CALLBACK_MAX_ENDPOINTS",
        description="Callback endpoints one client may register.",
        json_schema_extra=concern("security"),
    )
    watch_check_seconds: float = Field(
        5.0,
        gt=0,
        le=300,
        validation_alias="HERALD_WATCH_CHECK_SECONDS",
        description="How often a gateway reads the statuses its WatchNotification streams "
        "watch, besides PostgreSQL's NOTIFY waking them at once: the longest a change waits "
        "should a NOTIFY be lost.",
        json_schema_extra=concern("delivery"),
    )

    # Time-aware delivery (docs/scheduling.md).
    schedule_horizon_seconds: int = Field(
        30 * 86400,
        ge=60,
        le=366 * 86400,
        validation_alias="HERALD_SCHEDULE_HORIZON_SECONDS",
        description="How far ahead a send_at may be.",
        json_schema_extra=concern("delivery"),
    )
    scheduler_idle_seconds: float = Field(
        5.0,
        gt=0,
        le=300,
        validation_alias="HERALD_SCHEDULER_IDLE_SECONDS",
        description="The longest the scheduler sleeps without looking for due notifications "
        "(it also wakes at the next due time, and when one is scheduled): the bound on "
        "lateness should a NOTIFY be lost.",
        json_schema_extra=concern("delivery"),
    )
    scheduler_batch_size: int = Field(
        500,
        ge=1,
        le=5000,
        validation_alias="HERALD_SCHEDULER_BATCH_SIZE",
        description="Scheduled notifications released in one transaction.",
        json_schema_extra=concern("performance"),
    )
    quiet_hours: str = Field(
        "22:00-07:00",
        validation_alias="HERALD_QUIET_HOURS",
        description="The default quiet window (HH:MM-HH:MM in each user's time zone) for "
        "users who did not set their own; equal times: none.",
        json_schema_extra=concern("delivery"),
    )
    quiet_hours_types: Annotated[list[MessageTypeName], NoDecode] = Field(
        default_factory=lambda: list(DEFAULT_QUIET_TYPES),
        validation_alias="HERALD_QUIET_HOURS_TYPES",
        description="Comma-separated message types that wait for the end of the user's quiet "
        "hours unless the caller asks to bypass them (the others go at once unless the "
        "caller asks to respect them).",
        json_schema_extra=concern("delivery"),
    )
    client_rate_per_second: int = Field(
        100,
        ge=0,
        le=1_000_000,
        validation_alias="HERALD_GATEWAY_CLIENT_RATE_PER_SECOND",
        description="Each API key's default send rate (notifications a second, a SendBatch "
        "counting each item; 0: unlimited); a key may have its own (apikeys rate).",
        json_schema_extra=concern("security"),
    )
    client_rate_burst: int = Field(
        1000,
        ge=1,
        le=1_000_000,
        validation_alias="HERALD_GATEWAY_CLIENT_RATE_BURST",
        description="How many sends a key may make at once above its default rate (at least "
        "the largest batch, or such a batch is always refused).",
        json_schema_extra=concern("security"),
    )
    frequency_caps: Annotated[dict[MessageTypeName, str], NoDecode] = Field(
        default_factory=lambda: dict(DEFAULT_CAPS),
        validation_alias="HERALD_FREQUENCY_CAPS",
        description="Per message type, at most this many notifications per user per fixed "
        'window, JSON: {"marketing": "3/day"}; one over the cap is suppressed.',
        json_schema_extra=concern("delivery"),
    )
    rate_limit_timeout_seconds: float = Field(
        0.25,
        gt=0,
        le=5,
        validation_alias="HERALD_RATE_LIMIT_TIMEOUT_SECONDS",
        description="How long a rate limit check waits for Redis before the limit is "
        "skipped (it fails open: docs/scheduling.md).",
        json_schema_extra=concern("servers"),
    )
    # The operator console (console/, docs/console.md).
    console_session_seconds: int = Field(
        8 * 3600,
        ge=60,
        le=7 * 86400,
        validation_alias="HERALD_CONSOLE_SESSION_SECONDS",
        description="How long a console sign-in lasts; then the operator signs in again.",
        json_schema_extra=concern("security"),
    )
    console_secure_cookie: bool = Field(
        False,
        validation_alias="HERALD_CONSOLE_SECURE_COOKIE",
        description="Mark the console's cookies Secure even when requests reach the gateway "
        "as http (set it behind a proxy that terminates TLS); over https they always are.",
        json_schema_extra=concern("security"),
    )
    console_worker_metrics_urls: str = Field(
        "http://127.0.0.1:9103/metrics,http://127.0.0.1:9104/metrics,http://127.0.0.1:9105/metrics",
        validation_alias="HERALD_CONSOLE_WORKER_METRICS_URLS",
        description="The delivery workers' /metrics, comma-separated: the console's Providers "
        "page reads their circuit breakers there.",
        json_schema_extra=concern("servers"),
    )
    console_bulk_retry_max: int = Field(
        100,
        ge=1,
        le=1000,
        validation_alias="HERALD_CONSOLE_BULK_RETRY_MAX",
        description='The most failed notifications one "retry all that match" retries.',
        json_schema_extra=concern("delivery"),
    )
    console_inbox_size: int = Field(
        50,
        ge=1,
        le=500,
        validation_alias="HERALD_CONSOLE_INBOX_SIZE",
        description="How many of the sandbox's latest sends the console's inbox shows.",
        json_schema_extra=concern("performance"),
    )

    @property
    def worker_metrics_urls(self) -> tuple[str, ...]:
        """HERALD_CONSOLE_WORKER_METRICS_URLS as a list."""
        return tuple(u.strip() for u in self.console_worker_metrics_urls.split(",") if u.strip())

    @property
    def receipt_providers(self) -> frozenset[str]:
        """The providers whose receipts this gateway verifies."""
        configured = {
            "sendgrid": self.sendgrid_webhook_public_key,
            "mailgun": self.mailgun_webhook_signing_key,
            "twilio": self.twilio_webhook_auth_token,
            "sandbox": self.sandbox_receipts_secret,
        }
        return frozenset(name for name, secret in configured.items() if secret is not None)

    @field_validator("quiet_hours")
    @classmethod
    def _check_quiet_hours(cls, value: str) -> str:
        QuietWindow.parse(value)
        return value

    @field_validator("quiet_hours_types", mode="before")
    @classmethod
    def _split_types(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("frequency_caps", mode="before")
    @classmethod
    def _parse_caps(cls, value: object) -> object:
        if isinstance(value, str):
            value = json.loads(value) if value.strip() else {}
        caps = _CAPS.validate_python(value)
        return {kind: check_quota(quota) for kind, quota in caps.items()}

    @field_validator("route_policy", mode="before")
    @classmethod
    def _parse_policy(cls, value: object) -> object:
        """Accepts the JSON text of the environment variable (or a dict)."""
        if isinstance(value, str):
            value = json.loads(value)
        return _POLICY.validate_python(value)
