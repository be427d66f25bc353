"""herald.v1.UserService over gRPC: protobuf in, a `Users` call, protobuf out.

Defaults when a CreateUser field is unset: locale "en", time zone "UTC", and every channel
allowed (email, sms and push true) until the user opts out. Errors are `mesh.errors`
exceptions, mapped to status codes by the interceptor: INVALID_ARGUMENT names each bad
field (a path in the request, e.g. "push_targets[0].token"), ALREADY_EXISTS a taken email,
NOT_FOUND an unknown user, FAILED_PRECONDITION a 21st push target.
"""

from __future__ import annotations

import grpc

from herald.v1 import user_pb2, user_pb2_grpc
from userd import convert
from userd.service import Users

SERVICE_NAME = user_pb2.DESCRIPTOR.services_by_name["UserService"].full_name

Context = grpc.aio.ServicerContext[object, object]


class UserServicer(user_pb2_grpc.UserServiceServicer):
    """Thin: every RPC's logic is one `Users` method away."""

    def __init__(self, users: Users) -> None:
        self._users = users

    async def CreateUser(
        self, request: user_pb2.CreateUserRequest, context: Context
    ) -> user_pb2.CreateUserResponse:
        user = await self._users.create(data=convert.user_input(request), password=request.password)
        return user_pb2.CreateUserResponse(user=convert.user_to_proto(user))

    async def GetUser(
        self, request: user_pb2.GetUserRequest, context: Context
    ) -> user_pb2.GetUserResponse:
        if not request.id and request.email:
            user = await self._users.find_by_email(email=request.email)
        else:
            user = await self._users.get(user_id=request.id)
        return user_pb2.GetUserResponse(user=convert.user_to_proto(user))

    async def BatchGetUsers(
        self, request: user_pb2.BatchGetUsersRequest, context: Context
    ) -> user_pb2.BatchGetUsersResponse:
        users, missing = await self._users.get_many(user_ids=request.ids)
        return user_pb2.BatchGetUsersResponse(
            users=[convert.user_to_proto(u) for u in users], missing_ids=missing
        )

    async def UpdateUser(
        self, request: user_pb2.UpdateUserRequest, context: Context
    ) -> user_pb2.UpdateUserResponse:
        user = await self._users.update(
            user_id=request.user.id,
            data=convert.user_input(request.user),
            paths=list(request.update_mask.paths),
            password=request.password,
        )
        return user_pb2.UpdateUserResponse(user=convert.user_to_proto(user))

    async def UpdatePreferences(
        self, request: user_pb2.UpdatePreferencesRequest, context: Context
    ) -> user_pb2.UpdatePreferencesResponse:
        user = await self._users.update_preferences(
            user_id=request.user_id, patch=convert.preferences_patch(request.preferences)
        )
        return user_pb2.UpdatePreferencesResponse(user=convert.user_to_proto(user))

    async def AddPushTarget(
        self, request: user_pb2.AddPushTargetRequest, context: Context
    ) -> user_pb2.AddPushTargetResponse:
        user, target = await self._users.add_push_target(
            user_id=request.user_id, target=convert.push_target_input(request.target)
        )
        return user_pb2.AddPushTargetResponse(
            user=convert.user_to_proto(user), target=convert.push_target_to_proto(target)
        )

    async def RemovePushTarget(
        self, request: user_pb2.RemovePushTargetRequest, context: Context
    ) -> user_pb2.RemovePushTargetResponse:
        user, removed = await self._users.remove_push_target(
            user_id=request.user_id, target_id=request.target_id, token=request.token
        )
        return user_pb2.RemovePushTargetResponse(user=convert.user_to_proto(user), removed=removed)

    async def ListUsers(
        self, request: user_pb2.ListUsersRequest, context: Context
    ) -> user_pb2.ListUsersResponse:
        users, next_token = await self._users.list_page(
            page_size=request.page_size, page_token=request.page_token
        )
        return user_pb2.ListUsersResponse(
            users=[convert.user_to_proto(u) for u in users], next_page_token=next_token
        )

    async def DeleteUser(
        self, request: user_pb2.DeleteUserRequest, context: Context
    ) -> user_pb2.DeleteUserResponse:
        await self._users.delete(user_id=request.id)
        return user_pb2.DeleteUserResponse()
