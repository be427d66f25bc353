"""Calls to userd and templated, with their answers turned into our domain errors.

The caller's mistakes pass through with their meaning (an unknown user or template is
NOT_FOUND naming it; a missing template variable is INVALID_ARGUMENT with templated's
field violations, e.g. "variables.name"); anything else from a peer means the peer is
not usable right now, which is UNAVAILABLE for our caller.
"""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

import grpc

from herald.v1 import template_pb2, template_pb2_grpc, user_pb2, user_pb2_grpc
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

    async def get_user(self, user_id: str, *, field: str = "user_id") -> user_pb2.User:
        """The user: kept here, else from userd (itself served from its cache when warm)."""
        if self._kept is None:
            return await self._fetch_user(user_id, field)
        return await self._kept.fetch(user_id, lambda: self._fetch_user(user_id, field))

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

    async def get_users(
        self, user_ids: Sequence[str]
    ) -> dict[str, user_pb2.User | DomainError] | None:
        """Each user, or the error `get_user` would raise for it: the kept ones, the others
        in one BatchGetUsers call (the ids are valid UUIDs); None when userd is older and
        has no BatchGetUsers."""
        kept = self._kept
        outcomes: dict[str, user_pb2.User | DomainError] = {}
        if kept is not None:
            outcomes = {i: user for i in user_ids if (user := kept.get(i)) is not None}
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
            outcomes[user_id] = user or NotFound(f"user {user_id} not found")
            if user is not None and kept:
                kept.keep(user, ticket)
        return outcomes

    async def render(self, request: template_pb2.RenderRequest) -> template_pb2.RenderResponse:
        """The template rendered for the asked channels, in the language or its fallback."""
        try:
            return await self._templates.Render(request, timeout=self._timeout)
        except grpc.aio.AioRpcError as exc:
            raise _render_failure(
                request, exc.code(), exc.details() or "", field_violations(exc)
            ) from None

    async def render_many(
        self, requests: Sequence[template_pb2.RenderRequest]
    ) -> list[template_pb2.RenderResponse | DomainError] | None:
        """Each rendering, or the error `render` would raise for it, in one BatchRender
        call; None when templated is older and has no BatchRender."""
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
        outcomes: list[template_pb2.RenderResponse | DomainError] = []
        for request, result in zip(requests, answer.results, strict=True):
            if result.HasField("rendered"):
                outcomes.append(result.rendered)
                continue
            error = result.error
            violations = [(v.field, v.description) for v in error.field_violations]
            outcomes.append(_render_failure(request, status_code(error), error.message, violations))
        return outcomes


def _render_failure(
    request: template_pb2.RenderRequest,
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
        version = request.version
        named = f"template {request.code}" + (f" version {version}" if version else "")
        return NotFound(f"{named} not found")
    if code == grpc.StatusCode.FAILED_PRECONDITION:
        return Conflict(f"template {request.code} cannot render: {details}")
    return Unavailable(f"templated cannot answer ({code.name})")
