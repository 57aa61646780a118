"""Child-Tuning_F and Child-Tuning_D: fine-tune the whole network, but update only a child of it.

Xu, Luo, Zhang, Tan, Chang, Huang, Huang, "Raise a Child in Large Language Model: Towards Effective
and Generalizable Fine-tuning", EMNLP 2021 (arXiv 2109.05687). The forward pass uses every weight;
the update uses only the child's gradients, w ← w − η·AdamW(∇L ⊙ M) (§3.1, eq. 3):

- **Child-Tuning_F** (task-free, §3.2): every step, every parameter tensor draws
  M ~ Bernoulli(p_F) elementwise and the gradient becomes ∇L ⊙ M / p_F (unbiased). Default p_F = 0.2.
- **Child-Tuning_D** (task-driven, §3.3): before training, the diagonal Fisher information of each
  encoder weight is estimated over the training set — the mean over batches of the squared gradient,
  each tensor's gradient norm clipped to 1 first, as in the official code. One global threshold keeps
  the top p_D (default 0.3) of the encoder weights; the mask is fixed and not rescaled. Embeddings and
  the head are always updated (:func:`~childnet.methods.tune._common.body_parameters`).

Masks act on gradients in the trainer's ``after_backward`` hook; the optimiser is torch's own AdamW.
As in the official code (masks inside the optimiser, after the trainer clipped the gradient norm) the
hook clips first and masks second, so the loop's own clipping is switched off for these runs.

Choices of ours, documented: the Fisher pass runs in train mode (dropout on, as in the official
``calculate_fisher``) on batches in dataset order, seeded by the unit's seed; Child-Tuning_D keeps
*exactly* round(p_D · n) weights (``topk``: ties are broken by position, where the official
``>= percentile`` could keep a few more). Child-Tuning_F draws its Bernoulli masks from 16 random bits
per weight (p_F is rounded to a multiple of 1/65,536 and the rescaling uses that exact probability,
so the masked gradient stays unbiased), and on embedding tables it draws only for the rows that
received gradient (other rows' gradients are zero, which masking leaves at zero): the same
distribution at a fraction of the cost.
"""

from __future__ import annotations

import math
import time
from typing import Literal

import torch
from pydantic import Field, field_validator
from torch import nn

from ...registry import METHODS
from ...scorers import ScorerName, fisher_information, score
from ...train import Hook, TrainState
from ..base import fit_on
from ._common import TuneConfig, body_parameters, extra_hooks, prepare_model, tune_child

__all__ = [
    "ChildTuningFConfig",
    "ChildTuningDConfig",
    "BernoulliGradientMask",
    "FixedGradientMask",
    "fisher_information",
    "top_fraction_mask",
    "derive_f",
    "derive_d",
]

TINY = {"train": {"epochs": 1, "lr": 1e-3}}


def _fraction(value: float) -> float:
    if not 0.0 < value <= 1.0:
        raise ValueError("must be a fraction in (0, 1]: the share of weights the child updates")
    return value


class ChildTuningFConfig(TuneConfig):
    """Child-Tuning_F: a fresh Bernoulli(p_F) gradient mask every step."""

    p_f: float = Field(0.2, description="keep probability p_F of each gradient entry, in (0, 1] (paper: 0.1-0.3)")
    scope: Literal["all", "body"] = Field("all", description="mask every parameter (paper) or only the encoder body")

    @field_validator("p_f")
    @classmethod
    def _check_p_f(cls, v: float) -> float:
        return _fraction(v)


class ChildTuningDConfig(TuneConfig):
    """Child-Tuning_D: a fixed mask keeping the top p_D of encoder weights by Fisher information."""

    p_d: float = Field(0.3, description="fraction p_D of encoder weights the child updates, in (0, 1] (paper: 0.1-0.3)")
    fisher_clip: float | None = Field(1.0, gt=0, description="clip each tensor's gradient norm before squaring")
    fisher_batch_size: int | None = Field(None, ge=1, description="batch of the Fisher pass (default: train.batch_size)")
    scorer: ScorerName = Field("fisher", description="what ranks the encoder weights: fisher (the paper) or any registered "
                        "scorer (magnitude, random, …)")

    @field_validator("p_d")
    @classmethod
    def _check_p_d(cls, v: float) -> float:
        return _fraction(v)


class _ClipThenMask(Hook):
    """Clip the global gradient norm (if asked), then apply :meth:`mask` — the official order."""

    def __init__(self, clip: float | None):
        self.clip = clip
        self.trainable: list[nn.Parameter] = []

    def on_fit_start(self, state: TrainState) -> None:
        self.trainable = [p for g in state.optimizer.param_groups for p in g["params"]]

    def after_backward(self, state: TrainState) -> None:
        if self.clip:
            nn.utils.clip_grad_norm_(self.trainable, self.clip)
        self.mask()

    def mask(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


class BernoulliGradientMask(_ClipThenMask):
    """Child-Tuning_F's gradient mask: ∇ ← ∇ ⊙ M / p, M ~ Bernoulli(p), redrawn every step.

    Args:
        params: ``(parameter, is_embedding_table)`` pairs to mask.
        keep: p_F; rounded to a multiple of 1/65,536 (``self.keep`` is the exact probability used).
        seed: seeds the mask generator (independent of batch order and dropout).
        clip: gradient-norm clipping applied before masking.
    """

    def __init__(self, params: list[tuple[nn.Parameter, bool]], keep: float, seed: int, clip: float | None = None):
        super().__init__(clip)
        self.params = params
        self.threshold = min(32768, max(-32767, round(keep * 65536) - 32768))
        self.keep = (self.threshold + 32768) / 65536
        self.seed = seed
        self.generator = torch.Generator().manual_seed(seed)
        self._buffers: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def on_fit_start(self, state: TrainState) -> None:
        super().on_fit_start(state)
        self.generator = torch.Generator().manual_seed(self.seed)

    def _draw(self, shape: tuple, buffers: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """A boolean mask of ``shape``, True with probability ``keep``, from 16 random bits per entry."""
        n = math.prod(shape)
        words, keep = buffers or (torch.empty((n + 3) // 4, dtype=torch.int64), torch.empty(shape, dtype=torch.bool))
        words.random_(-(2**63), 2**63 - 1, generator=self.generator)
        # keep when draw < threshold, written as draw <= threshold - 1 so the bound fits in int16
        return torch.le(words.view(torch.int16)[:n].view(shape), self.threshold - 1, out=keep)

    def sample(self, shape: tuple) -> torch.Tensor:
        """A float mask of ``shape``: 1/p with probability p, else 0 (so its mean is 1)."""
        return self._draw(tuple(shape)).to(torch.float32).mul_(1.0 / self.keep)

    def mask(self) -> None:
        for p, is_table in self.params:
            g = p.grad
            if g is None:
                continue
            if is_table:  # only rows that received gradient can change; the rest stay zero
                low, high = torch.aminmax(g, dim=1)
                rows = ((low != 0) | (high != 0)).nonzero().squeeze(1)
                if len(rows):
                    g[rows] = g[rows] * self.sample((len(rows), g.shape[1])).to(g.device)
                continue
            if id(p) not in self._buffers:  # reused every step: no allocation in the hot loop
                self._buffers[id(p)] = (torch.empty((p.numel() + 3) // 4, dtype=torch.int64),
                                        torch.empty(tuple(g.shape), dtype=torch.bool))
            g.mul_(self._draw(tuple(g.shape), self._buffers[id(p)]).to(g.device)).mul_(1.0 / self.keep)


class FixedGradientMask(_ClipThenMask):
    """Child-Tuning_D's gradient mask: ∇ ← ∇ ⊙ M with a fixed 0/1 mask per masked parameter."""

    def __init__(self, masks: list[tuple[nn.Parameter, torch.Tensor]], clip: float | None = None):
        super().__init__(clip)
        self.masks = [(p, m.to(device=p.device, dtype=p.dtype)) for p, m in masks]

    def mask(self) -> None:
        for p, m in self.masks:
            if p.grad is not None:
                p.grad.mul_(m)


def top_fraction_mask(scores: dict[str, torch.Tensor], keep: float) -> dict[str, torch.Tensor]:
    """Boolean masks keeping exactly the round(keep · n) highest scores over all tensors (one threshold)."""
    flat = torch.cat([s.detach().flatten().float().cpu() for s in scores.values()])
    k = min(flat.numel(), max(1, round(keep * flat.numel())))
    chosen = torch.zeros(flat.numel(), dtype=torch.bool)
    chosen[torch.topk(flat, k, sorted=False).indices] = True
    out, start = {}, 0
    for name, s in scores.items():
        out[name] = chosen[start : start + s.numel()].view(s.shape)
        start += s.numel()
    return out


def _embedding_tables(model: nn.Module) -> set[int]:
    return {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}


@METHODS.register("child_tuning_f", parent_use="inputs", config=ChildTuningFConfig, family="tune", tiny=TINY)
def derive_f(parent, task, cfg: ChildTuningFConfig, ctx):
    """Child-Tuning_F: fine-tune with a fresh Bernoulli(p_F) gradient mask each step (Xu et al. 2021)."""
    model, replaced = prepare_model(parent, task, cfg, ctx)
    targets = body_parameters(model) if cfg.scope == "body" else dict(model.named_parameters())
    tables = _embedding_tables(model)
    hook = BernoulliGradientMask([(p, id(p) in tables) for p in targets.values()], cfg.p_f,
                                 seed=ctx.seed + 7919, clip=cfg.train.grad_clip)
    train_cfg = cfg.train.model_copy(update={"grad_clip": None})  # the hook clips, then masks
    history = fit_on(task, model, train_cfg, ctx, hooks=[hook, *extra_hooks(ctx)], val=cfg.val_accuracy)
    extra = {"p_f_exact": hook.keep, "masked_parameters": sum(p.numel() for p in targets.values())}
    return tune_child(model, "child_tuning_f", cfg, ctx, parent, task, head_replaced=replaced, history=history,
                      extra=extra)


@METHODS.register("child_tuning_d", parent_use="inputs", config=ChildTuningDConfig, family="tune", tiny=TINY)
def derive_d(parent, task, cfg: ChildTuningDConfig, ctx):
    """Child-Tuning_D: fine-tune only the top-p_D encoder weights by Fisher information (Xu et al. 2021)."""
    model, replaced = prepare_model(parent, task, cfg, ctx)
    body = body_parameters(model)
    start, start_cpu = time.perf_counter(), time.process_time()
    if cfg.scorer == "fisher":  # the paper's options (clip, batch) are this method's fields
        scores = fisher_information(model, task.x_train, task.y_train, body, clip=cfg.fisher_clip, seed=ctx.seed,
                                    batch_size=cfg.fisher_batch_size or cfg.train.batch_size, device=ctx.device)
    else:
        scores = score(cfg.scorer, model, list(body), seed=ctx.seed, data=(task.x_train, task.y_train))
    masks = top_fraction_mask(scores, cfg.p_d)
    fisher_seconds, fisher_cpu = time.perf_counter() - start, time.process_time() - start_cpu
    hook = FixedGradientMask([(body[n], m) for n, m in masks.items()], clip=cfg.train.grad_clip)
    train_cfg = cfg.train.model_copy(update={"grad_clip": None})  # the hook clips, then masks
    history = fit_on(task, model, train_cfg, ctx, hooks=[hook, *extra_hooks(ctx)], val=cfg.val_accuracy)
    kept = sum(int(m.sum()) for m in masks.values())
    total = sum(m.numel() for m in masks.values())
    extra = {"fisher_seconds": fisher_seconds, "fisher_cpu_seconds": fisher_cpu, "kept_fraction": kept / max(1, total), "competing_parameters": total,
             "kept_fraction_by_tensor": {n: float(m.float().mean()) for n, m in masks.items()}}
    return tune_child(model, "child_tuning_d", cfg, ctx, parent, task, head_replaced=replaced, history=history,
                      masks=masks, extra=extra)
