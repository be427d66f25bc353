"""herald.v1.SuppressionService over gRPC: protobuf in, a `SuppressionList` call, protobuf
out; the REST edge's `/api/v1/suppressions` is the other door to the same list.

Every call needs `admin`, so an API key (`gateway.callers`): an internal service without
one is refused (PERMISSION_DENIED) before the request is read. A removal is recorded as
the key's (its label), as on the REST edge.
"""

from __future__ import annotations

import grpc

from gateway.apikeys import Authenticator
from gateway.apikeys.scopes import Principal, Scope
from gateway.callers import Context, principal_in
from gateway.notifications.protos import parse_uuid, timestamp
from gateway.receipts.suppressions import SuppressionList
from gateway.store.suppressions import Suppression
from gateway.wire import CHANNEL_NAMES
from herald.v1 import common_pb2, suppression_pb2, suppression_pb2_grpc
from mesh.errors import InvalidArgument
from mesh.runtime import GrpcService

SERVICE_NAME = suppression_pb2.DESCRIPTOR.services_by_name["SuppressionService"].full_name


def channel_name(number: int) -> str | None:
    """A Channel filter as the domain names it (None: every channel)."""
    if number == common_pb2.CHANNEL_UNSPECIFIED:
        return None
    if number not in CHANNEL_NAMES:
        raise InvalidArgument.field("channel", "unknown channel")
    return CHANNEL_NAMES[number]


def suppression_to_proto(entry: Suppression) -> suppression_pb2.Suppression:
    return suppression_pb2.Suppression(
        id=str(entry.id),
        channel=entry.channel,  # type: ignore[arg-type]
        contact=entry.contact,
        reason=entry.reason,
        detail=entry.detail,
        provider=entry.provider,
        notification_id=str(entry.notification_id) if entry.notification_id else "",
        create_time=timestamp(entry.create_time),
        remove_time=timestamp(entry.remove_time),
        removed_by=entry.removed_by,
        remove_reason=entry.remove_reason,
    )


class SuppressionServicer(suppression_pb2_grpc.SuppressionServiceServicer):
    """Errors are `mesh.errors` exceptions, mapped to status codes by the interceptor."""

    def __init__(self, entries: SuppressionList, authenticator: Authenticator) -> None:
        self._entries = entries
        self._authenticator = authenticator

    async def _admin(self, context: Context) -> Principal:
        principal = await principal_in(context, self._authenticator)
        principal.require(Scope.ADMIN)
        return principal

    async def ListSuppressions(
        self, request: suppression_pb2.ListSuppressionsRequest, context: Context
    ) -> suppression_pb2.ListSuppressionsResponse:
        await self._admin(context)
        page = await self._entries.list(
            channel=channel_name(request.channel),
            contact=request.contact or None,
            include_removed=request.include_removed,
            page_size=request.page_size,
            page_token=request.page_token,
        )
        return suppression_pb2.ListSuppressionsResponse(
            suppressions=[suppression_to_proto(e) for e in page.entries],
            next_page_token=page.next_page_token,
        )

    async def GetSuppression(
        self, request: suppression_pb2.GetSuppressionRequest, context: Context
    ) -> suppression_pb2.GetSuppressionResponse:
        await self._admin(context)
        entry = await self._entries.get(parse_uuid(request.id, "id"))
        return suppression_pb2.GetSuppressionResponse(suppression=suppression_to_proto(entry))

    async def RemoveSuppression(
        self, request: suppression_pb2.RemoveSuppressionRequest, context: Context
    ) -> suppression_pb2.RemoveSuppressionResponse:
        principal = await self._admin(context)
        lifted = await self._entries.remove(
            parse_uuid(request.id, "id"), removed_by=principal.label, reason=request.reason
        )
        return suppression_pb2.RemoveSuppressionResponse(suppression=suppression_to_proto(lifted))


def service(servicer: SuppressionServicer) -> GrpcService:
    """The servicer as the runtime mounts it."""

    def register(server: grpc.aio.Server) -> None:
        suppression_pb2_grpc.add_SuppressionServiceServicer_to_server(servicer, server)

    return GrpcService(SERVICE_NAME, register)
