"""Masks: the shared primitive of the tune, prune and ensemble families.

A mask set is a plain ``dict`` from parameter name (``"blocks.0.0.weight"``, as in
``model.named_parameters()`` of the unmasked model) to a ``torch.bool`` tensor of the parameter's
shape: ``True`` keeps a weight, ``False`` prunes it. Masks are explicit tensors you can save
(``Child.masks`` → ``masks.safetensors``) and look at.

Scorers (all return a mask set):

- :func:`magnitude_masks` — keep the largest ``|w|``, one global threshold or per layer;
- :func:`random_masks` — keep a uniformly random subset;
- :func:`anti_random_masks` — complement pairs: child 2k gets a random mask ``M``, child 2k+1 gets
  ``1 − M`` (Whitaker & Whitley, "Prune and Tune Ensembles", AAAI 2022);
- :func:`structured_masks` — whole neurons / channels by the norm of their weights (the set also masks
  the unit's bias and BatchNorm scale/shift, so a removed unit outputs exactly 0 and
  :func:`childnet.shrink.shrink` can delete it without changing the outputs).

Where masks act: :func:`apply_masks` registers a ``torch.nn.utils.parametrize`` parametrization
``w ↦ w ⊙ m`` on each masked parameter (pruning, PAT; SSA changes the mask buffer every step);
:func:`remove_masks` bakes ``w ⊙ m`` into plain parameters so the state dict has its usual keys.

Which weights are prunable by default (:func:`prunable_names`): the weights of every Conv and Linear
layer, the first layer included and the classifier head excluded (the module named ``head``, else the last
Conv/Linear layer the forward pass calls, so a classifier declared before the body is still found). A weight
shared by two layers counts once (its mask is given to both names); a layer the builder froze while the rest
trains is left as it is. Our choice: METHODS.md leaves it
open; the head holds < 1 % of the weights of our CNNs/ResNets, and pruning it to 98 % would delete
whole classes. ``include_head=True`` prunes it too.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Literal

import torch
from torch import nn
from torch.nn.utils import parametrize

from .checkpoint import load_tensors
from .errors import ChildnetError
from .models.base import called_layers, unit_groups
from .scorers import score as _score

__all__ = [
    "MaskParametrization",
    "Masks",
    "prunable_names",
    "scored_masks",
    "magnitude_masks",
    "random_masks",
    "anti_random_masks",
    "structured_masks",
    "complement_masks",
    "apply_masks",
    "remove_masks",
    "current_masks",
    "masks_sparsity",
    "check_sparsity",
    "check_masks",
    "load_masks",
    "plain_parameters",
]

#: parameter name → bool tensor of the parameter's shape (True = keep).
Masks = dict[str, torch.Tensor]

_PRUNABLE_LAYERS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


class MaskParametrization(nn.Module):
    """``w ↦ w ⊙ mask``; the mask is a buffer, so a hook may overwrite it in place (SSA)."""

    def __init__(self, mask: torch.Tensor):
        super().__init__()
        self.register_buffer("mask", mask.detach().to(torch.bool).clone())

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight * self.mask


def check_sparsity(sparsity: float, field: str = "sparsity") -> float:
    """Raise a user error unless ``0 <= sparsity < 1``."""
    if not isinstance(sparsity, (int, float)) or not 0.0 <= float(sparsity) < 1.0:
        raise ChildnetError(f"{field}: must be a fraction in [0, 1) — the share of weights removed "
                            f"(got {sparsity!r})")
    return float(sparsity)


def plain_parameters(model: nn.Module) -> dict[str, torch.Tensor]:
    """Parameters by their *unmasked* names; a masked parameter gives its effective value ``w ⊙ m``."""
    out: dict[str, torch.Tensor] = {}
    for mod_name, module in model.named_modules():
        pnames = [n for n, _ in module.named_parameters(recurse=False)]
        if parametrize.is_parametrized(module):
            pnames += list(module.parametrizations.keys())
        for pname in pnames:
            if pname == "parametrizations":
                continue
            out[f"{mod_name}.{pname}" if mod_name else pname] = getattr(module, pname)
    return out


def _frozen_layers(model: nn.Module, layers: list[str]) -> set[str]:
    """Layers whose weight is frozen (``requires_grad=False``) while others train: the builder's choice, left
    as it is. A model with every parameter frozen (a parent as trained) has none: it is pruned whole."""
    def weight(name):
        module = model.get_submodule(name)
        if parametrize.is_parametrized(module, "weight"):
            return module.parametrizations.weight.original
        return getattr(module, "weight", None)

    if not any(p.requires_grad for p in model.parameters()):
        return set()
    return {n for n in layers if isinstance(weight(n), torch.Tensor) and not weight(n).requires_grad}


def tied_names(model: nn.Module) -> dict[str, str]:
    """Parameters shared between modules (weight tying, ``b.weight = a.weight``): each later name → the first
    name of the same tensor (masked parameters are compared by their unmasked original)."""
    first: dict[int, str] = {}
    tied: dict[str, str] = {}
    for mod_name, module in model.named_modules():
        if "parametrizations" in mod_name.split("."):  # a mask's own storage: seen through its module below
            continue
        for pname, param in module.named_parameters(recurse=False):
            _claim(first, tied, f"{mod_name}.{pname}" if mod_name else pname, param)
        if parametrize.is_parametrized(module):
            for pname, plist in module.parametrizations.items():
                _claim(first, tied, f"{mod_name}.{pname}" if mod_name else pname, plist.original)
    return tied


def _claim(first: dict, tied: dict, name: str, tensor) -> None:
    owner = first.setdefault(id(tensor), name)
    if owner != name:
        tied[name] = owner


def _tie_masks(model: nn.Module, masks: Masks) -> Masks:
    """One mask per tied tensor: every name of a shared parameter gets its first name's mask (otherwise two
    independent masks land on one tensor, and PAT's complementary members share pruned weights)."""
    for alias, owner in tied_names(model).items():
        if owner in masks:
            masks[alias] = masks[owner]
        elif alias in masks:
            masks[owner] = masks[alias]
    return masks


def prunable_names(model: nn.Module, include_head: bool = False, include_first: bool = True) -> list[str]:
    """Names of the Conv/Linear weights that scorers prune by default (see the module docstring).

    Args:
        model: the network.
        include_head: also prune the classifier (:func:`childnet.models.base.classifier_name`: the module
            named ``head``, else the last Conv/Linear layer the forward pass calls).
        include_first: also prune the first Conv/Linear layer (the first one the forward pass calls).
    """
    layers = [n for n, m in model.named_modules() if isinstance(m, _PRUNABLE_LAYERS)]
    if not layers:
        raise ChildnetError(f"{type(model).__name__} has no Conv or Linear layer to prune")
    called = called_layers(model, types=_PRUNABLE_LAYERS) if not include_first or "head" not in layers else None
    if called:  # the forward's order: a model may declare its classifier first
        layers = called + [n for n in layers if n not in called]
    linears = [n for n in layers if isinstance(model.get_submodule(n), nn.Linear)]
    head = "head" if "head" in layers else (called[-1] if called else (linears or [None])[-1])
    frozen = _frozen_layers(model, layers)
    excluded = {n for i, n in enumerate(layers) if (not include_first and i == 0) or (not include_head and n == head)
                or n in frozen}
    tied = tied_names(model)  # a shared weight counts once, under its first name; a tie with an excluded
    for alias, owner in tied.items():  # layer (the head, a frozen one) keeps the whole tensor out
        if alias.removesuffix(".weight") in excluded:
            excluded.add(owner.removesuffix(".weight"))
    names = [n for n in layers if n not in excluded and f"{n}.weight" not in tied]
    if not names:
        raise ChildnetError("no prunable layer left: the model has only its first layer and/or its head"
                            + (f", and its frozen layers ({', '.join(sorted(frozen)[:6])})" if frozen else "")
                            + " (set include_head: true or include_first: true)")
    return [f"{n}.weight" for n in names]


def _select_lowest(scores: dict[str, torch.Tensor], sparsity: float, scope: str) -> Masks:
    """Prune exactly ``round(sparsity · n)`` lowest-scoring entries, globally or per tensor."""
    if scope not in ("global", "layer"):
        raise ChildnetError(f"scope: must be 'global' or 'layer' (got {scope!r})")
    masks: Masks = {}
    if scope == "layer":
        for name, s in scores.items():
            masks[name] = _keep_top(s.flatten(), round(sparsity * s.numel())).view_as(s)
        return masks
    flat = torch.cat([s.flatten() for s in scores.values()])
    keep = _keep_top(flat, round(sparsity * flat.numel()))
    i = 0
    for name, s in scores.items():
        masks[name] = keep[i : i + s.numel()].view_as(s).clone()
        i += s.numel()
    return masks


def _keep_top(flat: torch.Tensor, n_prune: int) -> torch.Tensor:
    order = torch.argsort(flat.double(), stable=True)  # ties: lower index pruned first (deterministic)
    keep = torch.ones(flat.numel(), dtype=torch.bool)
    keep[order[:n_prune]] = False
    return keep


def _resolve_names(model: nn.Module, names: list[str] | None, include_head: bool) -> tuple[list[str], dict]:
    params = plain_parameters(model)
    names = list(names) if names is not None else prunable_names(model, include_head=include_head)
    unknown = [n for n in names if n not in params]
    if unknown:
        raise ChildnetError(_unknown_message(unknown[0], params))
    return names, params


def scored_masks(
    model: nn.Module,
    sparsity: float,
    scorer: str = "magnitude",
    *,
    seed: int = 0,
    data=None,
    scope: Literal["global", "layer"] = "global",
    names: list[str] | None = None,
    include_head: bool = False,
    previous: Masks | None = None,
) -> Masks:
    """Prune exactly ``round(sparsity · n)`` of the selected weights, lowest scores of ``scorer`` first.

    Args:
        model: the network (masked parameters are scored by their effective value).
        sparsity: fraction of the selected weights to prune, in [0, 1).
        scorer: a registered scorer (:mod:`childnet.scorers`: magnitude, random, anti_random, fisher, …).
        seed: for scorers that draw random numbers.
        data: ``(x, y)`` for scorers that look at data (fisher).
        scope: ``global`` (one threshold over all selected weights) or ``layer`` (the same fraction of
            every tensor).
        names: parameters to prune (default :func:`prunable_names`).
        include_head: with ``names=None``, also prune the classifier head.
        previous: masks of an earlier round; weights pruned there stay pruned (iterative pruning).
    """
    sparsity = check_sparsity(sparsity)
    names, _ = _resolve_names(model, names, include_head)
    scores = {n: s.detach().float().cpu().clone() for n, s in _score(scorer, model, names, seed=seed, data=data).items()}
    if previous is not None:
        for n, s in scores.items():
            if n in previous:
                s[~previous[n].bool().cpu()] = -float("inf")  # below every score: pruned first
    return _tie_masks(model, _select_lowest(scores, sparsity, scope))


def magnitude_masks(
    model: nn.Module,
    sparsity: float,
    *,
    scope: Literal["global", "layer"] = "global",
    names: list[str] | None = None,
    include_head: bool = False,
    previous: Masks | None = None,
) -> Masks:
    """Keep the largest-magnitude weights; exactly ``round(sparsity · n)`` are pruned (see :func:`scored_masks`)."""
    return scored_masks(model, sparsity, "magnitude", scope=scope, names=names, include_head=include_head,
                        previous=previous)


def random_masks(
    model: nn.Module,
    sparsity: float,
    *,
    seed: int = 0,
    scope: Literal["global", "layer"] = "layer",
    names: list[str] | None = None,
    include_head: bool = False,
) -> Masks:
    """Prune a uniformly random ``round(sparsity · n)`` of the selected weights (per layer by default)."""
    return scored_masks(model, sparsity, "random", seed=seed, scope=scope, names=names, include_head=include_head)


def complement_masks(masks: Masks) -> Masks:
    """``1 − M`` for every tensor of a mask set."""
    return {k: ~v.bool() for k, v in masks.items()}


def anti_random_masks(
    model: nn.Module,
    n_children: int,
    *,
    sparsity: float = 0.5,
    seed: int = 0,
    structure: Literal["weights", "units"] = "weights",
    names: list[str] | None = None,
    include_head: bool = False,
) -> list[Masks]:
    """Anti-random masks for PAT: child 2k gets a random mask ``M``, child 2k+1 gets ``1 − M``.

    Whitaker & Whitley, "Prune and Tune Ensembles: Low-Cost Ensemble Learning with Sparse Independent
    Subnetworks", AAAI 2022. With the paper's ``sparsity = 0.5`` the two children of a pair keep
    disjoint halves of the weights; with another sparsity ``s`` the complement has sparsity ``1 − s``.

    Args:
        model: the parent network.
        n_children: number of masks to return (odd counts end with an unpaired random mask).
        sparsity: sparsity of ``M`` (the paper: 0.5).
        seed: seeds pair k with ``seed + k``.
        structure: ``weights`` (connections) or ``units`` (whole neurons / channels, via
            :func:`structured_masks` with random scores).
        names: parameters to prune (weights structure; default :func:`prunable_names`).
        include_head: with ``names=None``, also prune the head.
    """
    if n_children < 1:
        raise ChildnetError(f"n_children: must be ≥ 1 (got {n_children})")
    out: list[Masks] = []
    for k in range((n_children + 1) // 2):
        if structure == "weights":
            m = random_masks(model, sparsity, seed=seed + k, names=names, include_head=include_head)
        elif structure == "units":
            m = structured_masks(model, sparsity, score="random", seed=seed + k)
        else:
            raise ChildnetError(f"structure: must be 'weights' or 'units' (got {structure!r})")
        out.append(m)
        if len(out) < n_children:
            out.append(complement_masks(m))
    return out


def structured_masks(
    model: nn.Module,
    sparsity: float,
    *,
    score: Literal["l1", "l2", "random"] = "l1",
    seed: int = 0,
    structure: Literal["units", "neurons", "channels"] = "units",
) -> Masks:
    """Mask whole neurons (mlp) or channels (cnn, resnet): the lowest-norm ``round(sparsity · n)`` units of
    every prunable layer (at least one unit is kept per layer).

    The score of a unit is the L1 (Li et al. 2017, "Pruning Filters for Efficient ConvNets") or L2 norm
    of its incoming weights. The returned set masks the unit's weight rows, bias and BatchNorm
    scale/shift, so a masked unit outputs exactly zero; which layers have prunable units (and why, for
    ResNets) is :func:`childnet.models.base.unit_groups` (each model declares its own).

    Raises:
        ChildnetError: the model has no structure childnet can shrink along, or ``structure`` names one
            the model does not have (``channels`` of an mlp, ``neurons`` of a cnn).
    """
    sparsity = check_sparsity(sparsity)
    groups = unit_groups(model, structure)
    params = plain_parameters(model)
    gen = torch.Generator().manual_seed(int(seed))
    masks: Masks = {}
    for g in groups:
        w = params[g.score_param].detach().float().cpu()
        rows = w.flatten(1)
        if score == "random":
            s = torch.rand(rows.shape[0], generator=gen)
        else:
            s = rows.abs().sum(1) if score == "l1" else rows.pow(2).sum(1).sqrt()
        n_prune = min(round(sparsity * rows.shape[0]), rows.shape[0] - 1)
        keep_units = _keep_top(s, n_prune)
        for pname in g.unit_params:
            shape = params[pname].shape
            masks[pname] = keep_units.view(-1, *([1] * (len(shape) - 1))).expand(shape).clone()
    return masks


def masks_sparsity(masks: Masks) -> float:
    """Fraction of masked-out entries over all tensors of the set."""
    total = sum(m.numel() for m in masks.values())
    return 1.0 - sum(int(m.bool().sum()) for m in masks.values()) / max(1, total)


def _unknown_message(name: str, params: dict) -> str:
    close = difflib.get_close_matches(name, list(params), n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    return f"mask for '{name}': the model has no such parameter.{hint} (parameters: {', '.join(list(params)[:8])}, …)"


def check_masks(model: nn.Module, masks: Masks, source: str | None = None) -> Masks:
    """Check that every mask names a parameter of ``model`` with the same shape; return bool masks.

    Raises:
        ChildnetError: unknown parameter, shape mismatch or non-binary values, naming the offender.
    """
    where = f" in {source}" if source else ""
    params = plain_parameters(model)
    out: Masks = {}
    for name, m in masks.items():
        if name not in params:
            raise ChildnetError(f"masks{where} do not match the model: " + _unknown_message(name, params))
        if tuple(m.shape) != tuple(params[name].shape):
            raise ChildnetError(
                f"masks{where} do not match the model: mask '{name}' has shape {tuple(m.shape)}, "
                f"the parameter has shape {tuple(params[name].shape)}"
            )
        if m.dtype != torch.bool and not bool(((m == 0) | (m == 1)).all()):
            raise ChildnetError(f"masks{where}: mask '{name}' must hold only 0/1 (or bool) values")
        out[name] = m.bool()
    return out


def load_masks(path: str | Path, model: nn.Module) -> Masks:
    """Read a ``masks.safetensors`` file and check it against ``model``."""
    return check_masks(model, load_tensors(path), str(path))


def apply_masks(model: nn.Module, masks: Masks, *, zero_pruned: bool = True) -> nn.Module:
    """Make ``model`` compute with ``w ⊙ m`` for every mask (a parametrization; updated if present).

    Args:
        model: modified in place and returned.
        masks: parameter name → mask (checked against the model).
        zero_pruned: also set the stored values of pruned weights to 0, so that they stay exactly zero
            under weight decay and momentum and the baked child is clean. SSA passes ``False``: its
            annealed weights keep their parent values until their probability reaches 0.
    """
    masks = check_masks(model, masks)
    for name, m in masks.items():
        mod_name, _, pname = name.rpartition(".")
        module = model.get_submodule(mod_name) if mod_name else model
        m = m.to(next(iter(module.parameters()), torch.empty(0)).device)
        existing = _mask_param(module, pname)
        if existing is not None:
            existing.mask.copy_(m)
        else:
            _own_class(module)
            parametrize.register_parametrization(module, pname, MaskParametrization(m))
        if zero_pruned:
            with torch.no_grad():
                module.parametrizations[pname].original.mul_(m)
    return model


def _own_class(module: nn.Module) -> None:
    """Give a parametrized module a class of its own before its parametrizations change.

    ``copy.deepcopy`` of a parametrized module shares its generated ``Parametrized*`` class, and
    ``torch.nn.utils.parametrize`` adds/deletes the parameter properties on that class — so removing the
    masks of a copy would break the original. A private copy of the class keeps them apart.
    """
    cls = type(module)
    if parametrize.is_parametrized(module):
        module.__class__ = type(cls.__name__, cls.__bases__, dict(cls.__dict__))


def _mask_param(module: nn.Module, pname: str) -> MaskParametrization | None:
    if not parametrize.is_parametrized(module, pname):
        return None
    for p in module.parametrizations[pname]:
        if isinstance(p, MaskParametrization):
            return p
    return None


def current_masks(model: nn.Module) -> Masks:
    """The masks currently applied to ``model`` (copies), by parameter name."""
    out: Masks = {}
    for mod_name, module in model.named_modules():
        if not parametrize.is_parametrized(module):
            continue
        for pname in module.parametrizations.keys():
            p = _mask_param(module, pname)
            if p is not None:
                out[f"{mod_name}.{pname}" if mod_name else pname] = p.mask.detach().cpu().clone()
    return out


def remove_masks(model: nn.Module) -> nn.Module:
    """Bake ``w ⊙ m`` into plain parameters and drop the mask parametrizations (in place).

    Afterwards the state dict has its usual keys (``blocks.0.0.weight``), so ``Child.load`` can rebuild
    the model; the pruned weights are stored as exact zeros.
    """
    for _, module in list(model.named_modules()):
        if not parametrize.is_parametrized(module):
            continue
        for pname in list(module.parametrizations.keys()):
            chain = module.parametrizations[pname]
            if all(isinstance(p, MaskParametrization) for p in chain):
                _own_class(module)
                parametrize.remove_parametrizations(module, pname, leave_parametrized=True)
    return model
