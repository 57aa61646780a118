"""vanilla: fine-tune every weight of the parent on the target task — the tune family's baseline.

Standard full fine-tuning (Devlin et al. 2019, arXiv 1810.04805, §4) with the recipe in
:mod:`childnet.methods.tune._common`; the baseline both Child-Tuning (Xu et al. 2021) and AGWM
(Somayajula et al. 2024) compare against.
"""

from __future__ import annotations

from ...registry import METHODS
from ..base import fit_on
from ._common import TuneConfig, extra_hooks, prepare_model, tune_child

__all__ = ["VanillaConfig", "derive"]

#: Options that make every tune method run in seconds on the contract-test CNN parent.
TINY = {"train": {"epochs": 1, "lr": 1e-3}}


class VanillaConfig(TuneConfig):
    """Full fine-tuning: every parameter receives its whole gradient."""


@METHODS.register("vanilla", parent_use="inputs", config=VanillaConfig, family="tune", baseline=True, tiny=TINY)
def derive(parent, task, cfg: VanillaConfig, ctx):
    """Fine-tune all of the parent's weights on the task (baseline of the tune family)."""
    model, replaced = prepare_model(parent, task, cfg, ctx)
    history = fit_on(task, model, cfg.train, ctx, hooks=extra_hooks(ctx), val=cfg.val_accuracy)
    return tune_child(model, "vanilla", cfg, ctx, parent, task, head_replaced=replaced, history=history)
