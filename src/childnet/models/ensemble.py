"""The ``ensemble`` model: several member networks combined by the mean of their softmax outputs.

The ensemble's forward returns **log-probabilities**, ``log(mean_i softmax(member_i(x)))``,
computed stably as ``logsumexp_i(log_softmax(member_i(x))) - log N``. Every consumer that treats
the output as logits stays exact: ``softmax(log p) = p / sum(p) = p`` because ``p`` already sums
to one, so :func:`childnet.evaluate.predict_proba` returns the mean of the members' softmax, and
``cross_entropy(output, y)`` is the ensemble's negative log-likelihood.

The config lists the members' own model specs, so a saved ensemble child is rebuilt from
``child.json`` alone (members are registered models; no pickled code).
"""

from __future__ import annotations

import math

import torch
from pydantic import Field, field_validator
from torch import nn

from .._base import Config, ModelSpec
from ..depgraph import apply_layout, layout
from ..errors import ConfigError
from ..registry import MODELS
from .base import build_model, model_spec

__all__ = ["EnsembleConfig", "EnsembleModel", "combine_members"]


class EnsembleConfig(Config):
    """Members of an ensemble, each a model spec ``{name: <model>, ...options}``."""

    members: list[ModelSpec] = Field(min_length=1, max_length=64, description="model spec of each member, in order")

    @field_validator("members")
    @classmethod
    def _specs(cls, v):
        for i, spec in enumerate(v):
            if spec["name"] == "ensemble":
                raise ValueError(f"members[{i}]: an ensemble cannot be a member of an ensemble")
        return v


class EnsembleModel(nn.Module):
    """Members ``members.0 … members.{N-1}``; output = log of the mean of their softmax.

    Args:
        members: the member networks (each built by :func:`~childnet.models.build_model`).
    """

    def __init__(self, members: list[nn.Module]):
        super().__init__()
        self.members = nn.ModuleList(members)

    def member_logits(self, x) -> torch.Tensor:
        """Logits of every member, shape ``(N, batch, classes)``."""
        return torch.stack([m(x) for m in self.members])

    def forward(self, x) -> torch.Tensor:
        log_probs = torch.log_softmax(self.member_logits(x).float(), dim=-1)
        return torch.logsumexp(log_probs, dim=0) - math.log(len(self.members))


@MODELS.register("ensemble", config=EnsembleConfig,
                 tiny={"members": [{"name": "mlp", "hidden": [8]}, {"name": "cnn", "width": 4, "depth": 1}]})
def ensemble(cfg: EnsembleConfig, input_shape: tuple, num_classes: int) -> EnsembleModel:
    """Ensemble: members combined by the mean of their softmax (forward returns its log)."""
    return EnsembleModel([build_model(spec, input_shape, num_classes) for spec in cfg.members])


def combine_members(models: list[nn.Module]) -> EnsembleModel:
    """Assemble trained member networks into an :class:`EnsembleModel` that ``Child.load`` can rebuild.

    The ensemble is built from the members' specs by :func:`build_model` and their weights are copied
    in with a strict state-dict load, so a member that still carries a torch parametrization (a mask)
    fails here rather than at load time.
    """
    if not models:
        raise ConfigError("an ensemble needs at least one member")
    specs = [model_spec(m) for m in models]
    shapes = {(tuple(s["input_shape"]), s["num_classes"]) for s in specs}
    if len(shapes) != 1:
        raise ConfigError(f"ensemble members disagree on input shape / classes: {sorted(shapes)}")
    (input_shape, num_classes), = shapes
    members = [{k: v for k, v in s.items() if k not in ("input_shape", "num_classes")} for s in specs]
    model = build_model({"name": "ensemble", "members": members}, input_shape, num_classes)
    for target, source in zip(model.members, models):
        shrunk = layout(source, target)  # a physically shrunk member (depgraph): its spec rebuilds it unshrunk
        if shrunk.get("shapes") or shrunk.get("attributes"):
            apply_layout(target, shrunk)
        target.load_state_dict(source.state_dict())
    return model.eval()
