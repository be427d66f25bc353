"""deliveryd configuration: one process per channel, providers chosen by environment.

Every provider named in a chain must have its credentials, and a timeout the hop's lease
leaves room for, or the process stops at start-up with a one-line reason (`load_settings`).
With nothing configured every chain is the sandbox, so Herald runs out of the box.
"""

from __future__ import annotations

import json
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import NoDecode

from mesh.outbound import OutboundRefused, OutboundRule
from mesh.ratelimit import check_quota
from mesh.settings import Port, SharedSettings

EMAIL_PROVIDERS = ("sandbox", "sendgrid", "mailgun", "smtp")
SMS_PROVIDERS = ("sandbox", "twilio")
PUSH_PROVIDERS = ("sandbox", "fcm", "onesignal", "webpush")

# What each provider cannot run without: (field, environment variable).
REQUIRED: dict[str, tuple[tuple[str, str], ...]] = {
    "sendgrid": (("sendgrid_api_key", "HERALD_SENDGRID_API_KEY"),),
    "mailgun": (
        ("mailgun_api_key", "HERALD_MAILGUN_API_KEY"),
        ("mailgun_domain", "HERALD_MAILGUN_DOMAIN"),
    ),
    "smtp": (("smtp_host", "HERALD_SMTP_HOST"),),
    "twilio": (
        ("twilio_account_sid", "HERALD_TWILIO_ACCOUNT_SID"),
        ("twilio_auth_token", "HERALD_TWILIO_AUTH_TOKEN"),
        ("twilio_from", "HERALD_TWILIO_FROM"),
    ),
    "fcm": (("fcm_credentials_file", "HERALD_FCM_CREDENTIALS_FILE"),),
    "onesignal": (
        ("onesignal_app_id", "HERALD_ONESIGNAL_APP_ID"),
        ("onesignal_api_key", "HERALD_ONESIGNAL_API_KEY"),
    ),
    "webpush": (
        ("webpush_vapid_private_key", "HERALD_WEBPUSH_VAPID_PRIVATE_KEY"),
        ("webpush_subject", "HERALD_WEBPUSH_SUBJECT"),
    ),
}

# The share of the lease a hop's send may use; the rest is for the report (the pipeline's
# deadline). A provider whose timeout does not fit in it is never tried.
SEND_SHARE_OF_LEASE = 0.8
# What a hop spends before its first provider (the user look-up), on top of the timeout.
FIRST_PROVIDER_MARGIN = 0.25

Timeout = Annotated[float, Field(gt=0, le=120)]
ProviderList = Annotated[tuple[str, ...], NoDecode]


def _alias(name: str) -> Any:
    """An optional setting read from `name`."""
    return Field(None, validation_alias=name)


class DeliverydSettings(SharedSettings):
    email_grpc_port: Port = Field(50053, validation_alias="HERALD_DELIVERYD_EMAIL_GRPC_PORT")
    sms_grpc_port: Port = Field(50054, validation_alias="HERALD_DELIVERYD_SMS_GRPC_PORT")
    push_grpc_port: Port = Field(50055, validation_alias="HERALD_DELIVERYD_PUSH_GRPC_PORT")
    email_metrics_port: Port = Field(9103, validation_alias="HERALD_DELIVERYD_EMAIL_METRICS_PORT")
    sms_metrics_port: Port = Field(9104, validation_alias="HERALD_DELIVERYD_SMS_METRICS_PORT")
    push_metrics_port: Port = Field(9105, validation_alias="HERALD_DELIVERYD_PUSH_METRICS_PORT")
    prefetch: int = Field(
        256,
        ge=1,
        le=1000,
        validation_alias="HERALD_DELIVERYD_PREFETCH",
        description="Jobs a worker has in flight at once (RabbitMQ prefetch): the work waits on "
        "providers and peers, so throughput grows with it (make bench drain: 32 → ~500/s, "
        "256 → ~900/s).",
    )
    gateway_addr: str = Field("127.0.0.1:50050", validation_alias="HERALD_GATEWAY_ADDR")
    userd_addr: str = Field("127.0.0.1:50051", validation_alias="HERALD_USERD_ADDR")

    # The job protocol.
    lease_seconds: int = Field(60, ge=2, le=3600, validation_alias="HERALD_DELIVERYD_LEASE_SECONDS")
    rpc_timeout_seconds: float = Field(
        5.0, gt=0, le=60, validation_alias="HERALD_DELIVERYD_RPC_TIMEOUT_SECONDS"
    )
    report_retry_seconds: float = Field(
        20.0, ge=0, le=600, validation_alias="HERALD_DELIVERYD_REPORT_RETRY_SECONDS"
    )
    requeue_pause_seconds: float = Field(
        1.0, ge=0, le=60, validation_alias="HERALD_DELIVERYD_REQUEUE_PAUSE_SECONDS"
    )

    # Circuit breakers, one per provider.
    breaker_threshold: int = Field(
        5, ge=1, le=1000, validation_alias="HERALD_DELIVERYD_BREAKER_THRESHOLD"
    )
    breaker_cooldown_seconds: float = Field(
        30.0, gt=0, le=3600, validation_alias="HERALD_DELIVERYD_BREAKER_COOLDOWN_SECONDS"
    )

    # Admin alerts for critical notifications that failed.
    alert_webhook_allow_private: bool = Field(
        False,
        validation_alias="HERALD_ALERT_WEBHOOK_ALLOW_PRIVATE",
        description="Lets HERALD_ALERT_WEBHOOK_URL be any http(s) URL, private addresses "
        "included (otherwise https to a public host only).",
    )
    alert_webhook_url: str | None = _alias("HERALD_ALERT_WEBHOOK_URL")
    alert_email: str | None = _alias("HERALD_ALERT_EMAIL")
    alert_timeout_seconds: float = Field(5.0, gt=0, le=60, validation_alias="HERALD_ALERT_TIMEOUT")

    # Email.
    email_from: str = Field("Herald <no-reply@herald.local>", validation_alias="HERALD_EMAIL_FROM")
    sendgrid_api_key: SecretStr | None = _alias("HERALD_SENDGRID_API_KEY")
    sendgrid_base_url: str = Field(
        "https://api.sendgrid.com", validation_alias="HERALD_SENDGRID_BASE_URL"
    )
    sendgrid_timeout: Timeout = Field(10.0, validation_alias="HERALD_SENDGRID_TIMEOUT")
    mailgun_api_key: SecretStr | None = _alias("HERALD_MAILGUN_API_KEY")
    mailgun_domain: str | None = _alias("HERALD_MAILGUN_DOMAIN")
    mailgun_base_url: str = Field(
        "https://api.mailgun.net", validation_alias="HERALD_MAILGUN_BASE_URL"
    )
    mailgun_timeout: Timeout = Field(10.0, validation_alias="HERALD_MAILGUN_TIMEOUT")
    smtp_host: str | None = _alias("HERALD_SMTP_HOST")
    smtp_port: int = Field(587, ge=1, le=65535, validation_alias="HERALD_SMTP_PORT")
    smtp_username: str | None = _alias("HERALD_SMTP_USERNAME")
    smtp_password: SecretStr | None = _alias("HERALD_SMTP_PASSWORD")
    smtp_starttls: bool = Field(True, validation_alias="HERALD_SMTP_STARTTLS")
    smtp_timeout: Timeout = Field(10.0, validation_alias="HERALD_SMTP_TIMEOUT")

    # SMS.
    twilio_account_sid: str | None = _alias("HERALD_TWILIO_ACCOUNT_SID")
    twilio_auth_token: SecretStr | None = _alias("HERALD_TWILIO_AUTH_TOKEN")
    twilio_from: str | None = _alias("HERALD_TWILIO_FROM")
    twilio_base_url: str = Field(
        "https://api.twilio.com", validation_alias="HERALD_TWILIO_BASE_URL"
    )
    twilio_timeout: Timeout = Field(10.0, validation_alias="HERALD_TWILIO_TIMEOUT")

    # Delivery receipts.
    receipts_base_url: str | None = Field(
        None,
        validation_alias="HERALD_RECEIPTS_BASE_URL",
        description="The gateway's public base URL, as providers reach it (e.g. "
        "https://herald.example.com): when set, each Twilio message asks for status callbacks "
        "to <this>/webhooks/twilio, and the sandbox posts its receipts to "
        "<this>/webhooks/sandbox. Unset: no callbacks are asked for.",
    )
    sandbox_receipt_delay_seconds: float = Field(
        1.0,
        ge=0,
        le=60,
        validation_alias="HERALD_SANDBOX_RECEIPT_DELAY_SECONDS",
        description="How long after taking a message the sandbox sends each of its receipts "
        "(a real provider's callback comes later than its answer).",
    )

    # Push.
    fcm_project_id: str | None = _alias("HERALD_FCM_PROJECT_ID")
    fcm_credentials_file: str | None = _alias("HERALD_FCM_CREDENTIALS_FILE")
    fcm_base_url: str = Field("https://fcm.googleapis.com", validation_alias="HERALD_FCM_BASE_URL")
    fcm_timeout: Timeout = Field(10.0, validation_alias="HERALD_FCM_TIMEOUT")
    onesignal_app_id: str | None = _alias("HERALD_ONESIGNAL_APP_ID")
    onesignal_api_key: SecretStr | None = _alias("HERALD_ONESIGNAL_API_KEY")
    onesignal_base_url: str = Field(
        "https://api.onesignal.com", validation_alias="HERALD_ONESIGNAL_BASE_URL"
    )
    onesignal_timeout: Timeout = Field(10.0, validation_alias="HERALD_ONESIGNAL_TIMEOUT")
    webpush_vapid_private_key: SecretStr | None = _alias("HERALD_WEBPUSH_VAPID_PRIVATE_KEY")
    webpush_subject: str | None = _alias("HERALD_WEBPUSH_SUBJECT")
    webpush_ttl_seconds: int = Field(86400, ge=0, validation_alias="HERALD_WEBPUSH_TTL")
    webpush_timeout: Timeout = Field(10.0, validation_alias="HERALD_WEBPUSH_TIMEOUT")

    # The chains, last so that their validators see the credentials above.
    email_providers: ProviderList = Field(("sandbox",), validation_alias="HERALD_EMAIL_PROVIDERS")
    sms_providers: ProviderList = Field(("sandbox",), validation_alias="HERALD_SMS_PROVIDERS")
    push_providers: ProviderList = Field(("sandbox",), validation_alias="HERALD_PUSH_PROVIDERS")

    # Pacing (docs/scheduling.md).
    provider_rates: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict,
        validation_alias="HERALD_PROVIDER_RATES",
        description="Providers' send rates shared by every worker through Redis, JSON: "
        '{"twilio": "1/s", "sendgrid": "600/min burst 100"}; a provider left out is not paced.',
    )
    provider_throttle_wait_seconds: float = Field(
        30.0,
        ge=0,
        le=600,
        validation_alias="HERALD_PROVIDER_THROTTLE_WAIT_SECONDS",
        description="How long one send may wait for its provider (pacing, and a 429's "
        "Retry-After, which counts as no failure) before it is a transient failure.",
    )
    rate_limit_timeout_seconds: float = Field(
        0.25,
        gt=0,
        le=5,
        validation_alias="HERALD_RATE_LIMIT_TIMEOUT_SECONDS",
        description="How long a pacing check waits for Redis before the worker paces alone.",
    )

    @field_validator("provider_rates", mode="before")
    @classmethod
    def _parse_rates(cls, value: object) -> object:
        if isinstance(value, str):
            value = json.loads(value) if value.strip() else {}
        if not isinstance(value, dict):
            raise ValueError('a JSON object such as {"twilio": "1/s"}')
        known = set(EMAIL_PROVIDERS + SMS_PROVIDERS + PUSH_PROVIDERS)
        for name, quota in value.items():
            if name not in known:
                raise ValueError(f"unknown provider {name!r}")
            check_quota(str(quota))
        return {str(k): str(v) for k, v in value.items()}

    @field_validator("alert_webhook_url")
    @classmethod
    def _public_webhook(cls, value: str | None, info: ValidationInfo) -> str | None:
        if not value:  # unset, or empty as in .env.example: no webhook
            return value
        rule = OutboundRule(
            allow_loopback=bool(info.data.get("outbound_allow_loopback")),
            allow_private=bool(info.data.get("alert_webhook_allow_private")),
        )
        try:
            rule.check_url(value)
        except OutboundRefused as exc:
            raise ValueError(
                f"{exc}: alerts go to https URLs of public hosts only"
                " (HERALD_ALERT_WEBHOOK_ALLOW_PRIVATE=true allows a private one)"
            ) from None
        return value

    @field_validator("receipts_base_url")
    @classmethod
    def _base_url(cls, value: str | None) -> str | None:
        if not value:  # unset, or empty as in .env.example: no callbacks
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http(s) URL with a host")
        if parts.query or parts.fragment:
            raise ValueError("must have no query or fragment: Herald appends its own")
        return value.rstrip("/")

    @field_validator("email_providers", "sms_providers", "push_providers", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(name.strip().lower() for name in value.split(",") if name.strip())
        return value

    @field_validator("email_providers", "sms_providers", "push_providers")
    @classmethod
    def _check_chain(cls, value: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        known = {
            "email_providers": EMAIL_PROVIDERS,
            "sms_providers": SMS_PROVIDERS,
            "push_providers": PUSH_PROVIDERS,
        }[str(info.field_name)]
        if not value:
            raise ValueError("names no provider")
        if len(set(value)) != len(value):
            raise ValueError("names a provider twice")
        for name in value:
            if name not in known:
                raise ValueError(f"unknown provider {name!r} (known: {', '.join(known)})")
            missing = [env for field, env in REQUIRED.get(name, ()) if not info.data.get(field)]
            if missing:
                raise ValueError(f"{name} needs {', '.join(missing)}")
        _check_timeouts(value, info.data)
        return value

    @model_validator(mode="after")
    def _sandbox_receipts_go_somewhere(self) -> DeliverydSettings:
        if self.sandbox_receipts_secret is not None and not self.receipts_base_url:
            raise ValueError(
                "HERALD_SANDBOX_RECEIPTS_SECRET needs HERALD_RECEIPTS_BASE_URL "
                "(where the sandbox posts its receipts)"
            )
        return self

    def grpc_port(self, channel: str) -> int:
        """The health/reflection port of the worker for `channel`."""
        return int(getattr(self, f"{channel}_grpc_port"))

    def metrics_port(self, channel: str) -> int:
        return int(getattr(self, f"{channel}_metrics_port"))

    def providers(self, channel: str) -> tuple[str, ...]:
        """The ordered provider chain of `channel`."""
        return tuple(getattr(self, f"{channel}_providers"))


def _check_timeouts(chain: tuple[str, ...], data: dict[str, Any]) -> None:
    """Refuses a provider whose timeout leaves it no time even as the chain's first.

    The chain skips a provider it could not wait for before the hop's deadline ("no time
    left"), so such a provider would silently never be tried. A field validator of the
    chain rather than a model validator: the error then has a variable to name, which
    `load_settings` prints.
    """
    lease = data.get("lease_seconds")
    if lease is None:  # the lease itself is invalid, and reported as such
        return
    budget = lease * SEND_SHARE_OF_LEASE
    for name in chain:
        timeout = data.get(f"{name}_timeout")
        if timeout is not None and timeout + FIRST_PROVIDER_MARGIN > budget:
            raise ValueError(
                f"{name}'s HERALD_{name.upper()}_TIMEOUT ({timeout:g} s, plus"
                f" {FIRST_PROVIDER_MARGIN:g} s) does not fit in the {budget:g} s a send may use"
                f" (HERALD_DELIVERYD_LEASE_SECONDS={lease} x {SEND_SHARE_OF_LEASE:g}):"
                f" {name} would never be tried; lower the timeout or raise the lease"
            )
