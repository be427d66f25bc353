"""deliveryd configuration: one process per channel."""

from __future__ import annotations

from pydantic import Field

from mesh.settings import CommonSettings


class DeliverydSettings(CommonSettings):
    email_grpc_port: int = Field(
        50053, ge=0, le=65535, validation_alias="HERALD_DELIVERYD_EMAIL_GRPC_PORT"
    )
    sms_grpc_port: int = Field(
        50054, ge=0, le=65535, validation_alias="HERALD_DELIVERYD_SMS_GRPC_PORT"
    )
    push_grpc_port: int = Field(
        50055, ge=0, le=65535, validation_alias="HERALD_DELIVERYD_PUSH_GRPC_PORT"
    )
    email_metrics_port: int = Field(
        9103, ge=0, le=65535, validation_alias="HERALD_DELIVERYD_EMAIL_METRICS_PORT"
    )
    sms_metrics_port: int = Field(
        9104, ge=0, le=65535, validation_alias="HERALD_DELIVERYD_SMS_METRICS_PORT"
    )
    push_metrics_port: int = Field(
        9105, ge=0, le=65535, validation_alias="HERALD_DELIVERYD_PUSH_METRICS_PORT"
    )
    prefetch: int = Field(32, ge=1, le=1000, validation_alias="HERALD_DELIVERYD_PREFETCH")
    gateway_addr: str = Field("127.0.0.1:50050", validation_alias="HERALD_GATEWAY_ADDR")
    userd_addr: str = Field("127.0.0.1:50051", validation_alias="HERALD_USERD_ADDR")

    def grpc_port(self, channel: str) -> int:
        """The health/reflection port of the worker for `channel`."""
        return int(getattr(self, f"{channel}_grpc_port"))

    def metrics_port(self, channel: str) -> int:
        return int(getattr(self, f"{channel}_metrics_port"))
