"""Fault injection for childnet's own tests — never set in normal use.

The tests need failures a user meets but a test cannot cause on demand: a worker killed by the kernel
(out of memory) and a full disk. ``CHILDNET_TEST_FAULTS`` holds ``;``-separated ``point=target`` items:

- ``kill_worker=<unit key>``: the process running that unit kills itself with SIGKILL as the unit starts;
- ``disk_full=<file name>``: writing that file (``results.jsonl``, ``report.md``, ``model.safetensors`` …)
  fails with ``OSError(ENOSPC)`` half-way.

Unset (always, outside tests), :func:`check` does nothing.
"""

from __future__ import annotations

import errno
import os
import signal

__all__ = ["check"]

ENV = "CHILDNET_TEST_FAULTS"


def check(point: str, target: str) -> None:
    """Trigger the fault ``point`` if ``CHILDNET_TEST_FAULTS`` asks for it at ``target``."""
    spec = os.environ.get(ENV)
    if not spec:
        return
    for item in spec.split(";"):
        name, _, want = item.partition("=")
        if name.strip() != point or want.strip() != target:
            continue
        if point == "kill_worker":
            os.kill(os.getpid(), signal.SIGKILL)
        if point == "disk_full":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), target)
