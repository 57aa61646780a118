"""What the tune methods share: the fine-tuning recipe, the head swap and the parameter groups.

The recipe is the one both papers fine-tune BERT with (Hugging Face ``Trainer`` defaults as used
in their code): AdamW with decoupled weight decay 0.01 and none on biases and LayerNorm weights,
batch 16, 3 epochs, linear decay after a 10 % warm-up, gradient norm clipped to 1. The learning rate
default, 4e-5, is Child-Tuning's BERT-large value (Xu et al. 2021, §4.1).

The head: a tuned child solves the *target* task. When the parent's head has a different number of
classes, or the parent is a pretrained encoder whose head was never trained (``source:
pretrained``), the head is replaced by a fresh ``nn.Linear`` initialised from the unit's seed
(``head: auto``); ``head: new`` always replaces it, ``head: keep`` never does.
"""

from __future__ import annotations

import os
import time
from typing import Literal

import torch
from pydantic import Field
from torch import nn

from ...config import Config
from ...errors import ChildnetError
from ...parent import Parent
from ...tasks.base import Task
from ...train import Hook, TrainConfig
from ..base import Context, make_child

__all__ = ["TuneTrainConfig", "TuneConfig", "prepare_model", "body_parameters", "tune_child", "extra_hooks",
           "fit_options", "TrainCostMeter"]


class TuneTrainConfig(TrainConfig):
    """:class:`~childnet.train.TrainConfig` with the BERT fine-tuning defaults of both papers."""

    epochs: float = Field(3, ge=0, description="passes over the training set")
    batch_size: int = Field(16, ge=1, description="examples per step")
    optimizer: Literal["sgd", "adamw", "adam"] = Field("adamw", description="sgd | adamw | adam")
    lr: float = Field(4e-5, gt=0, description="peak learning rate (Child-Tuning, BERT-large: 4e-5)")
    weight_decay: float = Field(0.01, ge=0, description="decoupled weight decay (none on biases / LayerNorm)")
    schedule: Literal["constant", "cosine", "linear", "onecycle", "multistep"] = Field(
        "linear", description="LR schedule: linear decay after warm-up (BERT fine-tuning)")
    warmup_frac: float = Field(0.1, ge=0, lt=1, description="linear warm-up as a fraction of steps")
    grad_clip: float | None = Field(1.0, gt=0, description="clip the gradient norm to this value")
    eval_every: int = Field(0, ge=0, description="validate every N epochs (0: only at the end, if validating)")


class TuneConfig(Config):
    """Fields every tune method has."""

    train: TuneTrainConfig = Field(default_factory=TuneTrainConfig, description="the fine-tuning run")
    head: Literal["auto", "new", "keep"] = Field(
        "auto", description="auto: new head if the class count differs or the parent is pretrained-only; "
                            "new: always; keep: never")
    val_accuracy: bool = Field(False, description="log validation accuracy at the end (one extra pass over val)")


def _replace_head(model: nn.Module, num_classes: int, seed: int) -> None:
    head = getattr(model, "head", None)
    if not isinstance(head, nn.Linear):
        raise ChildnetError(
            f"tune methods replace the parent's classifier, which must be an nn.Linear named 'head' "
            f"(got {type(head).__name__}); use a childnet model (mlp, cnn, resnet, minilm)")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model.head = nn.Linear(head.in_features, num_classes).to(head.weight.device)
    spec = getattr(model, "childnet_spec", None)
    if spec is not None:
        model.childnet_spec = {**spec, "num_classes": int(num_classes)}


def prepare_model(parent: Parent, task: Task, cfg: TuneConfig, ctx: Context) -> tuple[nn.Module, bool]:
    """A trainable copy of the parent, with a new head when needed; returns ``(model, head_replaced)``."""
    model = parent.trainable_copy()
    head = getattr(model, "head", None)
    out = getattr(head, "out_features", None)
    replace = cfg.head == "new" or (cfg.head == "auto" and (parent.source == "pretrained" or out != task.num_classes))
    if cfg.head == "keep" and out != task.num_classes:
        raise ChildnetError(f"head: keep, but the parent's head has {out} classes and task '{task.name}' has "
                            f"{task.num_classes}; use head: auto (a new head for the target task)")
    if replace:
        _replace_head(model, task.num_classes, ctx.seed)
    return model.to(ctx.device).train(), replace


def body_parameters(model: nn.Module) -> dict[str, nn.Parameter]:
    """The encoder's own weights: every parameter except the head's and the embeddings'.

    These are the parameters Child-Tuning_D lets compete for the mask (its code selects names with
    ``layer`` in them: the transformer layers, including their biases and LayerNorms). Embedding tables,
    any module named ``*embeddings`` (BERT's embedding LayerNorm) and the head are always updated.
    """
    skip = [name for name, mod in model.named_modules()
            if name and (isinstance(mod, nn.Embedding) or name.split(".")[-1] == "embeddings" or name == "head")]
    return {n: p for n, p in model.named_parameters()
            if not any(n == s or n.startswith(s + ".") for s in skip)}


class TrainCostMeter(Hook):
    """What a tuning run costs, over every ``fit`` of the method: the table's training-cost columns.

    - ``trainable_params``: parameters the optimiser updates (largest over the method's fits);
    - ``step_ms``: mean CPU time of the training thread per step (``time.thread_time``: time other
      processes hold the core is not counted), the first step of each fit (warm-up) left out;
    - ``optimizer_state_mb``: bytes of the optimiser's state tensors after training (AdamW: 2 per weight);
    - ``train_rss_peak_mb``: the process's resident memory at the end of each step, its maximum (includes
      the parent, data and caches of the process: compare methods run the same way).
    """

    def __init__(self):
        self.steps, self.cpu, self.trainable, self.state_bytes, self.rss = 0, 0.0, 0, 0, 0.0
        self._first = True

    def on_fit_start(self, state):
        self._first = True
        params = {id(p): p for g in state.optimizer.param_groups for p in g["params"] if p.requires_grad}
        self.trainable = max(self.trainable, sum(p.numel() for p in params.values()))

    def before_step(self, state):
        self._t = time.thread_time()

    def after_step(self, state):
        if not self._first:
            self.steps += 1
            self.cpu += time.thread_time() - self._t
        self._first = False
        self.rss = max(self.rss, _rss_mb())

    def on_fit_end(self, state):
        size = sum(v.numel() * v.element_size() for s in state.optimizer.state.values() for v in s.values()
                   if torch.is_tensor(v))
        self.state_bytes = max(self.state_bytes, size)

    def metrics(self) -> dict:
        out = {"trainable_params": self.trainable, "optimizer_state_mb": round(self.state_bytes / 2**20, 3)}
        if self.steps:
            out["step_ms"] = round(1000 * self.cpu / self.steps, 3)
        if self.rss:
            out["train_rss_peak_mb"] = round(self.rss, 1)
        return out


def _rss_mb() -> float:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):  # not Linux
        return 0.0


def extra_hooks(ctx: Context) -> list[Hook]:
    """Hooks a caller passes in ``ctx.extra["hooks"]`` (benchmarks time steps with them), and the unit's
    :class:`TrainCostMeter` (one per context; :func:`tune_child` puts its figures in the child's metrics)."""
    meter = ctx.extra.setdefault("_train_cost", TrainCostMeter())
    return [*ctx.extra.get("hooks", ()), meter]


def fit_options(task: Task, cfg: TuneConfig, ctx: Context) -> dict:
    """Keyword arguments of :func:`~childnet.train.fit` common to every tune method."""
    return {"val": (task.x_val, task.y_val) if cfg.val_accuracy else None, "seed": ctx.seed, "device": ctx.device,
            "progress": ctx.progress}


def tune_child(model: nn.Module, method: str, cfg: TuneConfig, ctx: Context, parent: Parent, task: Task, *,
               head_replaced: bool, history: list, masks: dict | None = None, extra: dict | None = None):
    """Wrap the tuned model in a Child whose lineage records the head swap and method records."""
    extra = {"head": "new" if head_replaced else "kept", **(extra or {})}
    child = make_child(model, method, cfg, ctx, parent, task, history=history, masks=masks, extra=extra)
    meter = ctx.extra.pop("_train_cost", None)
    if meter is not None:  # training-cost columns of the table (evaluate adds the rest of the metrics)
        child.lineage.metrics.update(meter.metrics())
    return child
