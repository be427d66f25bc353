"""Rendering pages: one Jinja2 environment (autoescaping everything), the values every
page needs (the operator, the CSRF token, the console's base path), display helpers."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.templating import Jinja2Templates
from starlette.responses import Response

from console import charts
from gateway.apikeys import Scope
from gateway.wire import CHANNEL_NAMES, MESSAGE_TYPE_NAMES, OUTCOME_NAMES

HERE = Path(__file__).parent
OUTCOMES = OUTCOME_NAMES


def _when(value: datetime | None) -> str:
    if value is None:
        return ""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _ago(value: datetime | None) -> str:
    if value is None:
        return ""
    seconds = int((datetime.now(UTC) - value).total_seconds())
    if seconds < 60:
        return f"{max(seconds, 0)} s ago"
    if seconds < 3600:
        return f"{seconds // 60} min ago"
    if seconds < 86400:
        return f"{seconds // 3600} h ago"
    return f"{seconds // 86400} d ago"


def templates() -> Jinja2Templates:
    found = Jinja2Templates(directory=HERE / "templates")
    env = found.env
    env.autoescape = True
    env.filters.update(
        when=_when,
        ago=_ago,
        channel=lambda n: CHANNEL_NAMES.get(n, "") if isinstance(n, int) else n,
        message_type=lambda n: MESSAGE_TYPE_NAMES.get(n, str(n)),
        outcome=lambda n: OUTCOMES.get(n, str(n)),
        pretty_json=lambda v: json.dumps(v, indent=2, sort_keys=True, default=str),
        ms=lambda us: f"{us / 1000:.1f} ms",
    )
    env.globals.update(sparkline=charts.sparkline, bars=charts.bars, Scope=Scope)
    return found


class Pages:
    """Renders the console's templates with what every page needs."""

    def __init__(self) -> None:
        self._templates = templates()

    def __call__(
        self, request: Request, name: str, status_code: int = 200, **context: Any
    ) -> Response:
        operator = getattr(request.state, "operator", None)
        context.setdefault("operator", operator)
        context.setdefault("base", request.scope.get("root_path", ""))
        context.setdefault("csrf_token", operator.csrf_token if operator else "")
        return self._templates.TemplateResponse(request, name, context, status_code=status_code)
