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
from ..parent import Parent
from ..tasks.base import Task
from ..train import TrainConfig, fit

__all__ = ["Context", "make_child", "fit_on"]


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
        extra={k: task.meta[k] for k in ("classes", "standardize", "layout") if task.meta.get(k)} | (extra or {}),
    )
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
