"""What the console's pages call: the gateway's domain objects and the gRPC backends,
gathered once at start-up and handed to every page."""

from __future__ import annotations

from dataclasses import dataclass

from console.sessions import Sessions
from gateway.apikeys import ApiKeys
from gateway.http.backends import Backends
from gateway.notifications.inbox import SandboxInbox
from gateway.notifications.service import Notifications
from gateway.providers.stats import ProviderStats
from gateway.receipts.suppressions import SuppressionList


@dataclass(frozen=True)
class Services:
    notifications: Notifications
    keys: ApiKeys
    backends: Backends
    providers: ProviderStats
    inbox: SandboxInbox
    suppressions: SuppressionList
    sessions: Sessions
    bulk_retry_max: int
    # Cookies are Secure over https, and always when this is set (TLS ended at a proxy).
    secure_cookie: bool = False
