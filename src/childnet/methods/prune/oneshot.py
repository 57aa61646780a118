"""oneshot: prune the parent to the target sparsity at once, then tune with the mask fixed.

The classic baseline of the prune family (Han et al. 2015, "Learning both Weights and Connections for
Efficient Neural Networks", arXiv 1506.02626, with a single pruning step): score the parent's weights
(magnitude, global or per layer, or random), keep the top ``1 − sparsity``, tune. Pruned weights stay
exactly zero (a mask parametrization; their stored values are zeroed too).

``structure: neurons | channels`` removes whole units by the L1 norm of their filters (Li et al. 2017,
"Pruning Filters for Efficient ConvNets", arXiv 1608.08710) and *shrinks* the model before tuning — the
child is a smaller mlp / cnn / resnet with its own parameters, MACs and latency (see
:mod:`childnet.shrink`). Tuning the shrunk model is exactly tuning the masked one (the removed units
output zero and get no gradient), only cheaper.
"""

from __future__ import annotations

from pydantic import Field

from ...depgraph import example_batch
from ...masks import apply_masks
from ...registry import METHODS
from ...shrink import shrink
from ..base import fit_on
from ._common import PruneConfig, finish_child, start_model, target_masks

__all__ = ["OneShotConfig", "derive"]


class OneShotConfig(PruneConfig):
    """Prune once to ``sparsity``, then tune with the mask fixed."""

    masks: str | None = Field(None, description="use the masks of this masks.safetensors file (e.g. a child's) "
                              "instead of scoring; sparsity and scorer are then ignored")


@METHODS.register("oneshot", parent_use="outputs", config=OneShotConfig, family="prune", baseline=True,
                  tiny={"sparsity": 0.5, "tune": {"epochs": 1}})
def derive(parent, task, cfg: OneShotConfig, ctx):
    """One-shot pruning: prune to the target sparsity at once, then tune with the mask fixed."""
    model = start_model(parent, ctx)
    masks = target_masks(model, cfg, ctx.seed, mask_file=cfg.masks, data=(task.x_train, task.y_train))
    apply_masks(model, masks)
    kept = None
    if cfg.structure != "weights":
        model, kept = shrink(model, masks, check=example_batch(task.x_train, 16, ctx.device))
    history = fit_on(task, model, cfg.tune, ctx)
    return finish_child(model, masks, "oneshot", cfg, ctx, parent, task, history, kept=kept)
