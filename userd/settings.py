"""userd configuration."""

from __future__ import annotations

from pydantic import Field

from mesh.settings import CommonSettings


class UserdSettings(CommonSettings):
    grpc_port: int = Field(50051, ge=0, le=65535, validation_alias="HERALD_USERD_GRPC_PORT")
    metrics_port: int = Field(9101, ge=0, le=65535, validation_alias="HERALD_USERD_METRICS_PORT")
    database: str = Field("herald_users", validation_alias="HERALD_USERD_DATABASE")
