"""Tests of the gateway's gRPC core: NotificationService, StatusService, the outbox."""
