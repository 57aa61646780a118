"""depgraph: structured pruning of any model through Torch-Pruning's dependency graph, then tuning.

Fang et al., "DepGraph: Towards Any Structural Pruning", CVPR 2023 (arXiv 2301.12900), via the
Torch-Pruning library; the guard, the handling of frozen parents, the groups kept at full width and the
allocation rules are childnet's (:mod:`childnet.depgraph`). Unlike ``oneshot`` with ``structure:
channels`` (childnet's own unit tables: mlp, cnn, resnet inner channels), it shrinks whatever the
dependency graph couples: the ENAS children, MiniLM's attention heads and feed-forward width, the
residual stream of a ResNet with projection shortcuts, and — with ``norm_stream: true`` — a transformer's
hidden stream through its LayerNorms (MiniLM's hidden size, embeddings included; the guard then compares
with the parent whose LayerNorms normalise over the kept channels only). ``norm_stream`` is off by default
so that configs written before it keep their meaning (the stream kept at full width). The child is pruned once (on a batch of
``check_examples`` training inputs, which also feed the guard), then tuned with the same budget as the
other prune methods. ``sparsity`` here is the share of prunable *units* (channels, neurons, heads).
"""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from ...config import Config
from ...depgraph import IMPORTANCES, check_importance, depgraph_shrink, example_batch, layout, plan_groups
from ...errors import ChildnetError
from ...masks import Masks
from ...registry import METHODS
from ...scorers import ScorerName
from ...train import TrainConfig
from ..base import fit_on, make_child
from ._common import default_tune, start_model

__all__ = ["DepGraphConfig", "derive", "check"]


class DepGraphConfig(Config):
    """Prune whole channels / heads of any traceable model (Torch-Pruning's groups), guarded, then tune."""

    sparsity: float = Field(0.5, description="fraction of the prunable units (channels, neurons, attention heads) "
                            "removed, in [0, 1)")
    scorer: ScorerName = Field("magnitude", description="importance of the weights: any registered scorer (magnitude = "
                        "L1 of a channel's filters, random, fisher, …)")
    importance: str = Field("producers", description="how a group's channels are ranked: producers (the scorer on "
                            "the producing Conv/Linear rows: L1 of a channel's filters for magnitude), group "
                            "(Torch-Pruning's group L2 magnitude: every layer of the group, BatchNorm scales "
                            "included) or bn_scale (Network Slimming: |gamma| of the group's BatchNorms; groups "
                            "without one keep full width); group and bn_scale need scorer magnitude")
    scope: str = Field("global", description="global: one ranking over all groups (importances divided by their "
                       "group's mean); layer: the same fraction of every group")
    prune_stream: bool = Field(True, description="also prune channels shared through additions (the residual stream)")
    norm_stream: bool = Field(False, description="also prune channels normalised by a LayerNorm (a transformer's hidden "
                              "stream, embeddings included; needs prune_stream for a residual one); the guard then "
                              "compares with the parent whose LayerNorms are restricted to the kept channels — off "
                              "by default, so such groups keep their full width as before")
    heads: bool = Field(True, description="prune whole attention heads (Hugging Face style attention: MiniLM)")
    round_to: int = Field(1, ge=1, le=256, description="round every kept width to a multiple of this (8 or 16 suit "
                          "dense kernels; 1: no rounding)")
    ignored: list[str] | None = Field(None, description="modules whose outputs are never pruned, by their path in the model (e.g. blocks.0.0); the classifier head is always kept")
    check_examples: int = Field(16, ge=1, le=1024, description="training examples traced and used by the guard")
    tolerance: float = Field(1e-4, gt=0, description="guard: outputs of the shrunk and masked models may differ by "
                             "tolerance · (1 + max |output|); must be finite (a large value such as 1e9 turns the "
                             "guard off)")
    tune: TrainConfig = Field(default_factory=default_tune, description="the tuning run (same budget as the other "
                              "prune methods)")

    @field_validator("scope")
    @classmethod
    def _scope(cls, v: str) -> str:
        if v not in ("global", "layer"):
            raise ValueError(f"must be 'global' or 'layer' (got {v!r})")
        return v

    @field_validator("importance")
    @classmethod
    def _importance(cls, v: str) -> str:
        if v not in IMPORTANCES:
            raise ValueError(f"must be one of {', '.join(IMPORTANCES)} (got {v!r})")
        return v

    @model_validator(mode="after")
    def _importance_needs_magnitude(self):
        try:
            check_importance(self.importance, self.scorer)
        except ChildnetError as err:
            raise ValueError(str(err)) from None
        return self

    @field_validator("sparsity")
    @classmethod
    def _sparsity(cls, v: float) -> float:
        if not 0.0 <= v < 1.0:
            raise ValueError(f"must be a fraction in [0, 1) — the share of units removed (got {v})")
        return v


def _options(cfg: DepGraphConfig) -> dict:
    return {"scorer": cfg.scorer, "scope": cfg.scope, "prune_stream": cfg.prune_stream,
            "norm_stream": cfg.norm_stream, "heads": cfg.heads, "round_to": cfg.round_to, "ignored": cfg.ignored,
            "importance": cfg.importance}


def check(parent, task, cfg: DepGraphConfig) -> None:
    """Before training (and in ``childnet validate``): the model traces and no group would be emptied."""
    import copy

    model = copy.deepcopy(parent.model if hasattr(parent, "model") else parent).eval()
    for p in model.parameters():
        p.requires_grad_(True)
    opts = _options(cfg)
    if opts["scorer"] == "fisher":
        opts["scorer"] = "magnitude"  # allocation is checked; the Fisher pass waits for the real run
    plan_groups(model, example_batch(task.x_train, cfg.check_examples), cfg.sparsity, **opts)


@METHODS.register("depgraph", parent_use="outputs", config=DepGraphConfig, family="prune", check=check, structured=True,
                  tiny={"sparsity": 0.5, "tune": {"epochs": 1}})
def derive(parent, task, cfg: DepGraphConfig, ctx):
    """Shrink the parent's coupled channel groups (Torch-Pruning's dependency graph), check it, then tune."""
    model = start_model(parent, ctx)
    batch = example_batch(task.x_train, cfg.check_examples, ctx.device)
    small, report = depgraph_shrink(model, batch, cfg.sparsity, seed=ctx.seed, data=(task.x_train, task.y_train),
                                    atol=cfg.tolerance, rtol=cfg.tolerance, **_options(cfg))
    history = fit_on(task, small, cfg.tune, ctx)
    masks: Masks = {}  # the child is physically smaller: nothing is masked
    extra = {"structure": "depgraph", "shrink": report.as_dict(), "shrunk_layout": layout(small, parent.model)}
    return make_child(small, "depgraph", cfg, ctx, parent, task, history=history, masks=masks, extra=extra)
