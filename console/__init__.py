"""Herald's operator console: server-rendered pages at /console/ over the gateway's own
domain (in process) and userd and templated (over the gateway's gRPC channels).

`create_console` builds the ASGI app the gateway mounts; docs/console.md says why it runs
inside the gateway process and how signing in, sessions and CSRF work.
"""

from console.app import create_console

__all__ = ["create_console"]
