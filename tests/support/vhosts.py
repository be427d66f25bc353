"""The RabbitMQ vhosts a test process makes, with as few `rabbitmqctl` calls as it can.

Each call starts an Erlang VM: ~0.5 s and ~0.65 s of CPU, whatever it does. A run made
~80 of them (an add, a permission and a delete for each stack's vhost), about a tenth of
the run's CPU. So one `rabbitmqctl eval` makes a vhost and grants the test user on it, a
vhost a module is done with is only released, and the next add (or the run's clean-up)
deletes everything released so far in the same call.
"""

from __future__ import annotations

import re
import subprocess
import threading

ACTOR = "herald-tests"  # the acting user RabbitMQ logs for these changes
_NAME = re.compile(r"[A-Za-z0-9_.-]+\Z")  # nothing to escape in an Erlang binary
_released: list[str] = []
_lock = threading.Lock()  # stacks start from several threads


def _binary(text: str) -> str:
    if not _NAME.match(text):
        raise ValueError(f"not a test vhost name: {text!r}")
    return f'<<"{text}">>'


def _eval(expression: str) -> None:
    """Runs `expression` on the local node; raises (with its output) if it fails."""
    command = ["rabbitmqctl", "-q", "eval", expression]
    result = subprocess.run(command, check=False, capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise AssertionError(f"rabbitmqctl eval failed ({result.returncode}): {result.stdout}")


def _deletes(names: list[str]) -> str:
    # `catch`: one already gone (or never made) does not stop the others.
    listed = ", ".join(_binary(name) for name in names)
    return f"[catch rabbit_vhost:delete(V, {_binary(ACTOR)}) || V <- [{listed}]], "


def add(name: str, user: str) -> None:
    """Makes vhost `name` and grants `user` everything on it, deleting those released so
    far in the same call."""
    with _lock:
        released, _released[:] = list(_released), []
    vhost, everything = _binary(name), '<<".*">>'
    _eval(
        _deletes(released)
        + f"ok = rabbit_vhost:add({vhost}, {_binary(ACTOR)}), "
        + "ok = rabbit_auth_backend_internal:set_permissions("
        + f"{_binary(user)}, {vhost}, {everything}, {everything}, {everything}, "
        + f"{_binary(ACTOR)})."
    )


def release(name: str) -> None:
    """Marks `name` done with: the next add, or `drop_all`, deletes it."""
    with _lock:
        _released.append(name)


def drop_all(prefix: str) -> None:
    """Deletes every vhost whose name starts with `prefix` (released or not: a crashed
    test's too)."""
    with _lock:
        _released.clear()
    start = _binary(prefix)
    _eval(
        f"P = {start}, "
        + f"[catch rabbit_vhost:delete(V, {_binary(ACTOR)}) || V <- rabbit_vhost:list_names(), "
        + "binary:longest_common_prefix([V, P]) =:= byte_size(P)], ok."
    )
