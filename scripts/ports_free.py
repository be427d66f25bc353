"""Refuses to start Herald when one of its ports already answers (`make up` runs it first).

Every Herald server binds with SO_REUSEPORT (so that `make up GATEWAYS=N` can share the
gateway's ports), which would let a second `make up` start beside a running one and share
its ports silently: requests would go to either copy. The ports are read from the
services' own settings (their variables and defaults), with `.env` applied over the
environment as the supervisor (scripts/supervise.py) does for the processes it starts.

    python -m scripts.ports_free   # exit 1, naming each taken port and its variable
"""

from __future__ import annotations

import os
import sys

from dotenv import dotenv_values

from deliveryd.settings import DeliverydSettings
from gateway.callbacks.settings import CallbacksSettings
from gateway.settings import GatewaySettings
from mesh.probe import accepts
from mesh.settings import CommonSettings, load_settings
from templated.settings import TemplatedSettings
from userd.settings import UserdSettings

SERVICES: tuple[type[CommonSettings], ...] = (
    GatewaySettings,
    CallbacksSettings,
    UserdSettings,
    TemplatedSettings,
    DeliverydSettings,
)
# The settings fields that are ports a Herald process listens on.
LISTENS = ("grpc_port", "http_port", "metrics_port")


def ports() -> dict[str, int]:
    """Every port Herald listens on, by the variable that sets it (current environment);
    a port set to 0 is not listened on."""
    found: dict[str, int] = {}
    for cls in SERVICES:
        settings = load_settings(cls)
        for name, info in cls.model_fields.items():
            port = getattr(settings, name)
            if name.endswith(LISTENS) and isinstance(info.validation_alias, str) and port:
                found[info.validation_alias] = port
    return found


def main() -> int:
    os.environ.update({k: v for k, v in dotenv_values(".env").items() if v is not None})
    host = load_settings(GatewaySettings).host
    host = "127.0.0.1" if host in ("0.0.0.0", "") else host
    taken = [f"{port} ({name})" for name, port in sorted(ports().items()) if accepts(host, port)]
    if taken:
        sys.stderr.write(
            f"Herald's ports are in use: {' '.join(taken)}.\n"
            "Is Herald already running (another 'make up')? "
            "Stop it, or set those variables to free ports.\n"
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
