"""A batch item's failure as `herald.v1.ItemError`: the code, message and field
violations the item would have had alone, so one call answers many items each its own way."""

from __future__ import annotations

import grpc

from herald.v1 import common_pb2
from mesh.errors import DomainError, InvalidArgument

_CODES = {code.value[0]: code for code in grpc.StatusCode}


def to_item_error(exc: DomainError) -> common_pb2.ItemError:
    """The ItemError of a domain error."""
    violations = exc.violations if isinstance(exc, InvalidArgument) else []
    return common_pb2.ItemError(
        code=exc.code.value[0],
        message=exc.message,
        field_violations=[
            common_pb2.FieldViolation(field=v.field, description=v.description) for v in violations
        ],
    )


def status_code(error: common_pb2.ItemError) -> grpc.StatusCode:
    """The item's gRPC status code (UNKNOWN for a number gRPC does not define)."""
    return _CODES.get(error.code, grpc.StatusCode.UNKNOWN)
