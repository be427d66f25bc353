"""Protobuf ⇄ JSON, one module per service; routes call these and nothing else converts."""
