"""templated configuration."""

from __future__ import annotations

from pydantic import Field

from mesh.settings import CommonSettings, Port, concern


class TemplatedSettings(CommonSettings):
    grpc_port: Port = Field(
        50052,
        validation_alias="HERALD_TEMPLATED_GRPC_PORT",
        description="Port of templated's gRPC server (TemplateService, health, reflection).",
        json_schema_extra=concern("servers"),
    )
    metrics_port: Port = Field(
        9102,
        validation_alias="HERALD_TEMPLATED_METRICS_PORT",
        description="Port of templated's Prometheus /metrics (0: none).",
        json_schema_extra=concern("servers"),
    )
    database: str = Field(
        "herald_templates",
        validation_alias="HERALD_TEMPLATED_DATABASE",
        description="templated's PostgreSQL database on HERALD_POSTGRES_URL (created and "
        "migrated at start-up): templates and their versions.",
        json_schema_extra=concern("servers"),
    )
    active_ttl_seconds: float = Field(
        30.0,
        gt=0,
        le=3600,
        validation_alias="HERALD_TEMPLATED_ACTIVE_TTL_SECONDS",
        description="Longest a cached active-version pointer is trusted without a "
        "NOTIFY (a safety net: LISTEN/NOTIFY invalidates it at once).",
        json_schema_extra=concern("performance"),
    )
    cache_size: int = Field(
        4096,
        ge=16,
        le=1_000_000,
        validation_alias="HERALD_TEMPLATED_CACHE_SIZE",
        description="Compiled (code, version, language) entries kept; versions likewise. "
        "Raise it above the number of template languages in use (effect not measured).",
        json_schema_extra=concern("performance"),
    )
    max_output_chars: int = Field(
        262_144,
        ge=1024,
        le=16_777_216,
        validation_alias="HERALD_TEMPLATED_MAX_OUTPUT_CHARS",
        description="Largest rendered part (subject, body, ...) in characters; a longer "
        "one fails its render.",
        json_schema_extra=concern("security"),
    )
    render_steps: int = Field(
        20_000,
        ge=100,
        le=10_000_000,
        validation_alias="HERALD_TEMPLATED_RENDER_STEPS",
        description="Work budget of one part's render (loop steps, calls, KiB handled).",
        json_schema_extra=concern("security"),
    )
    max_variables_bytes: int = Field(
        65_536,
        ge=1024,
        le=4_194_304,
        validation_alias="HERALD_TEMPLATED_MAX_VARIABLES_BYTES",
        description="Largest RenderRequest.variables, serialized.",
        json_schema_extra=concern("security"),
    )
