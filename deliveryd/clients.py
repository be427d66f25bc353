"""The worker's calls to the gateway and userd, coalesced into batch calls.

Every job makes a Claim, a GetUser and a ReportStatus; with many jobs in flight these come
in bursts, and `mesh.coalesce` sends each burst as one BatchClaim, BatchGetUsers or
BatchReportStatus call. The rest of the worker calls these objects exactly as it would
call the generated stubs (same requests, responses and `AioRpcError`s).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING

import grpc

from herald.v1 import common_pb2, status_pb2, user_pb2
from mesh.coalesce import Coalescer
from userd.client_cache import LocalUsers

if TYPE_CHECKING:
    from herald.v1.status_pb2_grpc import StatusServiceAsyncStub
    from herald.v1.user_pb2_grpc import UserServiceAsyncStub


MAX_BATCH = 500  # items the batch methods take in one call


class StatusClient:
    """StatusService's Claim and ReportStatus, coalesced."""

    def __init__(self, stub: StatusServiceAsyncStub, *, max_batch: int, max_running: int) -> None:
        async def claim(
            request: status_pb2.ClaimRequest, timeout: float | None
        ) -> status_pb2.ClaimResponse:
            return await stub.Claim(request, timeout=timeout)

        async def claims(
            requests: list[status_pb2.ClaimRequest], timeout: float | None
        ) -> Sequence[status_pb2.ClaimResponse | common_pb2.ItemError]:
            answer = await stub.BatchClaim(
                status_pb2.BatchClaimRequest(requests=requests), timeout=timeout
            )
            return [r.claimed if r.HasField("claimed") else r.error for r in answer.results]

        async def report(
            request: status_pb2.ReportStatusRequest, timeout: float | None
        ) -> status_pb2.ReportStatusResponse:
            return await stub.ReportStatus(request, timeout=timeout)

        async def reports(
            requests: list[status_pb2.ReportStatusRequest], timeout: float | None
        ) -> Sequence[status_pb2.ReportStatusResponse | common_pb2.ItemError]:
            answer = await stub.BatchReportStatus(
                status_pb2.BatchReportStatusRequest(requests=requests), timeout=timeout
            )
            return [r.reported if r.HasField("reported") else r.error for r in answer.results]

        # At most `max_running` batch calls of a method in flight; calls made meanwhile
        # wait and go together.
        self.Claim = Coalescer(
            single=claim, batch=claims, max_batch=max_batch, max_running=max_running
        )
        self.ReportStatus = Coalescer(
            single=report, batch=reports, max_batch=max_batch, max_running=max_running
        )


class UserClient:
    """UserService's GetUser, coalesced into BatchGetUsers and answered from the users this
    process keeps when it has them (`userd.client_cache`); RemovePushTarget as is."""

    def __init__(
        self,
        stub: UserServiceAsyncStub,
        *,
        max_batch: int,
        max_running: int,
        kept: LocalUsers | None = None,
    ) -> None:
        async def get(
            request: user_pb2.GetUserRequest, timeout: float | None
        ) -> user_pb2.GetUserResponse:
            return await stub.GetUser(request, timeout=timeout)

        async def get_many(
            requests: list[user_pb2.GetUserRequest], timeout: float | None
        ) -> Sequence[user_pb2.GetUserResponse | common_pb2.ItemError]:
            canonical = [_uuid(r.id) for r in requests]
            ids = sorted({c for c in canonical if c})
            found: dict[str, user_pb2.User] = {}
            if ids:
                answer = await stub.BatchGetUsers(
                    user_pb2.BatchGetUsersRequest(ids=ids), timeout=timeout
                )
                found = {u.id: u for u in answer.users}
            outcomes: list[user_pb2.GetUserResponse | common_pb2.ItemError] = []
            for request, user_id in zip(requests, canonical, strict=True):
                if not user_id:  # not a UUID: userd's own answer names the problem
                    outcomes.append(await get(request, timeout))
                elif user_id in found:
                    outcomes.append(user_pb2.GetUserResponse(user=found[user_id]))
                else:
                    outcomes.append(
                        common_pb2.ItemError(
                            code=grpc.StatusCode.NOT_FOUND.value[0], message=f"no user {user_id}"
                        )
                    )
            return outcomes

        self._kept = kept
        self._get = Coalescer(
            single=get, batch=get_many, max_batch=max_batch, max_running=max_running
        )
        self.RemovePushTarget = stub.RemovePushTarget

    async def GetUser(
        self, request: user_pb2.GetUserRequest, *, timeout: float | None = None
    ) -> user_pb2.GetUserResponse:
        if self._kept is None:
            return await self._get(request, timeout=timeout)

        async def fetch() -> user_pb2.User:
            return (await self._get(request, timeout=timeout)).user

        return user_pb2.GetUserResponse(user=await self._kept.fetch(request.id, fetch))


def _uuid(value: str) -> str:
    """The id as userd spells it, or "" when it is no UUID."""
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return ""
