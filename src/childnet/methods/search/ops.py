"""The candidate operations of the search spaces, and the poison operations of Wu et al. (2021).

Every op maps ``(N, C, H, W) -> (N, C, H, W)``: same channels, same spatial size, so any op can sit at
any position of a macro layer or a micro cell node.

Base ops (Pham et al., 2018, arXiv 1802.03268, sections 2.3-2.4):
    conv3x3, conv5x5, sep3x3, sep5x5, avgpool, maxpool (macro space) and identity (micro space).
Convolutions are ReLU -> Conv -> BN, the ordering of the ENAS micro cells; separable convolutions are
depthwise k x k then pointwise 1 x 1. Pools are 3 x 3, stride 1.

Poison ops (Wu, Saxena, Jain, 2021, arXiv 2106.14406, "Poisoning the Search Space in Neural
Architecture Search"), grouped in the paper's poison sets:
    P1 identity; P2 ``noise``: relative Gaussian noise x + sigma * |x| * N(0, 1), in training only;
    P3 ``dropout``: dropout with a large p (0.9 or 1.0), in training only; P4 ``tconv3x3`` and
    ``tconv5x5``: transposed convolutions; P5 ``stretched3x3``: a 3 x 3 convolution with padding 50 and
    dilation 50; P6: all of them.

Two forms (``OpOptions``): ours wraps transposed convolutions as ReLU -> ConvTranspose -> BN and lets
the noise scale |x| carry gradient; the paper's public code (the ``poison_preset: paper`` of the
spaces) uses bare ``ConvTranspose2d`` (no ReLU, no BN, no bias) and a noise scale sigma * x computed on
a detached x (``bare_tconv``, ``noise_detach``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

__all__ = [
    "MACRO_OPS",
    "MICRO_OPS",
    "POISON_SETS",
    "POISON_OPS",
    "KNOWN_OPS",
    "OpOptions",
    "RelativeNoise",
    "build_op",
    "check_op_name",
]

#: The ENAS macro space: six ops per layer (section 2.4).
MACRO_OPS: tuple[str, ...] = ("conv3x3", "conv5x5", "sep3x3", "sep5x5", "avgpool", "maxpool")
#: The ENAS micro space: five ops per node input (section 2.3).
MICRO_OPS: tuple[str, ...] = ("identity", "sep3x3", "sep5x5", "avgpool", "maxpool")
#: Poison sets of Wu et al. (2021); P6 is the union of P1-P5.
POISON_SETS: dict[str, tuple[str, ...]] = {
    "P1": ("identity",),
    "P2": ("noise",),
    "P3": ("dropout",),
    "P4": ("tconv3x3", "tconv5x5"),
    "P5": ("stretched3x3",),
}
POISON_SETS["P6"] = tuple(op for name in ("P1", "P2", "P3", "P4", "P5") for op in POISON_SETS[name])
POISON_OPS: tuple[str, ...] = POISON_SETS["P6"]


@dataclass(frozen=True)
class OpOptions:
    """Settings shared by every op of one network.

    Attributes:
        channels: channels of every op's input and output.
        track_stats: BatchNorm keeps running statistics (standalone children). The supernet sets it
            False: a different child runs every step, so running statistics would mix children; ENAS
            likewise normalises with batch statistics when it scores children for the controller.
        noise_sigma: sigma of the P2 relative-noise op (the paper uses 2 or 10).
        dropout_p: p of the P3 dropout op (the paper uses 0.9 or 1.0).
        noise_detach: the P2 noise scale is computed on a detached input (the paper's code).
        bare_tconv: P4 transposed convolutions without ReLU / BatchNorm (the paper's code).
    """

    channels: int
    track_stats: bool = True
    noise_sigma: float = 2.0
    dropout_p: float = 0.9
    noise_detach: bool = False
    bare_tconv: bool = False


class RelativeNoise(nn.Module):
    """P2: ``x + sigma * |x| * N(0, 1)`` while training; the identity in eval mode.

    ``detach``: the scale ``sigma * |x|`` is a constant for the gradient (the paper's code).
    """

    def __init__(self, sigma: float, detach: bool = False):
        super().__init__()
        self.sigma, self.detach = float(sigma), bool(detach)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return x
        scale = x.detach().abs() if self.detach else x.abs()
        return x + self.sigma * scale * torch.randn_like(x)

    def extra_repr(self) -> str:
        return f"sigma={self.sigma}, detach={self.detach}"


def _relu_conv_bn(conv: nn.Module, o: OpOptions) -> nn.Sequential:
    return nn.Sequential(nn.ReLU(), conv, nn.BatchNorm2d(o.channels, track_running_stats=o.track_stats))


def _conv(k: int) -> Callable[[OpOptions], nn.Module]:
    return lambda o: _relu_conv_bn(nn.Conv2d(o.channels, o.channels, k, padding=k // 2, bias=False), o)


def _sep(k: int) -> Callable[[OpOptions], nn.Module]:
    def build(o: OpOptions) -> nn.Module:
        c = o.channels
        conv = nn.Sequential(nn.Conv2d(c, c, k, padding=k // 2, groups=c, bias=False),
                             nn.Conv2d(c, c, 1, bias=False))
        return _relu_conv_bn(conv, o)

    return build


def _tconv(k: int) -> Callable[[OpOptions], nn.Module]:
    def build(o: OpOptions) -> nn.Module:
        conv = nn.ConvTranspose2d(o.channels, o.channels, k, padding=k // 2, bias=False)
        return conv if o.bare_tconv else _relu_conv_bn(conv, o)

    return build


def _stretched(o: OpOptions) -> nn.Module:
    # kernel 3, padding 50, dilation 50: output size H + 100 - 100 = H, but the outer taps read padding.
    return _relu_conv_bn(nn.Conv2d(o.channels, o.channels, 3, padding=50, dilation=50, bias=False), o)


_BUILDERS: dict[str, Callable[[OpOptions], nn.Module]] = {
    "conv3x3": _conv(3),
    "conv5x5": _conv(5),
    "sep3x3": _sep(3),
    "sep5x5": _sep(5),
    "avgpool": lambda o: nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False),
    "maxpool": lambda o: nn.MaxPool2d(3, stride=1, padding=1),
    "identity": lambda o: nn.Identity(),
    "noise": lambda o: RelativeNoise(o.noise_sigma, o.noise_detach),
    "dropout": lambda o: nn.Dropout(o.dropout_p),
    "tconv3x3": _tconv(3),
    "tconv5x5": _tconv(5),
    "stretched3x3": _stretched,
}
#: Every op name a spec may use.
KNOWN_OPS: tuple[str, ...] = tuple(_BUILDERS)


def check_op_name(name: object, allowed: tuple[str, ...] = KNOWN_OPS, where: str = "") -> str:
    """Return ``name`` if it is in ``allowed``, else raise ValueError naming what is accepted."""
    if name not in allowed:
        raise ValueError(f"{where + ': ' if where else ''}unknown op {name!r}; valid ops: {', '.join(allowed)}")
    return str(name)


def build_op(name: str, options: OpOptions) -> nn.Module:
    """A fresh module for op ``name`` (raises ValueError for an unknown name)."""
    return _BUILDERS[check_op_name(name)](options)
