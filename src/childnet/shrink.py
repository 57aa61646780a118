"""Structured shrinking: turn a neuron/channel-masked model into a physically smaller one.

Masks alone save nothing — a pruned parent full of zeros costs what the parent costs. :func:`shrink`
rebuilds the model through its registered builder with fewer units (the model's ``shrunk_spec``:
``mlp`` via ``hidden``, ``cnn`` via ``channels``, ``resnet`` via ``inner_widths``) and copies the kept slices of every tensor, so the
child's outputs equal the masked parent's (to float tolerance) while its parameters, MACs and latency
really drop.

Which units can go is declared by each model (``ChildnetModel.unit_groups``, registered with
``units="neurons"`` or ``"channels"``; :func:`unit_groups` asks it):

- **mlp**: the neurons of every hidden Linear layer (rows of its weight and bias; the next layer's
  matching input columns go with them).
- **cnn**: the output channels of every conv block (conv filter, conv bias, BatchNorm scale/shift and
  running statistics; the next conv's — or the head's — input channels).
- **resnet**: only the channels *inside* each basic block (conv1's filters and bn1; conv2's input
  channels). The channels of the residual stream are shared by every block of a stage through the
  additions ``out + shortcut(x)``, so removing one would need the same channel gone from the stem, all
  blocks of the stage and the zero-padding shortcuts; we leave the stream at full width (the choice of
  Li et al. 2017, "Pruning Filters for Efficient ConvNets", §4.2 for CIFAR ResNets).

A unit is removed only when *every* output-side tensor of it is masked (weight row, bias, BN scale and
shift); then it outputs exactly 0 in the masked model and deleting it changes nothing downstream.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from .errors import ChildnetError
from .masks import apply_masks, check_masks, current_masks, remove_masks
from .models.base import UnitGroup, build_model, model_spec, shrinkable_models, unit_groups

__all__ = ["UnitGroup", "unit_groups", "kept_units", "shrink", "shrinkable_models"]


def kept_units(groups: list[UnitGroup], masks: dict[str, torch.Tensor]) -> dict[str, list[int]]:
    """Per group, the indices of units that survive: a unit goes only if all its unit params are masked."""
    out = {}
    for g in groups:
        removed = torch.ones(g.size, dtype=torch.bool)
        for pname in g.unit_params:
            m = masks.get(pname)
            if m is None:
                removed[:] = False
                break
            removed &= ~m.bool().reshape(g.size, -1).any(1).cpu()
        keep = (~removed).nonzero().flatten().tolist()
        out[g.name] = keep or [0]  # a layer of zero units cannot be built; a dead unit outputs 0 anyway
    return out


def _new_spec(model: nn.Module, groups: list[UnitGroup], keep: dict[str, list[int]]) -> dict:
    return model.shrunk_spec(model_spec(model), [len(keep[g.name]) for g in groups])


def _slice_plan(groups: list[UnitGroup], keep: dict[str, list[int]]) -> dict[str, dict[int, torch.Tensor]]:
    plan: dict[str, dict[int, torch.Tensor]] = {}
    for g in groups:
        idx = torch.tensor(keep[g.name], dtype=torch.long)
        for name in g.unit_params + g.unit_buffers:
            plan.setdefault(name, {})[0] = idx
        for name in g.consumers:
            plan.setdefault(name, {})[1] = idx
    return plan


@torch.no_grad()
def shrink(model: nn.Module, masks: dict[str, torch.Tensor] | None = None, *, check=None,
           tolerance: float = 1e-4) -> tuple[nn.Module, dict[str, list[int]]]:
    """A physically smaller copy of ``model`` without the fully masked units.

    Args:
        model: an mlp / cnn / resnet, with masks applied as parametrizations or plain.
        masks: the structured masks (default: the masks applied to ``model``).
        check: a batch of real inputs: the shrunk model's outputs on it must equal the masked model's
            within ``tolerance · (1 + max |output|)``, else :class:`ChildnetError` names the layer that
            broke (the guard :mod:`childnet.depgraph` applies to every shrink).

    Returns:
        ``(small_model, kept)``: the new model (built by the registry, so a child of it saves and loads)
        and, per layer, the indices of the units kept.
    """
    groups = unit_groups(model)
    masks = check_masks(model, masks if masks is not None else current_masks(model))
    keep = kept_units(groups, masks)
    baked = remove_masks(copy.deepcopy(model))
    state = baked.state_dict()
    for name, m in masks.items():
        state[name] = state[name] * m.to(state[name].device)
    spec = _new_spec(model, groups, keep)
    small = build_model(spec, spec["input_shape"], spec["num_classes"])
    plan = _slice_plan(groups, keep)
    new_state = {}
    for k, v in state.items():
        for dim, idx in plan.get(k, {}).items():
            v = v.index_select(dim, idx.to(v.device))
        new_state[k] = v.clone()
    small.load_state_dict(new_state, strict=True)
    device = next(model.parameters()).device
    small.to(device).train(model.training)
    for p_small, p_old in zip(small.parameters(), baked.parameters()):
        p_small.requires_grad_(p_old.requires_grad)
    if check is not None:
        _guard(model, masks, groups, keep, small, check, tolerance)
    return small, keep


def _guard(model, masks, groups, keep, small, x, tolerance: float) -> None:
    """Refuse a shrunk model whose outputs differ from the masked model's, naming the first layer that breaks."""
    masked = apply_masks(remove_masks(copy.deepcopy(model)), masks).eval()
    expected = masked(x)
    err = float((small.eval()(x) - expected).abs().max())
    small.train(model.training)
    limit = tolerance * (1 + float(expected.abs().max()))
    if err <= limit:
        return
    for g in groups:  # shrink one layer at a time to find the one that breaks
        alone = {k: (v if k == g.name else list(range(h.size))) for (k, v), h in zip(keep.items(), groups)}
        spec = _new_spec(model, groups, alone)
        one = build_model(spec, spec["input_shape"], spec["num_classes"]).eval()
        baked = remove_masks(copy.deepcopy(masked)).state_dict()
        state = {}
        for k, v in baked.items():
            for dim, idx in _slice_plan(groups, alone).get(k, {}).items():
                v = v.index_select(dim, idx.to(v.device))
            state[k] = v
        one.load_state_dict(state)
        if float((one(x) - expected).abs().max()) > limit:
            raise ChildnetError(f"structured shrinking broke layer {g.name}: the shrunk model's outputs differ from "
                                f"the masked parent's by {err:.3g} (tolerance {limit:.3g})")
    raise ChildnetError(f"structured shrinking changed the outputs by {err:.3g} (tolerance {limit:.3g}) though no "
                        "single layer does on its own")
