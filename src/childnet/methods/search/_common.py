"""What the search methods share: config fields, retraining from scratch, compute accounting, traces."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import torch
from pydantic import Field, field_validator

from ...errors import ConfigError
from ...models.base import build_model
from ...tasks.base import Task, num_examples, take, to_device
from ...train import TrainConfig
from ..base import fit_on
from .spaces import SearchSpace, SpaceConfig

__all__ = ["SearchConfig", "ComputeMeter", "check_image_task", "retrain_from_scratch", "op_frequencies",
           "accuracy_of", "CHILD_TRAIN_DEFAULTS", "sgd_train_field", "merge_sgd_defaults"]

#: Child training in ENAS's scripts: SGD, Nesterov momentum 0.9, cosine LR from 0.05, gradient-norm
#: clip 5, L2 1e-4 (micro) / 2.5e-4 (macro). Our default picks 1e-4.
CHILD_TRAIN_DEFAULTS = {"optimizer": "sgd", "lr": 0.05, "momentum": 0.9, "nesterov": True,
                        "weight_decay": 1e-4, "schedule": "cosine", "grad_clip": 5.0, "batch_size": 64}


def sgd_train_field(epochs: float, description: str):
    """A TrainConfig field whose unspecified options take ENAS's SGD defaults (not TrainConfig's)."""
    return Field(default_factory=lambda: TrainConfig(**CHILD_TRAIN_DEFAULTS, epochs=epochs),
                 description=f"{description} (unset options: SGD Nesterov lr 0.05 cosine, clip 5, epochs {epochs})")


def merge_sgd_defaults(value, epochs: float):
    """Fill the options a user left out of a train-config mapping with ENAS's SGD defaults."""
    if isinstance(value, dict):
        return {**CHILD_TRAIN_DEFAULTS, "epochs": epochs, **value}
    return value


class SearchConfig(SpaceConfig):
    """Fields every search method has: the space, and how the best architecture is retrained."""

    retrain: TrainConfig = sgd_train_field(10, "training of the derived child from scratch")
    retrain_channels: int | None = Field(None, ge=1, le=4096,
                                         description="width of the retrained child (default: the search width)")

    @field_validator("retrain", mode="before")
    @classmethod
    def _retrain_defaults(cls, v):
        return merge_sgd_defaults(v, 10)


@dataclass
class ComputeMeter:
    """Child-training compute of a search, in multiply-accumulates (forward MACs x examples).

    ``train_macs`` counts the examples children were trained on (the quantity ENAS saves by sharing
    weights), ``eval_macs`` the validation forwards that scored them. Backward passes cost about 2x the
    forward for every method alike, so ratios between methods are unchanged by leaving them out.
    ``curve`` records ``(train_macs, best validation accuracy so far)`` as the search goes.
    """

    train_macs: int = 0
    eval_macs: int = 0
    curve: list = field(default_factory=list)

    def point(self, val_accuracy: float, **extra) -> None:
        best = max([val_accuracy] + [p["best_val_accuracy"] for p in self.curve])
        self.curve.append({"train_macs": self.train_macs, "eval_macs": self.eval_macs,
                           "val_accuracy": val_accuracy, "best_val_accuracy": best, **extra})

    def as_dict(self) -> dict:
        return {"train_macs": self.train_macs, "eval_macs": self.eval_macs, "curve": self.curve}


def check_image_task(task: Task, space: SearchSpace) -> None:
    """The search spaces are convolutional: they need (C, H, W) inputs."""
    if len(task.input_shape) != 3:
        raise ConfigError(f"space: the {space.name} search space needs image inputs (C, H, W); "
                          f"task '{task.name}' has inputs of shape {tuple(task.input_shape)}")


@torch.no_grad()
def accuracy_of(model: torch.nn.Module, x, y: torch.Tensor, batch_size: int = 256, device="cpu") -> float:
    """Top-1 accuracy of ``model`` as it is (no change of train/eval mode)."""
    correct = 0
    for i in range(0, len(y), batch_size):
        xb = to_device(take(x, slice(i, i + batch_size)), device)
        correct += int((model(xb).argmax(-1).cpu() == y[i: i + batch_size]).sum())
    return correct / max(1, len(y))


def retrain_from_scratch(space: SearchSpace, spec: dict, task: Task, cfg: SearchConfig, ctx):
    """Build the standalone child of ``spec`` and train it from scratch; return (model, history, macs)."""
    spec_for_model = space.model_spec(spec, cfg.retrain_channels)
    torch.manual_seed(ctx.seed)
    model = build_model(spec_for_model, task.input_shape, task.num_classes).to(ctx.device)
    history = fit_on(task, model, cfg.retrain, ctx)
    macs = model.child_macs(model.arch)
    examples = math.ceil(cfg.retrain.epochs * num_examples(task.x_train))
    return model, history, {"macs_per_example": macs, "retrain_macs": macs * examples}


def op_frequencies(space: SearchSpace, specs: Sequence[dict]) -> dict[str, float]:
    """Fraction of op slots holding each op, over ``specs``."""
    counts = space.op_counts(specs)
    total = max(1, sum(counts.values()))
    return {op: round(counts.get(op, 0) / total, 4) for op in space.ops}
