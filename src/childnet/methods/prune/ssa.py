"""ssa: Stochastic Subnetwork Annealing — pruned weights fade out through random masks.

Whitaker & Whitley 2024, "Stochastic Subnetwork Annealing: A Regularization Technique for Fine Tuning
Pruned Subnetworks", arXiv 2401.08830. Start from the trained parent and a target mask at sparsity s.
Each weight has a keep-probability P: 1 for kept weights; for weights to be pruned an initial value
(``variant: temperature``: all at T₀; ``random``: each drawn from U(0, T₀)). Every training step samples
m ~ Bernoulli(P) and the network computes with w ⊙ m, so a to-be-pruned weight that is sampled in still
takes part and gets gradients. The pruned weights' probabilities are annealed to 0 (``anneal: linear``
or ``cosine``) over the first ``anneal_frac`` of the tuning steps; from then on the mask is deterministic
and equals the target, and tuning goes on with it.

Our choices (the paper does not fix them for our setting; all are config fields):

- T₀ = 0.5 and annealing over the first half of tuning, linear: a middle ground of the paper's ablations.
- P is annealed per step (smooth, and valid for fractional epochs), not per epoch.
- The masks are drawn by a private generator seeded from the unit seed, so SSA sees exactly the same
  batches as one-shot and iterative pruning (equal budgets, same data order).
- Validation during tuning uses the target mask (the subnetwork SSA is converging to).
- Annealed weights keep their parent values until their probability reaches 0 (they are not zeroed at
  the start); after tuning, ``w ⊙ target`` is baked in, so the child's zeros are exactly the target's.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from pydantic import Field, model_validator

from ...config import Config
from ...masks import MaskParametrization, Masks, apply_masks
from ...registry import METHODS
from ...train import Hook, TrainState
from ..base import fit_on
from ._common import PruneConfig, finish_child, start_model, target_masks

__all__ = ["SSAConfig", "SSAOptions", "SubnetworkAnnealing", "derive"]


class SSAOptions(Config):
    """The annealing options SSA shares with ``pat_ssa``; SSA anneals single weights only."""

    #: what to suggest when a structure other than weights is asked for
    _structured_alternative = "neurons/channels: use oneshot or iterative"

    variant: Literal["temperature", "random"] = Field(
        "temperature", description="initial P of pruned weights: all T0 (temperature) or each U(0, T0) (random)")
    t0: float = Field(0.5, gt=0.0, le=1.0, description="initial keep-probability T0 of the weights to be pruned")
    anneal: Literal["linear", "cosine"] = Field("linear", description="how P falls from its start to 0")
    anneal_frac: float = Field(0.5, gt=0.0, le=1.0,
                               description="fraction of the tuning steps over which P reaches 0")

    @model_validator(mode="after")
    def _weights_only(self):
        if getattr(self, "structure", "weights") != "weights":
            raise ValueError(f"structure: SSA anneals individual weights; use structure 'weights' "
                             f"(got {self.structure!r}; {self._structured_alternative})")
        return self


class SSAConfig(PruneConfig, SSAOptions):
    """Stochastic masks around the target subnetwork, pruned weights' probabilities annealed to 0."""


class SubnetworkAnnealing(Hook):
    """Resample ``m ~ Bernoulli(P)`` before every step; anneal the pruned weights' P to 0.

    Works on any model whose target masks were applied with
    ``apply_masks(model, target, zero_pruned=False)`` (the PAT+SSA ensemble uses it too).

    Args:
        target: the final masks (True = kept).
        variant, t0, anneal, anneal_frac: see :class:`SSAConfig`.
        seed: seeds the mask draws (a private generator: batch order is untouched).
    """

    def __init__(self, target: Masks, *, variant: str = "temperature", t0: float = 0.5, anneal: str = "linear",
                 anneal_frac: float = 0.5, seed: int = 0):
        self.target = {k: v.bool() for k, v in target.items()}
        self.variant, self.t0, self.anneal, self.anneal_frac = variant, t0, anneal, anneal_frac
        self.seed = seed
        self.buffers: dict[str, torch.Tensor] = {}
        self.start_p: dict[str, torch.Tensor] = {}
        self.anneal_steps = 1
        self.step = 0

    def on_fit_start(self, state: TrainState) -> None:
        self.gen = torch.Generator().manual_seed(int(self.seed) + 7919)
        self.anneal_steps = max(1, round(self.anneal_frac * state.total_steps))
        for name, keep in self.target.items():
            mod_name, _, pname = name.rpartition(".")
            module = state.model.get_submodule(mod_name) if mod_name else state.model
            param = next(p for p in module.parametrizations[pname] if isinstance(p, MaskParametrization))
            self.buffers[name] = param.mask
            p0 = torch.full(keep.shape, self.t0)
            if self.variant == "random":
                p0 = torch.rand(keep.shape, generator=self.gen) * self.t0
            self.start_p[name] = torch.where(keep, torch.zeros_like(p0), p0)

    def scale(self, step: int) -> float:
        """Factor on the pruned weights' starting probabilities at ``step`` (1 → 0, then 0)."""
        t = min(1.0, step / self.anneal_steps)
        return 1.0 - t if self.anneal == "linear" else 0.5 * (1.0 + math.cos(math.pi * t))

    def probabilities(self, step: int | None = None) -> Masks:
        """P per weight at ``step`` (default: the current step): 1 for kept weights."""
        f = self.scale(self.step if step is None else step)
        return {k: torch.where(self.target[k], torch.ones_like(p), p * f) for k, p in self.start_p.items()}

    def _set(self, sampled: bool) -> None:
        f = self.scale(self.step) if sampled else 0.0
        for name, buf in self.buffers.items():
            keep = self.target[name]
            if f > 0:
                keep = keep | (torch.rand(keep.shape, generator=self.gen) < self.start_p[name] * f)
            buf.copy_(keep.to(buf.device))

    def before_step(self, state: TrainState) -> None:
        self.step = state.step
        self._set(sampled=True)

    def on_epoch_end(self, state: TrainState) -> None:
        self._set(sampled=False)  # validate the target subnetwork
        f = self.scale(state.step)
        pruned = [p[~self.target[k]] * f for k, p in self.start_p.items()]
        mean_p = float(torch.cat(pruned).mean()) if pruned and sum(x.numel() for x in pruned) else 0.0
        state.extra.setdefault("log", {})["ssa_mean_p_pruned"] = mean_p

    def on_fit_end(self, state: TrainState) -> None:
        self.step = state.step
        self._set(sampled=False)


@METHODS.register("ssa", parent_use="outputs", config=SSAConfig, family="prune",
                  tiny={"sparsity": 0.5, "tune": {"epochs": 1}})
def derive(parent, task, cfg: SSAConfig, ctx):
    """Stochastic Subnetwork Annealing: Bernoulli masks, pruned weights' P annealed to 0 (Whitaker & Whitley 2024)."""
    model = start_model(parent, ctx)
    masks = target_masks(model, cfg, ctx.seed, data=(task.x_train, task.y_train))
    apply_masks(model, masks, zero_pruned=False)
    hook = SubnetworkAnnealing(masks, variant=cfg.variant, t0=cfg.t0, anneal=cfg.anneal,
                               anneal_frac=cfg.anneal_frac, seed=ctx.seed)
    history = fit_on(task, model, cfg.tune, ctx, hooks=[hook])
    final_p = hook.probabilities()
    max_p_pruned = max((float(p[~masks[k]].max()) for k, p in final_p.items() if (~masks[k]).any()), default=0.0)
    return finish_child(model, masks, "ssa", cfg, ctx, parent, task, history,
                        extra={"ssa_final_max_p_pruned": max_p_pruned})
