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
from mesh.settings import Concern, Port, SharedSettings, concern

EMAIL_PROVIDERS = ("sandbox", "sendgrid", "mailgun", "smtp", "gmail")
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
    "gmail": (
        ("gmail_account", "HERALD_GMAIL_ACCOUNT"),
        ("gmail_app_password", "HERALD_GMAIL_APP_PASSWORD"),
    ),
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

# The `gmail` preset: Gmail's SMTP submission server, STARTTLS then AUTH with an app password.
GMAIL_HOST = "smtp.gmail.com"
GMAIL_PORT = 587

Timeout = Annotated[float, Field(gt=0, le=120)]
ProviderList = Annotated[tuple[str, ...], NoDecode]


def _alias(name: str, description: str, about: Concern = "providers") -> Any:
    """An optional setting read from `name`."""
    return Field(
        None, validation_alias=name, description=description, json_schema_extra=concern(about)
    )


class DeliverydSettings(SharedSettings):
    email_grpc_port: Port = Field(
        50053,
        validation_alias="HERALD_DELIVERYD_EMAIL_GRPC_PORT",
        description="Port of the email worker's gRPC health and reflection.",
        json_schema_extra=concern("servers"),
    )
    sms_grpc_port: Port = Field(
        50054,
        validation_alias="HERALD_DELIVERYD_SMS_GRPC_PORT",
        description="Port of the SMS worker's gRPC health and reflection.",
        json_schema_extra=concern("servers"),
    )
    push_grpc_port: Port = Field(
        50055,
        validation_alias="HERALD_DELIVERYD_PUSH_GRPC_PORT",
        description="Port of the push worker's gRPC health and reflection.",
        json_schema_extra=concern("servers"),
    )
    email_metrics_port: Port = Field(
        9103,
        validation_alias="HERALD_DELIVERYD_EMAIL_METRICS_PORT",
        description="Port of the email worker's Prometheus /metrics (0: none).",
        json_schema_extra=concern("servers"),
    )
    sms_metrics_port: Port = Field(
        9104,
        validation_alias="HERALD_DELIVERYD_SMS_METRICS_PORT",
        description="Port of the SMS worker's Prometheus /metrics (0: none).",
        json_schema_extra=concern("servers"),
    )
    push_metrics_port: Port = Field(
        9105,
        validation_alias="HERALD_DELIVERYD_PUSH_METRICS_PORT",
        description="Port of the push worker's Prometheus /metrics (0: none).",
        json_schema_extra=concern("servers"),
    )
    prefetch: int = Field(
        256,
        ge=1,
        le=1000,
        validation_alias="HERALD_DELIVERYD_PREFETCH",
        description="Jobs a worker has in flight at once (RabbitMQ prefetch): the work waits on "
        "providers and peers, so throughput grows with it (make bench drain: 32 → ~500/s, "
        "256 → ~900/s).",
        json_schema_extra=concern("performance"),
    )
    batch_calls: int = Field(
        2,
        ge=1,
        le=64,
        validation_alias="HERALD_DELIVERYD_BATCH_CALLS",
        description="Batch calls of one method (BatchClaim, BatchReportStatus, "
        "BatchGetUsers) a worker has in flight; the jobs' calls made meanwhile wait and go "
        "together in the next (effect not measured apart).",
        json_schema_extra=concern("performance"),
    )
    gateway_addr: str = Field(
        "127.0.0.1:50050",
        validation_alias="HERALD_GATEWAY_ADDR",
        description="host:port of the gateway's gRPC server (claims and status reports).",
        json_schema_extra=concern("servers"),
    )
    userd_addr: str = Field(
        "127.0.0.1:50051",
        validation_alias="HERALD_USERD_ADDR",
        description="host:port of userd's gRPC server.",
        json_schema_extra=concern("servers"),
    )

    # The job protocol.
    lease_seconds: int = Field(
        60,
        ge=2,
        le=3600,
        validation_alias="HERALD_DELIVERYD_LEASE_SECONDS",
        description="How long a worker's claim on a job lasts: a crashed worker's job is "
        "taken over after it; a send may use 80% of it, so every provider's timeout must "
        "fit (checked at start-up).",
        json_schema_extra=concern("delivery"),
    )
    rpc_timeout_seconds: float = Field(
        5.0,
        gt=0,
        le=60,
        validation_alias="HERALD_DELIVERYD_RPC_TIMEOUT_SECONDS",
        description="Deadline in seconds of each call a worker makes to the gateway (claim, "
        "report) and to userd.",
        json_schema_extra=concern("delivery"),
    )
    report_retry_seconds: float = Field(
        20.0,
        ge=0,
        le=600,
        validation_alias="HERALD_DELIVERYD_REPORT_RETRY_SECONDS",
        description="How long a worker retries a status report while the gateway is "
        "unreachable (with backoff); then the job is requeued and its redelivery reports "
        "again without sending again.",
        json_schema_extra=concern("delivery"),
    )
    requeue_pause_seconds: float = Field(
        1.0,
        ge=0,
        le=60,
        validation_alias="HERALD_DELIVERYD_REQUEUE_PAUSE_SECONDS",
        description="Pause before a job that could not be handled (the gateway or userd "
        "away, an unexpected error) goes back to its queue, so a fault is not retried in a "
        "tight loop.",
        json_schema_extra=concern("delivery"),
    )

    # Circuit breakers, one per provider.
    breaker_threshold: int = Field(
        5,
        ge=1,
        le=1000,
        validation_alias="HERALD_DELIVERYD_BREAKER_THRESHOLD",
        description="Transient failures in a row that open a provider's circuit: the chain "
        "then skips it for HERALD_DELIVERYD_BREAKER_COOLDOWN_SECONDS.",
        json_schema_extra=concern("delivery"),
    )
    breaker_cooldown_seconds: float = Field(
        30.0,
        gt=0,
        le=3600,
        validation_alias="HERALD_DELIVERYD_BREAKER_COOLDOWN_SECONDS",
        description="How long an open circuit skips its provider before one trial send "
        "(half-open) decides whether it closes.",
        json_schema_extra=concern("delivery"),
    )

    # Admin alerts for critical notifications that failed.
    alert_webhook_allow_private: bool = Field(
        False,
        validation_alias="HERALD_ALERT_WEBHOOK_ALLOW_PRIVATE",
        description="Lets HERALD_ALERT_WEBHOOK_URL be any http(s) URL, private addresses "
        "included (otherwise https to a public host only).",
        json_schema_extra=concern("security"),
    )
    alert_webhook_url: str | None = _alias(
        "HERALD_ALERT_WEBHOOK_URL",
        "Where an admin alert is POSTed (JSON) when a critical notification fails for good; "
        "unset: no webhook (the alert is still logged).",
        "delivery",
    )
    alert_email: str | None = _alias(
        "HERALD_ALERT_EMAIL",
        "Address an admin alert is emailed to, through the email chain; unset: no email.",
        "delivery",
    )
    alert_timeout_seconds: float = Field(
        5.0,
        gt=0,
        le=60,
        validation_alias="HERALD_ALERT_TIMEOUT",
        description="Deadline in seconds of the alert webhook's POST; a POST that fails is "
        "logged and counted (herald_admin_alerts_total), not retried.",
        json_schema_extra=concern("delivery"),
    )

    # Email.
    email_from: str = Field(
        "Herald <no-reply@herald.local>",
        validation_alias="HERALD_EMAIL_FROM",
        description="From of every email, as `Name <address>`; use a sender your providers "
        "accept (a verified SendGrid sender, an address of HERALD_MAILGUN_DOMAIN).",
        json_schema_extra=concern("providers"),
    )
    sendgrid_api_key: SecretStr | None = _alias(
        "HERALD_SENDGRID_API_KEY", "SendGrid API key (Mail Send permission); needed by `sendgrid`."
    )
    sendgrid_base_url: str = Field(
        "https://api.sendgrid.com",
        validation_alias="HERALD_SENDGRID_BASE_URL",
        description="SendGrid's API root (tests point it at a fake; EU accounts: "
        "https://api.eu.sendgrid.com).",
        json_schema_extra=concern("providers"),
    )
    sendgrid_timeout: Timeout = Field(
        10.0,
        validation_alias="HERALD_SENDGRID_TIMEOUT",
        description="Seconds SendGrid has to answer one send before the chain moves on.",
        json_schema_extra=concern("providers"),
    )
    mailgun_api_key: SecretStr | None = _alias(
        "HERALD_MAILGUN_API_KEY", "Mailgun API key; needed by `mailgun`."
    )
    mailgun_domain: str | None = _alias(
        "HERALD_MAILGUN_DOMAIN",
        "The Mailgun sending domain (e.g. mg.example.com); needed by `mailgun`.",
    )
    mailgun_base_url: str = Field(
        "https://api.mailgun.net",
        validation_alias="HERALD_MAILGUN_BASE_URL",
        description="Mailgun's API root (EU domains: https://api.eu.mailgun.net).",
        json_schema_extra=concern("providers"),
    )
    mailgun_timeout: Timeout = Field(
        10.0,
        validation_alias="HERALD_MAILGUN_TIMEOUT",
        description="Seconds Mailgun has to answer one send before the chain moves on.",
        json_schema_extra=concern("providers"),
    )
    smtp_host: str | None = _alias(
        "HERALD_SMTP_HOST", "The SMTP server's host name; needed by `smtp`."
    )
    smtp_port: int = Field(
        587,
        ge=1,
        le=65535,
        validation_alias="HERALD_SMTP_PORT",
        description="The SMTP server's port (587: submission with STARTTLS).",
        json_schema_extra=concern("providers"),
    )
    smtp_username: str | None = _alias(
        "HERALD_SMTP_USERNAME", "SMTP AUTH user name; unset: no authentication."
    )
    smtp_password: SecretStr | None = _alias(
        "HERALD_SMTP_PASSWORD", "SMTP AUTH password, with HERALD_SMTP_USERNAME."
    )
    smtp_starttls: bool = Field(
        True,
        validation_alias="HERALD_SMTP_STARTTLS",
        description="Upgrade the SMTP connection with STARTTLS (certificate verified) "
        "before authenticating; false only for a relay on a trusted network.",
        json_schema_extra=concern("providers"),
    )
    smtp_timeout: Timeout = Field(
        10.0,
        validation_alias="HERALD_SMTP_TIMEOUT",
        description="Seconds the SMTP exchange of one message may take before the chain moves on.",
        json_schema_extra=concern("providers"),
    )
    gmail_account: str | None = _alias(
        "HERALD_GMAIL_ACCOUNT",
        "The Gmail or Google Workspace address `gmail` sends as (SMTP with STARTTLS, "
        "smtp.gmail.com:587); needed by `gmail`, and the From unless HERALD_EMAIL_FROM is set.",
    )
    gmail_app_password: SecretStr | None = _alias(
        "HERALD_GMAIL_APP_PASSWORD",
        "An app password of that account (Google Account → Security → App passwords; 2-Step "
        "Verification on), spaces or not; needed by `gmail`.",
    )
    gmail_host: str = Field(
        GMAIL_HOST,
        validation_alias="HERALD_GMAIL_HOST",
        description="Gmail's SMTP host (tests point it at a local server).",
        json_schema_extra=concern("providers"),
    )
    gmail_port: int = Field(
        GMAIL_PORT,
        ge=1,
        le=65535,
        validation_alias="HERALD_GMAIL_PORT",
        description="Gmail's SMTP submission port (STARTTLS).",
        json_schema_extra=concern("providers"),
    )
    gmail_timeout: Timeout = Field(
        10.0,
        validation_alias="HERALD_GMAIL_TIMEOUT",
        description="Seconds Gmail's SMTP exchange of one message may take before the chain "
        "moves on.",
        json_schema_extra=concern("providers"),
    )

    # SMS.
    twilio_account_sid: str | None = _alias(
        "HERALD_TWILIO_ACCOUNT_SID", "Twilio account SID (AC...); needed by `twilio`."
    )
    twilio_auth_token: SecretStr | None = _alias(
        "HERALD_TWILIO_AUTH_TOKEN", "Twilio auth token of that account; needed by `twilio`."
    )
    twilio_from: str | None = _alias(
        "HERALD_TWILIO_FROM",
        "The sender: a number of the Twilio account, in E.164 (+15550001111); needed by `twilio`.",
    )
    twilio_base_url: str = Field(
        "https://api.twilio.com",
        validation_alias="HERALD_TWILIO_BASE_URL",
        description="Twilio's API root (tests point it at a fake).",
        json_schema_extra=concern("providers"),
    )
    twilio_timeout: Timeout = Field(
        10.0,
        validation_alias="HERALD_TWILIO_TIMEOUT",
        description="Seconds Twilio has to answer one send before the chain moves on.",
        json_schema_extra=concern("providers"),
    )

    # Delivery receipts.
    receipts_base_url: str | None = Field(
        None,
        validation_alias="HERALD_RECEIPTS_BASE_URL",
        description="The gateway's public base URL, as providers reach it (e.g. "
        "https://herald.example.com): when set, each Twilio message asks for status callbacks "
        "to <this>/webhooks/twilio, and the sandbox posts its receipts to "
        "<this>/webhooks/sandbox. Unset: no callbacks are asked for.",
        json_schema_extra=concern("providers"),
    )
    sandbox_receipt_delay_seconds: float = Field(
        1.0,
        ge=0,
        le=60,
        validation_alias="HERALD_SANDBOX_RECEIPT_DELAY_SECONDS",
        description="How long after taking a message the sandbox sends each of its receipts "
        "(a real provider's callback comes later than its answer).",
        json_schema_extra=concern("providers"),
    )

    # Push.
    fcm_project_id: str | None = _alias(
        "HERALD_FCM_PROJECT_ID",
        "The Firebase project id; unset: the one in HERALD_FCM_CREDENTIALS_FILE.",
    )
    fcm_credentials_file: str | None = _alias(
        "HERALD_FCM_CREDENTIALS_FILE",
        "Path of the Firebase service account's JSON key file; needed by `fcm`.",
    )
    fcm_base_url: str = Field(
        "https://fcm.googleapis.com",
        validation_alias="HERALD_FCM_BASE_URL",
        description="FCM's API root (tests point it at a fake).",
        json_schema_extra=concern("providers"),
    )
    fcm_timeout: Timeout = Field(
        10.0,
        validation_alias="HERALD_FCM_TIMEOUT",
        description="Seconds FCM has to answer one send before the chain moves on.",
        json_schema_extra=concern("providers"),
    )
    onesignal_app_id: str | None = _alias(
        "HERALD_ONESIGNAL_APP_ID", "The OneSignal app id; needed by `onesignal`."
    )
    onesignal_api_key: SecretStr | None = _alias(
        "HERALD_ONESIGNAL_API_KEY", "The OneSignal app's REST API key; needed by `onesignal`."
    )
    onesignal_base_url: str = Field(
        "https://api.onesignal.com",
        validation_alias="HERALD_ONESIGNAL_BASE_URL",
        description="OneSignal's API root (tests point it at a fake).",
        json_schema_extra=concern("providers"),
    )
    onesignal_timeout: Timeout = Field(
        10.0,
        validation_alias="HERALD_ONESIGNAL_TIMEOUT",
        description="Seconds OneSignal has to answer one send before the chain moves on.",
        json_schema_extra=concern("providers"),
    )
    webpush_vapid_private_key: SecretStr | None = _alias(
        "HERALD_WEBPUSH_VAPID_PRIVATE_KEY",
        "The VAPID private key that signs Web Push requests (the raw P-256 key, base64url); "
        "needed by `webpush`.",
    )
    webpush_subject: str | None = _alias(
        "HERALD_WEBPUSH_SUBJECT",
        "The VAPID subject push services may contact (mailto:ops@example.com or an https "
        "URL); needed by `webpush`.",
    )
    webpush_ttl_seconds: int = Field(
        86400,
        ge=0,
        validation_alias="HERALD_WEBPUSH_TTL",
        description="How long a push service keeps a Web Push message for an offline "
        "browser, in seconds (0: deliver now or drop).",
        json_schema_extra=concern("providers"),
    )
    webpush_timeout: Timeout = Field(
        10.0,
        validation_alias="HERALD_WEBPUSH_TIMEOUT",
        description="Seconds a push service has to answer one send before the chain moves on.",
        json_schema_extra=concern("providers"),
    )

    # The chains, last so that their validators see the credentials above.
    email_providers: ProviderList = Field(
        ("sandbox",),
        validation_alias="HERALD_EMAIL_PROVIDERS",
        description="The email chain, comma-separated, tried in order: sandbox, sendgrid, "
        "mailgun, smtp, gmail.",
        json_schema_extra=concern("providers"),
    )
    sms_providers: ProviderList = Field(
        ("sandbox",),
        validation_alias="HERALD_SMS_PROVIDERS",
        description="The SMS chain, comma-separated, tried in order: sandbox, twilio.",
        json_schema_extra=concern("providers"),
    )
    push_providers: ProviderList = Field(
        ("sandbox",),
        validation_alias="HERALD_PUSH_PROVIDERS",
        description="The push chain, comma-separated, tried in order: sandbox, fcm, "
        "onesignal, webpush (each device goes to the provider of its platform).",
        json_schema_extra=concern("providers"),
    )

    # Pacing (docs/scheduling.md).
    provider_rates: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict,
        validation_alias="HERALD_PROVIDER_RATES",
        description="Providers' send rates shared by every worker through Redis, JSON: "
        '{"twilio": "1/s", "sendgrid": "600/min burst 100"}; a provider left out is not paced.',
        json_schema_extra=concern("providers"),
    )
    provider_throttle_wait_seconds: float = Field(
        30.0,
        ge=0,
        le=600,
        validation_alias="HERALD_PROVIDER_THROTTLE_WAIT_SECONDS",
        description="How long one send may wait for its provider (pacing, and a 429's "
        "Retry-After, which counts as no failure) before it is a transient failure.",
        json_schema_extra=concern("providers"),
    )
    rate_limit_timeout_seconds: float = Field(
        0.25,
        gt=0,
        le=5,
        validation_alias="HERALD_RATE_LIMIT_TIMEOUT_SECONDS",
        description="How long a pacing check waits for Redis before the worker paces alone.",
        json_schema_extra=concern("servers"),
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
