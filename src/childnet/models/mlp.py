"""Multi-layer perceptron on flattened inputs."""

from __future__ import annotations

import math
from typing import Annotated

from pydantic import Field
from torch import nn

from .._base import Config
from ..registry import MODELS
from .base import MAX_LAYERS, MAX_UNITS, ChildnetModel, UnitGroup, layer_params

__all__ = ["MLP", "MLPConfig"]


class MLPConfig(Config):
    hidden: list[Annotated[int, Field(ge=1, le=MAX_UNITS)]] = Field(
        [128, 64], min_length=1, max_length=MAX_LAYERS, description=f"width of each hidden layer (1 … {MAX_UNITS})")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="dropout after each hidden layer")


class MLP(ChildnetModel):
    def __init__(self, in_features: int, hidden: list[int], num_classes: int, dropout: float = 0.0):
        super().__init__()
        layers, d = [nn.Flatten()], in_features
        for h in hidden:
            layers += [nn.Linear(d, h), nn.ReLU()] + ([nn.Dropout(dropout)] if dropout else [])
            d = h
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(d, num_classes)

    def forward_features(self, x):
        return self.body(x)

    def unit_groups(self) -> list[UnitGroup]:
        """The neurons of every hidden Linear layer (the next layer's matching input columns go with them)."""
        idx = [i for i, m in enumerate(self.body) if isinstance(m, nn.Linear)]
        groups = []
        for j, i in enumerate(idx):
            consumer = f"body.{idx[j + 1]}.weight" if j + 1 < len(idx) else "head.weight"
            layer = self.body[i]
            groups.append(UnitGroup(f"body.{i}", f"body.{i}.weight", layer_params(f"body.{i}", layer),
                                    (), (consumer,), layer.out_features))
        return groups

    def shrunk_spec(self, spec: dict, widths: list[int]) -> dict:
        return {**spec, "hidden": list(widths)}


@MODELS.register("mlp", config=MLPConfig, units="neurons", tiny={"hidden": [8]})
def mlp(cfg: MLPConfig, input_shape: tuple, num_classes: int) -> MLP:
    """MLP: Linear-ReLU layers of widths ``hidden`` on the flattened input."""
    if not input_shape:
        from ..errors import ConfigError

        raise ConfigError("model mlp: needs numeric inputs (features or images); this task's inputs are "
                          "tokenised text — use minilm")
    return MLP(math.prod(input_shape) if input_shape else 1, cfg.hidden, num_classes, cfg.dropout)
