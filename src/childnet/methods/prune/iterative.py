"""iterative: k rounds of "prune a little, tune", within the same tuning budget as one-shot.

Iterative magnitude pruning (Han et al. 2015, arXiv 1506.02626; Frankle & Carbin 2019, arXiv
1803.03635, without rewinding): each round removes the same fraction of the *remaining* weights, so
after round r (of k) the density is ``(1 − s)^(r/k)`` (``schedule: geometric``; ``linear`` raises the
sparsity by s/k per round instead). Weights pruned in a round stay pruned.

Equal budgets — our choice: the k rounds share ONE tuning run of ``tune.epochs`` (one LR schedule,
the same batches as one-shot and SSA). Round 1 prunes before the first step and the rounds are spread
evenly over the first ``prune_frac`` of the T tuning steps (round r at step ``(r−1)/(k−1) · prune_frac · T``),
so the final mask is tuned for the remaining ``1 − prune_frac`` — by default the same split as SSA's
``anneal_frac`` (annealing, then tuning the deterministic target). Restarting the schedule every round
would give iterative pruning k schedule restarts the other methods do not get.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from ...masks import Masks, apply_masks
from ...registry import METHODS
from ...train import Hook, TrainState
from ..base import fit_on
from ._common import PruneConfig, finish_child, start_model, target_masks

__all__ = ["IterativeConfig", "IterativePruning", "round_sparsity", "derive"]


class IterativeConfig(PruneConfig):
    """Prune in ``rounds`` steps to ``sparsity`` during one tuning run."""

    rounds: int = Field(5, ge=1, le=100, description="pruning rounds k (1 = one-shot)")
    prune_frac: float = Field(0.5, ge=0.0, le=1.0,
                              description="the rounds are spread over this first fraction of the tuning steps")
    schedule: Literal["geometric", "linear"] = Field(
        "geometric", description="geometric: each round prunes the same fraction of the remaining weights; "
        "linear: the same number of weights")

    @model_validator(mode="after")
    def _scorer(self):
        if self.scorer == "random" and self.structure == "weights":
            raise ValueError("scorer: iterative pruning ranks by magnitude each round; scorer 'random' is only "
                             "available for oneshot (got scorer='random')")
        return self


def round_sparsity(sparsity: float, r: int, rounds: int, schedule: str = "geometric") -> float:
    """Sparsity after round ``r`` (1-based) of ``rounds``; equals ``sparsity`` at ``r = rounds``."""
    if schedule == "linear":
        return sparsity * r / rounds
    return 1.0 - (1.0 - sparsity) ** (r / rounds)


class IterativePruning(Hook):
    """Prunes to round r's sparsity at step ``(r−1)/(k−1) · prune_frac · T`` (round 1 before training)."""

    def __init__(self, cfg: IterativeConfig, seed: int, masks: Masks, data=None):
        self.cfg, self.seed, self.masks, self.data = cfg, seed, masks, data
        self.round = 1
        self.at: dict[int, int] = {}

    def on_fit_start(self, state: TrainState) -> None:
        k, span = self.cfg.rounds, self.cfg.prune_frac * state.total_steps
        self.at = {round((r - 1) / (k - 1) * span): r for r in range(2, k + 1)} if k > 1 else {}

    def before_step(self, state: TrainState) -> None:
        r = self.at.get(state.step)
        if r is None:
            return
        self.prune_to(state.model, r)
        state.extra.setdefault("log", {})["prune_round"] = r

    def prune_to(self, model, r: int) -> None:
        """Apply round ``r``'s masks (previously pruned weights stay pruned)."""
        s = round_sparsity(self.cfg.sparsity, r, self.cfg.rounds, self.cfg.schedule)
        self.masks = target_masks(model, self.cfg, self.seed, sparsity=s, previous=self.masks, data=self.data)
        apply_masks(model, self.masks)
        self.round = r


@METHODS.register("iterative", parent_use="outputs", config=IterativeConfig, family="prune",
                  tiny={"sparsity": 0.5, "rounds": 2, "tune": {"epochs": 1}})
def derive(parent, task, cfg: IterativeConfig, ctx):
    """Iterative magnitude pruning: k rounds of prune-a-little + tune within one tuning budget."""
    model = start_model(parent, ctx)
    first = round_sparsity(cfg.sparsity, 1, cfg.rounds, cfg.schedule)
    data = (task.x_train, task.y_train)
    masks = target_masks(model, cfg, ctx.seed, sparsity=first, data=data)
    apply_masks(model, masks)
    hook = IterativePruning(cfg, ctx.seed, masks, data)
    history = fit_on(task, model, cfg.tune, ctx, hooks=[hook])
    if hook.round < cfg.rounds:  # fewer tuning steps than rounds: still end at the target
        hook.prune_to(model, cfg.rounds)
    return finish_child(model, hook.masks, "iterative", cfg, ctx, parent, task, history)
