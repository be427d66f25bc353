"""templated configuration."""

from __future__ import annotations

from pydantic import Field

from mesh.settings import CommonSettings, Port


class TemplatedSettings(CommonSettings):
    grpc_port: Port = Field(50052, validation_alias="HERALD_TEMPLATED_GRPC_PORT")
    metrics_port: Port = Field(9102, validation_alias="HERALD_TEMPLATED_METRICS_PORT")
    database: str = Field("herald_templates", validation_alias="HERALD_TEMPLATED_DATABASE")
    active_ttl_seconds: float = Field(
        30.0,
        gt=0,
        le=3600,
        validation_alias="HERALD_TEMPLATED_ACTIVE_TTL_SECONDS",
        description="Longest a cached active-version pointer is trusted without a "
        "NOTIFY (a safety net: LISTEN/NOTIFY invalidates it at once).",
    )
    cache_size: int = Field(
        4096,
        ge=16,
        le=1_000_000,
        validation_alias="HERALD_TEMPLATED_CACHE_SIZE",
        description="Compiled (code, version, language) entries kept; versions likewise.",
    )
    max_output_chars: int = Field(
        262_144,
        ge=1024,
        le=16_777_216,
        validation_alias="HERALD_TEMPLATED_MAX_OUTPUT_CHARS",
        description="Largest rendered part.",
    )
    render_steps: int = Field(
        20_000,
        ge=100,
        le=10_000_000,
        validation_alias="HERALD_TEMPLATED_RENDER_STEPS",
        description="Work budget of one part's render (loop steps, calls, KiB handled).",
    )
    max_variables_bytes: int = Field(
        65_536,
        ge=1024,
        le=4_194_304,
        validation_alias="HERALD_TEMPLATED_MAX_VARIABLES_BYTES",
        description="Largest RenderRequest.variables, serialized.",
    )
