"""The callbacks process's configuration (`python -m gateway callbacks`): its ports, and
how it posts status callbacks. The database and the outbound rule are the gateway's own
settings (`NotificationsDbSettings`, `CommonSettings.outbound_rule`): both processes must
read the same ones."""

from __future__ import annotations

from pydantic import Field

from gateway.settings import NotificationsDbSettings
from mesh.settings import Port, concern


class CallbacksSettings(NotificationsDbSettings):
    grpc_port: Port = Field(
        50056,
        validation_alias="HERALD_CALLBACKS_GRPC_PORT",
        description="Port of the callbacks process's gRPC health and reflection.",
        json_schema_extra=concern("servers"),
    )
    metrics_port: Port = Field(
        9106,
        validation_alias="HERALD_CALLBACKS_METRICS_PORT",
        description="Port of the callbacks process's Prometheus /metrics (0: none).",
        json_schema_extra=concern("servers"),
    )
    callback_timeout_seconds: float = Field(
        5.0,
        gt=0,
        le=60,
        validation_alias="HERALD_CALLBACK_TIMEOUT_SECONDS",
        description="How long a status callback's receiver has to answer.",
        json_schema_extra=concern("delivery"),
    )
    callback_retry_seconds: float = Field(
        86400.0,
        gt=0,
        validation_alias="HERALD_CALLBACK_RETRY_SECONDS",
        description="How long a status callback is retried (5xx, timeouts, refused "
        "connections) before it is marked failed.",
        json_schema_extra=concern("delivery"),
    )
    callback_backoff_base_seconds: float = Field(
        1.0,
        gt=0,
        le=3600,
        validation_alias="HERALD_CALLBACK_BACKOFF_BASE_SECONDS",
        description="The first retry delay of a status callback, and of a failing "
        "endpoint; each further failure doubles it.",
        json_schema_extra=concern("delivery"),
    )
    callback_backoff_max_seconds: float = Field(
        3600.0,
        gt=0,
        validation_alias="HERALD_CALLBACK_BACKOFF_MAX_SECONDS",
        description="The longest delay between two tries of a callback or an endpoint.",
        json_schema_extra=concern("delivery"),
    )
    callback_interval_seconds: float = Field(
        0.25,
        gt=0,
        le=60,
        validation_alias="HERALD_CALLBACK_INTERVAL_SECONDS",
        description="How often an idle callbacks process looks for status callbacks due.",
        json_schema_extra=concern("performance"),
    )
    callback_concurrency: int = Field(
        32,
        ge=1,
        le=1000,
        validation_alias="HERALD_CALLBACK_CONCURRENCY",
        description="Status callbacks one callbacks process posts at once (effect not measured).",
        json_schema_extra=concern("performance"),
    )
    callback_per_endpoint: int = Field(
        4,
        ge=1,
        le=100,
        validation_alias="HERALD_CALLBACK_PER_ENDPOINT",
        description="Of those, at most this many to one endpoint (effect not measured).",
        json_schema_extra=concern("performance"),
    )
    cpu_nice: int = Field(
        10,
        ge=0,
        le=19,
        validation_alias="HERALD_CALLBACKS_NICE",
        description="How far the callbacks process lowers its own CPU priority at start "
        "(os.nice): on cores it shares with the gateways and workers, notifications take "
        "the CPU first and callbacks what is left, falling behind under a sustained "
        "overload (herald_callbacks_pending) and catching up after. Measured at capacity "
        "(make bench, median of eight pairs each): callbacks cost -10% accepted/s at 0, "
        "-4% at 10, and their p50 lag grew from ~0.25 s to 0.5-1.9 s. In a container of "
        "its own it changes nothing.",
        json_schema_extra=concern("performance"),
    )
