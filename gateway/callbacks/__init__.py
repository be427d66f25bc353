"""Telling the caller: status callbacks to each client's endpoints (`endpoints`,
`dispatcher`, the body in `model`), and the watches behind gRPC's WatchNotification."""
