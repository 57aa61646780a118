"""Local executors of units: in this process, or on worker processes that survive each other's death.

An executor takes the pending payloads and a ``record(rec)`` callback, calls ``run_unit(payload)`` (in
:mod:`childnet.runner`) once per payload somewhere, and hands every resulting record to ``record`` in the
main process as it arrives. ``record`` may raise (a full disk): the executor then stops its workers and
lets the exception through. Another executor (a cluster) is a sibling function with the same shape.

Why not :class:`concurrent.futures.ProcessPoolExecutor`: when one of its workers dies (SIGKILL, the kernel's
out-of-memory killer) the whole pool breaks and every queued unit fails with ``BrokenProcessPool``, without
saying which unit the dead worker held. Here each worker has its own pipe and runs one unit at a time, so a
dead worker fails exactly its unit (recorded with the signal), is replaced, and the others go on.

Workers are spawned (not forked: forking a process that already ran torch's thread pool can deadlock), run
one torch thread each, ignore Ctrl-C (the main process decides and stops them), and die with the main
process: on Linux the kernel sends them SIGKILL when it dies (``PR_SET_PDEATHSIG``); elsewhere a thread
watches the parent PID.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time
from collections import deque
from multiprocessing.connection import wait
from typing import Callable

__all__ = ["run_inline", "run_processes", "died_record"]

#: Key of a worker's message that carries a running unit's progress, not its record.
PROGRESS = "__progress__"

Record = Callable[[dict], None]
Follow = Callable[[dict], list]
Note = Callable[[dict], None]


def run_inline(payloads: list[dict], record: Record, follow: Follow | None = None, note: Note | None = None) -> None:
    """Run every unit in this process, one after the other.

    ``follow(rec)``, called after ``record(rec)``, returns units that this one released (a pipeline's next
    stage, :mod:`childnet.pipeline`); they join the queue. ``note(msg)``: a running unit's progress
    (``{"unit", "done", "total", "candidate"?, "candidates"?}``).
    """
    from ._unit import run_unit

    queue = deque(payloads)
    while queue:
        rec = run_unit(queue.popleft(), report=note)
        record(rec)
        if follow is not None:
            queue.extend(follow(rec))


def died_record(payload: dict, exitcode: int | None) -> dict:
    """The record of a unit whose worker process died while running it."""
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = "unknown signal"
        how = f"signal {-exitcode}, {name}"
        hint = " — killed, or out of memory" if -exitcode == signal.SIGKILL else ""
    else:
        how, hint = f"exit code {exitcode}", ""
    setting = payload["setting"]
    return {"unit": payload["key"], "setting": setting["id"], "overrides": setting["overrides"],
            "method": payload.get("method"), "label": payload["label"], "seed": payload["seed"],
            "status": "failed", "error_kind": "worker_died", "wall_time_s": None,
            "error": f"worker process died ({how}){hint}; run the same command again to retry this unit"}


def _die_with_parent(parent_pid: int) -> None:
    """Make sure this worker does not outlive the main process (no orphan writing unrecorded children)."""
    import ctypes
    import sys
    import threading

    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(1.0)
            if os.getppid() != parent_pid:
                os._exit(1)

    threading.Thread(target=watch, daemon=True, name="childnet-parent-watch").start()


def _worker_main(conn, threads: int, cache: str | None, parent_pid: int, progress: bool = False) -> None:
    def report(msg: dict) -> None:  # a running unit's progress (the main process tells it from a record)
        conn.send({PROGRESS: msg})

    _die_with_parent(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if cache:
        os.environ["CHILDNET_CACHE"] = cache
    import torch

    from . import _faults
    from ._unit import run_unit

    torch.set_num_threads(threads)
    while True:
        try:
            payload = conn.recv()
        except (EOFError, OSError):
            return
        if payload is None:
            return
        _faults.check("kill_worker", payload["key"])
        rec = run_unit(payload, report=report if progress else None)
        try:
            conn.send(rec)
        except (BrokenPipeError, OSError):
            return


class _Worker:
    def __init__(self, ctx, progress: bool = False):
        self.conn, child_conn = ctx.Pipe()
        self.progress = progress  # send a running unit's progress (someone listens)
        self.proc = ctx.Process(target=_worker_main, daemon=True, name="childnet-worker",
                                args=(child_conn, 1, os.environ.get("CHILDNET_CACHE"), os.getpid(), progress))
        self.proc.start()
        child_conn.close()
        self.payload: dict | None = None

    def give(self, payload: dict) -> bool:
        try:
            self.conn.send(payload)
        except (BrokenPipeError, OSError):
            return False
        self.payload = payload
        return True

    def stop(self, now: bool) -> None:
        if not now:
            try:
                self.conn.send(None)
            except (BrokenPipeError, OSError):
                pass
        elif self.proc.is_alive():
            self.proc.terminate()

    def join(self, timeout: float) -> None:
        self.proc.join(timeout)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(5)
        self.conn.close()


def run_processes(payloads: list[dict], record: Record, *, workers: int, follow: Follow | None = None,
                  note: Note | None = None) -> None:
    """Run the units on ``workers`` spawned processes; a worker that dies fails only the unit it held.

    ``follow(rec)``, called after ``record(rec)``, returns units this one released (they join the queue);
    with it, ``workers`` processes start even when fewer units are ready at first. ``note(msg)``: a running
    unit's progress, as :func:`run_inline`.

    On any exception (Ctrl-C, SIGTERM turned into an exception by the CLI, ``record`` failing) the workers
    are terminated at once: units in flight are lost (they were not finished), queued ones never start.
    """
    ctx = mp.get_context("spawn")
    queue = deque(payloads)
    pool: list[_Worker] = []
    clean = False
    try:
        pool = [_Worker(ctx, note is not None) for _ in range(workers if follow is not None else min(workers, len(payloads)))]
        while True:
            for i, w in enumerate(pool):
                if w.payload is None and queue:
                    pool[i] = _feed(ctx, w, queue)
            busy = [w for w in pool if w.payload is not None]
            if not busy:
                break
            ready = set(wait([w.conn for w in busy] + [w.proc.sentinel for w in busy]))
            for w in busy:
                if w.conn not in ready and w.proc.sentinel not in ready:
                    continue
                rec = _receive(w)
                if isinstance(rec, dict) and PROGRESS in rec:  # the unit is still running
                    try:
                        note(rec[PROGRESS])
                    except Exception:  # noqa: BLE001 - a display that fails never stops the run
                        pass
                    continue
                if rec is None:  # the worker died with this unit: it fails; the worker is replaced when fed
                    w.proc.join(5)
                    rec = died_record(w.payload, w.proc.exitcode)
                w.payload = None
                record(rec)
                if follow is not None:
                    queue.extend(follow(rec))
        clean = True
    finally:
        for w in pool:
            w.stop(now=not clean)
        for w in pool:
            w.join(timeout=10)


def _receive(w: _Worker) -> dict | None:
    """The worker's record, or None if it died (its pipe closed) before sending one."""
    try:
        if w.conn.poll():
            return w.conn.recv()
    except (EOFError, OSError):
        return None
    return None


def _feed(ctx, w: _Worker, queue: deque) -> _Worker:
    """Give the next queued payload to ``w``, replacing ``w`` by a fresh worker if it has died."""
    for _ in range(3):
        if not w.proc.is_alive():
            w.join(1)
            w = _Worker(ctx, w.progress)
        if w.give(queue[0]):
            queue.popleft()
            return w
    raise RuntimeError("could not start a worker process three times in a row")
