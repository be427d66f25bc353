"""Calls to userd and templated, with their answers turned into our domain values
(`Recipient`, `Rendered`) and errors.

The caller's mistakes pass through with their meaning (an unknown user or template is
NOT_FOUND naming it; a missing template variable is INVALID_ARGUMENT with templated's
field violations, e.g. "variables.name"); anything else from a peer means the peer is
not usable right now, which is UNAVAILABLE for our caller.
"""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

import grpc

from gateway.notifications.fetches import Rendering
from gateway.notifications.model import Recipient, Rendered
from gateway.timing.quiet import QuietWindow, parse_clock
from herald.v1 import common_pb2, template_pb2, template_pb2_grpc, user_pb2, user_pb2_grpc
from mesh.errors import (
    Conflict,
    DomainError,
    FieldViolation,
    InvalidArgument,
    NotFound,
    Unavailable,
)
from mesh.interceptors import field_violations
from mesh.item_errors import status_code
from userd.client_cache import LocalUsers


class Peers:
    """The UserService and TemplateService stubs the gateway needs, and the users it keeps
    (`userd.client_cache`; None: every user comes from userd)."""

    def __init__(
        self,
        *,
        userd: grpc.aio.Channel,
        templated: grpc.aio.Channel,
        timeout: float,
        users: LocalUsers | None = None,
    ) -> None:
        self._users = user_pb2_grpc.UserServiceStub(userd)
        self._templates = template_pb2_grpc.TemplateServiceStub(templated)
        self._timeout = timeout
        self._kept = users

    async def get_user(self, user_id: str, *, field: str = "user_id") -> Recipient:
        """The user: kept here, else from userd (itself served from its cache when warm)."""
        if self._kept is None:
            return recipient(await self._fetch_user(user_id, field))
        return recipient(await self._kept.fetch(user_id, lambda: self._fetch_user(user_id, field)))

    async def _fetch_user(self, user_id: str, field: str) -> user_pb2.User:
        try:
            answer = await self._users.GetUser(
                user_pb2.GetUserRequest(id=user_id), timeout=self._timeout
            )
        except grpc.aio.AioRpcError as exc:
            code = exc.code()
            if code == grpc.StatusCode.NOT_FOUND:
                raise NotFound(f"user {user_id} not found") from None
            if code == grpc.StatusCode.INVALID_ARGUMENT:
                raise InvalidArgument.field(field, exc.details() or "refused by userd") from None
            raise Unavailable(f"userd cannot answer ({code.name})") from None
        return answer.user

    async def get_users(self, user_ids: Sequence[str]) -> dict[str, Recipient | DomainError] | None:
        """Each user, or the error `get_user` would raise for it: the kept ones, the others
        in one BatchGetUsers call (the ids are valid UUIDs); None when userd is older and
        has no BatchGetUsers."""
        kept = self._kept
        outcomes: dict[str, Recipient | DomainError] = {}
        if kept is not None:
            outcomes = {i: recipient(user) for i in user_ids if (user := kept.get(i)) is not None}
        wanted = [i for i in user_ids if i not in outcomes]
        if not wanted:
            return outcomes
        ticket = kept.ticket() if kept else 0
        try:
            answer = await self._users.BatchGetUsers(
                user_pb2.BatchGetUsersRequest(ids=wanted), timeout=self._timeout
            )
        except grpc.aio.AioRpcError as exc:
            code = exc.code()
            if code == grpc.StatusCode.UNIMPLEMENTED:
                return None
            failure = Unavailable(f"userd cannot answer ({code.name})")
            return outcomes | dict.fromkeys(wanted, failure)
        found = {UUID(user.id): user for user in answer.users}
        for user_id in wanted:
            user = found.get(UUID(user_id))
            if user is None:
                outcomes[user_id] = NotFound(f"user {user_id} not found")
                continue
            outcomes[user_id] = recipient(user)
            if kept:
                kept.keep(user, ticket)
        return outcomes

    async def render(self, rendering: Rendering) -> Rendered:
        """The template rendered for the asked channels, in the language or its fallback."""
        try:
            answer = await self._templates.Render(render_request(rendering), timeout=self._timeout)
        except grpc.aio.AioRpcError as exc:
            raise _render_failure(
                rendering, exc.code(), exc.details() or "", field_violations(exc)
            ) from None
        return rendered(answer)

    async def render_many(
        self, renderings: Sequence[Rendering]
    ) -> list[Rendered | DomainError] | None:
        """Each rendering, or the error `render` would raise for it, in one BatchRender
        call; None when templated is older and has no BatchRender."""
        requests = [render_request(r) for r in renderings]
        try:
            answer = await self._templates.BatchRender(
                template_pb2.BatchRenderRequest(requests=requests), timeout=self._timeout
            )
        except grpc.aio.AioRpcError as exc:
            code = exc.code()
            if code == grpc.StatusCode.UNIMPLEMENTED:
                return None
            failure = Unavailable(f"templated cannot answer ({code.name})")
            return [failure] * len(requests)
        outcomes: list[Rendered | DomainError] = []
        for rendering, result in zip(renderings, answer.results, strict=True):
            if result.HasField("rendered"):
                outcomes.append(rendered(result.rendered))
                continue
            error = result.error
            violations = [(v.field, v.description) for v in error.field_violations]
            outcomes.append(
                _render_failure(rendering, status_code(error), error.message, violations)
            )
        return outcomes


def recipient(user: user_pb2.User) -> Recipient:
    """The user as a Send needs them (push targets and preferences set: see `Recipient`)."""
    return Recipient(
        id=user.id,
        email=user.email,
        phone=user.phone,
        locale=user.locale,
        push_targets=tuple(user.push_targets),
        preferences=preferences(user.preferences),
        time_zone=user.time_zone or "UTC",
        quiet_hours=quiet_window(user),
    )


def quiet_window(user: user_pb2.User) -> QuietWindow | None:
    """The user's own quiet window (None: unset, or not one userd should have stored)."""
    if not user.HasField("quiet_hours"):
        return None
    try:
        return QuietWindow(parse_clock(user.quiet_hours.start), parse_clock(user.quiet_hours.end))
    except ValueError:
        return None


def preferences(prefs: user_pb2.Preferences) -> dict[str, bool]:
    """The channel preferences the user set (unset ones are absent: allowed)."""
    chosen: dict[str, bool] = {}
    if prefs.HasField("email"):
        chosen["email"] = prefs.email
    if prefs.HasField("sms"):
        chosen["sms"] = prefs.sms
    if prefs.HasField("push"):
        chosen["push"] = prefs.push
    return chosen


def render_request(rendering: Rendering) -> template_pb2.RenderRequest:
    request = template_pb2.RenderRequest(
        code=rendering.code,
        language=rendering.language,
        channels=[common_pb2.Channel.ValueType(c) for c in rendering.channels],
        version=rendering.version,
    )
    request.variables.MergeFromString(rendering.variables)
    return request


def rendered(answer: template_pb2.RenderResponse) -> Rendered:
    """templated's answer; the content goes into the delivery job as it came."""
    return Rendered(
        version=answer.version, language=answer.content.language, content=answer.content
    )


def _render_failure(
    rendering: Rendering,
    code: grpc.StatusCode,
    details: str,
    violations: Sequence[tuple[str, str]],
) -> DomainError:
    """What a refused rendering means to our caller."""
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        return InvalidArgument(
            [FieldViolation(f, d) for f, d in violations] or [FieldViolation("variables", details)]
        )
    if code == grpc.StatusCode.NOT_FOUND:
        version = rendering.version
        named = f"template {rendering.code}" + (f" version {version}" if version else "")
        return NotFound(f"{named} not found")
    if code == grpc.StatusCode.FAILED_PRECONDITION:
        return Conflict(f"template {rendering.code} cannot render: {details}")
    return Unavailable(f"templated cannot answer ({code.name})")
