"""Model conventions shared by every builder.

Every childnet model is ``head(forward_features(x))``: ``forward_features`` returns the pooled
penultimate features (the extraction point of HKT and the input of the linear head), ``head`` is the
classifier. ``build_model`` stamps the spec on the model (``model.childnet_spec``) so a saved child
can be rebuilt from its ``child.json`` without pickling code.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from .._base import validate_entry
from ..errors import ConfigError
from ..registry import MODELS

__all__ = ["ChildnetModel", "build_model", "model_spec", "MAX_UNITS", "MAX_LAYERS", "MAX_PARAMS"]

#: Sane bounds on a model's size, checked before any tensor is allocated (a card asking for a billion
#: units fails with a sentence, not by exhausting memory).
MAX_UNITS = 16384
MAX_LAYERS = 64
#: Largest input example (elements) and class count a model is built for.
MAX_INPUT_ELEMENTS = 2**24
MAX_CLASSES = 100_000
#: Most parameters a model built from a file (a child card) may have: 2·10⁹ float32 = 8 GB.
MAX_PARAMS = 2_000_000_000


class ChildnetModel(nn.Module):
    """Base: subclasses define ``forward_features`` and a ``head`` module."""

    head: nn.Module

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, x):
        return self.head(self.forward_features(x))

    @property
    def feature_dim(self) -> int:
        return self.head.in_features


def build_model(spec: dict | str, input_shape: tuple, num_classes: int, *, max_params: int | None = None) -> nn.Module:
    """Build a registered model from ``{"name": ..., **options}`` for the given input and classes.

    Args:
        max_params: refuse (before allocating anything) a model with more parameters than this; the count
            comes from building it once on torch's ``meta`` device. Used for specs read from files.
    """
    spec = {"name": spec} if isinstance(spec, str) else {k: v for k, v in spec.items()}
    spec.pop("input_shape", None)
    spec.pop("num_classes", None)
    problems: list[str] = []
    res = validate_entry(MODELS, spec, "model", problems)
    if problems:
        raise ConfigError(problems)
    name, cfg = res
    if max_params is not None:
        n = _meta_params(name, cfg, input_shape, num_classes)
        if n is not None and n > max_params:
            raise ConfigError(f"model {name}: this architecture has {n:,} parameters, more than the {max_params:,} "
                              f"childnet builds from a file ({str({k: v for k, v in spec.items() if k != 'name'})[:120]})")
    model = MODELS.get(name).fn(cfg, tuple(input_shape), int(num_classes))
    model.childnet_spec = {**spec, "input_shape": list(input_shape), "num_classes": int(num_classes)}
    return model


def _meta_params(name: str, cfg, input_shape, num_classes) -> int | None:
    """Parameter count of the model built on the meta device (no memory); None if it cannot be built there."""
    try:
        with torch.device("meta"):
            model = MODELS.get(name).fn(cfg, tuple(input_shape), int(num_classes))
    except ConfigError:
        raise
    except Exception:  # a builder that loads files (pretrained weights) may not build on meta
        return None
    return sum(p.numel() for p in model.parameters())


def model_spec(model: nn.Module) -> dict:
    """The spec ``build_model`` stamped on ``model`` (raises if it was built some other way)."""
    spec = getattr(model, "childnet_spec", None)
    if spec is None:
        raise ValueError(
            f"{type(model).__name__} was not built by childnet.models.build_model, so it cannot be "
            "rebuilt on load; register a builder for it"
        )
    return copy.deepcopy(spec)
