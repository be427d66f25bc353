"""`/api/v1/users`: the seed's create and get, plus update, preferences, push targets,
delete and list → UserService."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Body, Query, Response

from gateway.http.auth import UsersRead, UsersWrite
from gateway.http.backends import Backends, call
from gateway.http.convert import users as convert
from gateway.http.errors import http_error
from gateway.http.routes import error_responses
from gateway.http.schemas.common import PageQuery
from gateway.http.schemas.users import (
    PreferencesIn,
    PushTargetIn,
    PushTargetOut,
    UserCreate,
    UserOut,
    UserPage,
    UserUpdate,
)
from herald.v1 import user_pb2


def router(backends: Backends, prefix: str) -> APIRouter:
    api = APIRouter(prefix=f"{prefix}/users", tags=["users"])
    timeout = backends.timeout
    stub = backends.users

    @api.post(
        "/",
        status_code=201,
        responses=error_responses(409, body=True),
        summary="Create a user (scope: users:write)",
    )
    async def create_user(_: UsersWrite, body: UserCreate) -> UserOut:
        """The seed's payload; 409 when the email is taken. The password is never returned."""
        answer = await call(
            stub.CreateUser, convert.create_request(body), timeout=timeout, renames=convert.RENAMES
        )
        return convert.user(answer.user)

    @api.get("/", responses=error_responses(), summary="List users (scope: users:read)")
    async def list_users(_: UsersRead, query: Annotated[PageQuery, Query()]) -> UserPage:
        answer = await call(
            stub.ListUsers,
            user_pb2.ListUsersRequest(page_size=query.page_size, page_token=query.page_token or ""),
            timeout=timeout,
        )
        return UserPage(
            items=[convert.user(u) for u in answer.users],
            next_page_token=answer.next_page_token or None,
        )

    @api.get(
        "/{user_id:uuid}", responses=error_responses(404), summary="Get a user (scope: users:read)"
    )
    async def get_user(_: UsersRead, user_id: UUID) -> UserOut:
        """The seed's shape (`push_token` is the first FCM token) plus contact points."""
        answer = await call(stub.GetUser, user_pb2.GetUserRequest(id=str(user_id)), timeout=timeout)
        return convert.user(answer.user)

    @api.patch(
        "/{user_id:uuid}",
        responses=error_responses(404, 409, body=True),
        summary="Change some of a user's fields (scope: users:write)",
    )
    async def update_user(_: UsersWrite, user_id: UUID, body: UserUpdate) -> UserOut:
        answer = await call(
            stub.UpdateUser,
            convert.update_request(str(user_id), body),
            timeout=timeout,
            renames=convert.RENAMES,
        )
        return convert.user(answer.user)

    @api.patch(
        "/{user_id:uuid}/preferences",
        responses=error_responses(404, body=True),
        summary="Change channel preferences (scope: users:write)",
    )
    async def update_preferences(_: UsersWrite, user_id: UUID, body: PreferencesIn) -> UserOut:
        """Channels left out keep their value; at least one is needed."""
        answer = await call(
            stub.UpdatePreferences,
            user_pb2.UpdatePreferencesRequest(
                user_id=str(user_id), preferences=convert.preferences(body)
            ),
            timeout=timeout,
        )
        return convert.user(answer.user)

    @api.post(
        "/{user_id:uuid}/push-targets",
        status_code=201,
        responses=error_responses(404, 409, body=True),
        summary="Add a push target (a device) (scope: users:write)",
    )
    async def add_push_target(
        _: UsersWrite, user_id: UUID, body: Annotated[PushTargetIn, Body()]
    ) -> PushTargetOut:
        answer = await call(
            stub.AddPushTarget,
            user_pb2.AddPushTargetRequest(user_id=str(user_id), target=convert.push_target(body)),
            timeout=timeout,
            renames={"target": ""},
        )
        return convert.push_target_out(answer.target)

    @api.delete(
        "/{user_id:uuid}/push-targets/{target_id:uuid}",
        status_code=204,
        response_class=Response,
        responses=error_responses(404),
        summary="Remove a push target (scope: users:write)",
    )
    async def remove_push_target(_: UsersWrite, user_id: UUID, target_id: UUID) -> Response:
        answer = await call(
            stub.RemovePushTarget,
            user_pb2.RemovePushTargetRequest(user_id=str(user_id), target_id=str(target_id)),
            timeout=timeout,
        )
        if not answer.removed:
            raise http_error(404, "the user has no push target with that id")
        return Response(status_code=204)

    @api.delete(
        "/{user_id:uuid}",
        status_code=204,
        response_class=Response,
        responses=error_responses(404),
        summary="Delete a user (scope: users:write)",
    )
    async def delete_user(_: UsersWrite, user_id: UUID) -> Response:
        await call(stub.DeleteUser, user_pb2.DeleteUserRequest(id=str(user_id)), timeout=timeout)
        return Response(status_code=204)

    return api
