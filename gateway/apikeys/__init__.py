"""API keys of the REST edge: stored hashed, with a name and scopes, managed by a CLI."""

from gateway.apikeys.service import ApiKey, Authenticator, Scope

__all__ = ["ApiKey", "Authenticator", "Scope"]
