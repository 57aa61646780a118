"""Networks of the search spaces: one class serves as supernet and as standalone child.

A :class:`MacroNet` / :class:`MicroNet` holds, at every position, a ``ModuleDict`` of candidate ops and
runs the architecture set by :meth:`set_arch`. The **supernet** holds every op at every position (the
shared weights ω of ENAS, Pham et al. 2018, arXiv 1802.03268, section 2); a **standalone child** is the
same class holding only the ops its spec uses, so parameter names match the supernet's. The children are
registered as the models ``enas_macro`` and ``enas_micro``: their config *is* the architecture spec, so
``Child.load`` rebuilds them from ``child.json``.

Choices (where ENAS differs, kept simple and documented):

- Spatial reductions are a 2 x 2 average pool of every earlier output, after layer floor(L/3) - 1
  and floor(2L/3) - 1 (ENAS's positions), and only while the map is at least 4 pixels wide. ENAS
  uses factorised reductions that also double the channels; ours keep the width, so a child carries
  no weights it does not use.
- A micro cell outputs ReLU -> 1 x 1 conv -> BN of the mean of its loose ends (nodes no other node
  reads); ENAS applies the same projection to their concatenation, whose width varies by child.
  Reduction cells pool both inputs, then run at stride 1.
- Micro weights are per (cell, node, input slot, op); ENAS also indexes them by the chosen input.

MACs per child come from PyTorch's ``torch.utils.flop_counter`` run once per op position and summed
(:meth:`child_macs`), which equals counting the standalone child (tests check it).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from ...config import Config
from ...errors import ConfigError
from ...models.base import ChildnetModel
from ...registry import MODELS
from .ops import KNOWN_OPS, OpOptions, build_op, check_op_name

__all__ = [
    "MacroNet",
    "MicroNet",
    "MacroChildConfig",
    "MicroChildConfig",
    "reduction_points",
    "count_module_macs",
]


def reduction_points(num_layers: int, size: int) -> list[int]:
    """Layers after which the map is halved: floor(L/3) - 1 and floor(2L/3) - 1 while size >= 4."""
    d = num_layers // 3
    out = []
    for p in ([d - 1, 2 * d - 1] if d else []):
        if size >= 4:
            out.append(p)
            size //= 2
    return out


@torch.no_grad()
def count_module_macs(module: nn.Module, *inputs: torch.Tensor) -> int:
    """Multiply-accumulates of one forward of ``module`` (``torch.utils.flop_counter`` FLOPs / 2)."""
    was = module.training
    module.eval()
    with FlopCounterMode(display=False) as counter:
        module(*inputs)
    module.train(was)
    return int(counter.get_total_flops() // 2)


def _image_shape(input_shape: Sequence[int], model: str) -> tuple[int, int, int]:
    if len(input_shape) != 3:
        raise ConfigError(f"model {model}: the search spaces need image inputs (C, H, W); "
                          f"this task's inputs have shape {tuple(input_shape)}")
    return tuple(int(s) for s in input_shape)


def _stem(in_ch: int, o: OpOptions) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_ch, o.channels, 3, padding=1, bias=False),
                         nn.BatchNorm2d(o.channels, track_running_stats=o.track_stats))


class _SpaceNet(ChildnetModel):
    """Shared parts: stem, head, the current architecture and MAC accounting."""

    def __init__(self, input_shape, num_classes: int, options: OpOptions, name: str):
        super().__init__()
        self.in_ch, self.h, self.w = _image_shape(input_shape, name)
        self.options = options
        self.stem = _stem(self.in_ch, options)
        self.head = nn.Linear(options.channels, num_classes)
        self.arch: dict | None = None
        self._macs: dict = {}

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        return F.adaptive_avg_pool2d(F.relu(x), 1).flatten(1)

    def _require_arch(self) -> dict:
        if self.arch is None:
            raise RuntimeError("no architecture set: call set_arch(spec) before running a supernet")
        return self.arch

    def base_macs(self) -> int:
        """MACs of the stem and the head (the parts every child shares)."""
        if "base" not in self._macs:
            stem = count_module_macs(self.stem, torch.zeros(1, self.in_ch, self.h, self.w))
            self._macs["base"] = stem + count_module_macs(self.head, torch.zeros(1, self.options.channels))
        return self._macs["base"]

    def _op_macs(self, key: tuple, module: nn.Module, hw: tuple[int, int]) -> int:
        if key not in self._macs:
            self._macs[key] = count_module_macs(module, torch.zeros(1, self.options.channels, *hw))
        return self._macs[key]


class _MacroLayer(nn.Module):
    def __init__(self, ops: Sequence[str], o: OpOptions, hw: tuple[int, int]):
        super().__init__()
        self.ops = nn.ModuleDict({op: build_op(op, o) for op in ops})
        self.bn = nn.BatchNorm2d(o.channels, track_running_stats=o.track_stats)
        self.hw = hw

    def forward(self, x: torch.Tensor, op: str, skips: Sequence[torch.Tensor]) -> torch.Tensor:
        out = self.ops[op](x)
        for s in skips:
            out = out + s
        return self.bn(out)


class MacroNet(_SpaceNet):
    """ENAS macro network: stem, L layers (one op + skip sum + BN), global pool, linear head.

    Args:
        input_shape: ``(C, H, W)``.
        num_classes: classes of the head.
        layer_ops: candidate op names of each layer (all ops for a supernet, one for a child).
        options: width, BatchNorm statistics and poison-op settings.
        arch: a fixed architecture (``[{"op", "skips"}, ...]``), for standalone children.
    """

    def __init__(self, input_shape, num_classes: int, layer_ops: Sequence[Sequence[str]], options: OpOptions,
                 arch: list[dict] | None = None):
        super().__init__(input_shape, num_classes, options, "enas_macro")
        self.reduce_after = tuple(reduction_points(len(layer_ops), min(self.h, self.w)))
        layers, hw = [], (self.h, self.w)
        for i, ops in enumerate(layer_ops):
            layers.append(_MacroLayer(ops, options, hw))
            if i in self.reduce_after:
                hw = (hw[0] // 2, hw[1] // 2)
        self.layers = nn.ModuleList(layers)
        if arch is not None:
            self.set_arch({"layers": arch})

    def set_arch(self, spec: dict) -> None:
        """Run ``spec`` (``{"layers": [{"op": ..., "skips": [...]}, ...]}``) from now on."""
        layers = spec["layers"]
        if len(layers) != len(self.layers):
            raise ValueError(f"spec has {len(layers)} layers; this network has {len(self.layers)}")
        for i, (layer, module) in enumerate(zip(layers, self.layers)):
            if layer["op"] not in module.ops:
                raise ValueError(f"layer {i} has no op {layer['op']!r} (ops: {list(module.ops)})")
        self.arch = {"layers": [{"op": s["op"], "skips": list(s.get("skips", []))} for s in layers]}

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        arch = self._require_arch()
        x = self.stem(x)
        outs: list[torch.Tensor] = []
        for i, (module, layer) in enumerate(zip(self.layers, arch["layers"])):
            outs.append(module(outs[-1] if outs else x, layer["op"], [outs[j] for j in layer["skips"]]))
            if i in self.reduce_after:
                outs = [F.avg_pool2d(o, 2) for o in outs]
        return self._features(outs[-1])

    def child_macs(self, spec: dict) -> int:
        """MACs per example of the child ``spec`` (stem + its ops + head)."""
        total = self.base_macs()
        for i, layer in enumerate(spec["layers"]):
            module = self.layers[i]
            total += self._op_macs((i, layer["op"]), module.ops[layer["op"]], module.hw)
        return total


class _MicroCell(nn.Module):
    def __init__(self, reduce: bool, node_ops: Sequence[Sequence[Sequence[str]]], o: OpOptions, hw):
        super().__init__()
        self.reduce = reduce
        self.hw = hw  # working size (after the reduction pool)
        self.nodes = nn.ModuleList(
            nn.ModuleList(nn.ModuleDict({op: build_op(op, o) for op in slot}) for slot in slots) for slots in node_ops)
        self.out = nn.Sequential(nn.ReLU(), nn.Conv2d(o.channels, o.channels, 1, bias=False),
                                 nn.BatchNorm2d(o.channels, track_running_stats=o.track_stats))

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, nodes: Sequence[dict]) -> torch.Tensor:
        if s0.shape[-2:] != s1.shape[-2:]:  # the cell before was a reduction
            s0 = F.adaptive_avg_pool2d(s0, s1.shape[-2:])
        if self.reduce:
            s0, s1 = F.avg_pool2d(s0, 2), F.avg_pool2d(s1, 2)
        states = [s0, s1]
        for module, node in zip(self.nodes, nodes):
            (ia, ib), (oa, ob) = node["inputs"], node["ops"]
            states.append(module[0][oa](states[ia]) + module[1][ob](states[ib]))
        used = {i for node in nodes for i in node["inputs"]}
        loose = [states[i] for i in range(2, len(states)) if i not in used]
        return self.out(torch.stack(loose).mean(0))


class MicroNet(_SpaceNet):
    """ENAS micro network: stem, normal cells with a reduction cell after cell floor(L/3)-1 and floor(2L/3)-1.

    Args:
        input_shape: ``(C, H, W)``.
        num_classes: classes of the head.
        cells: number of normal cells (L).
        nodes: nodes per cell (B).
        cell_ops: ``{"normal": [[ops of slot a, ops of slot b] per node], "reduce": [...]}``.
        options: width, BatchNorm statistics and poison-op settings.
        arch: a fixed architecture ``{"normal": [...], "reduce": [...]}``, for standalone children.
    """

    def __init__(self, input_shape, num_classes: int, cells: int, nodes: int, cell_ops: dict, options: OpOptions,
                 arch: dict | None = None):
        super().__init__(input_shape, num_classes, options, "enas_micro")
        self.num_nodes = nodes
        kinds, hw = [], (self.h, self.w)
        for i in range(cells):
            kinds.append(("normal", hw))
            if i in reduction_points(cells, min(self.h, self.w)):
                hw = (hw[0] // 2, hw[1] // 2)
                kinds.append(("reduce", hw))
        self.kinds = tuple(k for k, _ in kinds)
        self.cells = nn.ModuleList(_MicroCell(k == "reduce", cell_ops[k], options, size) for k, size in kinds)
        if arch is not None:
            self.set_arch(arch)

    def set_arch(self, spec: dict) -> None:
        """Run ``spec`` (``{"normal": [nodes], "reduce": [nodes]}``) from now on."""
        for kind in ("normal", "reduce"):
            if len(spec[kind]) != self.num_nodes:
                raise ValueError(f"spec.{kind} has {len(spec[kind])} nodes; this network has {self.num_nodes}")
        for kind, cell in zip(self.kinds, self.cells):
            for b, (node, module) in enumerate(zip(spec[kind], cell.nodes)):
                for slot, op in enumerate(node["ops"]):
                    if op not in module[slot]:
                        raise ValueError(f"{kind} node {b} slot {slot} has no op {op!r}")
        self.arch = {k: [{"inputs": list(n["inputs"]), "ops": list(n["ops"])} for n in spec[k]]
                     for k in ("normal", "reduce")}

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        arch = self._require_arch()
        s0 = s1 = self.stem(x)
        for kind, cell in zip(self.kinds, self.cells):
            s0, s1 = s1, cell(s0, s1, arch[kind])
        return self._features(s1)

    def child_macs(self, spec: dict) -> int:
        """MACs per example of the child ``spec`` (stem + the ops of every cell + head)."""
        total = self.base_macs()
        for c, (kind, cell) in enumerate(zip(self.kinds, self.cells)):
            total += self._op_macs((c, "out"), cell.out, cell.hw)
            for b, (node, module) in enumerate(zip(spec[kind], cell.nodes)):
                for slot, op in enumerate(node["ops"]):
                    total += self._op_macs((c, b, slot, op), module[slot][op], cell.hw)
        return total


# -- the registered standalone children --------------------------------------------------------------

class MacroLayerSpec(Config):
    """One macro layer: its op and the earlier layers it adds as skip connections."""

    op: str = Field(description="op name")
    skips: list[int] = Field(default_factory=list, description="indices of earlier layers added to the output")


class MicroNodeSpec(Config):
    """One micro node: two inputs (0, 1 = cell inputs; 2.. = earlier nodes) and an op for each."""

    inputs: tuple[int, int] = Field(description="the two inputs")
    ops: tuple[str, str] = Field(description="the op applied to each input")


class _ChildConfig(Config):
    channels: int = Field(16, ge=1, le=4096, description="channels of every layer")
    noise_sigma: float = Field(2.0, gt=0, description="sigma of a P2 noise op")
    dropout_p: float = Field(0.9, ge=0, le=1, description="p of a P3 dropout op")
    noise_detach: bool = Field(False, description="P2 noise scale computed on a detached input (paper's code)")
    bare_tconv: bool = Field(False, description="P4 transposed convs without ReLU/BN (paper's code)")

    def op_options(self) -> OpOptions:
        return OpOptions(self.channels, True, self.noise_sigma, self.dropout_p, self.noise_detach, self.bare_tconv)


class MacroChildConfig(_ChildConfig):
    """A standalone child of the macro space (its architecture spec)."""

    layers: list[MacroLayerSpec] = Field(min_length=1, description="one entry per layer")

    @model_validator(mode="after")
    def _check(self):
        for i, layer in enumerate(self.layers):
            check_op_name(layer.op, KNOWN_OPS, f"layers[{i}].op")
            if any(not 0 <= j < i for j in layer.skips) or len(set(layer.skips)) != len(layer.skips):
                raise ValueError(f"layers[{i}].skips: layer {i} can connect once to each of layers 0..{i - 1} "
                                 f"(got {layer.skips})")
        return self


class MicroChildConfig(_ChildConfig):
    """A standalone child of the micro space (its normal and reduction cells)."""

    cells: int = Field(6, ge=1, le=30, description="normal cells (reduction cells are inserted)")
    normal: list[MicroNodeSpec] = Field(min_length=1, description="nodes of the normal cell")
    reduce: list[MicroNodeSpec] = Field(min_length=1, description="nodes of the reduction cell")

    @model_validator(mode="after")
    def _check(self):
        if len(self.normal) != len(self.reduce):
            raise ValueError(f"normal and reduce cells need the same number of nodes "
                             f"(got {len(self.normal)} and {len(self.reduce)})")
        for kind in ("normal", "reduce"):
            for b, node in enumerate(getattr(self, kind)):
                for slot in (0, 1):
                    check_op_name(node.ops[slot], KNOWN_OPS, f"{kind}[{b}].ops[{slot}]")
                    if not 0 <= node.inputs[slot] < b + 2:
                        raise ValueError(f"{kind}[{b}].inputs[{slot}]: node {b} reads inputs 0..{b + 1} "
                                         f"(got {node.inputs[slot]})")
        return self


@MODELS.register("enas_macro", config=MacroChildConfig, depgraph=True,
                 tiny={"channels": 4, "layers": [{"op": "conv3x3"}, {"op": "maxpool", "skips": [0]}]})
def enas_macro(cfg: MacroChildConfig, input_shape: tuple, num_classes: int) -> MacroNet:
    """ENAS macro-space child: layers of one op each with skip connections (its spec is the config)."""
    arch = [layer.model_dump() for layer in cfg.layers]
    return MacroNet(input_shape, num_classes, [[layer.op] for layer in cfg.layers], cfg.op_options(), arch)


@MODELS.register("enas_micro", config=MicroChildConfig, depgraph=True,
                 tiny={"channels": 4, "cells": 1, "normal": [{"inputs": [0, 1], "ops": ["identity", "sep3x3"]}],
                       "reduce": [{"inputs": [0, 1], "ops": ["maxpool", "avgpool"]}]})
def enas_micro(cfg: MicroChildConfig, input_shape: tuple, num_classes: int) -> MicroNet:
    """ENAS micro-space child: normal and reduction cells of two-input nodes (its spec is the config)."""
    arch = {k: [{"inputs": list(n.inputs), "ops": list(n.ops)} for n in getattr(cfg, k)] for k in ("normal", "reduce")}
    cell_ops = {k: [[[op] for op in n["ops"]] for n in arch[k]] for k in arch}
    return MicroNet(input_shape, num_classes, cfg.cells, len(cfg.normal), cell_ops, cfg.op_options(), arch)
