"""Read (or replace) intermediate features of a model by layer name, with forward hooks.

Layer names are ``named_modules`` names (``stages.1``, ``blocks.2``) plus ``features``: the pooled
penultimate features, i.e. the input of ``model.head``. Used by FitNets hints, HKT inheritance
points and the CKA diversity analysis.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

import torch
from torch import nn

from .errors import ChildnetError

__all__ = ["layer_names", "get_layer", "capture", "replace_outputs", "default_hint_layer"]

FEATURES = "features"


def layer_names(model: nn.Module) -> list[str]:
    """Every name :func:`capture` accepts for ``model``."""
    names = [n for n, _ in model.named_modules() if n]
    return ([FEATURES] if hasattr(model, "head") else []) + names


def get_layer(model: nn.Module, name: str) -> nn.Module:
    """The module behind ``name``; a clear error lists valid names."""
    if name == FEATURES and hasattr(model, "head"):
        return model.head
    modules = dict(model.named_modules())
    if name not in modules or not name:
        valid = layer_names(model)
        shown = ", ".join(valid[:40]) + (" …" if len(valid) > 40 else "")
        raise ChildnetError(f"layer '{name}' does not exist in {type(model).__name__}; valid layers: {shown}")
    return modules[name]


def default_hint_layer(model: nn.Module) -> str:
    """A middle layer: ``stages.1`` for ResNets, the middle block for CNNs, else ``features``."""
    for attr in ("stages", "blocks"):
        seq = getattr(model, attr, None)
        if isinstance(seq, nn.Sequential) and len(seq) > 1:
            return f"{attr}.{(len(seq) - 1) // 2}" if attr == "blocks" else f"{attr}.{len(seq) // 2}"
    return FEATURES


class _OnceGuard:
    """Refuses a named layer that one forward pass of ``model`` calls twice (a module reused in the forward):
    its output would be ambiguous — the second call's overwrites the first's, and a replacement would apply
    at both calls. Calling ``guard(name)`` marks the layer as called and returns the name."""

    def __init__(self, model: nn.Module):
        self.model, self.seen = model, set()
        self.handle = model.register_forward_pre_hook(lambda m, a: self.seen.clear())

    def __call__(self, name: str) -> str:
        if name in self.seen:
            raise ChildnetError(f"layer '{name}' is called more than once in one forward pass of "
                                f"{type(self.model).__name__} (a module used twice), so its output is ambiguous; "
                                "name a layer the forward calls once")
        self.seen.add(name)
        return name


@contextmanager
def capture(model: nn.Module, names: list[str]) -> Iterator[dict[str, torch.Tensor]]:
    """Within the block, each forward pass stores the output of each named layer in the dict."""
    out: dict[str, torch.Tensor] = {}
    once = _OnceGuard(model)
    handles = [once.handle]
    for name in dict.fromkeys(names):
        layer = get_layer(model, name)
        if name == FEATURES:
            handles.append(layer.register_forward_pre_hook(lambda m, a, n=name: out.__setitem__(once(n), a[0])))
        else:
            handles.append(layer.register_forward_hook(lambda m, a, o, n=name: out.__setitem__(once(n), o)))
    try:
        yield out
    finally:
        for h in handles:
            h.remove()


@contextmanager
def replace_outputs(model: nn.Module, fns: dict[str, Callable[[torch.Tensor], torch.Tensor]]):
    """Within the block, the output of each named layer is passed through ``fns[name]``
    (for ``features``: the head's input)."""
    once = _OnceGuard(model)
    handles = [once.handle]
    for name, fn in fns.items():
        layer = get_layer(model, name)
        if name == FEATURES:
            handles.append(layer.register_forward_pre_hook(lambda m, a, f=fn, n=name: (once(n) and f(a[0]),)))
        else:
            handles.append(layer.register_forward_hook(lambda m, a, o, f=fn, n=name: once(n) and f(o)))
    try:
        yield
    finally:
        for h in handles:
            h.remove()
