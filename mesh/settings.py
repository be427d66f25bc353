"""Settings shared by every Herald process, read once from the environment."""

from __future__ import annotations

import ipaddress
import sys
from collections.abc import Iterator
from typing import Annotated, Any, Literal, TypeVar, get_args
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic.config import JsonDict
from pydantic_settings import BaseSettings, SettingsConfigDict

from mesh.outbound import OutboundRule
from mesh.signing import check_secret

S = TypeVar("S", bound=BaseSettings)

# A TCP port to listen on; 0 lets the system pick a free one.
Port = Annotated[int, Field(ge=0, le=65535)]

# What a setting is about: docs/configuration.md groups each process's settings by it.
Concern = Literal["servers", "security", "providers", "delivery", "performance"]
CONCERNS: tuple[Concern, ...] = get_args(Concern)


def concern(name: Concern) -> JsonDict:
    """A field's `json_schema_extra` naming its concern (scripts/settings_doc.py reads it)."""
    return {"concern": name}


# The service token of a development machine: refused beyond loopback.
DEV_SERVICE_TOKEN = "herald-dev-token"

# The schemes each server URL may use.
URL_SCHEMES = {
    "postgres_url": ("postgresql", "postgres"),
    "redis_url": ("redis", "rediss"),
    "amqp_url": ("amqp", "amqps"),
}


def is_loopback(host: str) -> bool:
    """Whether `host` (an address or name a server binds to) is reachable only locally."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def mask_url(url: str) -> str:
    """The URL with its password (if any) replaced by `***`, for reprs and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


class CommonSettings(BaseSettings):
    """What every service reads: infrastructure addresses, logging, shutdown.

    Subclasses add their own fields (ports, peers). Instances are frozen; secrets are
    `SecretStr` so their repr is masked.
    """

    model_config = SettingsConfigDict(env_prefix="HERALD_", frozen=True, extra="ignore")

    host: str = Field(
        "127.0.0.1",
        description="Address every server of the process binds to (gRPC, HTTP, /metrics); "
        "0.0.0.0 to be reached from other machines (then set HERALD_SERVICE_TOKEN).",
        json_schema_extra=concern("servers"),
    )
    postgres_url: str = Field(
        "postgresql://root@127.0.0.1:5432",
        description="PostgreSQL server URL without a database name (each service adds its "
        "own database).",
        json_schema_extra=concern("servers"),
    )
    redis_url: str = Field(
        "redis://127.0.0.1:6379/0",
        description="Redis URL (rediss:// for TLS): userd's user cache and its change "
        "announcements.",
        json_schema_extra=concern("servers"),
    )
    redis_prefix: str = Field(
        "herald:",
        description="Prefix of every Redis key and channel Herald uses; change it to share "
        "one Redis between several Herald deployments.",
        json_schema_extra=concern("servers"),
    )
    amqp_url: str = Field(
        "amqp://guest:guest@127.0.0.1:5672/",
        description="RabbitMQ URL (amqps:// for TLS; the path is the vhost): the delivery queues.",
        json_schema_extra=concern("servers"),
    )
    amqp_queue_type: Literal["classic", "quorum"] = Field(
        "classic",
        description="classic, or quorum: queues replicated over the broker's nodes, a "
        "high-priority work queue per channel (docs/operations.md).",
        json_schema_extra=concern("delivery"),
    )
    service_token: SecretStr = Field(
        SecretStr(DEV_SERVICE_TOKEN),
        min_length=8,
        description="Internal token every gRPC call but health and reflection must carry; "
        "the development default is refused when HERALD_HOST binds beyond loopback.",
        json_schema_extra=concern("security"),
    )
    otlp_endpoint: str = Field(
        "",
        validation_alias="OTEL_EXPORTER_OTLP_ENDPOINT",
        description="OpenTelemetry collector (OTLP over HTTP, e.g. http://collector:4318): "
        "traces are exported there; unset, tracing is off (docs/operations.md).",
        json_schema_extra=concern("servers"),
    )
    log_level: str = Field(
        "INFO",
        pattern="^(DEBUG|INFO|WARNING|ERROR)$",
        description="Least severe log line written to stdout: DEBUG, INFO, WARNING or ERROR.",
        json_schema_extra=concern("servers"),
    )
    grace_seconds: float = Field(
        10.0,
        gt=0,
        le=300,
        description="Seconds a stopping process (SIGTERM) gives in-flight calls and jobs "
        "to finish before it closes its connections; keep it below the orchestrator's kill "
        "timeout.",
        json_schema_extra=concern("servers"),
    )
    health_interval_seconds: float = Field(
        2.0,
        gt=0,
        le=60,
        description="Seconds between two checks of the process's dependencies (PostgreSQL, "
        "Redis, RabbitMQ, peers), which set its gRPC health: how fast a probe sees an outage.",
        json_schema_extra=concern("servers"),
    )
    outbound_allow_loopback: bool = Field(
        False,
        description="Lets Web Push endpoints, callback endpoints and the alert webhook point "
        "at this machine (http included): tests and local development only. The gateway "
        "checks a callback URL with it and the callbacks process posts with it: set it alike.",
        json_schema_extra=concern("security"),
    )

    @field_validator("postgres_url", "redis_url", "amqp_url")
    @classmethod
    def _server_url(cls, value: str, info: ValidationInfo) -> str:
        schemes = URL_SCHEMES[str(info.field_name)]
        parts = urlsplit(value)
        if parts.scheme not in schemes:
            raise ValueError(f"must be a URL starting with {schemes[0]}://")
        if not parts.hostname:
            raise ValueError("must name a host")
        try:
            parts.port  # noqa: B018 - parsing the port is the check
        except ValueError:
            raise ValueError("has a bad port") from None
        return value

    @field_validator("service_token")
    @classmethod
    def _no_dev_token_beyond_loopback(cls, value: SecretStr, info: ValidationInfo) -> SecretStr:
        host = info.data.get("host")
        if value.get_secret_value() == DEV_SERVICE_TOKEN and host and not is_loopback(host):
            raise ValueError(
                f"the development token cannot guard a server bound to {host}: set a secret one"
            )
        return value

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        for name, value in super().__repr_args__():
            yield name, mask_url(value) if isinstance(value, str) and "://" in value else value

    def outbound_rule(self) -> OutboundRule:
        """Where outbound requests to user-given URLs may go (`mesh.outbound`)."""
        return OutboundRule(allow_loopback=self.outbound_allow_loopback)

    def database_url(self, name: str) -> str:
        """The URL of one service database on the configured server."""
        return f"{self.postgres_url.rstrip('/')}/{name}"


class SharedSettings(CommonSettings):
    """What the gateway and deliveryd both read: the users they keep locally
    (`userd.client_cache`), and the secret of the sandbox's receipts."""

    sandbox_receipts_secret: SecretStr | None = Field(
        None,
        validation_alias="HERALD_SANDBOX_RECEIPTS_SECRET",
        description="Signs the sandbox provider's receipts (Standard Webhooks, `whsec_` and "
        "base64; `make up` makes one). Set on the gateway and deliveryd, with "
        "HERALD_RECEIPTS_BASE_URL on deliveryd: the sandbox's reserved addresses and numbers "
        "(docs/receipts.md) get receipts through /webhooks/sandbox. Unset: none do.",
        json_schema_extra=concern("providers"),
    )

    user_cache_seconds: float = Field(
        60.0,
        ge=0,
        le=3600,
        validation_alias="HERALD_USER_CACHE_SECONDS",
        description="How long the gateway and deliveryd keep a user they fetched from userd "
        "(dropped at once when userd announces a change; 0 turns the local cache off). "
        "Measured with it off: rest-sat 712 → 543/s, CPU per notification 2.07 → 2.91 ms "
        "(docs/performance.md).",
        json_schema_extra=concern("performance"),
    )
    user_cache_size: int = Field(
        100_000,
        ge=1,
        le=10_000_000,
        validation_alias="HERALD_USER_CACHE_SIZE",
        description="Most users the gateway and deliveryd keep each (least recently used "
        "go); raise it when more distinct users than this get notifications within "
        "HERALD_USER_CACHE_SECONDS.",
        json_schema_extra=concern("performance"),
    )

    @field_validator("sandbox_receipts_secret")
    @classmethod
    def _standard_webhooks_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None  # unset, or empty as in .env.example
        check_secret(value.get_secret_value())
        return value


def load_settings(cls: type[S]) -> S:
    """Builds settings from the environment, or stops the process with a one-line reason."""
    try:
        return cls()
    except ValidationError as exc:
        reasons = "; ".join(
            # A check across settings (a model validator) names them in its message.
            (f"{_env_name(cls, err['loc'])}: " if err["loc"] else "")
            + err["msg"].removeprefix("Value error, ")
            for err in exc.errors()
        )
        sys.stderr.write(f"herald: bad configuration: {reasons}\n")
        raise SystemExit(2) from None


def _env_name(cls: type[BaseSettings], loc: tuple[int | str, ...]) -> str:
    field = str(loc[0]) if loc else "?"
    if field not in cls.model_fields and field.isupper():
        return field  # already the environment name (a field's validation_alias)
    info = cls.model_fields.get(field)
    if info is not None and isinstance(info.validation_alias, str):
        return info.validation_alias
    prefix = str(cls.model_config.get("env_prefix", ""))
    return f"{prefix}{field}".upper()
