"""Run an experiment: (setting, method, seed) units on a process pool, results appended atomically.

The run folder::

    experiment.json     the validated experiment
    results.jsonl       one line per finished unit (appended by the main process only, fsync'd)
    children/<setting>/<label>/seed<k>/   each child (model.safetensors, child.json, masks)
    report.md, report.html

Running the same command on the same folder skips units that already have an ``ok`` line, so a
killed or interrupted run resumes where it stopped; a half-written last line is cut off first.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import re
import time
import traceback
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

from .config import ExperimentConfig, Setting, load_experiment, parse_experiment, stable_hash
from .errors import ChildnetError, TrainingDiverged

__all__ = ["run", "RunResult", "Unit", "read_results", "plan_units"]


@dataclass(frozen=True)
class Unit:
    """One (setting, method label, seed) to derive and evaluate."""

    setting: str
    label: str
    seed: int

    @property
    def key(self) -> str:
        return f"{self.setting}/{self.label}/seed{self.seed}"


@dataclass
class RunResult:
    """What a run did."""

    out: Path
    finished: int = 0
    skipped: int = 0
    failed: list = field(default_factory=list)
    report: Any = None


def _slug(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=,+-]", "_", s)


def read_results(out: str | Path) -> list[dict]:
    """All parseable lines of ``results.jsonl`` (a truncated last line is ignored)."""
    path = Path(out) / "results.jsonl"
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def _repair_tail(path: Path) -> None:
    """Cut a half-written last line (a run killed mid-append) so new lines stay parseable."""
    if not path.exists() or path.stat().st_size == 0:
        return
    data = path.read_bytes()
    if not data.endswith(b"\n"):
        with open(path, "r+b") as fh:
            fh.truncate(data.rfind(b"\n") + 1)


def _append(path: Path, record: dict) -> None:
    line = json.dumps(record, default=str) + "\n"
    with open(path, "a") as fh:
        fh.write(line)
        fh.flush()
        os.fsync(fh.fileno())


def plan_units(cfg: ExperimentConfig) -> list[Unit]:
    return [Unit(s.id, m.label, seed) for s in cfg.settings() for m in cfg.methods for seed in range(cfg.seeds)]


def _prepare_out(out: Path, cfg: ExperimentConfig) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as err:
        raise ChildnetError(f"cannot write to the output folder {out}: {err.strerror or err}") from None
    ident = cfg.model_dump(exclude={"seeds", "source", "name"})
    exp = out / "experiment.json"
    if exp.exists():
        try:
            old = json.loads(exp.read_text())
        except json.JSONDecodeError:
            old = None
        if old is not None:
            old_ident = {k: v for k, v in old.items() if k not in ("seeds", "source", "name")}
            if stable_hash(old_ident) != stable_hash(ident):
                raise ChildnetError(
                    f"{out} holds the results of a different experiment; choose another --out folder "
                    "(or delete it) — results of different experiments are never mixed"
                )
    from .checkpoint import atomic_write_text

    atomic_write_text(exp, json.dumps(cfg.model_dump(), indent=2, default=str))


# ---------------------------------------------------------------- worker side


def _init_worker(threads: int, cache: str | None) -> None:
    import signal

    import torch

    # Ctrl-C reaches the whole process group: the main process decides (it stops the workers), so a
    # worker neither dies half-way through writing nor goes on with the queue.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(threads)
    if cache:
        os.environ["CHILDNET_CACHE"] = cache


@lru_cache(maxsize=4)
def _cached_task(spec_json: str):
    from .tasks.base import load_task

    return load_task(json.loads(spec_json))


@lru_cache(maxsize=2)
def _cached_parent(parent_json: str, task_json: str, device: str):
    from .parent import get_parent

    return get_parent(json.loads(parent_json), _cached_task(task_json), device=device)


def run_unit(payload: dict) -> dict:
    """Derive, evaluate and save one child; never raises (failures become a record)."""
    from .evaluate import evaluate
    from .evaluate.device import device_config_from
    from .methods.base import Context
    from .registry import METHODS

    cfg = parse_experiment(payload["experiment"])
    setting = Setting(**payload["setting"])
    spec = next(m for m in cfg.methods if m.label == payload["label"])
    record = {"unit": payload["key"], "setting": setting.id, "overrides": setting.overrides,
              "method": spec.name, "label": spec.label, "seed": payload["seed"]}
    t0 = time.perf_counter()
    try:
        task_json = json.dumps(cfg.task_for(setting), sort_keys=True)
        task = _cached_task(task_json)
        parent = _cached_parent(json.dumps(cfg.parent.model_dump(), sort_keys=True), task_json, payload["device"])
        mcfg = cfg.method_config(spec, setting)
        ctx = Context(seed=payload["seed"], device=payload["device"], executor=None)
        child = METHODS.get(spec.name).fn(parent, task, mcfg, ctx)
        evaluate(child, task, device=payload["device"], latency=cfg.evaluate.get("latency", True),
                 device_model=device_config_from(cfg.evaluate))
        child_dir = Path(payload["out"]) / "children" / _slug(setting.id) / _slug(spec.label) / f"seed{payload['seed']}"
        child.save(child_dir)
        record.update(status="ok", error=None, metrics=child.lineage.metrics, history=child.lineage.history,
                      child_dir=str(child_dir.relative_to(payload["out"])), parent=parent.card())
    except ChildnetError as err:  # bad config or data for this unit: the user can fix it
        record.update(status="failed", error=str(err), error_kind="user")
    except TrainingDiverged as err:
        record.update(status="failed", error=str(err), error_kind="diverged")
    except Exception as err:  # a bug: keep the traceback in the record, the run goes on
        record.update(status="failed", error=f"internal error: {type(err).__name__}: {err}",
                      error_kind="internal", traceback=traceback.format_exc())
    record["wall_time_s"] = round(time.perf_counter() - t0, 3)
    return record


# ---------------------------------------------------------------- main side


def _load(experiment) -> ExperimentConfig:
    if isinstance(experiment, ExperimentConfig):
        return experiment
    if isinstance(experiment, dict):
        return parse_experiment(experiment)
    return load_experiment(experiment)


def _train_parents(cfg: ExperimentConfig, device: str, log, progress_factory) -> dict[str, str]:
    """Train (or load from cache) each distinct parent once, in the main process, before fan-out.

    Returns the parent fingerprint of every setting id.
    """
    from .parent import get_parent
    from .tasks.base import load_task

    fingerprints: dict[str, str] = {}
    by_key: dict[str, str] = {}
    for s in cfg.settings():
        task_spec = cfg.task_for(s)
        key = stable_hash({"task": cfg.parent.task or task_spec, "parent": cfg.parent.model_dump()})
        if key not in by_key:
            task = load_task(task_spec)
            with progress_factory("parent") as cb:
                parent = get_parent(cfg.parent, task, device=device, log=log, progress=cb)
            log(f"parent: {parent.spec.get('name')} — test accuracy "
                f"{parent.metrics.get('accuracy', float('nan')):.4f}, "
                f"{parent.metrics.get('params', 0):,} parameters ({parent.source})")
            by_key[key] = parent.fingerprint
        fingerprints[s.id] = by_key[key]
    return fingerprints


def _check_same_parents(records: list[dict], fingerprints: dict[str, str], out: Path) -> None:
    """Refuse to resume when the parent is not the one the finished units were derived from."""
    for rec in records:
        want = fingerprints.get(rec.get("setting"))
        got = (rec.get("parent") or {}).get("fingerprint")
        if want and got and got != want:
            raise ChildnetError(
                f"the parent of {out} differs from the one its finished units were derived from (fingerprint "
                f"{got}, now {want}: did the data change, or was the parent cache cleared?); resume with the "
                "same data and parent cache (CHILDNET_CACHE) or start a new --out folder — children of different "
                "parents are never mixed")


def run(
    experiment,
    out: str | Path | None = None,
    *,
    workers: int | None = None,
    seeds: int | None = None,
    device: str = "cpu",
    report: bool = True,
    log: Callable[[str], None] = print,
    progress=None,
) -> RunResult:
    """Run every pending unit of ``experiment`` into ``out`` and write the report.

    Args:
        experiment: YAML path, raw dict or :class:`ExperimentConfig`.
        out: run folder (default ``runs/<name>``); re-using it resumes.
        workers: processes (default: CPU cores); 0 runs units in this process.
        seeds: override the experiment's number of seeds.
        device: torch device for training.
        report: write report.md / report.html at the end.
        log: receives one-line messages.
        progress: a :class:`childnet._progress.Progress`-like factory (the CLI passes rich bars).
    """
    from ._progress import NullProgress

    cfg = _load(experiment)
    if seeds is not None:
        if seeds < 1:
            raise ChildnetError(f"--seeds must be at least 1 (got {seeds})")
        cfg = cfg.model_copy(update={"seeds": seeds})
    out = Path(out or Path("runs") / _slug(cfg.name))
    workers = os.cpu_count() or 1 if workers is None else workers
    if workers < 0:
        raise ChildnetError(f"--workers must be 0 (in-process) or more (got {workers})")
    progress = progress or NullProgress()
    _prepare_out(out, cfg)
    results_path = out / "results.jsonl"
    _repair_tail(results_path)
    finished = [r for r in read_results(out) if r.get("status") == "ok"]
    done = {r["unit"] for r in finished}
    units = plan_units(cfg)
    pending = [u for u in units if u.key not in done]
    result = RunResult(out=out, skipped=len(units) - len(pending))
    if result.skipped:
        log(f"resuming: {result.skipped} of {len(units)} units already finished in {out}")
    if pending:
        _check_same_parents(finished, _train_parents(cfg, device, log, progress.epochs), out)
        _execute(cfg, pending, out, workers, device, results_path, result, log, progress)
    if report:
        result.report = _write_report(out, log)
    return result


def _payload(cfg: ExperimentConfig, unit: Unit, out: Path, device: str) -> dict:
    setting = next(s for s in cfg.settings() if s.id == unit.setting)
    raw = cfg.model_dump(exclude={"source"})
    raw["methods"] = [{"name": m["name"], "label": m["label"], **m["options"]} for m in raw["methods"]]
    return {"experiment": raw, "setting": setting.model_dump(), "label": unit.label, "seed": unit.seed,
            "key": unit.key, "out": str(out), "device": device}


def _execute(cfg, pending, out, workers, device, results_path, result, log, progress) -> None:
    payloads = [_payload(cfg, u, out, device) for u in pending]

    def record(rec: dict) -> None:
        _append(results_path, rec)
        if rec["status"] == "ok":
            result.finished += 1
        else:
            result.failed.append(rec)
            log(f"unit {rec['unit']} failed: {rec['error']}")

    with progress.units(len(payloads)) as advance:
        if workers == 0:
            for p in payloads:
                rec = run_unit(p)
                record(rec)
                advance(rec)
            return
        ctx = mp.get_context("spawn")
        pool = ProcessPoolExecutor(max_workers=min(workers, len(payloads)), mp_context=ctx,
                                   initializer=_init_worker, initargs=(1, os.environ.get("CHILDNET_CACHE")))
        try:
            futures = {pool.submit(run_unit, p) for p in payloads}
            while futures:
                finished, futures = wait(futures, return_when=FIRST_COMPLETED)
                for f in finished:
                    rec = f.result()
                    record(rec)
                    advance(rec)
        except BaseException:  # Ctrl-C or an error here: stop now; finished units are already appended
            workers_alive = list((getattr(pool, "_processes", None) or {}).values())
            pool.shutdown(wait=False, cancel_futures=True)
            for proc in workers_alive:  # units in flight are lost (they were not finished), queued ones never start
                proc.terminate()
            for proc in workers_alive:
                proc.join(timeout=10)
            raise
        pool.shutdown(wait=True)


def _write_report(out: Path, log):
    try:
        from .report import build_report
    except ImportError:  # pragma: no cover - report module missing
        return None
    paths = build_report(out)
    return paths
