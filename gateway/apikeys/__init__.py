"""API keys: stored hashed, each belonging to a client, with least-privilege scopes;
managed by a CLI and the admin routes."""

from gateway.apikeys.admin import ApiKeys
from gateway.apikeys.authenticator import Authenticator
from gateway.apikeys.scopes import Principal, Scope
from gateway.apikeys.service import ApiKey

__all__ = ["ApiKey", "ApiKeys", "Authenticator", "Principal", "Scope"]
