"""snapshot: M cosine-annealed cycles continued from the parent; the weights at each cycle's end are members.

Huang, Li, Pleiss, Liu, Hopcroft, Weinberger, "Snapshot Ensembles: Train 1, get M for free", ICLR 2017
(arXiv 1704.00109). The learning rate follows α(t) = α₀/2 · (cos(π · (t mod ⌈T/M⌉) / ⌈T/M⌉) + 1) within
each cycle (eq. 2) and restarts at α₀; a snapshot is taken at each minimum. As METHODS.md asks, the
cycles continue from the trained parent rather than from scratch, so the parent is the zeroth snapshot.

Our choices (documented here and exposed in the config): each cycle is one call of the one training loop
with the trainer's per-step cosine schedule, so the SGD momentum buffer restarts with the learning rate
(the paper keeps one optimiser); the defaults follow the paper's optimiser (SGD, Nesterov momentum 0.9,
weight decay 1e-4, α₀ = 0.1 — it uses 0.1 or 0.2) with a cycle length equal to PAT's tuning budget
(10 epochs), so the two parent-derived ensembles cost the same.
"""

from __future__ import annotations

import copy

from pydantic import Field

from ...models.base import model_spec
from ...registry import METHODS
from ...train import TrainConfig
from ..base import fit_on
from ._common import CostLedger, EnsembleMethodConfig, make_ensemble_child, member_card, member_progress, member_seed

__all__ = ["SnapshotConfig", "derive"]


def _default_cycle() -> TrainConfig:
    return TrainConfig(epochs=10, optimizer="sgd", lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-4,
                       schedule="cosine")


class SnapshotConfig(EnsembleMethodConfig):
    """M = ``members`` cosine cycles continued from the parent."""

    cycle: TrainConfig = Field(default_factory=_default_cycle,
                               description="one cosine cycle (epochs = cycle length, lr = α₀; schedule cosine)")


@METHODS.register("snapshot", parent_use="outputs", config=SnapshotConfig, family="ensemble",
                  tiny={"members": 2, "cycle": {"epochs": 1, "optimizer": "sgd", "lr": 0.05}})
def derive(parent, task, cfg: SnapshotConfig, ctx):
    """Continue training the parent for M cosine cycles; each cycle's end is a member (Huang et al. 2017)."""
    model_spec(parent.model)  # a parent childnet cannot rebuild is refused before the cycles train
    model = parent.trainable_copy().to(ctx.device)
    ledger = CostLedger(task)
    models, cards = [], []
    for k in range(cfg.members):
        seed = member_seed(ctx.seed, k)
        counter = ledger.start()
        history = fit_on(task, model, cfg.cycle, ctx, hooks=[counter], seed=seed,
                         progress=member_progress(ctx, k, cfg.members))
        ledger.stop(model, counter)
        snapshot = copy.deepcopy(model).eval()
        models.append(snapshot)
        cards.append(member_card(snapshot, "snapshot", cfg, seed, k, parent, task, history, cycle=k + 1))
    return make_ensemble_child(models, cards, "snapshot", cfg, ctx, parent, task, ledger, uses_parent=True)
