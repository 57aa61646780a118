"""What every method shares: the call context and the helper that stamps a child's lineage.

A method is one registered function::

    @METHODS.register("kd", config=KDConfig, family="inherit")
    def derive(parent: Parent, task: Task, cfg: KDConfig, ctx: Context) -> Child: ...
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from torch import nn

from ..child import Child, Lineage
from ..errors import ChildnetError
from ..parent import Parent
from ..tasks.base import Task
from ..train import TrainConfig, fit

__all__ = ["Context", "make_child", "fit_on", "check_parent_fits", "check_task_kind"]


@dataclass
class Context:
    """Per-unit settings a method receives.

    Attributes:
        seed: the unit's seed (children differ by seed; the parent does not).
        device: torch device to train on.
        progress: ``progress(done, total, record)`` for long loops (epochs).
        log: one-line messages.
        workdir: scratch folder of this unit (for intermediate checkpoints), if any.
        executor: an optional ``concurrent.futures`` executor for methods that fan out (random search);
            the runner leaves it None, since its units already keep every worker busy.
    """

    seed: int = 0
    device: str = "cpu"
    progress: Callable[[int, int, dict], None] | None = None
    log: Callable[[str], None] = lambda s: None
    workdir: Path | None = None
    executor: Any = None
    extra: dict = field(default_factory=dict)


def task_extra(task: Task) -> dict:
    """What ``predict`` needs from the task, for a child's ``lineage.extra``: the class names, the
    standardisation fitted on the training split and the input layout (those the task has)."""
    return {k: task.meta[k] for k in ("classes", "standardize", "layout") if task.meta.get(k)}


def head_only_unstructured(cfg):
    """A prune/ensemble config's check: ``include_head`` applies to ``structure: weights`` only."""
    if cfg.include_head and cfg.structure != "weights":
        raise ValueError(f"include_head: true applies to structure: weights only; structured pruning "
                         f"({cfg.structure}) never removes the classifier's outputs, which are the classes")
    return cfg


def make_child(
    model: nn.Module,
    method: str,
    cfg,
    ctx: Context,
    parent: Parent | None,
    task: Task,
    *,
    history: list | None = None,
    masks: dict | None = None,
    extra: dict | None = None,
) -> Child:
    """Wrap a trained model in a :class:`Child` with its full lineage card."""
    lineage = Lineage(
        method=method,
        config=cfg.model_dump() if hasattr(cfg, "model_dump") else dict(cfg or {}),
        seed=ctx.seed,
        parent=parent.card() if parent is not None else {},
        task=task.spec,
        history=history or [],
        extra=task_extra(task) | (extra or {}),
    )
    spec = getattr(model, "childnet_spec", None)
    if isinstance(spec, dict) and spec.get("input_shape") is not None \
            and tuple(spec["input_shape"]) != tuple(task.input_shape):  # a parent of another task's inputs
        model.childnet_spec = {**spec, "input_shape": list(task.input_shape)}  # the child reads this task's
    model.eval()
    return Child(model, lineage, masks or {})


def fit_on(task: Task, model: nn.Module, train_cfg: TrainConfig, ctx: Context, *, val: bool = True, **kwargs) -> list[dict]:
    """Train ``model`` on ``task``'s training split with the unit's seed, device and progress.

    The one place the methods' common :func:`~childnet.train.fit` arguments are spelled out.

    Args:
        task: gives the training split (and the validation split, unless ``val`` is False).
        model: trained in place.
        train_cfg: the training run.
        ctx: seed, device and progress of the unit.
        val: log validation accuracy (every ``train_cfg.eval_every`` epochs and at the end).
        **kwargs: any other :func:`~childnet.train.fit` argument (``loss_fn``, ``hooks``, ``params``),
            or an override of ``seed`` / ``progress`` (ensemble members have their own).
    """
    options = {"val": (task.x_val, task.y_val) if val else None, "seed": ctx.seed, "device": ctx.device,
               "progress": ctx.progress}
    options.update(kwargs)
    return fit(model, (task.x_train, task.y_train), train_cfg, **options)


def check_parent_fits(method: str, parent_task: Task | None, task: Task, model: nn.Module | None = None) -> None:
    """Refuse, before any training, a parent trained on a task whose classes — for a method that keeps the
    parent's output layer or learns from its outputs — or inputs the child's task does not share.

    A parent trained on another task (``parent.task``, transfer) is fine for the tune family, which fits
    a new head; pruning it for a task with other classes kept its 10-way head on a 2-class task and
    scored 0 without an error, and KD crashed with a shape mismatch. Methods say how they use the
    parent with the registry's ``parent_use`` (see :class:`childnet.registry.Entry`); one without it is
    not checked. Inputs of another shape are not refused by shape alone — a CNN with adaptive pooling
    reads 8×8 and 28×28 images alike — but, given the parent's ``model``, by running it on two of the
    task's examples.
    """
    from ..registry import METHODS

    use = METHODS.get(method).meta.get("parent_use")
    if use is None or parent_task is None or parent_task is task:
        return
    where = f"{method}: the parent's task {_named(parent_task, task)}"
    if use == "outputs" and parent_task.num_classes != task.num_classes:
        raise ChildnetError(f"{where} has {parent_task.num_classes} classes but task {_named(task, parent_task)} has "
                            f"{task.num_classes}; {method} keeps the parent's output layer or learns from its "
                            "outputs, so they must be the task's classes. Train the parent on this task (drop "
                            "parent.task), or use a tune method (vanilla, child_tuning_f, lora, …), which fits a "
                            "new head")
    names, parent_names = task.meta.get("classes"), parent_task.meta.get("classes")
    if use == "outputs" and names and parent_names and [str(c) for c in names] != [str(c) for c in parent_names]:
        shown = ", ".join(map(str, parent_names[:6])) + (", …" if len(parent_names) > 6 else "")
        mine = ", ".join(map(str, names[:6])) + (", …" if len(names) > 6 else "")
        raise ChildnetError(f"{where} has the classes [{shown}] but task {_named(task, parent_task)} has [{mine}]; "
                            f"{method} reads the parent's outputs as this task's classes, in order. Train the parent "
                            "on this task, or use a tune method (vanilla, child_tuning_f, lora, …), which fits a new "
                            "head")
    if model is None or tuple(parent_task.input_shape) == tuple(task.input_shape):
        return
    from ..models.base import forward_error

    err = forward_error(model, task.example_input(2))
    if err is not None:
        raise ChildnetError(f"{where} has inputs of shape {tuple(parent_task.input_shape)} but task '{task.name}' "
                            f"has {tuple(task.input_shape)}, and the parent network cannot read them "
                            f"({type(err).__name__}: {str(err)[:120]}); train the parent on this task (drop "
                            "parent.task)")


def _named(task: Task, other: Task) -> str:
    """``'name'``, with the data file when the other task has the same name (two ``arrays`` tasks)."""
    path = (task.spec or {}).get("path") if isinstance(task.spec, dict) else None
    if task.name == other.name and path:
        return f"'{task.name}' ({Path(str(path)).name})"
    return f"'{task.name}'"


def check_task_kind(method: str, task: Task) -> None:
    """Refuse a method registered for one kind of task (``task_kind="ranking"``: MANAS, bpr_mf) on another."""
    from ..registry import METHODS

    kind = METHODS.get(method).meta.get("task_kind")
    if kind is not None and task.kind != kind:
        raise ChildnetError(f"{method} needs a {kind} task; task '{task.name}' is {task.kind}"
                            + (" (ranking tasks: sequences, amazon-beauty/cellphone/grocery, logic-synthetic)"
                               if kind == "ranking" else ""))
