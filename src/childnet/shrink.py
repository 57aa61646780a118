"""Structured shrinking: turn a neuron/channel-masked model into a physically smaller one.

Masks alone save nothing — a pruned parent full of zeros costs what the parent costs. :func:`shrink`
rebuilds the model through its registered builder with fewer units (``mlp`` via ``hidden``, ``cnn``
via ``channels``, ``resnet`` via ``inner_widths``) and copies the kept slices of every tensor, so the
child's outputs equal the masked parent's (to float tolerance) while its parameters, MACs and latency
really drop.

Which units can go (:func:`unit_groups`):

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
from dataclasses import dataclass

import torch
from torch import nn

from .errors import ChildnetError

__all__ = ["UnitGroup", "unit_groups", "kept_units", "shrink", "SHRINKABLE"]

#: model name → the structure word users write for its units.
SHRINKABLE = {"mlp": "neurons", "cnn": "channels", "resnet": "channels"}


@dataclass(frozen=True)
class UnitGroup:
    """The prunable units of one layer.

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


def _model_name(model: nn.Module) -> str:
    return str(getattr(model, "childnet_spec", {}).get("name", type(model).__name__))


def _bn_params(prefix: str, bn: nn.Module | None) -> tuple[tuple[str, ...], tuple[str, ...]]:
    if bn is None:
        return (), ()
    params = tuple(f"{prefix}.{p}" for p in ("weight", "bias") if getattr(bn, p, None) is not None)
    bufs = tuple(f"{prefix}.{b}" for b in ("running_mean", "running_var") if getattr(bn, b, None) is not None)
    return params, bufs


def _layer_params(prefix: str, layer: nn.Module) -> tuple[str, ...]:
    return (f"{prefix}.weight",) + ((f"{prefix}.bias",) if layer.bias is not None else ())


def _mlp_groups(model) -> list[UnitGroup]:
    idx = [i for i, m in enumerate(model.body) if isinstance(m, nn.Linear)]
    groups = []
    for j, i in enumerate(idx):
        consumer = f"body.{idx[j + 1]}.weight" if j + 1 < len(idx) else "head.weight"
        layer = model.body[i]
        groups.append(UnitGroup(f"body.{i}", f"body.{i}.weight", _layer_params(f"body.{i}", layer),
                                (), (consumer,), layer.out_features))
    return groups


def _cnn_groups(model) -> list[UnitGroup]:
    groups = []
    for i, block in enumerate(model.blocks):
        conv = block[0]
        bn = block[1] if len(block) > 1 and isinstance(block[1], (nn.BatchNorm1d, nn.BatchNorm2d)) else None
        bn_p, bn_b = _bn_params(f"blocks.{i}.1", bn)
        consumer = f"blocks.{i + 1}.0.weight" if i + 1 < len(model.blocks) else "head.weight"
        groups.append(UnitGroup(f"blocks.{i}", f"blocks.{i}.0.weight", _layer_params(f"blocks.{i}.0", conv) + bn_p,
                                bn_b, (consumer,), conv.out_channels))
    return groups


def _resnet_groups(model) -> list[UnitGroup]:
    groups = []
    for s, stage in enumerate(model.stages):
        for b, block in enumerate(stage):
            p = f"stages.{s}.{b}"
            bn_p, bn_b = _bn_params(f"{p}.bn1", block.bn1)
            groups.append(UnitGroup(p, f"{p}.conv1.weight", (f"{p}.conv1.weight",) + bn_p, bn_b,
                                    (f"{p}.conv2.weight",), block.conv1.out_channels))
    return groups


_GROUPS = {"mlp": _mlp_groups, "cnn": _cnn_groups, "resnet": _resnet_groups}


def unit_groups(model: nn.Module, structure: str = "units") -> list[UnitGroup]:
    """The prunable units of ``model``, one group per layer (see the module docstring).

    Args:
        model: an ``mlp``, ``cnn`` or ``resnet`` built by :func:`childnet.models.build_model`.
        structure: ``units`` (whatever the model has), ``neurons`` (mlp) or ``channels`` (cnn, resnet).

    Raises:
        ChildnetError: the model cannot be shrunk, or not along ``structure``.
    """
    name = _model_name(model)
    if name not in _GROUPS:
        raise ChildnetError(
            f"structured pruning: model '{name}' cannot be shrunk along neurons or channels; "
            f"childnet can shrink {', '.join(f'{k} ({v})' for k, v in SHRINKABLE.items())}. "
            "Use structure: weights (unstructured masks) for this model."
        )
    if structure not in ("units", SHRINKABLE[name]):
        raise ChildnetError(
            f"structure: model '{name}' has {SHRINKABLE[name]}, not {structure} "
            f"(use structure: {SHRINKABLE[name]}, or weights)"
        )
    return _GROUPS[name](model)


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
    from .models.base import model_spec

    spec = model_spec(model)
    widths = [len(keep[g.name]) for g in groups]
    name = spec["name"]
    if name == "mlp":
        spec["hidden"] = widths
    elif name == "cnn":
        spec["channels"] = widths
        spec.pop("width", None)
        spec.pop("depth", None)
    else:
        spec["inner_widths"] = widths
    return spec


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
def shrink(model: nn.Module, masks: dict[str, torch.Tensor] | None = None) -> tuple[nn.Module, dict[str, list[int]]]:
    """A physically smaller copy of ``model`` without the fully masked units.

    Args:
        model: an mlp / cnn / resnet, with masks applied as parametrizations or plain.
        masks: the structured masks (default: the masks applied to ``model``).

    Returns:
        ``(small_model, kept)``: the new model (built by the registry, so a child of it saves and loads)
        and, per layer, the indices of the units kept.
    """
    from .masks import check_masks, current_masks, remove_masks
    from .models.base import build_model

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
    return small, keep
