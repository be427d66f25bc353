"""JSON of `/api/v1/api-keys`."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from gateway.apikeys.scopes import CLIENT_ID, Scope
from gateway.apikeys.service import MAX_NAME, NAME
from gateway.http.schemas.common import RequestModel

# A burst without a rate is refused (400 naming rate_per_second): the schema says so.
BURST_NEEDS_RATE: dict[str, Any] = {
    "if": {"properties": {"rate_burst": {"not": {"type": "null"}}}, "required": ["rate_burst"]},
    "then": {
        "properties": {"rate_per_second": {"not": {"type": "null"}}},
        "required": ["rate_per_second"],
    },
}


def _whole(value: object) -> object:
    """A JSON number with no fraction (1401.0) is the integer JSON Schema says it is."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


# A key's rate and burst: integers, spelled 12 or 12.0.
Rate = Annotated[int, Field(ge=0, le=1_000_000), BeforeValidator(_whole)]
Burst = Annotated[int, Field(ge=1, le=1_000_000), BeforeValidator(_whole)]

# A scope by name (the request models are strict, which would want an enum instance).
ScopeName = Annotated[Scope, Field(strict=False)]


class ApiKeyCreate(RequestModel):
    model_config = ConfigDict(**RequestModel.model_config, json_schema_extra=BURST_NEEDS_RATE)

    name: str = Field(
        min_length=1, max_length=MAX_NAME, pattern=NAME.pattern, description="Who uses the key."
    )
    scopes: list[ScopeName] = Field(min_length=1, max_length=len(Scope))
    client_id: str | None = Field(
        default=None,
        pattern=CLIENT_ID.pattern,
        description="The client the key belongs to (its notifications are the client's). "
        "Omitted: a new client, named by the key's id.",
    )
    rate_per_second: Rate | None = Field(
        default=None,
        description="The key's send rate: notifications per second (0: unlimited). Omitted: "
        "the gateway's default.",
    )
    rate_burst: Burst | None = Field(
        default=None,
        description="How many it may send at once above its rate. Omitted: the rate.",
    )


class ApiKeyRate(RequestModel):
    """A key's send rate; both omitted (or null): back to the gateway's default."""

    model_config = ConfigDict(**RequestModel.model_config, json_schema_extra=BURST_NEEDS_RATE)

    rate_per_second: Rate | None = None
    rate_burst: Burst | None = None


class ApiKeyOut(BaseModel):
    id: str
    name: str
    client_id: str
    scopes: list[Scope]
    created_at: datetime
    revoked_at: datetime | None
    rate_per_second: int | None = Field(description="Its own send rate; null: the default.")
    rate_burst: int | None


class ApiKeyCreated(ApiKeyOut):
    key: str = Field(description="The key itself: shown this once, never stored.")


class ApiKeyList(BaseModel):
    items: list[ApiKeyOut]
