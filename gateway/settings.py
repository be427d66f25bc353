"""gateway configuration: the REST edge and the NotificationService/StatusService."""

from __future__ import annotations

from pydantic import Field

from mesh.settings import CommonSettings


class GatewaySettings(CommonSettings):
    http_port: int = Field(8000, ge=0, le=65535, validation_alias="HERALD_GATEWAY_HTTP_PORT")
    grpc_port: int = Field(50050, ge=0, le=65535, validation_alias="HERALD_GATEWAY_GRPC_PORT")
    database: str = Field("herald_notifications", validation_alias="HERALD_GATEWAY_DATABASE")
    userd_addr: str = Field("127.0.0.1:50051", validation_alias="HERALD_USERD_ADDR")
    templated_addr: str = Field("127.0.0.1:50052", validation_alias="HERALD_TEMPLATED_ADDR")
    max_body_bytes: int = Field(
        256 * 1024, ge=1024, le=16 * 1024 * 1024, validation_alias="HERALD_GATEWAY_MAX_BODY_BYTES"
    )
