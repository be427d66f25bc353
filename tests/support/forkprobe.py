"""A process for tests/test_forkserver.py: `python -m tests.support.forkprobe ACTION [N]`
prints its arguments and environment, then exits with N (`exit`) or waits (`wait`)."""

from __future__ import annotations

import json
import os
import signal
import sys

if __name__ == "__main__":
    print(json.dumps({"argv": sys.argv[1:], "env": dict(os.environ), "cwd": os.getcwd()}))
    if sys.argv[1] == "exit":
        sys.exit(int(sys.argv[2]))
    if sys.argv[1] == "fail":
        raise RuntimeError("the probe failed")
    while True:  # "wait": until a signal ends it
        signal.pause()
