"""A batch item's failure as `herald.v1.ItemError`: the code, message and field
violations the item would have had alone, so one call answers many items each its own way."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import grpc
import structlog

from herald.v1 import common_pb2
from mesh.errors import DomainError, InvalidArgument

log = structlog.get_logger(__name__)

Req = TypeVar("Req")
Resp = TypeVar("Resp")
Result = TypeVar("Result")
Item = TypeVar("Item")
Answer = TypeVar("Answer")
T = TypeVar("T")

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


async def each(
    requests: Sequence[Req], handle: Callable[[Req], Awaitable[Resp]], *, limit: int
) -> list[Resp | common_pb2.ItemError]:
    """Runs `handle` on every request of a batch call, concurrently, each on its own: its
    answer, or the ItemError of the domain error it raised (INTERNAL, logged, for any
    other exception). INVALID_ARGUMENT `requests` unless there are 1 to `limit`."""
    if not 1 <= len(requests) <= limit:
        raise InvalidArgument.field("requests", f"from 1 to {limit} items")

    async def one(request: Req) -> Resp | common_pb2.ItemError:
        try:
            return await handle(request)
        except DomainError as exc:
            return to_item_error(exc)
        except Exception:
            log.exception("unhandled error in a batch item")
            return common_pb2.ItemError(
                code=grpc.StatusCode.INTERNAL.value[0], message="internal error"
            )

    return list(await asyncio.gather(*(one(r) for r in requests)))


def parse_each(
    requests: Sequence[Req], parse: Callable[[Req], Result], *, limit: int
) -> list[Result | DomainError]:
    """Each request of a batch call parsed on its own: its domain value, or the domain
    error (e.g. INVALID_ARGUMENT naming the field) it alone would have had. INVALID_ARGUMENT
    `requests` unless there are 1 to `limit`."""
    if not 1 <= len(requests) <= limit:
        raise InvalidArgument.field("requests", f"from 1 to {limit} items")
    parsed: list[Result | DomainError] = []
    for request in requests:
        try:
            parsed.append(parse(request))
        except DomainError as exc:
            parsed.append(exc)
    return parsed


async def answer_each(
    parsed: Sequence[Item | DomainError],
    run_many: Callable[[list[Item]], Awaitable[Sequence[Answer | DomainError]]],
    respond: Callable[[Answer], Resp],
) -> list[Resp | common_pb2.ItemError]:
    """`run_many` over the items that parsed, in one call; each item's response, or the
    ItemError of its parse or run error, in the items' order."""
    valid = [item for item in parsed if not isinstance(item, DomainError)]
    answers = iter(await run_many(valid))
    outcomes: list[Resp | common_pb2.ItemError] = []
    for item in parsed:
        outcome = item if isinstance(item, DomainError) else next(answers)
        if isinstance(outcome, DomainError):
            outcomes.append(to_item_error(outcome))
        else:
            outcomes.append(respond(outcome))
    return outcomes


def indexed(
    outcomes: Sequence[Resp | common_pb2.ItemError], result: Callable[..., Result], answer: str
) -> list[Result]:
    """A batch response's results: `result(index=i, error=...)` for a failed item, else
    `result(index=i, <answer>=...)` (the field of the item's response)."""
    return [
        result(index=index, error=outcome)
        if isinstance(outcome, common_pb2.ItemError)
        else result(index=index, **{answer: outcome})
        for index, outcome in enumerate(outcomes)
    ]


def domain_outcome(answer: T | BaseException) -> T | DomainError:
    """A gathered answer: the value, or the domain error it raised (others propagate)."""
    if isinstance(answer, DomainError):
        return answer
    if isinstance(answer, BaseException):
        raise answer
    return answer
