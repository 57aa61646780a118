"""pat: Prune-and-Tune ensembles — N pruned copies of the parent with anti-random masks, each tuned briefly.

Whitaker & Whitley, "Prune and Tune Ensembles: Low-Cost Ensemble Learning with Sparse Independent
Subnetworks", AAAI 2022 (arXiv 2202.11782). Child 2k gets a random mask M at sparsity 0.5 and child
2k+1 its complement 1 − M (anti-random pairs: maximally different); masks act on connections (weights)
or whole neurons/channels. Each child is tuned for a short budget (10 epochs in the paper, against 140
for the parent) with a one-cycle schedule, SGD lr 0.1, momentum 0.9, weight decay 5e-4. The ensemble
is the mean of the children's softmax outputs.

Masks come from :func:`childnet.masks.anti_random_masks`: a random half of every Conv/Linear weight
tensor is pruned, the classifier head is not (``include_head``) — as the authors' code does
(``tjwhitaker/prune-and-tune-ensembles``, ``src/prune.py``: ``random_unstructured`` at 0.5 per layer,
the last module excluded, the partner from the flipped mask). ``structure: neurons | channels`` removes
whole units instead (a masked unit's weights, bias and BatchNorm scale/shift, so it outputs exactly
zero). With a sparsity other than 0.5 the complement of a pair has sparsity 1 − s. The pruned weights
stay exactly zero during tuning (a mask parametrization) and are baked into plain parameters before the
ensemble is saved; every member's mask is kept in the child's ``masks`` as ``members.<k>.<parameter>``.

``preset: paper`` (:data:`PAPER_TUNE`) is the authors' tuning run exactly: Nesterov SGD and torch's
OneCycleLR with pct_start 0.1 and div_factor 100 (our default one-cycle uses torch's 0.3 / 25 and plain
momentum), batch 128. Remaining differences: the parent's own training is the experiment's (the authors
train it 140 epochs with a step schedule), and their "tuning length" is a ratio to that (10 / 140) that
an experiment at CPU scale must choose itself (``tune: {epochs: ...}`` over the preset).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from ...errors import ChildnetError
from ...models.base import model_spec
from ...masks import anti_random_masks, apply_masks, masks_sparsity, remove_masks, scored_masks, structured_masks
from ...registry import METHODS
from ...scorers import ScorerName
from ...train import Hook, TrainConfig
from ..base import fit_on, head_only_unstructured
from ._common import CostLedger, EnsembleMethodConfig, make_ensemble_child, member_card, member_progress, member_seed

__all__ = ["PATConfig", "derive", "tune_members"]


def _default_tune() -> TrainConfig:
    return TrainConfig(epochs=10, optimizer="sgd", lr=0.1, momentum=0.9, weight_decay=5e-4, schedule="onecycle")


#: ``preset: paper``: the tuning run of the authors' code (``src/train.py``, ``src/utils.py``): 10 epochs
#: (against 140 for the parent), batch 128, SGD lr 0.1, Nesterov momentum 0.9, weight decay 5e-4,
#: torch's OneCycleLR with pct_start 0.1 and div_factor 100.
PAPER_TUNE = {"epochs": 10, "batch_size": 128, "optimizer": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": True,
              "weight_decay": 5e-4, "schedule": "onecycle", "pct_start": 0.1, "div_factor": 100.0}


class PATConfig(EnsembleMethodConfig):
    """N anti-random pruned copies of the parent, each tuned with a one-cycle schedule."""

    sparsity: float = Field(0.5, gt=0.0, lt=1.0, description="fraction of each child's prunable weights removed")
    structure: Literal["weights", "neurons", "channels"] = Field(
        "weights", description="connections (weights) or whole units: neurons (mlp) / channels (cnn, resnet)")
    include_head: bool = Field(False, description="also prune the classifier head")
    scorer: ScorerName = Field("anti_random", description="how each child's mask is drawn: anti_random (the paper: "
                        "complement pairs) or any registered scorer, with member k's seed")
    tune: TrainConfig = Field(default_factory=_default_tune,
                              description="each child's tuning run (paper: 10 epochs, SGD 0.1, one-cycle)")
    preset: Literal["default", "paper"] = Field(
        "default", description="paper: the authors' tuning run (10 epochs, batch 128, SGD 0.1 Nesterov, wd 5e-4, "
                               "one-cycle pct_start 0.1, div_factor 100); fields given in tune win")

    @model_validator(mode="after")
    def _head_only_unstructured(self):
        return head_only_unstructured(self)

    @model_validator(mode="before")
    @classmethod
    def _apply_preset(cls, data):
        if isinstance(data, dict) and data.get("preset") == "paper":
            tune = data.get("tune") or {}
            tune = tune.model_dump(exclude_unset=True) if isinstance(tune, TrainConfig) else tune
            data = {**data, "tune": {**PAPER_TUNE, **tune}}
        return data


def member_masks(parent, task, cfg: PATConfig, seed: int) -> list[dict]:
    """Each member's masks: anti-random pairs (the paper), or ``cfg.scorer`` with member k's seed."""
    units = cfg.structure != "weights"
    model = parent.trainable_copy()  # the builder's frozen layers are marked (and left unpruned)
    if cfg.scorer == "anti_random":
        return anti_random_masks(model, cfg.members, sparsity=cfg.sparsity, seed=member_seed(seed, 0),
                                 structure="units" if units else "weights", include_head=cfg.include_head)
    if units and cfg.scorer not in ("magnitude", "random"):
        raise ChildnetError(f"scorer: whole {cfg.structure} are ranked by their L1 norm (magnitude) or at random; "
                            f"use scorer anti_random, magnitude or random, or structure: weights (got {cfg.scorer!r})")
    out = []
    for k in range(cfg.members):
        if units:
            out.append(structured_masks(model, cfg.sparsity, score="l1" if cfg.scorer == "magnitude" else "random",
                                        seed=member_seed(seed, k)))
        else:
            out.append(scored_masks(model, cfg.sparsity, cfg.scorer, seed=member_seed(seed, k), scope="layer",
                                    data=(task.x_train, task.y_train), include_head=cfg.include_head))
    return out


def tune_members(parent, task, cfg: PATConfig, ctx, method: str, extra_hooks=lambda k, masks: []):
    """Prune N copies of the parent with anti-random masks and tune each; return the ensemble child.

    Args:
        extra_hooks: ``(k, masks) -> [Hook, ...]`` added to member k's tuning run (``pat_ssa`` passes
            its annealing hook here).
    """
    model_spec(parent.model)  # a parent childnet cannot rebuild is refused before the members train
    mask_sets = member_masks(parent, task, cfg, ctx.seed)
    ledger = CostLedger(task)
    models, cards, all_masks = [], [], {}
    for k, masks in enumerate(mask_sets):
        seed = member_seed(ctx.seed, k)
        model = parent.trainable_copy().to(ctx.device)
        hooks: list[Hook] = list(extra_hooks(k, masks))
        apply_masks(model, masks, zero_pruned=not hooks)
        counter = ledger.start()
        history = fit_on(task, model, cfg.tune, ctx, hooks=[counter, *hooks], seed=seed,
                         progress=member_progress(ctx, k, cfg.members))
        ledger.stop(model, counter)
        remove_masks(model)
        models.append(model.eval())
        all_masks.update({f"members.{k}.{name}": m.cpu() for name, m in masks.items()})
        cards.append(member_card(model, method, cfg, seed, k, parent, task, history, pair=k // 2,
                                 complement=bool(k % 2), sparsity=masks_sparsity(masks)))
    return make_ensemble_child(models, cards, method, cfg, ctx, parent, task, ledger, uses_parent=True,
                               masks=all_masks)


@METHODS.register("pat", parent_use="outputs", config=PATConfig, family="ensemble",
                  tiny={"members": 2, "tune": {"epochs": 1, "optimizer": "sgd", "lr": 0.05, "schedule": "onecycle"}})
def derive(parent, task, cfg: PATConfig, ctx):
    """Prune-and-Tune: N anti-random pruned copies of the parent, each tuned briefly (Whitaker & Whitley 2022)."""
    return tune_members(parent, task, cfg, ctx, "pat")
