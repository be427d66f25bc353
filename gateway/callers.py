"""Who calls the gateway's gRPC services, from the call's metadata (the service token every
mesh call carries is checked before, by mesh's token interceptor).

An API key in metadata `x-herald-api-key` makes the call the key's, with its client and
scopes, exactly as on the REST edge. Without one, an internal service names the client it
acts for in `x-herald-client-id` (default "internal") and may send and read that client's
notifications and manage its status callback endpoints, nothing else: the service token
vouches for the service, the client id only scopes what it sees. So what needs `admin`
(the suppression list, another client's callbacks) needs a key.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import grpc

from gateway.apikeys import Authenticator
from gateway.apikeys.scopes import CLIENT_ID, CLIENT_ID_RULE, Principal, Scope
from mesh.errors import InvalidArgument, PermissionDenied, Unauthenticated
from mesh.interceptors import CLIENT_HEADER

API_KEY_HEADER = "x-herald-api-key"
INTERNAL_CLIENT = "internal"
# What an internal service may do for the client it names. The mesh's services send that
# client's notifications, so they may also say where its status changes are posted.
SERVICE_SCOPES = frozenset(
    {Scope.NOTIFICATIONS_SEND, Scope.NOTIFICATIONS_READ, Scope.CALLBACKS_WRITE}
)

Context = grpc.aio.ServicerContext[Any, Any]


def metadata_of(context: Context) -> dict[str, str]:
    """The call's metadata as text."""
    return {
        key: value if isinstance(value, str) else value.decode()
        for key, value in context.invocation_metadata() or ()
    }


async def principal_of(metadata: Mapping[str, str], authenticator: Authenticator) -> Principal:
    """The caller: its API key's principal, else the internal service's named client."""
    token = metadata.get(API_KEY_HEADER)
    client_id = metadata.get(CLIENT_HEADER) or INTERNAL_CLIENT
    if token is not None:
        key = await authenticator.authenticate(token)
        if key is None:
            raise Unauthenticated(f"{API_KEY_HEADER}: not a live API key")
        if CLIENT_HEADER in metadata and client_id != key.client_id:
            raise PermissionDenied(f"{CLIENT_HEADER} names another client than the API key's")
        return key.principal
    if not CLIENT_ID.match(client_id):
        raise InvalidArgument.field(CLIENT_HEADER, f"must be {CLIENT_ID_RULE}")
    return Principal(client_id=client_id, scopes=SERVICE_SCOPES, label=f"service:{client_id}")


async def principal_in(context: Context, authenticator: Authenticator) -> Principal:
    """The caller of this call (`principal_of` its metadata)."""
    return await principal_of(metadata_of(context), authenticator)
