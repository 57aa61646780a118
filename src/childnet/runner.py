"""Run an experiment: (setting, method, seed) units on worker processes, results appended atomically.

The run folder's layout and format belong to :mod:`childnet.runfolder`. A run holds the folder's lock
from start to end, so two runs never write one folder.

Running the same command on the same folder skips units that already have an ``ok`` line, so a killed
or interrupted run resumes where it stopped; lines that are not valid results (a half-written last line)
are set aside first, with their line numbers.

The work is split in two so executors are interchangeable: :func:`childnet._unit.run_unit` turns one payload (plain
data) into one record and never raises; an executor (:func:`childnet._pool.run_processes`,
:func:`childnet._pool.run_inline`) runs ``run_unit`` on every pending payload and calls ``record(rec)`` in
this process once per finished unit.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from . import runfolder as rf
from .config import ExperimentConfig, load_experiment, parse_experiment, stable_hash
from ._unit import run_unit
from .errors import ChildnetError
from .plugins import ENV as PLUGINS_ENV
from .plugins import load_plugins
from .tasks.base import task_data

__all__ = ["run", "RunResult", "Unit", "read_results", "plan_units", "run_unit", "execute"]


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


def read_results(out: str | Path) -> list[dict]:
    """Every valid line of ``results.jsonl`` (lines that are not results are left out)."""
    return rf.read_results(out)[0]


def plan_units(cfg: ExperimentConfig) -> list[Unit]:
    return [Unit(s.id, m.label, seed) for s in cfg.settings() for m in cfg.methods for seed in range(cfg.seeds)]


def _with_child(out: Path, finished: list[dict], log, cfg: ExperimentConfig | None = None) -> list[dict]:
    """The finished records whose child folder is still whole (its card reads, its weights file has a valid
    header); a unit whose folder was deleted or damaged since is run again (its record alone is no child),
    said by name. In a pipeline, the later stages' units of that setting and seed are run again too: they
    derived from the child that is gone."""
    from .checkpoint import tensor_shapes
    from .child import read_card

    kept, lost = [], []
    for r in finished:
        folder = rf.child_dir(out, r["setting"], r["label"], r["seed"])
        try:
            read_card(folder)
            tensor_shapes(folder / "model.safetensors")
            kept.append(r)
        except ChildnetError:
            lost.append(r)
    if lost and cfg is not None and cfg.stages:
        from .pipeline import stage_of

        source = {st.name: st.source for st in cfg.stages}

        def stage(r):
            found = stage_of(cfg, r["label"])
            return found[0].name if found else None

        def after(name, gone):  # does stage `name` derive, through its sources, from stage `gone`?
            seen = set()
            while name in source and name not in seen:
                seen.add(name)
                name = source[name]
                if name == gone:
                    return True
            return False

        gone = {(r["setting"], r["seed"], stage(r)) for r in lost}
        downstream = [r for r in kept if any(r["setting"] == g[0] and r["seed"] == g[1] and after(stage(r), g[2])
                                             for g in gone)]
        kept = [r for r in kept if r not in downstream]
        lost += downstream
    if lost:
        shown = ", ".join(r["unit"] for r in lost[:5]) + (f", … ({len(lost)} units)" if len(lost) > 5 else "")
        log(f"{len(lost)} finished unit(s) lost their child folder (deleted or damaged since) or derive from one "
            f"that did: {shown}; they are run again")
    return kept


def _make_out(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=out, prefix=rf.TMP_PREFIX)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise ChildnetError(f"cannot write to the output folder {out}: {err.strerror or err}") from None


def _first_difference(old, new, path: str = "") -> str:
    """`` (first difference: methods[1].temperature was 4.0, now 2.0)`` between two experiments, or ``""``."""
    def walk(a, b, at):
        if isinstance(a, dict) and isinstance(b, dict):
            for k in [*a, *(k for k in b if k not in a)]:
                if at == "" and k in ("seeds", "source", "name"):
                    continue
                found = walk(a.get(k), b.get(k), f"{at}.{k}" if at else str(k))
                if found:
                    return found
            return None
        if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
            for i, (x, y) in enumerate(zip(a, b)):
                found = walk(x, y, f"{at}[{i}]")
                if found:
                    return found
            return None
        return None if a == b and type(a) is type(b) else (at, a, b)  # 2 and 2.0 give different identities

    def short(value) -> str:
        text = json.dumps(value, default=str)
        return text if len(text) <= 80 else text[:79] + "…"

    found = walk(old, new, path)
    if not found:
        return ""
    at, a, b = found
    numbers = not isinstance(a, bool) and not isinstance(b, bool)
    hint = "; an integer and a decimal count as different values: write it as before" if a == b and numbers else ""
    return f" (first difference: {at} was {short(a)}, now {short(b)}{hint})"


def _check_experiment(out: Path, cfg: ExperimentConfig, log=print) -> None:
    """Refuse a folder that holds another experiment's results (or a corrupt experiment.json); write ours.

    A folder whose run stopped before any unit was recorded (e.g. an unreachable cluster) holds no result:
    its experiment.json is replaced, with a line saying so.
    """
    old = rf.read_experiment(out)
    if old is not None:
        if rf.experiment_identity(old) != rf.experiment_identity(cfg.model_dump()):
            rows, bad = rf.read_results(out)
            if not rows and not bad and not (out / rf.CHILDREN_DIR).exists():
                log(f"{out} held another experiment but no result yet: its experiment.json is replaced")
            else:
                diff = _first_difference(old, json.loads(json.dumps(cfg.model_dump(), default=str)))
                raise ChildnetError(
                    f"{out} holds the results of a different experiment{diff}; choose another --out folder "
                    "(or delete it) — results of different experiments are never mixed"
                )
    try:
        rf.write_atomic(out / rf.EXPERIMENT_FILE, json.dumps(cfg.model_dump(), indent=2, default=str))
    except OSError as err:
        raise rf.disk_error(err, str(out / rf.EXPERIMENT_FILE)) from None


# ---------------------------------------------------------------- main side


def _load(experiment) -> ExperimentConfig:
    if isinstance(experiment, ExperimentConfig):
        return experiment
    if isinstance(experiment, dict):
        return parse_experiment(experiment)
    return load_experiment(experiment)


def _train_parents(cfg: ExperimentConfig, out: Path, device: str, log, progress_factory,
                   finished: list[dict] = ()) -> dict[str, dict]:
    """Train (or load from cache) each distinct parent once, in the main process, before fan-out.

    Returns, per setting id, what the units need to get the very same parent: its fingerprint, and — when
    the parent cache could not keep a parent trained here (read-only, full) — its weights, saved in the
    run folder for the workers, so that no worker trains a parent of its own.
    """
    from .checkpoint import save_tensors
    from .parent import get_parent

    handed: dict[str, dict] = {}
    by_key: dict[str, dict] = {}
    tasks = _check_settings(cfg)  # every setting's task against the metric and the methods, before any training
    hashes: dict[int, str] = {}
    _check_same_data(finished, {s.id: hashes.setdefault(id(tasks[s.id]), task_data(tasks[s.id]))
                                for s in cfg.settings()}, out)  # before a changed task retrains a parent
    for s in cfg.settings():
        task_spec = cfg.task_for(s)
        key = stable_hash({"task": cfg.parent.task or task_spec, "parent": cfg.parent.model_dump()})
        if key not in by_key:
            task = tasks[s.id]
            with progress_factory("parent") as cb:
                parent = get_parent(cfg.parent, task, device=device, log=log, progress=cb)
            log(f"parent: {parent.spec.get('name')} — test accuracy "
                f"{parent.metrics.get('accuracy', float('nan')):.4f}, "
                f"{parent.metrics.get('params', 0):,} parameters ({parent.source})")
            by_key[key] = {"fingerprint": parent.fingerprint}
            if parent.source == "trained" and not (parent.path and (Path(parent.path) / "model.safetensors").is_file()):
                weights = out / rf.HANDOFF_DIR / f"{parent.fingerprint}.safetensors"
                try:
                    weights.parent.mkdir(exist_ok=True)
                    save_tensors(parent.model.state_dict(), weights)
                except OSError as err:
                    raise rf.disk_error(err, f"the parent's weights for the workers ({weights})") from None
                log(f"the parent cache could not keep the parent; the workers load it from {weights}")
                by_key[key].update(weights=str(weights), source=parent.source, metrics=parent.metrics,
                                   history=parent.history)
        handed[s.id] = by_key[key]
    return handed




def _check_settings(cfg: ExperimentConfig) -> dict:
    """Load every setting's task and refuse, all problems at once, a metric it cannot compute (hr@10 on a
    classifier), a method that needs another kind of task (MANAS on images) and — with a parent trained on
    another task — a method whose use of the parent does not fit (:func:`check_parent_fits`). Returns the
    tasks by setting id."""
    from .evaluate.ranking import check_metric_fits
    from .methods.base import check_parent_fits, check_task_kind
    from .tasks.base import load_task

    ptask = load_task(cfg.parent.task) if cfg.parent.task is not None else None
    # a later stage's method learns from the incoming child, unless its teacher is the root parent
    later = {m.label for st in cfg.stages if st.source != "root" for m in st.methods if m.teacher != "root"}
    tasks, loaded, problems = {}, {}, []
    for s in cfg.settings():
        spec = cfg.task_for(s)
        key = json.dumps(spec, sort_keys=True, default=str)
        task = tasks[s.id] = loaded[key] = loaded.get(key) or load_task(spec)
        at = "" if s.id == "default" else f" ({s.id})"
        try:
            check_metric_fits(cfg.metric, task)
        except ChildnetError as err:
            problems.append(f"{err}{at}")
        for m in cfg.methods:
            try:
                check_task_kind(m.name, task)
                if ptask is not None and m.label not in later:
                    check_parent_fits(m.name, ptask, task)
            except ChildnetError as err:
                problems.append(f"methods[{m.label}]{at}: {err}")
    if problems:
        problems = list(dict.fromkeys(problems))
        raise ChildnetError(problems[0] if len(problems) == 1 else
                            f"{len(problems)} problems:\n" + "\n".join(f"  - {p}" for p in problems))
    return tasks


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


def _check_same_data(records: list[dict], data: dict[str, str], out: Path) -> None:
    """Refuse to resume when the task's data changed since the finished units were scored (a test split
    edited in place kept the parent and mixed scores on two test sets)."""
    for rec in records:
        want, got = data.get(rec.get("setting")), rec.get("task_data")
        if want and isinstance(got, str) and got != want:
            raise ChildnetError(
                f"the task's data changed since the finished units of {out} were scored (unit {rec.get('unit')}: "
                f"data {got}, now {want}); resume with the same data files, or start a new --out folder — "
                "scores on different data are never mixed")


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
    executor: str = "process",
    address: str | None = None,
    retries: int = 3,
    track=None,
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
        executor: ``process`` (a local process pool) or ``ray`` (Ray tasks; see :mod:`childnet.ray_executor`).
        address: with ``ray``: ``auto`` or HOST:PORT of an existing cluster (default: a private local one
            with ``workers`` CPUs).
        retries: with ``ray``: times a unit is retried when its worker process dies.
        track: trackers to log every unit to: ``tensorboard``, ``mlflow`` (a list or a comma-separated string).

    Raises:
        ChildnetError: bad input, a folder in use by another run or holding another experiment, a corrupt
            experiment.json, a full disk, an unknown executor or tracker, an unreachable Ray address.
    """
    from ._progress import NullProgress
    from .tracking import open_sinks, parse_track

    load_plugins()  # CHILDNET_PLUGINS (a no-op when already imported): made absolute for the workers

    _check_executor(executor, address, retries)
    tracks = parse_track(track)
    cfg = _load(experiment)
    if cfg.stages:
        from .pipeline import check_stages

        check_stages(cfg)  # a stage method that cannot take its incoming child stops here, before training
    if seeds is not None:
        if seeds < 1:
            raise ChildnetError(f"--seeds must be at least 1 (got {seeds})")
        cfg = cfg.model_copy(update={"seeds": seeds})
    if out is None and set(rf.folder_name(cfg.name)) <= {"."}:  # runs/.. is the current folder
        raise ChildnetError(f"name: {cfg.name!r} is not a usable folder name (runs/<name>); name the experiment "
                            "with letters or digits, or pass --out")
    out = Path(out or Path("runs") / rf.folder_name(cfg.name))
    workers = os.cpu_count() or 1 if workers is None else workers
    if workers < 0:
        raise ChildnetError(f"--workers must be 0 (in-process) or more (got {workers})")
    progress = progress or NullProgress()
    rf.check_run_folder(out)
    _make_out(out)
    with rf.RunLock(out) as lock:
        if lock.took_over:
            log(rf.stale_lock_message(out, lock.took_over))
        rf.remove_stale_temporaries(out)
        _check_experiment(out, cfg, log)
        records = rf.repair_results(out, log)
        finished = _with_child(out, [r for r in records if r["status"] == "ok"], log, cfg)
        done = {r["unit"] for r in finished}
        units = plan_units(cfg)
        pending = [u for u in units if u.key not in done]
        result = RunResult(out=out, skipped=len(units) - len(pending))
        if result.skipped:
            log(f"resuming: {result.skipped} of {len(units)} units already finished in {out}")
        if pending:
            from .select import replaced_values

            for note in replaced_values(cfg.methods):
                log(f"note: {note}")
        beyond = sorted({r.get("seed") for r in finished if isinstance(r.get("seed"), int)} - set(range(cfg.seeds)))
        if beyond and report:  # e.g. --seeds 2 on a folder of 10: the report covers what the folder holds
            log(f"note: {out} also holds finished units of seed(s) {', '.join(map(str, beyond[:10]))}"
                f"{' …' if len(beyond) > 10 else ''} beyond the {cfg.seeds} asked for; the report covers every "
                "finished unit in the folder")
        sinks = open_sinks(tracks, out, cfg, log)  # an unwritable tracker stops us before any unit runs
        try:
            sinks.catch_up(records)  # lines logged before --track was asked for, or cut by a kill
            if pending:
                session = None
                try:
                    if executor == "ray":
                        from .ray_executor import RaySession

                        session = RaySession(address, workers, log)
                    method_configs = _unit_configs(cfg, pending)
                    parents = _train_parents(cfg, out, device, log, progress.epochs, finished)
                    _check_same_parents(finished, {k: v["fingerprint"] for k, v in parents.items()}, out)
                    follow = None
                    if cfg.stages:  # a pipeline: a unit starts once its seed's source stage has chosen
                        payloads, follow = _stage_payloads(cfg, pending, finished, out, device, parents,
                                                           method_configs)
                        workers = min(workers, len(pending))
                    else:
                        payloads = [_payload(cfg, u, out, device, parents[u.setting], method_configs) for u in pending]
                    _record_all(payloads, out, workers, result, log, progress, sinks=sinks, session=session,
                                cfg=cfg, device=device, retries=retries, follow=follow, total=len(pending))
                finally:
                    shutil.rmtree(out / rf.HANDOFF_DIR, ignore_errors=True)
                    if session is not None:
                        session.close()
        finally:
            sinks.close()
        if report:
            result.report = _write_report(out, log)
    return result


EXECUTORS = ("process", "ray")


def _check_executor(executor: str, address: str | None, retries: int) -> None:
    if executor not in EXECUTORS:
        raise ChildnetError(f"unknown --executor value {executor!r}; valid executors: {', '.join(EXECUTORS)}")
    if retries < 0:
        raise ChildnetError(f"--retries must be 0 or more (got {retries})")
    if address is not None and executor != "ray":
        raise ChildnetError(f"--address {address} needs --executor ray (got --executor {executor})")
    if executor == "ray":
        from .ray_executor import require_ray

        require_ray()


def _unit_configs(cfg: ExperimentConfig, units: list[Unit]) -> dict[tuple[str, str], dict | None]:
    """The validated config of every (setting, method label) the pending units need, as plain data.

    Computed once here, before any parent is trained: a method option that a sweep value makes invalid stops
    the run with its sentence now, and workers receive configs that are already validated (they rebuild them
    with ``model_validate``, never re-parse the experiment).
    """
    settings = {s.id: s for s in cfg.settings()}
    specs = {m.label: m for m in cfg.methods}
    out: dict[tuple[str, str], dict] = {}
    for unit in units:
        if (unit.setting, unit.label) not in out:
            mcfg = cfg.method_config(specs[unit.label], settings[unit.setting])
            out[unit.setting, unit.label] = mcfg.model_dump(mode="json") if mcfg is not None else None
    return out


def _payload(cfg: ExperimentConfig, unit: Unit, out: Path, device: str, parent: dict,
             method_configs: dict[tuple[str, str], dict | None]) -> dict:
    """One unit as plain data: the validated configs it needs, nothing it would have to re-parse."""
    setting = next(s for s in cfg.settings() if s.id == unit.setting)
    spec = next(m for m in cfg.methods if m.label == unit.label)
    method = spec.name
    return {"key": unit.key, "setting": setting.model_dump(), "label": unit.label, "method": method,
            "seed": unit.seed, "out": str(out), "device": device, "parent": parent,
            "task": cfg.task_for(setting), "parent_config": cfg.parent.model_dump(mode="json"),
            "method_config": method_configs[unit.setting, unit.label],
            "evaluate": cfg.evaluate.model_dump(mode="json"), "select": spec.select, "metric": cfg.metric,
            "method_options": cfg.method_options(spec, setting) if spec.select else None,
            "stage": _stage_wiring(cfg, unit.label), "plugins": os.environ.get(PLUGINS_ENV, "")}


def _stage_wiring(cfg: ExperimentConfig, label: str) -> dict | None:
    """A pipeline unit's stage and its method's wiring, as plain data (None outside a pipeline)."""
    if not cfg.stages:
        return None
    from .pipeline import stage_of

    st, wired = stage_of(cfg, label)
    return {"spec": st.model_dump(mode="json"), "method": wired.model_dump(mode="json")}


def _stage_payloads(cfg: ExperimentConfig, pending: list[Unit], finished: list[dict], out: Path, device: str,
                    parents: dict, method_configs: dict) -> tuple[list, Callable]:
    """A pipeline's first payloads (plus the records of units that cannot run) and its ``follow(rec)``,
    which returns ``(payloads, records)`` released by a finished unit (:class:`childnet.pipeline.StageScheduler`)."""
    from .pipeline import StageScheduler, blocked_record

    scheduler = StageScheduler(cfg, out, finished)
    methods = {m.label: m.name for m in cfg.methods}

    def build(ready, blocked):
        payloads = [dict(_payload(cfg, u, out, device, parents[u.setting], method_configs), incoming=inc)
                    for u, inc in ready]
        return payloads, [blocked_record(u, methods[u.label], why) for u, why in blocked]

    first, blocked = build(*scheduler.split(list(pending)))
    return first, lambda rec: build(*scheduler.after(rec)) if rec is not None else ([], blocked)


def execute(payloads: list[dict], record: Callable[[dict], None], *, workers: int, follow=None,
            note: Callable[[dict], None] | None = None) -> None:
    """Run ``run_unit`` on every payload — in this process (``workers=0``) or on worker processes — and
    call ``record(rec)`` here once per finished unit (``note(msg)`` with a running unit's progress). A
    cluster (:mod:`childnet.ray_executor`) has the same shape, without the progress of running units."""
    from ._pool import run_inline, run_processes

    if workers == 0:
        run_inline(payloads, record, follow, note)
    else:
        run_processes(payloads, record, workers=workers, follow=follow, note=note)


def _record_all(payloads, out, workers, result, log, progress, *, sinks=None, session=None, cfg=None,
                device: str = "cpu", retries: int = 3, follow=None, total: int | None = None) -> None:
    """Run the payloads on the executor and record each result; ``follow(rec)`` (a pipeline) returns the
    ``(payloads, records)`` a finished unit released — records of units that cannot run are recorded here."""
    results_path = out / rf.RESULTS_FILE

    with progress.units(total or len(payloads)) as advance:
        def record(rec: dict) -> None:
            rf.append_record(results_path, rec)  # first the run folder, then the trackers
            if sinks is not None:
                sinks.log(rec)
            advance(rec)
            if rec["status"] == "ok":
                result.finished += 1
                return
            result.failed.append(rec)
            if rec.get("error_kind") == "disk_full":  # stop here: every other unit would fail the same way
                raise rf.DiskFullError(rec["error"])
            log(f"unit {rec['unit']} failed: {rec['error']}")

        released = None
        if follow is not None:
            def released(rec: dict | None) -> list:
                more, blocked = follow(rec)
                for b in blocked:
                    record(b)
                    more = more + released(b)
                return more

            payloads = payloads + released(None)
        if session is not None:
            from .ray_executor import execute as execute_on_ray

            execute_on_ray(session, cfg, payloads, out, device, record, max_retries=retries, follow=released)
        else:
            execute(payloads, record, workers=workers, follow=released, note=getattr(advance, "note", None))


def _write_report(out: Path, log):
    try:
        from .report import build_report
    except ImportError:  # pragma: no cover - report module missing
        return None
    return build_report(out)
