"""The run folder's format, owned here: its layout, the lock, appending and reading results, repair.

A run folder (written by ``childnet run``, read by the report and by ``childnet diversity``)::

    experiment.json          the validated experiment (a folder holds one experiment)
    results.jsonl            one JSON line per finished unit, appended by the main process only, fsync'd;
                             a unit may appear again (a failed unit retried): the last line wins
    results.rejected.jsonl   lines set aside on resume because they were not valid results
    .lock                    held (flock) by the ``childnet run`` that is using the folder; holds its PID and host
    .parents/                a parent trained by this run that the parent cache could not keep (handed to workers)
    children/<setting>/<label>/seed<k>/   each child (model.safetensors, child.json, masks)
    report.md, report.html, report_files/
    diversity/               ``childnet diversity``'s figures and diversity.json

Every file is written through a temporary (``.tmp-*``) renamed into place; a run that holds the lock removes
temporaries a killed run left behind. The lock itself is in :mod:`childnet._runlock`. Nothing here imports
torch or the rest of childnet (except errors), so config, runner, report and evaluate can all use it.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import socket
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from ._base import check_field_types, stable_hash
from ._runlock import LOCK_FILE, RunLock, pid_alive, stale_lock_message
from .errors import ChildnetError

__all__ = [
    "CHILDREN_DIR", "EXPERIMENT_FILE", "LOCK_FILE", "REJECTED_FILE", "RESULTS_FILE", "PLOT_DIR", "REPORT_MD",
    "REPORT_HTML", "DIVERSITY_DIR", "MAX_LABEL_LENGTH", "BadLine", "DiskFullError", "RunFolder", "RunLock", "append_record",
    "check_folder_names", "child_dir", "child_dirs", "disk_error", "folder_name", "load_run_folder",
    "check_run_folder", "read_experiment", "read_results", "remove_stale_temporaries", "repair_results", "stale_lock_message",
    "write_atomic",
]

EXPERIMENT_FILE = "experiment.json"
RESULTS_FILE = "results.jsonl"
REJECTED_FILE = "results.rejected.jsonl"
HANDOFF_DIR = ".parents"
CHILDREN_DIR = "children"
REPORT_MD = "report.md"
REPORT_HTML = "report.html"
PLOT_DIR = "report_files"
DIVERSITY_DIR = "diversity"
TMP_PREFIX = ".tmp-"

#: Longest method label (and, doubled, setting id): folder names stay far below the usual 255-byte limit.
MAX_LABEL_LENGTH = 100

#: Keys (and types) every line of results.jsonl has; a line without them is not a result.
RESULT_KEYS = {"unit": str, "status": str, "setting": str, "label": str, "seed": int}


# ---------------------------------------------------------------- layout


def folder_name(name: str) -> str:
    """The folder a label or setting id is saved under: characters other than ``A-Za-z0-9_.=,+-`` become ``_``."""
    return re.sub(r"[^A-Za-z0-9_.=,+-]", "_", str(name))


def child_dir(out: str | Path, setting: str, label: str, seed: int) -> Path:
    """``out/children/<setting>/<label>/seed<k>``."""
    return Path(out) / CHILDREN_DIR / folder_name(setting) / folder_name(label) / f"seed{seed}"


def child_dirs(out: str | Path) -> list[tuple[str, Path]]:
    """Every saved child of a run folder as ``(<setting>/<label>/seed<k>, folder)``, sorted."""
    root = Path(out) / CHILDREN_DIR
    found = sorted(p.parent for p in root.glob("*/*/seed*/child.json")) if root.is_dir() else []
    return [(str(p.relative_to(root)), p) for p in found if not p.name.startswith(TMP_PREFIX)]


def check_folder_names(labels: list[str], setting_ids: list[str], sweep: dict) -> list[str]:
    """Problems that would make two units share a folder (or escape the run folder); one line each.

    Called while an experiment is validated, so a clash fails before any training: labels that map to the
    same folder (``s/1`` and ``s_1``), labels that are not a folder name (``..``), labels longer than
    :data:`MAX_LABEL_LENGTH`, and sweeps with a repeated value (``[4, 4]``).
    """
    problems = []
    for i, label in enumerate(labels):
        if len(label) > MAX_LABEL_LENGTH:
            problems.append(f"methods[{i}].label: {len(label)} characters ('{label[:20]}…'); a label is a folder "
                            f"name and may have at most {MAX_LABEL_LENGTH}")
        elif folder_name(label).strip(".") == "":
            problems.append(f"methods[{i}].label: '{label}' is not a usable folder name; use letters, digits "
                            "or _.=,+- (not only dots)")
    problems += _clashes(labels, "methods: labels", "label")
    for key, values in (sweep or {}).items():
        if not isinstance(values, list):
            continue
        seen: list = []
        for v in values:
            if any(v == s and type(v) is type(s) for s in seen):
                problems.append(f"sweep.{key}: the value {v!r} appears more than once; each setting must differ")
                break
            seen.append(v)
    if not any(p.startswith("sweep.") for p in problems):
        problems += _clashes(setting_ids, "sweep: settings", "setting", limit=2 * MAX_LABEL_LENGTH)
    return problems


def _clashes(names: list[str], what: str, kind: str, limit: int | None = None) -> list[str]:
    problems, by_folder = [], {}
    for name in names:
        if limit is not None and len(name) > limit:
            problems.append(f"{what} '{name[:30]}…' is {len(name)} characters; a {kind} is a folder name and may "
                            f"have at most {limit} (use shorter sweep values)")
        by_folder.setdefault(folder_name(name), []).append(name)
    for folder, group in by_folder.items():
        if len(group) > 1:
            problems.append(f"{what} {' and '.join(repr(n) for n in group)} would share the folder '{folder}' "
                            f"(characters outside A-Za-z0-9_.=,+- become _); give each {kind} a distinct name")
    return problems


# ---------------------------------------------------------------- writing


class DiskFullError(ChildnetError):
    """A write failed because the disk (or the quota) is full; the run stops, finished units are kept."""


def disk_error(err: OSError, what: str) -> ChildnetError:
    """One sentence for a failed write: a full disk says so and how to go on."""
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        return DiskFullError(f"the disk is full: could not write {what} (No space left on device); free some "
                             "space and run the same command again — finished units are kept")
    return ChildnetError(f"could not write {what}: {err.strerror or err}")


def write_atomic(path: str | Path, data: bytes | str) -> None:
    """Write ``path`` via a temporary file renamed into place; on failure the temporary is removed."""
    from . import _faults

    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=TMP_PREFIX)
    try:
        os.chmod(tmp, 0o644)  # mkstemp makes 0600 files; results are meant to be shared
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.encode("utf-8") if isinstance(data, str) else data)
            _faults.check("disk_full", path.name)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def append_record(path: str | Path, record: dict) -> None:
    """Append one JSON line and fsync it; a failed write is cut off again, so the file stays whole.

    Raises:
        ChildnetError: the line could not be written (e.g. the disk is full).
    """
    from . import _faults

    path = Path(path)
    line = (json.dumps(record, default=str) + "\n").encode("utf-8")
    with open(path, "ab") as fh:
        size = fh.tell()
        try:
            fh.write(line[: len(line) // 2])
            _faults.check("disk_full", path.name)
            fh.write(line[len(line) // 2:])
            fh.flush()
            os.fsync(fh.fileno())
        except OSError as err:
            try:
                fh.truncate(size)
            except OSError:
                pass
            raise disk_error(err, f"{path}") from None


def check_run_folder(out: str | Path) -> None:
    """Refuse an ``--out`` that is a file, or a non-empty folder that holds no childnet run: a run would
    clean ``.tmp-*`` entries and write ``report.md`` among someone's files.

    A run folder has an ``experiment.json`` (or, if that was deleted, its ``results.jsonl`` or ``children/``).
    Hidden files the run never touches (``.gitkeep``, ``.DS_Store``), ``lost+found``, a lock and a temporary
    file left by a run killed while writing its first file do not make a folder someone else's.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ChildnetError(f"--out {out} is a file; name a folder for the run (a new or empty one)")
    if not out.is_dir() or any((out / name).exists() or (out / name).is_symlink()
                               for name in (EXPERIMENT_FILE, RESULTS_FILE, CHILDREN_DIR)):
        return
    from ._runlock import LOCK_FILE

    def ours_or_inert(p: Path) -> bool:
        if p.name.startswith(TMP_PREFIX):  # the run removes these: only a file a killed run left is ours
            return p.is_file() and not p.is_symlink()
        touched = p.name == HANDOFF_DIR or (p.name.startswith(".report.") and p.name.endswith(".tmp"))
        return p.name == LOCK_FILE or p.name == "lost+found" or (p.name.startswith(".") and not touched)

    others = sorted(p.name for p in out.iterdir() if not ours_or_inert(p))
    if others:
        shown = ", ".join(others[:5]) + (f", … ({len(others)} entries)" if len(others) > 5 else "")
        raise ChildnetError(f"{out} is not empty and holds no childnet run (no {EXPERIMENT_FILE}; it has {shown}); "
                            "childnet writes runs only into new, empty or its own folders: choose another --out")


def remove_stale_temporaries(out: str | Path) -> int:
    """Remove ``.tmp-*`` files and folders a killed run left in ``out`` (call while holding the lock)."""
    out = Path(out)
    stale = [p for p in out.glob(f"{TMP_PREFIX}*")] + list((out / PLOT_DIR).glob(f"{TMP_PREFIX}*"))
    stale += list((out / CHILDREN_DIR).glob(f"*/*/{TMP_PREFIX}*"))
    stale += list(out.glob(f".{REPORT_MD}.*.tmp")) + list(out.glob(f".{REPORT_HTML}.*.tmp"))  # older report temps
    if (out / HANDOFF_DIR).is_dir():
        stale.append(out / HANDOFF_DIR)
    for p in stale:
        shutil.rmtree(p, ignore_errors=True) if p.is_dir() and not p.is_symlink() else p.unlink(missing_ok=True)
    return len(stale)


def temporary_prefix() -> str:
    """``.tmp-<host>-<pid>-``: the prefix of a temporary in a folder shared by processes (the parent cache)."""
    return f"{TMP_PREFIX}{socket.gethostname()}-{os.getpid()}-"


def remove_dead_temporaries(folder: str | Path) -> None:
    """Remove temporaries named by :func:`temporary_prefix` whose process (on this host) is gone."""
    host = socket.gethostname()
    for p in Path(folder).glob(f"{TMP_PREFIX}{host}-*"):
        pid = p.name[len(TMP_PREFIX) + len(host) + 1:].split("-", 1)[0]
        if pid.isdigit() and not pid_alive(int(pid)):
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)


# ---------------------------------------------------------------- reading


@dataclass(frozen=True)
class BadLine:
    """A line of results.jsonl that is not a valid result: its 1-based number, why, and its raw bytes."""

    number: int
    reason: str
    raw: bytes


def _why_invalid(raw: bytes) -> tuple[dict | None, str | None]:
    try:
        obj = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        return None, "not UTF-8 text"
    except json.JSONDecodeError as err:
        return None, f"not JSON ({err.msg})"
    if not isinstance(obj, dict):
        return None, f"a JSON {type(obj).__name__}, not an object"
    for key, kind in RESULT_KEYS.items():
        if key not in obj:
            return None, f"the key '{key}' is missing"
        if not isinstance(obj[key], kind) or isinstance(obj[key], bool):
            return None, f"'{key}' is {obj[key]!r}, not a {kind.__name__}"
    for key in ("metrics", "overrides", "parent"):  # objects when present (the report reads into them)
        if obj.get(key) is not None and not isinstance(obj[key], dict):
            return None, f"'{key}' is a JSON {type(obj[key]).__name__}, not an object"
    return obj, None


def _results_path(out: Path) -> Path:
    path = out / RESULTS_FILE
    if path.is_symlink():
        raise ChildnetError(f"{path} is a symbolic link; childnet only appends to a regular file it owns. Replace "
                            "it by a copy of the file it points to, or choose another --out folder")
    if path.exists() and not path.is_file():
        raise ChildnetError(f"{path} is not a regular file; move it away or choose another --out folder")
    return path


def _scan(out: Path) -> list[tuple[int, bytes, dict | None, str | None]]:
    path = _results_path(out)
    if not path.exists():
        return []
    lines = []
    for number, raw in enumerate(path.read_bytes().split(b"\n"), start=1):
        if raw.strip():
            lines.append((number, raw, *_why_invalid(raw)))
    return lines


def read_results(out: str | Path) -> tuple[list[dict], list[BadLine]]:
    """Every valid line of ``out/results.jsonl`` in order, and the lines that are not valid results.

    Raises:
        ChildnetError: results.jsonl is a symbolic link or not a file.
    """
    lines = _scan(Path(out))
    return ([obj for _, _, obj, why in lines if why is None],
            [BadLine(number, why, raw) for number, raw, _, why in lines if why is not None])


def repair_results(out: str | Path, log: Callable[[str], None] = print) -> list[dict]:
    """Before a run appends: set every line that is not a valid result aside, say so, return the valid ones.

    A half-written last line (a run killed mid-append) and any other invalid line (non-UTF-8, a JSON list,
    a missing key) go to ``results.rejected.jsonl`` — never silently dropped — and each is named with its
    line number; the valid lines are kept byte for byte. Call while holding the run folder's lock.
    """
    out = Path(out)
    lines = _scan(out)
    path = out / RESULTS_FILE
    bad = [(number, raw, why) for number, raw, _, why in lines if why is not None]
    whole = not path.exists() or path.stat().st_size == 0 or path.read_bytes().endswith(b"\n")
    if bad:
        if (out / REJECTED_FILE).is_symlink() or (out / REJECTED_FILE).is_dir():
            raise ChildnetError(f"{out / REJECTED_FILE} is a symlink or a folder; childnet keeps rejected result "
                                "lines there and never writes through it: remove it, then run again")
        with open(out / REJECTED_FILE, "ab") as fh:
            for _, raw, _ in bad:
                fh.write(raw + b"\n")
            fh.flush()
            os.fsync(fh.fileno())
        for number, _, why in bad:
            log(f"{path} line {number} is not a valid result ({why}); moved to {REJECTED_FILE}")
    if bad or not whole:
        write_atomic(path, b"".join(raw + b"\n" for _, raw, _, why in lines if why is None))
    return [obj for _, _, obj, why in lines if why is None]


def experiment_identity(experiment: dict) -> str:
    """The hash that says whether two experiments give the same units (a validated experiment as a dict).

    Leaves out what does not change a unit's result: the name, the source file and the number of seeds
    (more seeds extend a run); an empty ``stages`` list is no stages (folders written before pipelines
    existed). The runner refuses a folder whose ``experiment.json`` has another identity; the reproduction
    export records it, so a result JSON can be checked against the current experiment file.
    """
    return stable_hash({k: v for k, v in experiment.items()
                        if k not in ("seeds", "source", "name") and not (k == "stages" and not v)})


def read_experiment(out: str | Path) -> dict | None:
    """``out/experiment.json`` as a dict, or ``None`` if there is none.

    Raises:
        ChildnetError: the file exists but is not a JSON object (it is never silently overwritten).
    """
    path = Path(out) / EXPERIMENT_FILE
    if not path.exists() and not path.is_symlink():
        return None
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        reason = getattr(err, "strerror", None) or str(err)
        raise ChildnetError(f"{path} is corrupt ({reason}), so this folder's experiment is unknown; it is not "
                            "overwritten: restore or delete it, or choose another --out folder") from None
    if not isinstance(data, dict):
        raise ChildnetError(f"{path} is corrupt (a JSON {type(data).__name__}, not an object); it is not "
                            "overwritten: restore or delete it, or choose another --out folder")
    return data


@dataclass
class RunFolder:
    """The contents of a run folder, as plain data.

    Attributes:
        path: the run folder.
        experiment: ``ExperimentConfig.model_dump()`` as written by the runner.
        units: one record per unit key (last line wins), in order of first appearance.
        skipped_lines: number of lines that are not valid results (e.g. a truncated last line).
    """

    path: Path
    experiment: dict[str, Any]
    units: list[dict[str, Any]] = field(default_factory=list)
    skipped_lines: int = 0


def last_per_unit(rows: Iterable[dict]) -> list[dict]:
    """One record per unit key, the last line winning, in the order of the winning lines."""
    by_unit: dict[str, dict] = {}
    for record in rows:
        by_unit.pop(record["unit"], None)
        by_unit[record["unit"]] = record
    return list(by_unit.values())


#: The shape of the fields a report reads from ``experiment.json`` (``ExperimentConfig.model_dump()``).
_EXPERIMENT_SHAPE = {"name": (str,), "task": (dict,), "parent": (dict,), "methods": (list,), "baseline": (str, type(None)),
                     "seeds": (int,), "metric": (str,), "sweep": (dict, type(None)), "evaluate": (dict,),
                     "stages": (list, type(None))}


def _check_experiment_shape(experiment: dict, where: Path) -> None:
    """Refuse a hand-edited ``experiment.json`` whose fields have the wrong type, before a report trips on it."""
    check_field_types(experiment, _EXPERIMENT_SHAPE, str(where))
    for key in ("methods", "stages"):
        items = experiment.get(key) or []
        check_field_types({f"{key}[{i}]": item for i, item in enumerate(items)},
                          {f"{key}[{i}]": (dict,) for i in range(len(items))}, str(where))
    for i, stage in enumerate(experiment.get("stages") or []):
        check_field_types({f"stages[{i}].name": stage.get("name"), f"stages[{i}].methods": stage.get("methods")},
                          {f"stages[{i}].name": (str,), f"stages[{i}].methods": (list,)}, str(where))


def load_run_folder(run_dir: str | Path) -> RunFolder:
    """Read ``run_dir`` for a report; raise :class:`ChildnetError` if it is not a run folder."""
    path = Path(run_dir)
    if not path.is_dir():
        raise ChildnetError(f"run folder not found: {path}")
    if not (path / EXPERIMENT_FILE).exists():
        raise ChildnetError(f"{path} is not a run folder: {EXPERIMENT_FILE} is missing "
                            "(a run folder is written by `childnet run EXP.yaml --out DIR`)")
    experiment = read_experiment(path)
    _check_experiment_shape(experiment, path / EXPERIMENT_FILE)
    rows, bad = read_results(path)
    return RunFolder(path=path, experiment=experiment, units=last_per_unit(rows), skipped_lines=len(bad))
