"""userd configuration."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, ValidationInfo, field_validator

from mesh.settings import CommonSettings, Port, concern, is_loopback

PasswordProfile = Literal["rfc_9106_low_memory", "rfc_9106_high_memory", "cheapest"]


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
    password_hash_profile: PasswordProfile = Field(
        "rfc_9106_low_memory",
        validation_alias="HERALD_USERD_PASSWORD_HASH_PROFILE",
        description="The argon2id parameters a new password is hashed with (argon2-cffi's "
        "profiles): rfc_9106_low_memory (64 MiB, 3 passes), rfc_9106_high_memory (2 GiB). "
        "`cheapest` is for the test suite only (a hash takes microseconds and is easy to "
        "crack) and is refused when HERALD_HOST binds beyond loopback. A stored hash keeps "
        "its own parameters, so changing this leaves existing passwords readable.",
        json_schema_extra=concern("security"),
    )

    @field_validator("password_hash_profile")
    @classmethod
    def _cheapest_only_on_loopback(cls, value: str, info: ValidationInfo) -> str:
        host = info.data.get("host")
        if value == "cheapest" and host and not is_loopback(host):
            raise ValueError(f"cheapest is for tests and cannot serve on {host}")
        return value
