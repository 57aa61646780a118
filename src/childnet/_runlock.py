"""The run folder's lock (part of :mod:`childnet.runfolder`): one ``childnet run`` per folder at a time."""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

from .errors import ChildnetError

__all__ = ["RunLock", "stale_lock_message", "pid_alive"]

LOCK_FILE = ".lock"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True
    return True


class RunLock:
    """An exclusive lock on a run folder: ``out/.lock``, held with ``flock`` and holding the PID and host.

    The kernel drops a ``flock`` when its process dies, however it dies, so a lock file left by a killed run
    is free and is taken over (and :attr:`took_over` says whose it was). A held lock refuses at once.
    """

    def __init__(self, out: str | Path):
        self.path = Path(out) / LOCK_FILE
        self.took_over: dict | None = None
        self._fd: int | None = None

    def acquire(self) -> "RunLock":
        import fcntl

        for _ in range(10):  # retried when the file was replaced between open and flock
            try:  # never through a symlink: truncating it would destroy the file it points to
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
            except OSError as err:
                if self.path.is_symlink() or self.path.is_dir():
                    raise ChildnetError(f"{self.path} is a {'symlink' if self.path.is_symlink() else 'folder'}, "
                                        "not childnet's lock file; it is left as it is: remove it, or choose "
                                        "another --out folder") from None
                raise ChildnetError(f"cannot create the lock file {self.path}: {err.strerror or err}") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_lock(fd)
                os.close(fd)
                raise ChildnetError(
                    f"{self.path.parent} is in use by another `childnet run` (process {holder.get('pid', '?')} on "
                    f"{holder.get('host', '?')}, started {holder.get('started', '?')}); wait for it to finish or "
                    "choose another --out folder") from None
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if not same:
                os.close(fd)
                continue
            previous = _read_lock(fd)
            if previous:
                self.took_over = previous
            record = {"pid": os.getpid(), "host": socket.gethostname(),
                      "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(record).encode(), 0)
            os.fsync(fd)
            self._fd = fd
            return self
        raise ChildnetError(f"could not lock {self.path}: it keeps being replaced by another process")

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)  # while still holding it: a waiting run re-checks the inode
        except OSError:
            pass
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _read_lock(fd: int) -> dict:
    try:
        data = json.loads(os.pread(fd, 4096, 0).decode("utf-8") or "{}")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {"pid": "?", "host": "?", "note": "unreadable lock file"}
    return data if isinstance(data, dict) else {"pid": "?", "host": "?"}


def stale_lock_message(out: Path, previous: dict) -> str:
    """What the CLI says when it takes over a dead run's lock."""
    pid, host = previous.get("pid", "?"), previous.get("host", "?")
    alive = isinstance(pid, int) and host == socket.gethostname() and pid_alive(pid)
    state = "which no longer holds it" if alive else "which is no longer running"
    return f"took over the stale lock of {out} left by process {pid} on {host} ({state})"
