"""CIFAR-style ResNets (He et al. 2016, §4.2): depth 6n+2, three stages of n basic blocks.

Stage widths are 16/32/64 × ``width_mult``; stages 2 and 3 halve the map. Works on any image size
(1-channel 8×8 digits, 28×28 MNIST, 32×32 CIFAR); sequence inputs ``(C, L)`` (and features ``(F,)`` as one
channel of length F) get the same network with 1-D convolutions (our extension, not in the paper). Option-A (zero-padding) shortcuts as in the paper
for CIFAR; ``shortcut: conv`` uses 1×1 projections instead.
"""

from __future__ import annotations

from typing import Annotated, Literal

import torch
import torch.nn.functional as F
from pydantic import Field, field_validator
from torch import nn

from .._base import Config
from ..errors import ConfigError
from ..registry import MODELS
from .base import MAX_UNITS, ChildnetModel, UnitGroup, norm_params

__all__ = ["ResNet", "ResNetConfig", "BasicBlock"]


class ResNetConfig(Config):
    depth: int = Field(20, le=1202, description="6n+2: 8, 14, 20, 32, 44, 56, 110, … 1202")
    width_mult: float = Field(1.0, gt=0.0, le=64.0, description="multiplies the 16/32/64 stage widths")
    widths: list[Annotated[int, Field(ge=1, le=MAX_UNITS)]] | None = Field(None, description="explicit stage widths (overrides width_mult)")
    shortcut: Literal["pad", "conv"] = Field("pad", description="'pad' (option A, the paper) or 'conv' (1×1)")
    inner_widths: list[Annotated[int, Field(ge=1, le=MAX_UNITS)]] | None = Field(
        None, description="channels between conv1 and conv2 of each block, in order (3n values; default: the "
        "stage width) — what structured pruning shrinks")

    @field_validator("depth")
    @classmethod
    def _depth(cls, v):
        if v < 8 or (v - 2) % 6:
            raise ValueError(f"must be 6n+2 with n ≥ 1, e.g. 8, 14, 20, 32, 56, 110 (got {v})")
        return v


_LAYERS = {2: (nn.Conv2d, nn.BatchNorm2d, nn.AdaptiveAvgPool2d), 1: (nn.Conv1d, nn.BatchNorm1d, nn.AdaptiveAvgPool1d)}


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, shortcut: str, mid: int | None = None, dims: int = 2):
        super().__init__()
        conv, norm, _ = _LAYERS[dims]
        mid = mid or cout
        self.conv1 = conv(cin, mid, 3, stride, 1, bias=False)
        self.bn1 = norm(mid)
        self.conv2 = conv(mid, cout, 3, 1, 1, bias=False)
        self.bn2 = norm(cout)
        self.stride, self.cin, self.cout, self.dims = stride, cin, cout, dims
        self.proj = None
        if (stride != 1 or cin != cout) and shortcut == "conv":
            self.proj = nn.Sequential(conv(cin, cout, 1, stride, bias=False), norm(cout))

    def shortcut(self, x):
        if self.proj is not None:
            return self.proj(x)
        if self.stride != 1:
            x = x[:, :, :: self.stride, :: self.stride] if self.dims == 2 else x[:, :, :: self.stride]
        if self.cout > self.cin:
            x = F.pad(x, (0, 0) * self.dims + (0, self.cout - self.cin))
        elif self.cout < self.cin:
            x = x[:, : self.cout]
        return x

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet(ChildnetModel):
    """``stem`` → ``stages.0/1/2`` → global pool → ``head``."""

    def __init__(self, in_ch: int, depth: int, widths: list[int], num_classes: int, shortcut: str = "pad",
                 inner_widths: list[int] | None = None, dims: int = 2):
        super().__init__()
        conv, norm, avgpool = _LAYERS[dims]
        n = (depth - 2) // 6
        inner = list(inner_widths) if inner_widths else [w for w in widths for _ in range(n)]
        self.stem = nn.Sequential(conv(in_ch, widths[0], 3, 1, 1, bias=False), norm(widths[0]), nn.ReLU())
        stages, c = [], widths[0]
        for s, w in enumerate(widths):
            blocks = [BasicBlock(c if i == 0 else w, w, 2 if (i == 0 and s > 0) else 1, shortcut, inner[s * n + i],
                                 dims) for i in range(n)]
            stages.append(nn.Sequential(*blocks))
            c = w
        self.stages = nn.Sequential(*stages)
        self.pool = avgpool(1)
        self.dims = dims
        self.head = nn.Linear(c, num_classes)
        for m in self.modules():
            if isinstance(m, (nn.Conv1d, nn.Conv2d)):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == self.dims + 1:  # features (N, F) read as one channel of length F
            x = x.unsqueeze(1)
        return self.pool(self.stages(self.stem(x))).flatten(1)

    def unit_groups(self) -> list[UnitGroup]:
        """Only the channels inside each basic block (conv1's filters and bn1; conv2's input channels).

        The residual stream's channels are shared by every block of a stage through ``out + shortcut(x)``,
        so removing one would need it gone from the stem, all blocks and the zero-padding shortcuts; the
        stream stays at full width (Li et al. 2017, "Pruning Filters for Efficient ConvNets", §4.2).
        """
        groups = []
        for s, stage in enumerate(self.stages):
            for b, block in enumerate(stage):
                p = f"stages.{s}.{b}"
                bn_p, bn_b = norm_params(f"{p}.bn1", block.bn1)
                groups.append(UnitGroup(p, f"{p}.conv1.weight", (f"{p}.conv1.weight",) + bn_p, bn_b,
                                        (f"{p}.conv2.weight",), block.conv1.out_channels))
        return groups

    def shrunk_spec(self, spec: dict, widths: list[int]) -> dict:
        return {**spec, "inner_widths": list(widths)}


@MODELS.register("resnet", config=ResNetConfig, units="channels", tiny={"depth": 8, "width_mult": 0.25})
def resnet(cfg: ResNetConfig, input_shape: tuple, num_classes: int) -> ResNet:
    """CIFAR-style ResNet-(6n+2) with 16/32/64·width_mult stage widths (He et al. 2016); 1-D for sequences."""
    from .cnn import conv_layout

    in_ch, _, dims = conv_layout(input_shape, "resnet")
    widths = cfg.widths or [max(1, round(w * cfg.width_mult)) for w in (16, 32, 64)]
    if len(widths) != 3:
        raise ConfigError(f"model.widths: a CIFAR ResNet has 3 stages (got {widths})")
    n_blocks = 3 * ((cfg.depth - 2) // 6)
    if cfg.inner_widths is not None and (len(cfg.inner_widths) != n_blocks or min(cfg.inner_widths) < 1):
        raise ConfigError(f"model.inner_widths: a ResNet-{cfg.depth} needs {n_blocks} positive widths, one per "
                          f"block (got {cfg.inner_widths})")
    return ResNet(in_ch, cfg.depth, widths, num_classes, cfg.shortcut, cfg.inner_widths, dims)
