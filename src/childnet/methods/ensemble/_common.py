"""What the ensemble methods share: member seeds, cost accounting, and assembling the ensemble child.

Cost accounting (so methods are compared at equal training cost):

- ``train_macs`` = 3 × (forward MACs of one example) × (examples seen in training), summed over
  members. Forward MACs come from ``torch.utils.flop_counter``; the backward pass costs about twice the
  forward (Kaplan et al. 2020, §2.1: "≈ 2× forward"), hence forward + backward ≈ 3× forward. Masked
  (pruned) weights are counted dense: the CPU multiplies the zeros too.
- ``parent_train_macs`` = the same estimate for the parent's own training (3 × MACs × epochs run ×
  its training-set size), shown separately because the parent is trained once and shared by every
  method that starts from it. ``None`` when the parent was loaded without a training history.
- ``total_train_macs`` = ``train_macs`` plus ``parent_train_macs`` for methods that start from the
  parent (snapshot, pat, pat_ssa); the independent ensemble does not need the parent.
- ``train_seconds``: wall time of the members' training (parent excluded).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

from pydantic import Field
from torch import nn

from ...child import Child, Lineage
from ...config import Config
from ...evaluate.cost import count_macs
from ...models.base import model_spec
from ...models.ensemble import combine_members
from ...parent import Parent
from ...tasks.base import Task, num_examples
from ...train import Hook
from ..base import Context, task_extra

__all__ = [
    "EnsembleMethodConfig",
    "SamplesSeen",
    "CostLedger",
    "member_seed",
    "member_card",
    "parent_train_config",
    "parent_training_macs",
    "make_ensemble_child",
    "member_progress",
]

#: forward + backward ≈ 3 × forward (backward ≈ 2 × forward; Kaplan et al. 2020, arXiv 2001.08361, §2.1).
TRAIN_MACS_PER_FORWARD = 3


class EnsembleMethodConfig(Config):
    """Fields every ensemble method has."""

    members: int = Field(6, ge=2, le=64, description="number of ensemble members (at least 2)")


def member_seed(seed: int, k: int) -> int:
    """The seed of member ``k`` of the ensemble derived with unit seed ``seed`` (distinct per member)."""
    return seed * 1009 + k


class SamplesSeen(Hook):
    """Counts the training examples that passed forward and backward (for the cost ledger)."""

    def __init__(self):
        self.samples = 0

    def after_step(self, state) -> None:
        self.samples += len(state.batch[1])


class CostLedger:
    """Accumulates training examples × forward MACs and wall time over the members' training runs."""

    def __init__(self, task: Task):
        self.example = task.example_input(1)
        self.train_macs = 0
        self.samples = 0
        self.seconds = 0.0
        self._start: float | None = None

    def start(self) -> SamplesSeen:
        """Begin timing one training run; pass the returned hook to ``fit``."""
        self._start = time.perf_counter()
        return SamplesSeen()

    def stop(self, model: nn.Module, counter: SamplesSeen) -> None:
        """End the run: add its wall time and ``3 × MACs × samples``."""
        self.seconds += time.perf_counter() - (self._start or time.perf_counter())
        self.samples += counter.samples
        self.train_macs += TRAIN_MACS_PER_FORWARD * count_macs(model, self.example) * counter.samples

    def metrics(self, parent: Parent | None, uses_parent: bool) -> dict:
        parent_macs = parent_training_macs(parent) if parent is not None else None
        total = self.train_macs + ((parent_macs or 0) if uses_parent else 0)
        return {"train_macs": self.train_macs, "train_samples": self.samples,
                "train_seconds": round(self.seconds, 3), "parent_train_macs": parent_macs,
                "total_train_macs": total}


def parent_train_config(parent: Parent) -> dict | None:
    """The parent's own ``TrainConfig`` options, read from its cache record (``None`` if unknown)."""
    if not parent.path:
        return None
    card = Path(parent.path) / "parent.json"
    if not card.is_file():
        return None
    try:
        return json.loads(card.read_text()).get("config", {}).get("train")
    except (OSError, json.JSONDecodeError):
        return None


def parent_training_macs(parent: Parent) -> int | None:
    """``3 × forward MACs × epochs run × training examples`` of the parent's training (None if unknown)."""
    epochs = len(parent.history)
    if epochs == 0:
        return None
    macs = parent.metrics.get("macs") or count_macs(parent.model, parent.task.example_input(1))
    return int(TRAIN_MACS_PER_FORWARD * macs * epochs * num_examples(parent.task.x_train))


def member_progress(ctx: Context, k: int, members: int):
    """A ``fit`` progress callback that reports epochs of member ``k`` as progress over all members."""
    if ctx.progress is None:
        return None

    def report(epoch: int, epochs: int, record: dict) -> None:
        ctx.progress(k * epochs + epoch, members * epochs, {"member": k, **record})

    return report


def member_card(model: nn.Module, method: str, cfg, seed: int, k: int, parent: Parent | None,
                task: Task, history: list, **extra) -> dict:
    """The lineage card of one member (kept in the ensemble's ``lineage.extra["members"]``)."""
    card = Lineage(
        method=method,
        config=cfg.model_dump(),
        seed=seed,
        parent=parent.card() if parent is not None else {},
        architecture=model_spec(model),
        task=task.spec,
        history=history,
        extra={"member": k, **extra},
    )
    return asdict(card)


def _joined_history(cards: list[dict]) -> list[dict]:
    """Members' training records one after another: ``epoch`` counts on, ``member``/``member_epoch`` say whose."""
    joined: list[dict] = []
    for card in cards:
        for rec in card["history"]:
            joined.append({**rec, "epoch": len(joined) + 1, "member": card["extra"]["member"],
                           "member_epoch": rec.get("epoch")})
    return joined


def make_ensemble_child(models: list[nn.Module], cards: list[dict], method: str, cfg, ctx: Context,
                        parent: Parent | None, task: Task, ledger: CostLedger, *, uses_parent: bool,
                        masks: dict | None = None, extra: dict | None = None) -> Child:
    """Combine trained members into one ensemble :class:`Child` with members' cards and cost metrics."""
    model = combine_members(models).to(ctx.device)
    lineage = Lineage(
        method=method,
        config=cfg.model_dump(),
        seed=ctx.seed,
        parent=parent.card() if parent is not None else {},
        architecture=model_spec(model),
        task=task.spec,
        metrics=ledger.metrics(parent, uses_parent),
        history=_joined_history(cards),
        extra={**task_extra(task), "members": cards, **(extra or {})},
    )
    return Child(model, lineage, masks or {})
