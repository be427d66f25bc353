"""userd configuration."""

from __future__ import annotations

from pydantic import Field

from mesh.settings import CommonSettings, Port


class UserdSettings(CommonSettings):
    grpc_port: Port = Field(50051, validation_alias="HERALD_USERD_GRPC_PORT")
    metrics_port: Port = Field(9101, validation_alias="HERALD_USERD_METRICS_PORT")
    database: str = Field("herald_users", validation_alias="HERALD_USERD_DATABASE")
    cache_ttl_seconds: float = Field(
        3600.0,
        gt=0,
        le=7 * 24 * 3600,
        validation_alias="HERALD_USERD_CACHE_TTL_SECONDS",
        description="How long a cached user (or a deleted user's tombstone) lives in Redis.",
    )
    cache_timeout_seconds: float = Field(
        1.0,
        gt=0,
        le=30,
        validation_alias="HERALD_USERD_CACHE_TIMEOUT_SECONDS",
        description="Deadline of one cache operation; past it the cache counts as down.",
    )
    cache_repair_interval_seconds: float = Field(
        1.0,
        gt=0,
        le=60,
        validation_alias="HERALD_USERD_CACHE_REPAIR_INTERVAL_SECONDS",
        description="How often stale cache entries are looked for and refreshed.",
    )
