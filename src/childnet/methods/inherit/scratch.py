"""scratch: the child architecture trained alone with cross-entropy — the baseline."""

from __future__ import annotations

from ...registry import METHODS
from ..base import fit_on, make_child
from ._common import InheritConfig, init_child

__all__ = ["ScratchConfig", "derive"]


class ScratchConfig(InheritConfig):
    """The child trained on the labels only (no parent signal)."""


@METHODS.register("scratch", config=ScratchConfig, family="inherit", baseline=True,
                  tiny={"train": {"epochs": 1}, "child": {"name": "cnn", "width": 4, "depth": 2}})
def derive(parent, task, cfg: ScratchConfig, ctx):
    """Train the child alone with cross-entropy (baseline of the inherit family)."""
    model = init_child(parent, task, cfg, ctx)
    history = fit_on(task, model, cfg.train, ctx)
    return make_child(model, "scratch", cfg, ctx, parent, task, history=history)
