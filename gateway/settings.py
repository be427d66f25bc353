"""gateway configuration: the REST edge and its gRPC services."""

from __future__ import annotations

import json
from typing import Annotated

from pydantic import Field, SecretStr, TypeAdapter, field_validator
from pydantic_settings import NoDecode

from mesh.rules import MAX_BATCH_ITEMS, ChannelName, MessageTypeName
from mesh.settings import Port, SharedSettings

# The channel order per message type: the requested channel goes first, then these
# (skipping the requested one) as fallbacks. The seed's flow is email → SMS.
DEFAULT_ROUTE_POLICY: dict[MessageTypeName, list[ChannelName]] = {
    "transactional": ["email", "sms"],
    "alert": ["email", "sms", "push"],
    "marketing": [],
}
_POLICY = TypeAdapter(dict[MessageTypeName, list[ChannelName]])


class GatewaySettings(SharedSettings):
    http_port: Port = Field(8000, validation_alias="HERALD_GATEWAY_HTTP_PORT")
    grpc_port: Port = Field(50050, validation_alias="HERALD_GATEWAY_GRPC_PORT")
    metrics_port: Port = Field(
        0,
        validation_alias="HERALD_GATEWAY_METRICS_PORT",
        description="This process's own Prometheus /metrics (0: none; /metrics on the HTTP "
        "port answers either way). Give each of several gateways sharing the HTTP port its "
        "own, to scrape each process.",
    )
    database: str = Field("herald_notifications", validation_alias="HERALD_GATEWAY_DATABASE")
    userd_addr: str = Field("127.0.0.1:50051", validation_alias="HERALD_USERD_ADDR")
    templated_addr: str = Field("127.0.0.1:50052", validation_alias="HERALD_TEMPLATED_ADDR")
    max_body_bytes: int = Field(
        256 * 1024, ge=1024, le=16 * 1024 * 1024, validation_alias="HERALD_GATEWAY_MAX_BODY_BYTES"
    )
    route_policy: Annotated[dict[MessageTypeName, list[ChannelName]], NoDecode] = Field(
        default_factory=lambda: dict(DEFAULT_ROUTE_POLICY),
        validation_alias="HERALD_ROUTE_POLICY",
        description='Fallback channels per message type, JSON: {"transactional": ["email", '
        '"sms"], ...}. Types left out get no fallback.',
    )
    delivery_deadline_seconds: int = Field(
        3600,
        ge=1,
        le=7 * 86400,
        validation_alias="HERALD_DELIVERY_DEADLINE_SECONDS",
        description="After this long no retry is scheduled on a channel (DeliveryJob.deadline).",
    )
    # Retries of a hop whose attempt failed transiently: decided by the gateway
    # (gateway/lifecycle.py), sent through the channel's delay queues.
    email_max_attempts: int = Field(5, ge=1, le=50, validation_alias="HERALD_EMAIL_MAX_ATTEMPTS")
    sms_max_attempts: int = Field(5, ge=1, le=50, validation_alias="HERALD_SMS_MAX_ATTEMPTS")
    push_max_attempts: int = Field(5, ge=1, le=50, validation_alias="HERALD_PUSH_MAX_ATTEMPTS")
    backoff_base_seconds: float = Field(
        2.0,
        gt=0,
        le=3600,
        validation_alias="HERALD_RETRY_BACKOFF_BASE_SECONDS",
        description="The first retry's delay; each next one doubles, plus up to half this "
        "in jitter.",
    )
    backoff_max_seconds: float = Field(
        300.0, gt=0, le=86400, validation_alias="HERALD_RETRY_BACKOFF_MAX_SECONDS"
    )
    outbox_interval_seconds: float = Field(
        1.0, gt=0, le=60, validation_alias="HERALD_OUTBOX_INTERVAL_SECONDS"
    )
    outbox_grace_seconds: float = Field(
        3.0,
        ge=0,
        le=300,
        validation_alias="HERALD_OUTBOX_GRACE_SECONDS",
        description="How long the relay leaves a fresh hop to the inline publish.",
    )
    outbox_batch_size: int = Field(200, ge=1, le=5000, validation_alias="HERALD_OUTBOX_BATCH_SIZE")
    publish_timeout_seconds: float = Field(
        5.0, gt=0, le=60, validation_alias="HERALD_PUBLISH_TIMEOUT_SECONDS"
    )
    peer_timeout_seconds: float = Field(
        5.0,
        gt=0,
        le=60,
        validation_alias="HERALD_PEER_TIMEOUT_SECONDS",
        description="Deadline of each call to userd and templated.",
    )
    max_batch_items: int = Field(
        MAX_BATCH_ITEMS, ge=1, le=MAX_BATCH_ITEMS, validation_alias="HERALD_MAX_BATCH_ITEMS"
    )
    max_variables_bytes: int = Field(
        32 * 1024, ge=256, le=1024 * 1024, validation_alias="HERALD_MAX_VARIABLES_BYTES"
    )
    max_metadata_bytes: int = Field(
        8 * 1024, ge=256, le=1024 * 1024, validation_alias="HERALD_MAX_METADATA_BYTES"
    )
    db_pool_size: int = Field(20, ge=2, le=200, validation_alias="HERALD_GATEWAY_DB_POOL_SIZE")
    # The REST edge.
    rpc_timeout_seconds: float = Field(
        5.0,
        gt=0,
        le=60,
        validation_alias="HERALD_GATEWAY_RPC_TIMEOUT_SECONDS",
        description="Deadline of each gRPC call the REST edge makes (to userd and templated).",
    )
    api_key_cache_seconds: float = Field(
        10.0,
        ge=0,
        le=300,
        validation_alias="HERALD_GATEWAY_API_KEY_CACHE_SECONDS",
        description="How long a verified API key is kept without reading the database "
        "again. A revocation reaches every gateway at once through PostgreSQL's NOTIFY; "
        "this is the bound while a gateway's listening connection is down.",
    )

    sendgrid_webhook_public_key: SecretStr | None = Field(
        None,
        validation_alias="HERALD_SENDGRID_WEBHOOK_PUBLIC_KEY",
        description="The verification key of SendGrid's signed Event Webhook, as SendGrid's "
        "settings page shows it (base64). Set: SendGrid's receipts are taken at "
        "/webhooks/sendgrid and an email SendGrid takes is `sent` until its receipt.",
    )
    mailgun_webhook_signing_key: SecretStr | None = Field(
        None,
        validation_alias="HERALD_MAILGUN_WEBHOOK_SIGNING_KEY",
        description="Mailgun's webhook signing key. Set: Mailgun's receipts are taken at "
        "/webhooks/mailgun.",
    )
    twilio_webhook_auth_token: SecretStr | None = Field(
        None,
        validation_alias="HERALD_TWILIO_WEBHOOK_AUTH_TOKEN",
        description="The Twilio account's auth token, which signs its status callbacks. Set "
        "(with HERALD_RECEIPTS_BASE_URL on the SMS worker): Twilio's receipts are taken at "
        "/webhooks/twilio.",
    )
    receipts_public_url: str = Field(
        "",
        validation_alias="HERALD_RECEIPTS_PUBLIC_URL",
        description="This edge's URL as providers call it (scheme and host, e.g. "
        "https://herald.example.com), when a proxy in front changes it: Twilio signs the "
        "URL it called. Empty: the URL of the request as received.",
    )
    receipt_tolerance_seconds: float = Field(
        300.0,
        gt=0,
        le=3600,
        validation_alias="HERALD_RECEIPT_TOLERANCE_SECONDS",
        description="How far a webhook's signed timestamp may be from now: older ones are "
        "refused as replays.",
    )
    receipt_window_seconds: float = Field(
        259200.0,
        gt=0,
        validation_alias="HERALD_RECEIPT_WINDOW_SECONDS",
        description="How long a `sent` notification waits for its receipt; then it is taken "
        "as delivered (reason: no receipt within the window).",
    )

    callback_timeout_seconds: float = Field(
        5.0,
        gt=0,
        le=60,
        validation_alias="HERALD_CALLBACK_TIMEOUT_SECONDS",
        description="How long a status callback's receiver has to answer.",
    )
    callback_retry_seconds: float = Field(
        86400.0,
        gt=0,
        validation_alias="HERALD_CALLBACK_RETRY_SECONDS",
        description="How long a status callback is retried (5xx, timeouts, refused "
        "connections) before it is marked failed.",
    )
    callback_backoff_base_seconds: float = Field(
        1.0,
        gt=0,
        le=3600,
        validation_alias="HERALD_CALLBACK_BACKOFF_BASE_SECONDS",
        description="The first retry delay of a status callback, and of a failing "
        "endpoint; each further failure doubles it.",
    )
    callback_backoff_max_seconds: float = Field(
        3600.0,
        gt=0,
        validation_alias="HERALD_CALLBACK_BACKOFF_MAX_SECONDS",
        description="The longest delay between two tries of a callback or an endpoint.",
    )
    callback_interval_seconds: float = Field(
        0.25,
        gt=0,
        le=60,
        validation_alias="HERALD_CALLBACK_INTERVAL_SECONDS",
        description="How often an idle dispatcher looks for status callbacks due.",
    )
    callback_concurrency: int = Field(
        32,
        ge=1,
        le=1000,
        validation_alias="HERALD_CALLBACK_CONCURRENCY",
        description="Status callbacks one gateway posts at once.",
    )
    callback_per_endpoint: int = Field(
        4,
        ge=1,
        le=100,
        validation_alias="HERALD_CALLBACK_PER_ENDPOINT",
        description="Of those, at most this many to one endpoint.",
    )
    callback_max_endpoints: int = Field(
        10,
        ge=1,
        le=1000,
        validation_alias="HERALD_CALLBACK_MAX_ENDPOINTS",
        description="Callback endpoints one client may register.",
    )
    watch_check_seconds: float = Field(
        5.0,
        gt=0,
        le=300,
        validation_alias="HERALD_WATCH_CHECK_SECONDS",
        description="How often a gateway reads the statuses its WatchNotification streams "
        "watch, besides PostgreSQL's NOTIFY waking them at once: the longest a change waits "
        "should a NOTIFY be lost.",
    )
    # The operator console (console/, docs/console.md).
    console_session_seconds: int = Field(
        8 * 3600,
        ge=60,
        le=7 * 86400,
        validation_alias="HERALD_CONSOLE_SESSION_SECONDS",
        description="How long a console sign-in lasts; then the operator signs in again.",
    )
    console_secure_cookie: bool = Field(
        False,
        validation_alias="HERALD_CONSOLE_SECURE_COOKIE",
        description="Mark the console's cookies Secure even when requests reach the gateway "
        "as http (set it behind a proxy that terminates TLS); over https they always are.",
    )
    console_worker_metrics_urls: str = Field(
        "http://127.0.0.1:9103/metrics,http://127.0.0.1:9104/metrics,http://127.0.0.1:9105/metrics",
        validation_alias="HERALD_CONSOLE_WORKER_METRICS_URLS",
        description="The delivery workers' /metrics, comma-separated: the console's Providers "
        "page reads their circuit breakers there.",
    )
    console_bulk_retry_max: int = Field(
        100,
        ge=1,
        le=1000,
        validation_alias="HERALD_CONSOLE_BULK_RETRY_MAX",
        description='The most failed notifications one "retry all that match" retries.',
    )
    console_inbox_size: int = Field(
        50,
        ge=1,
        le=500,
        validation_alias="HERALD_CONSOLE_INBOX_SIZE",
        description="How many of the sandbox's latest sends the console's inbox shows.",
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

    @field_validator("route_policy", mode="before")
    @classmethod
    def _parse_policy(cls, value: object) -> object:
        """Accepts the JSON text of the environment variable (or a dict)."""
        if isinstance(value, str):
            value = json.loads(value)
        return _POLICY.validate_python(value)
