"""Telling the caller: status callbacks to each client's endpoints (`endpoints`, served by
the gateway; `dispatcher`, run by its own process, `process`; the body in `model`), and
the watches behind gRPC's WatchNotification."""
