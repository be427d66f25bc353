"""Fake provider servers that speak each provider's API closely enough for the real SDKs."""
