"""templated configuration."""

from __future__ import annotations

from pydantic import Field

from mesh.settings import CommonSettings


class TemplatedSettings(CommonSettings):
    grpc_port: int = Field(50052, ge=0, le=65535, validation_alias="HERALD_TEMPLATED_GRPC_PORT")
    metrics_port: int = Field(
        9102, ge=0, le=65535, validation_alias="HERALD_TEMPLATED_METRICS_PORT"
    )
    database: str = Field("herald_templates", validation_alias="HERALD_TEMPLATED_DATABASE")
