"""Config fields and child initialisation shared by the inherit methods."""

from __future__ import annotations

import copy
from typing import Literal

import torch
from pydantic import Field, model_validator

from ...config import Config, ModelSpec, ParentConfig
from ...models.base import build_model
from ...parent import Parent, get_parent, unfreeze
from ...tasks.base import Task, num_examples, take
from ...train import TrainConfig

__all__ = ["InheritConfig", "init_child", "parent_outputs"]


class InheritConfig(Config):
    """Fields every inherit method has."""

    child: ModelSpec = Field(default_factory=lambda: {"name": "cnn", "width": 8},
                        description="the child's model spec: {name: <model>, ...options}")
    train: TrainConfig = Field(default_factory=TrainConfig, description="the child's training run")
    init: Literal["scratch", "pretrained"] = Field(
        "scratch", description="child starts from random weights, or from a child pre-trained alone (HKT's code)")
    pretrain: TrainConfig | None = Field(
        None, description="training of the pre-trained child (default: train; a partial block is merged onto train)")

    @model_validator(mode="before")
    @classmethod
    def _pretrain_onto_train(cls, data):
        if isinstance(data, dict) and isinstance(data.get("pretrain"), dict):
            train = data.get("train") or {}
            train = train.model_dump() if isinstance(train, TrainConfig) else train
            if isinstance(train, dict):
                data = {**data, "pretrain": {**train, **data["pretrain"]}}
        return data


def init_child(parent: Parent, task: Task, cfg: InheritConfig, ctx) -> torch.nn.Module:
    """The child network at the start of derivation.

    ``init: pretrained`` trains the child architecture alone with cross-entropy first (the paper's
    code starts HKT from a trained ResNet-20). That pre-trained child is cached by hash like a parent,
    once per seed, so every method of a comparison starts from the same weights.

    In a pipeline (:mod:`childnet.pipeline`), a stage method with ``child: same`` starts from the incoming
    child's weights, which the stage puts in ``ctx.extra["start_model"]``.
    """
    start = (ctx.extra or {}).get("start_model") if hasattr(ctx, "extra") else None
    if start is not None:
        model = unfreeze(copy.deepcopy(start).to(ctx.device), ctx.extra.get("start_frozen", ()))
        return model.train()
    if cfg.init == "scratch":
        torch.manual_seed(ctx.seed)
        return build_model(cfg.child, task.input_shape, task.num_classes).to(ctx.device)
    pre = ParentConfig(model=cfg.child, train=(cfg.pretrain or cfg.train).model_dump(), seed=ctx.seed)
    trained = get_parent(pre, task, device=ctx.device, log=ctx.log)
    model = trained.trainable_copy()
    return model.train()


@torch.no_grad()
def parent_outputs(parent: Parent, x, layers: list[str], batch_size: int = 512, device="cpu") -> dict:
    """Parent logits and features at ``layers`` for every example of ``x``, computed once.

    The parent is frozen and there is no data augmentation, so its outputs per training example
    never change: computing them once instead of every step is exact and much cheaper.
    """
    from ...features import capture
    from ...tasks.base import to_device

    model = parent.model.eval()
    out: dict[str, list] = {"logits": [], **{n: [] for n in layers}}
    with capture(model, layers) as feats:
        for i in range(0, num_examples(x), batch_size):
            out["logits"].append(model(to_device(take(x, slice(i, i + batch_size)), device)).cpu())
            for n in layers:
                out[n].append(feats[n].detach().cpu())
    return {k: torch.cat(v) for k, v in out.items()}
