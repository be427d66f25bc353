"""userd configuration."""

from __future__ import annotations

from pydantic import Field

from mesh.settings import CommonSettings, Port, concern


class UserdSettings(CommonSettings):
    grpc_port: Port = Field(
        50051,
        validation_alias="HERALD_USERD_GRPC_PORT",
        description="Port of userd's gRPC server (UserService, health, reflection).",
        json_schema_extra=concern("servers"),
    )
    metrics_port: Port = Field(
        9101,
        validation_alias="HERALD_USERD_METRICS_PORT",
        description="Port of userd's Prometheus /metrics (0: none).",
        json_schema_extra=concern("servers"),
    )
    database: str = Field(
        "herald_users",
        validation_alias="HERALD_USERD_DATABASE",
        description="userd's PostgreSQL database on HERALD_POSTGRES_URL (created and "
        "migrated at start-up): users, their contact points and push targets.",
        json_schema_extra=concern("servers"),
    )
    cache_ttl_seconds: float = Field(
        3600.0,
        gt=0,
        le=7 * 24 * 3600,
        validation_alias="HERALD_USERD_CACHE_TTL_SECONDS",
        description="How long a cached user (or a deleted user's tombstone) lives in Redis.",
        json_schema_extra=concern("performance"),
    )
    cache_timeout_seconds: float = Field(
        1.0,
        gt=0,
        le=30,
        validation_alias="HERALD_USERD_CACHE_TIMEOUT_SECONDS",
        description="Deadline of one cache operation; past it the cache counts as down.",
        json_schema_extra=concern("servers"),
    )
