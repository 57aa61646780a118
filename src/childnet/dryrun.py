"""``childnet validate``'s second half: load the task and build every network on a dummy batch, no training.

What a config check alone cannot see — a missing data file, data of the wrong shape for the model, a
search space that does not fit the inputs, a checkpoint that does not fit the parent — fails here in
seconds, before a parent is trained. Each problem is a sentence naming the method (or the parent) and
the cause; every problem is collected, then raised together.
"""

from __future__ import annotations

import json
from typing import Callable

import torch

from .config import ExperimentConfig
from .errors import ChildnetError

__all__ = ["dry_run"]


def _forward(model: torch.nn.Module, task, what: str) -> None:
    """One forward pass of two test examples in eval mode; the output must be (2, num_classes)."""
    from .models.base import check_runs_on

    check_runs_on(model, task, what)
    model.eval()
    with torch.no_grad():
        out = model(task.example_input(2))
    if tuple(out.shape) != (2, task.num_classes):
        raise ChildnetError(f"{what} outputs shape {tuple(out.shape)[1:]} per example, the task has "
                            f"{task.num_classes} classes")


def _model_specs(mcfg) -> list[tuple[str, dict]]:
    """Fields of a method config that are model specs (``child``, ``member``, …)."""
    from .registry import MODELS

    out = []
    for field in getattr(type(mcfg), "model_fields", {}):
        value = getattr(mcfg, field, None)
        if hasattr(value, "model_dump"):
            value = value.model_dump()
        if isinstance(value, dict) and value.get("name") in MODELS.names():
            out.append((field, value))
    return out


def _mask_file(path: str, parent) -> None:
    """A ``masks`` file exists, is a valid safetensors checkpoint and (from the parent) fits the parent's network;
    a later pipeline stage's incoming child is not built here, so there only the file is checked."""
    from .checkpoint import load_tensors
    from .masks import check_masks

    tensors = load_tensors(path)
    if parent is not None:
        check_masks(parent, tensors, path)


def _parent_net(cfg: ExperimentConfig, ptask):
    from .checkpoint import load_state_checked, load_tensors
    from .models.base import build_model

    model = build_model(cfg.parent.model, ptask.input_shape, ptask.num_classes)
    if cfg.parent.checkpoint:
        load_state_checked(model, load_tensors(cfg.parent.checkpoint),
                           f"parent.checkpoint {cfg.parent.checkpoint} does not fit parent.model {cfg.parent.model}")
    _forward(model, ptask, f"parent.model {cfg.parent.model.get('name')}")
    return model


def _built(spec: dict, task):
    from .models.base import build_model

    return build_model(spec, task.input_shape, task.num_classes)


def _child_net(spec: dict, task, what: str) -> None:
    _forward(_built(spec, task), task, what)


def _space_net(mcfg, task, where: str) -> None:
    from .methods.search.device_spaces import DeviceSpaceConfig, make_device_space
    from .methods.search.spaces import make_space

    if isinstance(mcfg, DeviceSpaceConfig):  # a device-sized space (iNAS): its children are ordinary models
        space = make_device_space(mcfg)
        choices = [0] * len(space.decisions)
        _forward(_built(space.model_spec(space.decode(choices)), task), task, f"{where} search space {mcfg.space}")
        return
    space = make_space(mcfg)
    net = space.build_supernet(task.input_shape, task.num_classes)
    net.set_arch(space.decode([0] * len(space.decisions)))
    _forward(net, task, f"{where} search space {mcfg.space}")


def _shrinkable(parent, structure: str, where: str) -> None:
    from .shrink import unit_groups

    try:
        unit_groups(parent, structure)
    except ChildnetError as err:
        raise ChildnetError(f"{where}.structure: {err}") from None


def _method_check(name: str):
    """A method's registered ``check(parent_model, task, cfg)`` (refuses bad input before training), if any."""
    from .registry import METHODS

    return METHODS.get(name).meta.get("check")


def _candidates(cfg: ExperimentConfig, mspec, setting, mcfg, where: str) -> list[tuple[str, object]]:
    """``(where, config)`` of the method as written and, with a ``select`` block, of each distinct candidate
    (an Optuna range: its ends): a candidate whose value the parent refuses fails here, not after the others
    have trained. Per candidate the search space is built and the method's own and structure checks run; model
    specs (``child``) are built for the config as written only, since ``select`` cannot pick them."""
    out = [(where, mcfg)]
    if mspec.select:
        from .select import candidate_configs, values_text

        options = cfg.method_options(mspec, setting)
        try:
            out += [(f"{where}.select candidate {values_text(values)}", config)
                    for values, config in candidate_configs(mspec.select, mcfg, options) if config != mcfg]
        except ChildnetError as err:  # a candidate that makes no valid config (past validate's combination checks)
            raise ChildnetError(f"{where}.select: {err}") from None
    return out


def _kind_of(method: str, task) -> str:
    """The task kind ``method`` needs (the task's own when it needs none)."""
    from .registry import METHODS

    return METHODS.get(method).meta.get("task_kind") or task.kind


def dry_run(cfg: ExperimentConfig, log: Callable[[str], None] = lambda s: None) -> list[str]:
    """Load each setting's task, build the parent and every method's child networks; return what was checked.

    Raises:
        ChildnetError: every problem found, one sentence each.
    """
    from .evaluate.ranking import check_metric_fits
    from .methods.base import check_parent_fits, check_task_kind
    from .tasks.base import load_task

    problems: list[str] = []
    checked: list[str] = []
    tasks: dict[str, object] = {}
    later = set()  # a pipeline's methods that derive from a stage's child, not from the parent
    root_taught: set = set()  # … except those whose teacher is the root parent
    if cfg.stages:
        from .pipeline import check_stages

        check_stages(cfg)
        later = {m.label for st in cfg.stages if st.source != "root" for m in st.methods}
        root_taught = {m.label for st in cfg.stages for m in st.methods if m.teacher == "root"}

    def attempt(what: str, fn, *args) -> object | None:
        try:
            return fn(*args)
        except ChildnetError as err:
            problems.append(str(err) if what in str(err) else f"{what}: {err}")
        return None

    for setting in cfg.settings():
        spec = cfg.task_for(setting)
        key = json.dumps(spec, sort_keys=True, default=str)
        if key not in tasks:
            tasks[key] = attempt("task", load_task, spec)
            if tasks[key] is not None:
                t = tasks[key]
                classes = f", classes {t.meta['classes'][:10]}" if t.meta.get("classes") else ""
                checked.append(f"task {spec.get('name')}: {t!r}{classes}")
        task = tasks[key]
        if task is None:
            continue
        attempt("metric", check_metric_fits, cfg.metric, task)
        ptask = task if cfg.parent.task is None else attempt("parent.task", load_task, cfg.parent.task)
        if ptask is None:
            continue
        parent = attempt("parent", _parent_net, cfg, ptask)
        if parent is not None and f"parent {cfg.parent.model.get('name')}" not in checked:
            checked.append(f"parent {cfg.parent.model.get('name')}")
        for mspec in cfg.methods:
            where = f"methods[{mspec.label}]" + ("" if setting.id == "default" else f" ({setting.id})")
            if task.kind != _kind_of(mspec.name, task):  # MANAS on images: its networks would not build either
                attempt(where, check_task_kind, mspec.name, task)
                continue
            mcfg = attempt(where, cfg.method_config, mspec, setting)
            if mcfg is None:
                continue
            for field, model_spec in _model_specs(mcfg):
                attempt(f"{where}.{field}", _child_net, model_spec, task, f"{where}.{field} {model_spec.get('name')}")
            if mspec.label not in later or mspec.label in root_taught:
                attempt(where, check_parent_fits, mspec.name, ptask, task, parent)
            for what, config in attempt(where, _candidates, cfg, mspec, setting, mcfg, where) or []:
                if hasattr(config, "space"):
                    attempt(what, _space_net, config, task, what)
                check = _method_check(mspec.name)
                if check is not None and parent is not None:  # a method's own check against the parent (lora, tp)
                    attempt(what, check, parent, task, config)
                mask_file = getattr(config, "masks", None)  # oneshot's masks file: read it now, not after training
                if isinstance(mask_file, str):
                    attempt(f"{what}.masks", _mask_file, mask_file, None if mspec.label in later else parent)
                structure = getattr(config, "structure", None)
                if isinstance(structure, str) and structure != "weights" and parent is not None \
                        and mspec.label not in later:
                    attempt(what, _shrinkable, parent, structure, what)
            checked.append(where)
    if problems:
        raise ChildnetError(problems[0] if len(problems) == 1 else
                            f"{len(problems)} problems:\n" + "\n".join(f"  - {p}" for p in dict.fromkeys(problems)))
    return checked
