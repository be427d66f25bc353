"""The REST edge: HTTP `/api/v1` translated to gRPC calls."""
