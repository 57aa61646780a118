"""independent: N networks trained from scratch with different seeds — the expensive baseline.

The classic deep ensemble (Lakshminarayanan, Pritzel, Blundell 2017, arXiv 1612.01474, without
adversarial training): each member has its own random initialisation and batch order. PAT
(Whitaker & Whitley, AAAI 2022) compares against exactly this baseline, trained as long as the parent.
Each member here is trained the way the parent was (same architecture and training run) unless the
config says otherwise; the parent itself is not used, so its training cost is not added.
"""

from __future__ import annotations

import torch
from pydantic import Field

from ...config import ModelSpec
from ...errors import ConfigError
from ...models.base import build_model
from ...registry import METHODS
from ...train import TrainConfig
from ..base import fit_on
from ._common import (CostLedger, EnsembleMethodConfig, make_ensemble_child, member_card, member_progress,
                      member_seed, parent_train_config)

__all__ = ["IndependentConfig", "derive"]


class IndependentConfig(EnsembleMethodConfig):
    """N members trained from scratch, each with its own seed."""

    member: ModelSpec | None = Field(None, description="model spec of each member (default: the parent's architecture)")
    train: TrainConfig | None = Field(
        None, description="each member's training run (default: the parent's own, read from its cache record; "
        "a partial block changes only the options it names)")


def _member_training(parent, cfg: IndependentConfig) -> TrainConfig:
    """The members' training run: ``train`` merged onto the parent's own (a partial block keeps the rest)."""
    known = parent_train_config(parent)
    if cfg.train is not None:
        if known is None:
            return cfg.train
        return TrainConfig(**{**known, **cfg.train.model_dump(exclude_unset=True)})
    if known is None:
        raise ConfigError(
            "methods[independent].train: the parent's training run is unknown (it was loaded, not trained "
            "here), so give the members' training explicitly, e.g. train: {epochs: 20, lr: 0.003}")
    return TrainConfig(**known)


@METHODS.register("independent", config=IndependentConfig, family="ensemble", baseline=True,
                  tiny={"members": 2, "train": {"epochs": 1, "lr": 0.01}})
def derive(parent, task, cfg: IndependentConfig, ctx):
    """Train N members from scratch with distinct seeds; combine by the mean of softmax (baseline)."""
    train_cfg = _member_training(parent, cfg)
    cfg = cfg.model_copy(update={"train": train_cfg})  # the lineage records the effective run
    spec = cfg.member or parent.spec
    ledger = CostLedger(task)
    models, cards = [], []
    for k in range(cfg.members):
        seed = member_seed(ctx.seed, k)
        torch.manual_seed(seed)
        model = build_model(spec, task.input_shape, task.num_classes).to(ctx.device)
        counter = ledger.start()
        history = fit_on(task, model, train_cfg, ctx, hooks=[counter], seed=seed,
                         progress=member_progress(ctx, k, cfg.members))
        ledger.stop(model, counter)
        models.append(model)
        cards.append(member_card(model, "independent", cfg, seed, k, None, task, history,
                                 train=train_cfg.model_dump()))
    return make_ensemble_child(models, cards, "independent", cfg, ctx, parent, task, ledger, uses_parent=False)
