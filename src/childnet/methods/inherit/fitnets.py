"""fitnets: hint-based training — a regressor maps a child feature map onto the parent's.

Romero et al. 2015, "FitNets: Hints for Thin Deep Nets" (arXiv 1412.6550). We use the single-stage
form METHODS.md gives, L = CE + β·‖r(f_c) − f_p‖² (mean squared error), rather than the paper's two
stages (hint pre-training, then KD); the regressor r is a 1×1 convolution (a linear layer for vectors),
with resizing when the maps differ in size. It is trained with the child and discarded afterwards.
"""

from __future__ import annotations

import torch.nn.functional as F
from pydantic import Field

from ...features import capture, default_hint_layer
from ...registry import METHODS
from ..base import fit_on, make_child
from ._common import InheritConfig, init_child, parent_outputs
from .transfer import FeatureTransfer

__all__ = ["FitNetsConfig", "derive"]


class FitNetsConfig(InheritConfig):
    beta: float = Field(1.0, ge=0, description="weight β of the hint (MSE) term")
    parent_layer: str = Field("auto", description="hint layer of the parent ('auto': a middle block, 'features')")
    child_layer: str = Field("auto", description="guided layer of the child ('auto': a middle block)")


@METHODS.register("fitnets", parent_use="inputs", config=FitNetsConfig, family="inherit",
                  tiny={"train": {"epochs": 1}, "child": {"name": "cnn", "width": 4, "depth": 2}})
def derive(parent, task, cfg: FitNetsConfig, ctx):
    """Train the child on labels plus a regression of its middle features onto the parent's (Romero 2015)."""
    model = init_child(parent, task, cfg, ctx)
    p_layer = default_hint_layer(parent.model) if cfg.parent_layer == "auto" else cfg.parent_layer
    c_layer = default_hint_layer(model) if cfg.child_layer == "auto" else cfg.child_layer
    hints = parent_outputs(parent, task.x_train, [p_layer], device=ctx.device)[p_layer].to(ctx.device)
    with capture(model, [c_layer]) as feats:
        model.eval()
        model(task.example_input(2))
        c_shape = tuple(feats[c_layer].shape[1:])
    regressor = FeatureTransfer(c_shape, tuple(hints.shape[1:])).to(ctx.device)

    def loss(m, x, y, state):
        with capture(m, [c_layer]) as f:
            logits = m(x)
        return {"ce": F.cross_entropy(logits, y),
                "hint": cfg.beta * F.mse_loss(regressor(f[c_layer]), hints[state.index])}

    params = list(model.parameters()) + list(regressor.parameters())
    history = fit_on(task, model, cfg.train, ctx, loss_fn=loss, params=params)
    return make_child(model, "fitnets", cfg, ctx, parent, task, history=history,
                      extra={"parent_layer": p_layer, "child_layer": c_layer})
