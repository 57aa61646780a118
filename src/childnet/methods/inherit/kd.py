"""kd: Hinton knowledge distillation — the child matches the parent's softened outputs.

Hinton, Vinyals & Dean 2015, "Distilling the Knowledge in a Neural Network" (arXiv 1503.02531):
L = (1 − α)·CE(s, y) + α·T²·KL(softmax(t/T) ‖ softmax(s/T)), defaults T = 4, α = 0.9.
The T² factor keeps the soft-target gradients on the scale of the hard-target ones (paper §2).
"""

from __future__ import annotations

import torch.nn.functional as F
from pydantic import Field

from ...registry import METHODS
from ..base import fit_on, make_child
from ._common import InheritConfig, init_child, parent_outputs

__all__ = ["KDConfig", "kd_loss", "derive"]


class KDConfig(InheritConfig):
    temperature: float = Field(4.0, gt=0, description="softmax temperature T")
    alpha: float = Field(0.9, ge=0, le=1, description="weight α of the distillation term")


def kd_loss(student_logits, teacher_logits, y, temperature: float, alpha: float) -> dict:
    """The two KD terms as a dict (summed by the trainer)."""
    t = temperature
    soft = F.kl_div(F.log_softmax(student_logits / t, -1), F.log_softmax(teacher_logits / t, -1),
                    reduction="batchmean", log_target=True)
    return {"ce": (1 - alpha) * F.cross_entropy(student_logits, y), "kd": alpha * t * t * soft}


@METHODS.register("kd", parent_use="outputs", config=KDConfig, family="inherit",
                  tiny={"train": {"epochs": 1}, "child": {"name": "cnn", "width": 4, "depth": 2}})
def derive(parent, task, cfg: KDConfig, ctx):
    """Train the child on labels and the parent's temperature-softened outputs (Hinton et al. 2015)."""
    model = init_child(parent, task, cfg, ctx)
    teacher = parent_outputs(parent, task.x_train, [], device=ctx.device)["logits"].to(ctx.device)

    def loss(m, x, y, state):
        return kd_loss(m(x), teacher[state.index], y, cfg.temperature, cfg.alpha)

    history = fit_on(task, model, cfg.train, ctx, loss_fn=loss)
    return make_child(model, "kd", cfg, ctx, parent, task, history=history)
