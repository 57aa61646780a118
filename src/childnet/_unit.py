"""One unit of a run, on whichever process or node runs it: derive, evaluate and save one child.

:func:`run_unit` turns one payload (plain data: the setting, the method label, the seed, the run folder, the
parent handed over by the main process, and the validated configs the unit needs — task spec, parent config,
method config, evaluate config — dumped by the main process) into one result record and never raises. It
rebuilds the configs with ``model_validate``; it never re-parses the experiment.
Executors (:mod:`childnet._pool`, :mod:`childnet.ray_executor`) call it; only the main process appends
records to the run folder (:mod:`childnet.runner`).
"""

from __future__ import annotations

import json
import time
import traceback
from functools import lru_cache
from typing import Callable

from . import runfolder as rf
from .config import EvaluateConfig, Setting
from .errors import ChildnetError, TrainingDiverged

__all__ = ["run_unit"]


@lru_cache(maxsize=4)
def _cached_task(spec_json: str):
    from .tasks.base import load_task

    return load_task(json.loads(spec_json))


@lru_cache(maxsize=2)
def _cached_parent(parent_json: str, task_json: str, device: str, weights: str | None, handed_json: str):
    """The run's parent: from the weights the main process handed over, else by the same path it took."""
    from .parent import get_parent, load_handed_parent

    if weights:
        handed = json.loads(handed_json)
        return load_handed_parent(json.loads(parent_json), _cached_task(task_json), weights, device=device,
                                  source=handed["source"], metrics=handed["metrics"], history=handed["history"])
    return get_parent(json.loads(parent_json), _cached_task(task_json), device=device)


@lru_cache(maxsize=8)
def _task_data(task_json: str) -> str:
    from .tasks.base import task_data

    return task_data(_cached_task(task_json))


def _unit_parent(payload: dict, task_json: str):
    handed = payload.get("parent") or {}
    parent = _cached_parent(json.dumps(payload["parent_config"], sort_keys=True), task_json, payload["device"],
                            handed.get("weights"), json.dumps(handed, sort_keys=True, default=str))
    want = handed.get("fingerprint")
    if want and parent.fingerprint != want:
        raise ChildnetError(
            f"this unit's parent (fingerprint {parent.fingerprint}) is not the run's parent (fingerprint {want}): "
            "the parent cache changed during the run; run the same command again")
    return parent


def _parent_costs(parent, task, ev: EvaluateConfig, device: str) -> None:
    """The parent's CPU latency (and simulated device latency) measured like its children's, once per process:
    the report's parent row and the Pareto plot put the parent on every cost axis."""
    if "latency_ms_b1" in parent.metrics or not ev.latency:
        return
    from .evaluate.cost import measure_latency
    from .evaluate.device import device_config_from, device_cost
    from .tasks.base import take

    task = parent.task  # (a transfer parent has its own inputs)
    parent.metrics["latency_ms_b1"] = measure_latency(parent.model, take(task.x_test, slice(0, 1)),
                                                      repeats=ev.repeats, device=device)
    model = device_config_from(ev)
    if model is not None:
        parent.metrics.update(device_cost(parent.model, tuple(task.input_shape), model, kind=task.kind).metrics())


def _stage_inputs(payload: dict, task, parent, mcfg, ctx):
    """A pipeline's unit (``stages:``): what it derives from (:mod:`childnet.pipeline`); None otherwise."""
    if not payload.get("stage"):
        return None
    from .pipeline import stage_inputs

    return stage_inputs(payload, task, parent, mcfg, ctx)


def _unit_progress(key: str, report: Callable[[dict], None] | None, every: float = 1.0):
    """``Context.progress`` of a unit: passes ``{"unit", "done", "total", "candidate"?, "candidates"?, "member"?}``
    (epochs of the method's current training loop — an ensemble counts its members' epochs together and names
    the member training; the ``select`` candidate it belongs to) to ``report``, at most once per
    ``every`` seconds but always at a loop's end. A failing report (a closed pipe) never fails the unit."""
    if report is None:
        return None
    last = [0.0]

    def progress(done: int, total: int, record: dict) -> None:
        now = time.monotonic()
        if now - last[0] < every and done < total:
            return
        last[0] = now
        msg = {"unit": key, "done": done, "total": total}
        msg.update({k: record[k] for k in ("candidate", "candidates", "member") if k in record})
        try:
            report(msg)
        except Exception:  # noqa: BLE001 - progress is a courtesy; the unit goes on
            pass

    return progress


def run_unit(payload: dict, report: Callable[[dict], None] | None = None) -> dict:
    """Derive, evaluate and save one child; never raises (failures become a record).

    ``report(msg)``: called with the unit's progress while it trains (see :func:`_unit_progress`)."""
    from .evaluate import evaluate
    from .evaluate.device import device_config_from
    from .methods.base import Context, check_parent_fits
    from .plugins import load_plugins
    from .select import derive_selected
    from .registry import METHODS

    setting = Setting(**payload["setting"])
    name, label = payload["method"], payload["label"]
    record = {"unit": payload["key"], "setting": setting.id, "overrides": setting.overrides,
              "method": name, "label": label, "seed": payload["seed"]}
    t0 = time.perf_counter()
    try:
        load_plugins(payload.get("plugins") or "")  # a worker imports what the main process did
        task_json = json.dumps(payload["task"], sort_keys=True)
        task = _cached_task(task_json)
        parent = _unit_parent(payload, task_json)
        ev = EvaluateConfig.model_validate(payload["evaluate"])
        _parent_costs(parent, task, ev, payload["device"])  # once per process (the report's parent row)
        data = _task_data(task_json)
        # the unit's own time starts here: a worker's first unit also loads the task and the parent and
        # measures the parent (cached for its later units), which is start-up, not this method's cost
        record["setup_s"], t0 = round(time.perf_counter() - t0, 3), time.perf_counter()
        method = METHODS.get(name)
        mcfg = None if payload["method_config"] is None else method.config.model_validate(payload["method_config"])
        ctx = Context(seed=payload["seed"], device=payload["device"], executor=None,
                      progress=_unit_progress(payload["key"], report))
        stage = _stage_inputs(payload, task, parent, mcfg, ctx)
        used = stage.parent if stage else parent  # a parent trained on another task (the root parent, or a
        check_parent_fits(name, used.task, task, used.model)  # stage's teacher: root): checked with its network
        options = payload.get("method_options")
        if stage and options is not None and stage.config is not mcfg:  # ``child: same``: the incoming architecture
            options = {**options, "child": stage.config.model_dump(mode="json")["child"]}
        child = derive_selected(name, payload.get("select"), stage.parent if stage else parent, task,
                                stage.config if stage else mcfg, ctx, metric=payload["metric"], options=options)
        evaluate(child, task, device=payload["device"], latency=ev.latency, repeats=ev.repeats,
                 device_model=device_config_from(ev))
        if stage:
            stage.finish(child, task, payload["device"])
            record.update(stage=stage.wiring["name"], incoming=payload.get("incoming"))
        child_dir = rf.child_dir(payload["out"], setting.id, label, payload["seed"])
        try:
            child.save(child_dir, overwrite=True)  # a leftover of this unfinished unit's killed attempt
        except OSError as err:
            raise rf.disk_error(err, f"the child folder {child_dir}") from None
        record["task_data"] = data  # of the data this unit was scored on (the resume check)
        record.update(status="ok", error=None, metrics=child.lineage.metrics, history=child.lineage.history,
                      child_dir=str(child_dir.relative_to(payload["out"])), parent=parent.card())
        if isinstance(child.lineage.extra.get("select"), dict):  # every picked value, numeric or not (the report)
            record["select_picked"] = child.lineage.extra["select"].get("picked")
    except rf.DiskFullError as err:  # the main process stops the run when it records this
        record.update(status="failed", error=str(err), error_kind="disk_full")
    except ChildnetError as err:  # bad config or data for this unit: the user can fix it
        record.update(status="failed", error=str(err), error_kind="user")
    except TrainingDiverged as err:
        record.update(status="failed", error=str(err), error_kind="diverged")
    except Exception as err:  # a bug: keep the traceback in the record, the run goes on
        record.update(status="failed", error=f"internal error: {type(err).__name__}: {err}",
                      error_kind="internal", traceback=traceback.format_exc())
    record["wall_time_s"] = round(time.perf_counter() - t0, 3)
    return record
