"""Progress reporting: rich bars in the CLI, nothing in library calls by default."""

from __future__ import annotations

from contextlib import contextmanager

import os
import sys

__all__ = ["NullProgress", "RichProgress", "auto_epochs", "interactive"]


#: Bars shown right now (rich allows one live display at a time: an automatic bar never nests in one).
_ACTIVE = [0]


def interactive() -> bool:
    """True in the main process, with stderr a terminal, no bar already shown and outside a test run."""
    import multiprocessing

    try:
        tty = sys.stderr.isatty()
    except (AttributeError, ValueError):
        tty = False
    return (tty and "PYTEST_CURRENT_TEST" not in os.environ and not _ACTIVE[0]
            and multiprocessing.parent_process() is None)


@contextmanager
def auto_epochs(progress, desc: str):
    """The per-epoch callback to use: ``progress`` itself when it is callable; a rich bar on stderr when it is
    ``"auto"`` and the session is interactive; else ``None`` (quiet)."""
    if callable(progress):
        yield progress
    elif progress == "auto" and interactive():
        with RichProgress().epochs(desc) as cb:
            yield cb
    else:
        yield None


@contextmanager
def _counted():
    _ACTIVE[0] += 1
    try:
        yield
    finally:
        _ACTIVE[0] -= 1


class NullProgress:
    """No output."""

    @contextmanager
    def epochs(self, desc: str):
        yield None

    @contextmanager
    def units(self, total: int):
        yield lambda rec: None


class RichProgress(NullProgress):
    """A bar for parent training (epochs) and one for units, on a rich console."""

    def __init__(self, console=None):
        from rich.console import Console

        self.console = console or Console(stderr=True)

    def _bar(self):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), TextColumn("{task.fields[info]}"), console=self.console,
                        transient=False)

    @contextmanager
    def epochs(self, desc: str):
        bar = self._bar()
        task = None

        def cb(done, total, record):
            nonlocal task
            if task is None:
                task = bar.add_task(f"training {desc}", total=total, info="")
            acc = record.get("val_accuracy")
            bar.update(task, completed=done, info=f"val acc {acc:.3f}" if acc is not None else "")

        with bar, _counted():
            yield cb

    @contextmanager
    def units(self, total: int):
        bar = self._bar()
        with bar, _counted():
            task = bar.add_task("children", total=total, info="")

            def advance(rec):
                m = rec.get("metrics") or {}
                info = (f"{rec['unit']}: acc {m['accuracy']:.3f}" if rec.get("status") == "ok" and "accuracy" in m
                        else f"{rec['unit']}: {rec.get('status')}")
                bar.update(task, advance=1, info=info)

            def note(msg: dict) -> None:  # a running unit's progress (its epochs; its select candidate)
                parts = [f"candidate {msg['candidate']}/{msg['candidates']}"] if "candidate" in msg else []
                if isinstance(msg.get("member"), int):  # an ensemble: epochs of all members, counted together
                    parts.append(f"member {msg['member'] + 1}")
                parts.append(f"epoch {msg.get('done')}/{msg.get('total')}")
                bar.update(task, info=f"{msg.get('unit')}: {', '.join(parts)}")

            advance.note = note
            yield advance
