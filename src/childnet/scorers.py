"""Mask scorers: which weights matter, as a registry (as Torch-Pruning's importance criteria are).

A scorer is one registered function::

    @SCORERS.register("magnitude")
    def magnitude(model, names, *, seed, data) -> dict[str, torch.Tensor]: ...

It returns a score per weight of every parameter in ``names`` (same shapes); **higher means keep**.
:func:`childnet.masks.scored_masks` turns scores into masks (the lowest ``round(sparsity · n)`` are
pruned, globally or per layer). The prune methods (``scorer``), PAT (``scorer``) and Child-Tuning_D
(``scorer``) take any registered name, so a new criterion is one function here (or in any module
imported before the config is validated).

- ``magnitude``: ``|w|`` of the effective (masked) weight (Han et al. 2015, arXiv 1506.02626).
- ``random``: uniform scores from ``seed``.
- ``anti_random``: the complement pairs of PAT (Whitaker & Whitley, AAAI 2022): seeds ``2k`` and
  ``2k + 1`` draw the same uniform scores, the odd one negated, so at sparsity 0.5 the two masks are
  complements (exactly, per layer with an even number of weights; PAT itself uses
  :func:`childnet.masks.anti_random_masks`, which complements the mask bit by bit).
- ``fisher``: the diagonal Fisher information on ``data`` (Xu et al. 2021, "Raise a Child in Large
  Language Model", eq. 5): the mean over batches of the squared gradient, each tensor's gradient norm
  clipped to 1 first, as in the official Child-Tuning code.
"""

from __future__ import annotations

import math
from typing import Annotated, Callable

import torch
import torch.nn.functional as F
from pydantic import AfterValidator
from torch import nn
from torch.nn.utils import parametrize

from .errors import ChildnetError
from .registry import SCORERS
from .tasks.base import Inputs, num_examples, take, to_device

__all__ = ["SCORERS", "Scorer", "ScorerName", "score", "fisher_information", "check_scorer"]

#: ``scorer(model, names, *, seed, data) -> {name: scores}``; ``data`` is ``(x, y)`` of the training split.
Scorer = Callable[..., dict]


def check_scorer(name: str) -> str:
    """A field validator's check: ``name`` must be a registered scorer (the error lists them)."""
    if not isinstance(name, str) or name not in SCORERS:
        raise ValueError(SCORERS.unknown_message(name))
    return name


#: A config field naming a registered scorer (checked when the config is validated; the error lists them).
ScorerName = Annotated[str, AfterValidator(check_scorer)]


def score(name: str, model: nn.Module, names: list[str], *, seed: int = 0, data=None) -> dict[str, torch.Tensor]:
    """Scores of the registered scorer ``name`` for the parameters ``names`` of ``model``."""
    return SCORERS.get(name).fn(model, list(names), seed=seed, data=data)


def _parameter(model: nn.Module, name: str) -> torch.Tensor:
    """The trainable tensor behind ``name`` (a masked parameter's original), for gradients."""
    mod_name, _, pname = name.rpartition(".")
    module = model.get_submodule(mod_name) if mod_name else model
    if parametrize.is_parametrized(module, pname):
        return module.parametrizations[pname].original
    return getattr(module, pname)


def _effective(model: nn.Module, name: str) -> torch.Tensor:
    mod_name, _, pname = name.rpartition(".")
    module = model.get_submodule(mod_name) if mod_name else model
    return getattr(module, pname)


@SCORERS.register("magnitude")
def magnitude(model: nn.Module, names: list[str], *, seed: int = 0, data=None) -> dict[str, torch.Tensor]:
    """|w| of each (effective) weight: small weights go first (Han et al. 2015)."""
    return {n: _effective(model, n).detach().abs().float().cpu().clone() for n in names}


@SCORERS.register("random")
def random(model: nn.Module, names: list[str], *, seed: int = 0, data=None) -> dict[str, torch.Tensor]:
    """Uniform random scores from ``seed``: a random subset goes."""
    gen = torch.Generator().manual_seed(int(seed))
    return {n: torch.rand(_effective(model, n).shape, generator=gen) for n in names}


@SCORERS.register("anti_random")
def anti_random(model: nn.Module, names: list[str], *, seed: int = 0, data=None) -> dict[str, torch.Tensor]:
    """Complement pairs (Whitaker & Whitley 2022): seed 2k+1 negates the scores of seed 2k."""
    scores = random(model, names, seed=int(seed) // 2)
    return {n: -s for n, s in scores.items()} if int(seed) % 2 else scores


def fisher_information(model: nn.Module, x: Inputs, y: torch.Tensor, params: dict[str, nn.Parameter], *,
                       batch_size: int = 16, clip: float | None = 1.0, seed: int = 0,
                       device="cpu") -> dict[str, torch.Tensor]:
    """Diagonal Fisher information F_i = mean over batches of (∂L/∂w_i)² (Xu et al. 2021, eq. 5).

    Args:
        model: the network (train mode during the pass; its mode is restored).
        x, y: the training set, visited once in order.
        params: the weights to score (name → parameter).
        batch_size: examples per batch.
        clip: each tensor's gradient norm is clipped to this before squaring (official code).
        seed: seeds dropout during the pass.

    The pass leaves the model as it found it: buffers (BatchNorm running statistics) are restored and
    gradients cleared.
    """
    was = model.training
    buffers = {n: b.detach().clone() for n, b in model.named_buffers()}  # e.g. BatchNorm statistics
    model.train()
    scores = {n: torch.zeros_like(p) for n, p in params.items()}
    n = num_examples(x)
    batches = math.ceil(n / batch_size)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for i in range(0, n, batch_size):
            model.zero_grad(set_to_none=True)
            xb = to_device(take(x, slice(i, i + batch_size)), device)
            F.cross_entropy(model(xb), y[i : i + batch_size].to(device)).backward()
            for name, p in params.items():
                if p.grad is None:
                    continue
                if clip:
                    nn.utils.clip_grad_norm_(p, clip)
                scores[name].add_(p.grad.detach() ** 2, alpha=1.0 / batches)
    model.zero_grad(set_to_none=True)
    with torch.no_grad():
        for n, b in model.named_buffers():
            b.copy_(buffers[n])
    model.train(was)
    return scores


@SCORERS.register("fisher")
def fisher(model: nn.Module, names: list[str], *, seed: int = 0, data=None) -> dict[str, torch.Tensor]:
    """Diagonal Fisher information on the training data (Xu et al. 2021): weights that matter least go."""
    if data is None:
        raise ChildnetError("scorer 'fisher' needs training data (the method passes the task's training split)")
    x, y = data
    params = {n: _parameter(model, n) for n in names}
    trainable = {n: p.requires_grad for n, p in params.items()}
    for p in params.values():
        p.requires_grad_(True)
    device = next(iter(params.values())).device if params else "cpu"
    try:
        scores = fisher_information(model, x, y, params, seed=seed, device=device)
    finally:
        for n, p in params.items():
            p.requires_grad_(trainable[n])
    return {n: s.detach().float().cpu() for n, s in scores.items()}
