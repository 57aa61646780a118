"""What the prune methods share: the config, the target masks, the start and the finished child.

Equal tuning budgets: every prune method tunes for ``tune.epochs`` with the same optimiser, schedule,
batch order (the unit seed) and data; the methods differ only in how the mask reaches its target
(at once, in rounds, or annealed), so their accuracies are comparable.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field, field_validator, model_validator

from ...config import Config
from ...depgraph import example_batch
from ...errors import ChildnetError
from ...masks import Masks, load_masks, masks_sparsity, remove_masks, scored_masks, structured_masks
from ...parent import Parent
from ...scorers import ScorerName
from ...shrink import shrink
from ...train import TrainConfig
from ..base import Context, head_only_unstructured, make_child

__all__ = ["PruneConfig", "default_tune", "start_model", "target_masks", "finish_child"]


def default_tune() -> TrainConfig:
    """SGD 0.01, momentum 0.9, constant LR, 10 epochs: the SSA paper's constant-LR setting (our budget)."""
    return TrainConfig(epochs=10, optimizer="sgd", lr=0.01, momentum=0.9, schedule="constant")


class PruneConfig(Config):
    """Fields every prune method has."""

    sparsity: float = Field(0.9, description="fraction of the prunable weights (or units) removed, in [0, 1)")
    scorer: ScorerName = Field("magnitude", description="which weights go: any registered scorer (childnet list scorers: "
                        "magnitude = smallest |w|, random, anti_random, fisher, …); structured: magnitude (L1) or random")
    scope: Literal["global", "layer"] = Field(
        "global", description="one magnitude threshold over all prunable weights, or the same fraction per layer")
    structure: Literal["weights", "neurons", "channels"] = Field(
        "weights", description="weights (unstructured, sparse child) or whole neurons (mlp) / channels (cnn, "
        "resnet): a physically smaller child")
    include_head: bool = Field(False, description="also prune the classifier head (weights structure)")
    tune: TrainConfig = Field(default_factory=default_tune, description="the tuning run (same budget for every method)")

    @model_validator(mode="after")
    def _head_only_unstructured(self):
        return head_only_unstructured(self)

    @field_validator("sparsity")
    @classmethod
    def _sparsity(cls, v: float) -> float:
        if not 0.0 <= v < 1.0:
            raise ValueError(f"sparsity must be a fraction in [0, 1) — the share of weights removed (got {v})")
        return v


def start_model(parent: Parent, ctx: Context) -> torch.nn.Module:
    """A trainable copy of the parent on the unit's device."""
    model = parent.trainable_copy().to(ctx.device)
    return model.train()


def target_masks(model: torch.nn.Module, cfg: PruneConfig, seed: int, sparsity: float | None = None,
                 previous: Masks | None = None, mask_file: str | None = None, data=None) -> Masks:
    """The masks at ``sparsity`` (default ``cfg.sparsity``) by ``cfg``'s scorer, scope and structure.

    Args:
        data: ``(x, y)`` of the training split, for scorers that look at data (fisher).
    """
    if mask_file:
        return load_masks(mask_file, model)
    s = cfg.sparsity if sparsity is None else sparsity
    if cfg.structure != "weights":
        if cfg.scorer not in ("magnitude", "random"):
            raise ChildnetError(f"scorer: structured pruning ranks whole units by their L1 norm (magnitude) or at "
                                f"random; use scorer magnitude or random, or structure: weights (got {cfg.scorer!r})")
        score = "l1" if cfg.scorer == "magnitude" else "random"
        return structured_masks(model, s, score=score, seed=seed, structure=cfg.structure)
    return scored_masks(model, s, cfg.scorer, seed=seed, data=data, scope=cfg.scope, include_head=cfg.include_head,
                        previous=previous)


def finish_child(model, masks: Masks, method: str, cfg: PruneConfig, ctx: Context, parent, task,
                 history: list, extra: dict | None = None, kept: dict | None = None):
    """Bake the masks into the weights (or shrink a structured child) and wrap it in a Child.

    Args:
        kept: for a structured child that was shrunk before tuning, the units kept per layer (the model is
            then already small and is not shrunk again).
    """
    extra = dict(extra or {})
    extra["sparsity"] = masks_sparsity(masks)
    extra["structure"] = cfg.structure
    if cfg.structure == "weights":
        remove_masks(model)
        return make_child(model, method, cfg, ctx, parent, task, history=history, extra=extra,
                          masks={k: v.cpu() for k, v in masks.items()})
    if kept is None:
        model, kept = shrink(model, masks, check=example_batch(task.x_train, 16, ctx.device))
    extra["kept_units"] = kept
    return make_child(model, method, cfg, ctx, parent, task, history=history, extra=extra)
