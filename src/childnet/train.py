"""The one training loop. Methods plug in a loss (a dict of named terms) and hooks.

No method forks this loop: gradient masks (Child-Tuning) run in ``after_backward``, stochastic
masks and annealing (SSA) in ``before_step``/``on_epoch_end``, an upper-level step (bi-level
optimisation, AGWM) in ``after_step``; a controller update (ENAS) at ``on_epoch_end``.

Determinism: for a given ``seed`` on CPU, batches, dropout and initialisation are identical.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Literal, Sequence

import torch
import torch.nn.functional as F
from pydantic import Field, field_validator, model_validator
from torch import nn

from ._base import Config
from .errors import ChildnetError, TrainingDiverged
from .tasks.base import Inputs, num_examples, take, to_device

__all__ = [
    "TrainConfig",
    "TrainState",
    "Hook",
    "LossFn",
    "fit",
    "cross_entropy_loss",
    "make_optimizer",
    "make_scheduler",
    "evaluate_accuracy",
    "seed_everything",
    "check_device",
]

#: ``loss_fn(model, x, y, state) -> {"term": tensor, ...}``; the optimised loss is the sum of the terms.
LossFn = Callable[[nn.Module, Inputs, torch.Tensor, "TrainState"], dict]


class TrainConfig(Config):
    """Optimiser, schedule and budget of one training run."""

    epochs: float = Field(10, ge=0, le=100_000, description="passes over the training set (fractions allowed)")
    batch_size: int = Field(64, ge=1, description="examples per step")
    optimizer: Literal["sgd", "adamw", "adam"] = Field("adamw", description="sgd | adamw | adam")
    lr: float = Field(1e-3, gt=0, description="peak learning rate (at most 1e30: it must fit a float32)")
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD momentum")
    nesterov: bool = Field(False, description="SGD Nesterov momentum")
    weight_decay: float = Field(0.0, ge=0, description="decoupled (adamw) or L2 (sgd) weight decay")
    decay_norm_and_bias: bool = Field(False, description="also decay biases and norm weights (default: not)")
    schedule: Literal["constant", "cosine", "linear", "onecycle", "multistep"] = Field(
        "cosine", description="LR schedule (linear: warm-up then linear decay to 0, the BERT fine-tuning default)")
    warmup_frac: float = Field(0.0, ge=0, lt=1, description="linear warm-up as a fraction of steps (constant/cosine)")
    milestones: list[float] = Field([0.5, 0.75], description="multistep: fractions of training where LR × gamma")
    gamma: float = Field(0.1, gt=0, le=1, description="multistep decay factor")
    pct_start: float = Field(0.3, gt=0, lt=1, description="onecycle: fraction of steps spent raising the LR (torch: 0.3)")
    div_factor: float = Field(25.0, gt=0, description="onecycle: the LR starts at lr / div_factor (torch: 25)")
    grad_clip: float | None = Field(None, gt=0, description="clip the gradient norm to this value")
    eval_every: int = Field(1, ge=0, description="validate every N epochs (0: only at the end)")

    @field_validator("lr")
    @classmethod
    def _lr_fits(cls, v: float) -> float:
        if v > 1e30:
            raise ValueError(f"must be at most 1e30, the range of a float32 (got {v:g})")
        return v

    @model_validator(mode="after")
    def _check(self):
        if any(not 0 < m < 1 for m in self.milestones):
            raise ValueError(f"milestones must be fractions in (0, 1) (got {self.milestones})")
        return self


@dataclass
class TrainState:
    """What hooks see and may change."""

    model: nn.Module
    config: TrainConfig
    optimizer: torch.optim.Optimizer
    scheduler: Any
    total_steps: int
    steps_per_epoch: int
    epoch: int = 0
    step: int = 0
    batch: tuple | None = None
    index: torch.Tensor | None = None  # dataset indices of the current batch
    terms: dict = field(default_factory=dict)
    history: list = field(default_factory=list)
    extra: dict = field(default_factory=dict)
    generator: torch.Generator | None = None
    device: Any = "cpu"


class Hook:
    """Override what you need; every method receives the :class:`TrainState`."""

    def on_fit_start(self, state: TrainState) -> None: ...
    def on_epoch_start(self, state: TrainState) -> None: ...
    def before_step(self, state: TrainState) -> None: ...  # before the forward pass
    def after_backward(self, state: TrainState) -> None: ...  # gradients exist; mask them here
    def after_step(self, state: TrainState) -> None: ...  # weights updated
    def on_epoch_end(self, state: TrainState) -> None: ...
    def on_fit_end(self, state: TrainState) -> None: ...


def cross_entropy_loss(model: nn.Module, x: Inputs, y: torch.Tensor, state: TrainState | None = None) -> dict:
    """Plain classification loss."""
    return {"ce": F.cross_entropy(model(x), y)}


# Held while the process-global RNGs are seeded, and by callers that seed and then draw from them
# (model initialisation), so threads of one process do not interleave a seed and its draws.
RNG_LOCK = threading.RLock()


def seed_everything(seed: int) -> None:
    import random

    import numpy as np

    with RNG_LOCK:
        random.seed(seed)
        np.random.seed(seed % 2**32)
        torch.manual_seed(seed)


def check_device(device: str | torch.device) -> str:
    """``device`` as a string if this machine has it; a :class:`ChildnetError` sentence otherwise."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ChildnetError(f"device: '{device}' is not a torch device (accepted: cpu, cuda, cuda:N, mps)") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ChildnetError(f"device: '{device}' asked for, but this machine has no CUDA device "
                                "(or torch was built without CUDA); use --device cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ChildnetError(f"device: '{device}' does not exist; this machine has {torch.cuda.device_count()} "
                                f"CUDA device(s) (cuda:0 … cuda:{torch.cuda.device_count() - 1})")
    elif dev.type == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise ChildnetError(f"device: '{device}' asked for, but MPS is not available here; use --device cpu")
    elif dev.type != "cpu":
        raise ChildnetError(f"device: '{device}' is not supported (accepted: cpu, cuda, cuda:N, mps)")
    elif dev.index not in (None, 0):  # torch accepts any index and ignores it: a typo would pass unseen
        raise ChildnetError(f"device: '{device}' does not exist; torch has one CPU device, 'cpu' (all its cores; "
                            "the number of threads is torch's, or set OMP_NUM_THREADS)")
    return str(device)


def _param_groups(params: Iterable[nn.Parameter], cfg: TrainConfig) -> list[dict]:
    params = [p for p in params if p.requires_grad]
    if cfg.decay_norm_and_bias or cfg.weight_decay == 0:
        return [{"params": params, "weight_decay": cfg.weight_decay}]
    decay = [p for p in params if p.ndim > 1]
    no_decay = [p for p in params if p.ndim <= 1]
    return [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def make_optimizer(params: Iterable[nn.Parameter], cfg: TrainConfig) -> torch.optim.Optimizer:
    """SGD / AdamW / Adam over ``params``; no decay on biases and norm weights unless asked."""
    groups = _param_groups(params, cfg)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(groups, lr=cfg.lr)
    return torch.optim.AdamW(groups, lr=cfg.lr)


def make_scheduler(opt: torch.optim.Optimizer, cfg: TrainConfig, total_steps: int):
    """Per-step LR schedule: constant / cosine / linear (with warm-up), one-cycle, multistep."""
    total = max(1, total_steps)
    if cfg.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=total + 1,
                                                   pct_start=cfg.pct_start, div_factor=cfg.div_factor)
    warm = int(cfg.warmup_frac * total)

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        t = (step - warm) / max(1, total - warm)
        if cfg.schedule == "cosine":
            return 0.5 * (1 + math.cos(math.pi * min(1.0, t)))
        if cfg.schedule == "linear":
            return max(0.0, 1.0 - t)
        if cfg.schedule == "multistep":
            return cfg.gamma ** sum(step >= m * total for m in cfg.milestones)
        return 1.0

    return torch.optim.lr_scheduler.LambdaLR(opt, factor)


@torch.no_grad()
def evaluate_accuracy(model: nn.Module, x: Inputs, y: torch.Tensor, batch_size: int = 512, device="cpu") -> float:
    """Top-1 accuracy in eval mode (restores the previous mode)."""
    was = model.training
    model.eval()
    correct = 0
    for i in range(0, len(y), batch_size):
        xb = to_device(take(x, slice(i, i + batch_size)), device)
        correct += (model(xb).argmax(-1).cpu() == y[i : i + batch_size]).sum().item()
    model.train(was)
    return correct / max(1, len(y))


def _call(hooks: Sequence[Hook], name: str, state: TrainState) -> None:
    for h in hooks:
        getattr(h, name)(state)


def fit(
    model: nn.Module,
    train: tuple[Inputs, torch.Tensor],
    cfg: TrainConfig,
    *,
    loss_fn: LossFn | None = None,
    hooks: Sequence[Hook] = (),
    params: Iterable[nn.Parameter] | None = None,
    val: tuple[Inputs, torch.Tensor] | None = None,
    seed: int = 0,
    device: str | torch.device = "cpu",
    progress: Callable[[int, int, dict], None] | None = None,
) -> list[dict]:
    """Train ``model`` on ``train`` for ``cfg.epochs``; return the per-epoch history.

    Args:
        model: the network; trained in place.
        train: ``(x, y)`` tensors (``x`` may be a dict of tensors).
        cfg: optimiser, schedule and budget.
        loss_fn: returns a dict of named loss terms (default: cross-entropy).
        hooks: :class:`Hook` objects called at fixed points of the loop.
        params: parameters to optimise (default: ``model.parameters()``); add a method's extra
            modules (regressors, projections) here.
        val: validation split; its accuracy is logged every ``cfg.eval_every`` epochs.
        seed: seeds batch order, dropout and anything random in hooks.
        device: where to train.
        progress: ``progress(epoch, total_epochs, record)`` after each epoch.

    Raises:
        TrainingDiverged: a loss term became NaN or infinite.
    """
    loss_fn = loss_fn or cross_entropy_loss
    seed_everything(seed)
    x, y = train
    n = num_examples(x)
    if n == 0 and cfg.epochs > 0:
        raise ChildnetError("the training set is empty (0 examples): nothing to train on; check the task's "
                            "x_train (or its n_train and val_fraction)")
    steps_per_epoch = max(1, math.ceil(n / cfg.batch_size))
    total_steps = int(round(cfg.epochs * steps_per_epoch))
    model.to(device).train()
    opt = make_optimizer(params if params is not None else model.parameters(), cfg)
    sched = make_scheduler(opt, cfg, total_steps)
    gen = torch.Generator().manual_seed(seed)
    state = TrainState(model, cfg, opt, sched, total_steps, steps_per_epoch, generator=gen, device=device)
    _call(hooks, "on_fit_start", state)
    n_epochs = math.ceil(total_steps / steps_per_epoch)
    for epoch in range(n_epochs):
        state.epoch = epoch
        _call(hooks, "on_epoch_start", state)
        perm = torch.randperm(n, generator=gen)
        sums: dict[str, float] = {}
        seen = 0
        for b in range(steps_per_epoch):
            if state.step >= total_steps:
                break
            idx = perm[b * cfg.batch_size : (b + 1) * cfg.batch_size]
            xb, yb = to_device(take(x, idx), device), y[idx].to(device)
            state.batch, state.index = (xb, yb), idx
            _call(hooks, "before_step", state)
            terms = loss_fn(model, xb, yb, state)
            loss = sum(terms.values())
            if not torch.isfinite(loss):
                bad = {k: float(v.detach()) for k, v in terms.items()}
                raise TrainingDiverged(
                    f"loss became non-finite at epoch {epoch + 1}, step {state.step + 1} (terms: {bad}); "
                    + _divergence_hint(x, cfg.lr)
                )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            _call(hooks, "after_backward", state)
            if cfg.grad_clip:
                nn.utils.clip_grad_norm_([p for g in opt.param_groups for p in g["params"]], cfg.grad_clip)
            opt.step()
            sched.step()
            state.step += 1
            state.terms = terms
            _call(hooks, "after_step", state)
            k = len(yb)
            seen += k
            for name, v in terms.items():
                sums[name] = sums.get(name, 0.0) + float(v.detach()) * k
        record = {"epoch": epoch + 1, "lr": opt.param_groups[0]["lr"], "samples": seen}
        record.update({f"train_{k}": v / max(1, seen) for k, v in sums.items()})
        _call(hooks, "on_epoch_end", state)
        last = epoch == n_epochs - 1
        if val is not None and ((cfg.eval_every and (epoch + 1) % cfg.eval_every == 0) or last):
            record["val_accuracy"] = evaluate_accuracy(model, val[0], val[1], device=device)
        record.update(state.extra.pop("log", {}))
        state.history.append(record)
        if progress:
            progress(epoch + 1, n_epochs, record)
    _call(hooks, "on_fit_end", state)
    model.eval()
    return state.history


#: Inputs whose magnitude exceeds this are called out as the likely cause of a diverging loss.
LARGE_INPUT = 1e3


def _divergence_hint(x, lr: float) -> str:
    """What to change: the input scale when the training inputs are huge, else the learning rate."""
    if isinstance(x, torch.Tensor) and x.is_floating_point() and x.numel():
        peak = float(x.detach().abs().max())
        if not math.isfinite(peak) or peak > LARGE_INPUT:
            return (f"the inputs reach |x| = {peak:.3g}, so the cause is most likely their scale, not the learning "
                    "rate: standardise the features (task arrays: standardize: true) or rescale them to about "
                    "[-1, 1] before training")
    return f"try a lower learning rate (train.lr = {lr})"
