"""Model conventions shared by every builder.

Every childnet model is ``head(forward_features(x))``: ``forward_features`` returns the pooled
penultimate features (the extraction point of HKT and the input of the linear head), ``head`` is the
classifier. ``build_model`` stamps the spec on the model (``model.childnet_spec``) so a saved child
can be rebuilt from its ``child.json`` without pickling code.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
from torch import nn

from .._base import validate_entry
from ..errors import ChildnetError, ConfigError
from ..registry import MODELS

__all__ = ["ChildnetModel", "build_model", "model_spec", "MAX_UNITS", "MAX_LAYERS", "MAX_PARAMS", "UnitGroup",
           "unit_groups", "shrinkable_models"]

#: Sane bounds on a model's size, checked before any tensor is allocated (a card asking for a billion
#: units fails with a sentence, not by exhausting memory).
MAX_UNITS = 16384
MAX_LAYERS = 64
#: Largest input example (elements) and class count a model is built for.
MAX_INPUT_ELEMENTS = 2**24
MAX_CLASSES = 100_000
#: Most parameters a model built from a file (a child card) may have: 2·10⁹ float32 = 8 GB.
MAX_PARAMS = 2_000_000_000


@dataclass(frozen=True)
class UnitGroup:
    """The prunable units (neurons, channels) of one layer, as the model declares them.

    Attributes:
        name: the layer (``blocks.0``, ``body.1``, ``stages.0.1``).
        score_param: weight whose rows score the units (dim 0 = unit).
        unit_params: parameters masked per unit along dim 0 (weight, bias, BN scale and shift).
        unit_buffers: buffers sliced along dim 0 when shrinking (BN running statistics).
        consumers: weights reading these units, sliced along dim 1 when shrinking.
        size: number of units.
    """

    name: str
    score_param: str
    unit_params: tuple[str, ...]
    unit_buffers: tuple[str, ...] = ()
    consumers: tuple[str, ...] = ()
    size: int = 0


def norm_params(prefix: str, norm: nn.Module | None) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``(params, buffers)`` names of a norm layer's per-unit scale/shift and running statistics."""
    if norm is None:
        return (), ()
    params = tuple(f"{prefix}.{p}" for p in ("weight", "bias") if getattr(norm, p, None) is not None)
    bufs = tuple(f"{prefix}.{b}" for b in ("running_mean", "running_var") if getattr(norm, b, None) is not None)
    return params, bufs


def layer_params(prefix: str, layer: nn.Module) -> tuple[str, ...]:
    """Names of a Linear/Conv layer's weight and (if any) bias."""
    return (f"{prefix}.weight",) + ((f"{prefix}.bias",) if layer.bias is not None else ())


class ChildnetModel(nn.Module):
    """Base: subclasses define ``forward_features`` and a ``head`` module.

    A model whose units (neurons, channels) can be pruned structurally and removed declares them:
    register it with ``units="neurons"`` (or ``"channels"``) and implement :meth:`unit_groups` and
    :meth:`shrunk_spec`; :mod:`childnet.masks` and :mod:`childnet.shrink` then work on it unchanged.
    """

    head: nn.Module

    def unit_groups(self) -> list[UnitGroup]:
        """The prunable units, one group per layer (models that have none need not override this)."""
        raise NotImplementedError

    def shrunk_spec(self, spec: dict, widths: list[int]) -> dict:
        """``spec`` (this model's own) rebuilt with ``widths[i]`` units in ``unit_groups()[i]``."""
        raise NotImplementedError

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, x):
        return self.head(self.forward_features(x))

    @property
    def feature_dim(self) -> int:
        return self.head.in_features


def build_model(spec: dict | str, input_shape: tuple, num_classes: int, *, max_params: int | None = None,
                limit: str = "childnet builds from a file") -> nn.Module:
    """Build a registered model from ``{"name": ..., **options}`` for the given input and classes.

    Args:
        max_params: refuse (before allocating anything) a model with more parameters than this; the count
            comes from building it once on torch's ``meta`` device. Used for specs read from files.
        limit: what ``max_params`` is, for the refusal's sentence.
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
                              f"{limit} ({str({k: v for k, v in spec.items() if k != 'name'})[:120]})")
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


def forward_error(model: nn.Module, x) -> Exception | None:
    """Run ``model`` on ``x`` (eval mode, no gradients, on the model's device): None if it reads them, else
    the error — how a network is asked whether inputs of another shape suit it (adaptive pooling does)."""
    from ..tasks.base import to_device

    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    was = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(to_device(x, device))
    except Exception as err:  # noqa: BLE001 - any failure of the forward pass is the answer
        return err
    finally:
        model.train(was)
    return None


def called_layers(model: nn.Module, x=None, types: tuple = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)) -> list[str] | None:
    """Names of ``model``'s layers of ``types`` in the order its forward pass first calls them, or None when
    no forward can be run. Declaration order is not call order: a model may declare its classifier before
    its body.

    Args:
        x: an input batch. Default: two examples of zeros of the recorded ``input_shape`` (a model built by
            :func:`build_model`), as floats, else as token ids (a model that embeds its inputs); none for a
            model registered for ranking or text inputs, whose inputs are not one tensor of that shape.
    """
    if x is None:
        spec = getattr(model, "childnet_spec", None) or {}
        shape = spec.get("input_shape")
        entry = MODELS.get(spec["name"]) if spec.get("name") in MODELS.names() else None
        if not shape or (entry is not None and entry.meta.get("inputs") in ("ranking", "text")) \
                or math.prod(shape) > MAX_INPUT_ELEMENTS // 2:
            return None
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
        tries = [torch.zeros((2, *shape), device=device)]
        if any(isinstance(m, nn.Embedding) for m in model.modules()):
            tries.append(torch.zeros((2, *shape), dtype=torch.long, device=device))
        for x in tries:
            order = called_layers(model, x, types)
            if order:
                return order
        return None
    order: list[str] = []
    handles = [m.register_forward_hook(lambda _m, _i, _o, n=n: order.append(n))
               for n, m in model.named_modules() if isinstance(m, types)]
    try:
        err = forward_error(model, x)
    finally:
        for h in handles:
            h.remove()
    return list(dict.fromkeys(order)) if err is None and order else None


def classifier_name(model: nn.Module, x=None) -> str | None:
    """The layer whose outputs are the classes: the module named ``head``; else the last Conv/Linear layer the
    forward pass calls (:func:`called_layers`); else, when no forward can be run, the last Linear declared."""
    if isinstance(getattr(model, "head", None), nn.Module):
        return "head"
    order = called_layers(model, x)
    if order:
        return order[-1]
    linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    return linears[-1] if linears else None


def check_runs_on(model: nn.Module, task, what: str) -> None:
    """Refuse with a sentence a network that cannot run on ``task``'s inputs (two test examples): a CNN on a
    ranking task's sequences failed deep inside training with an AttributeError."""
    err = forward_error(model, task.example_input(2))
    if err is None:
        return
    if isinstance(err, ChildnetError):
        raise err
    inputs = (f"{task.kind} inputs" if task.kind in ("ranking", "text") or not task.input_shape
              else f"inputs of shape {tuple(task.input_shape)}")
    first = (str(err).splitlines() or [""])[0]
    raise ChildnetError(f"{what} cannot run on task '{task.name}' ({inputs}): {type(err).__name__}: {first[:160]}")


def model_spec(model: nn.Module) -> dict:
    """The spec ``build_model`` stamped on ``model`` (raises if it was built some other way)."""
    spec = getattr(model, "childnet_spec", None)
    if spec is None:
        raise ChildnetError(
            f"{type(model).__name__} was not built by childnet.models.build_model, so a child of it cannot be "
            "saved or rebuilt on load; register a builder for it (docs/own-model.md)"
        )
    return copy.deepcopy(spec)


def shrinkable_models() -> dict[str, str]:
    """Registered models that declare prunable units: name → what the units are called."""
    return {e.name: e.meta["units"] for e in MODELS.entries() if e.meta.get("units")}


def unit_groups(model: nn.Module, structure: str = "units") -> list[UnitGroup]:
    """The prunable units of ``model``, one group per layer, as the model declares them.

    Args:
        model: a model built by :func:`build_model` whose registration declares ``units``.
        structure: ``units`` (whatever the model has), or the model's own word (``neurons``, ``channels``).

    Raises:
        ChildnetError: the model cannot be shrunk, or not along ``structure``.
    """
    name = str(getattr(model, "childnet_spec", {}).get("name", type(model).__name__))
    known = shrinkable_models()
    if name not in known:
        raise ChildnetError(
            f"structured pruning: model '{name}' cannot be shrunk along neurons or channels; "
            f"childnet can shrink {', '.join(f'{k} ({v})' for k, v in known.items())}. "
            "Use structure: weights (unstructured masks) for this model."
        )
    if structure not in ("units", known[name]):
        raise ChildnetError(
            f"structure: model '{name}' has {known[name]}, not {structure} "
            f"(use structure: {known[name]}, or weights)"
        )
    return model.unit_groups()
