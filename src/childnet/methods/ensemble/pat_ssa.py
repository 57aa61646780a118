"""pat_ssa: Prune-and-Tune ensembles whose children are tuned with Stochastic Subnetwork Annealing.

PAT (Whitaker & Whitley, AAAI 2022, arXiv 2202.11782) prunes each child to its anti-random mask at
once. SSA (Whitaker & Whitley 2024, arXiv 2401.08830) instead lets the weights a child will lose fade
out: every step samples m ~ Bernoulli(P), P = 1 for kept weights and T₀ → 0 (annealed) for the weights
to be pruned, so early in tuning a child still computes with part of what its partner keeps. The SSA
paper proposes it for tuning pruned subnetworks, PAT children included. After annealing, each child's
mask equals its anti-random target and tuning goes on with it, exactly as in ``pat``.

The annealing is the prune family's :class:`~childnet.methods.prune.ssa.SubnetworkAnnealing` hook (one
implementation); its defaults (T₀ = 0.5, linear, over the first half of tuning) are the prune family's
documented choices. SSA anneals individual weights, so ``structure`` must be ``weights``.
"""

from __future__ import annotations

from ...registry import METHODS
from ..prune.ssa import SSAOptions, SubnetworkAnnealing
from ._common import member_seed
from .pat import PATConfig, tune_members

__all__ = ["PATSSAConfig", "derive"]


class PATSSAConfig(PATConfig, SSAOptions):
    """PAT children tuned with Stochastic Subnetwork Annealing toward their anti-random masks."""

    _structured_alternative = "for whole neurons/channels use pat"


@METHODS.register("pat_ssa", parent_use="outputs", config=PATSSAConfig, family="ensemble",
                  tiny={"members": 2, "tune": {"epochs": 1, "optimizer": "sgd", "lr": 0.05, "schedule": "onecycle"}})
def derive(parent, task, cfg: PATSSAConfig, ctx):
    """PAT with each child tuned by Stochastic Subnetwork Annealing toward its anti-random mask."""

    def annealing(k: int, masks):
        return [SubnetworkAnnealing(masks, variant=cfg.variant, t0=cfg.t0, anneal=cfg.anneal,
                                    anneal_frac=cfg.anneal_frac, seed=member_seed(ctx.seed, k))]

    return tune_members(parent, task, cfg, ctx, "pat_ssa", extra_hooks=annealing)
