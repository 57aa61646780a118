"""Search spaces sized for an intermittently powered microcontroller (iNAS, Mendis, Kang, Hsiu, ACM TECS 2021).

- ``conv`` (iNAS's CIFAR space, ``settings_files/eval_configs/config_inas_cifar_*.json`` and
  ``NASBase/model.py`` ``model_fn_conv2D``): ``layers`` (5) conv layers, each choosing a kernel size
  in {1, 3, 5, 7} and a number of filters in {4, 8, 16, 24}; stride 1, ReLU; global average pooling;
  one linear layer. Adapted to the task's input size: with ``padding: valid`` (iNAS) a child whose
  map would shrink below its next kernel is illegal (iNAS: ``MCODE_ILLEGAL_ACTIONS``, reward -0.1);
  ``padding: same`` keeps the map size (for small inputs such as 8 x 8 digits). 1-D inputs
  ``(C, L)`` get 1-D convs (iNAS's ``model_fn_conv1D``).
- ``mlp`` (iNAS's KWS space): ``layers`` (4) linear layers of width {48, 64, 96, 128} on the flattened
  input, ReLU, then the linear head (the registered ``mlp`` model).

Choices: iNAS's convs have no bias and no BatchNorm; ours keep ``batchnorm: true`` by default
(BatchNorm folds into the conv at inference, so the device cost is the same, and a few epochs of
training reach far higher accuracy with it). The controller sees one decision per kernel / filter /
width choice (kinds ``kernel``, ``filters``, ``width``).
"""

from __future__ import annotations

from typing import Literal, Sequence

from pydantic import Field, field_validator
from torch import nn

from ...config import Config
from ...errors import ConfigError
from ...models.base import ChildnetModel
from ...registry import MODELS
from .spaces import Decision

__all__ = ["DeviceSpaceConfig", "InasConvSpace", "InasMlpSpace", "InasConvNet", "InasConvConfig", "make_device_space"]


class DeviceSpaceConfig(Config):
    """The device-sized search space, as flat fields of a method config."""

    space: Literal["conv", "mlp"] = Field("conv", description="conv (iNAS CIFAR space) | mlp (iNAS KWS space)")
    layers: int | None = Field(None, ge=1, le=12, description="searched layers (default: 5 conv / 4 mlp, as iNAS)")
    kernels: list[int] = Field([1, 3, 5, 7], min_length=1, description="conv kernel sizes (iNAS: 1, 3, 5, 7)")
    filters: list[int] = Field([4, 8, 16, 24], min_length=1, description="conv filters (iNAS: 4, 8, 16, 24)")
    widths: list[int] = Field([48, 64, 96, 128], min_length=1, description="mlp widths (iNAS KWS: 48, 64, 96, 128)")
    padding: Literal["valid", "same"] = Field("valid", description="conv padding: valid (iNAS; too-deep children "
                                              "are illegal) | same (small inputs)")
    batchnorm: bool = Field(True, description="BatchNorm after each conv (folded at inference; iNAS: none)")

    @field_validator("kernels", "filters", "widths")
    @classmethod
    def _positive(cls, v):
        if min(v) < 1 or len(set(v)) != len(v):
            raise ValueError(f"must be distinct positive integers (got {v})")
        return v


class InasConvConfig(Config):
    """The ``inas_conv`` model: its config is the architecture."""

    layers: list[dict] = Field(description="[{kernel, filters}, ...]")
    padding: Literal["valid", "same"] = Field("valid", description="valid | same")
    batchnorm: bool = Field(True, description="BatchNorm after each conv")


class InasConvNet(ChildnetModel):
    """Conv (stride 1) [-> BN] -> ReLU per layer, global average pooling, linear head (iNAS ``model_fn_conv2D``)."""

    def __init__(self, input_shape: Sequence[int], num_classes: int, layers: Sequence[dict], padding: str, bn: bool):
        super().__init__()
        conv, norm = (nn.Conv2d, nn.BatchNorm2d) if len(input_shape) == 3 else (nn.Conv1d, nn.BatchNorm1d)
        blocks, c = [], int(input_shape[0])
        for layer in layers:
            k, f = int(layer["kernel"]), int(layer["filters"])
            blocks += [conv(c, f, k, padding=k // 2 if padding == "same" else 0, bias=not bn)]
            blocks += [norm(f)] if bn else []
            blocks += [nn.ReLU()]
            c = f
        self.body = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1) if len(input_shape) == 3 else nn.AdaptiveAvgPool1d(1)
        self.head = nn.Linear(c, num_classes, bias=False)  # iNAS: FC_END without bias

    def forward_features(self, x):
        return self.pool(self.body(x)).flatten(1)


def _map_sizes(input_shape: Sequence[int], kernels: Sequence[int], padding: str) -> list[int]:
    size = min(int(s) for s in input_shape[1:])
    out = []
    for k in kernels:
        size = size if padding == "same" else size - k + 1
        out.append(size)
    return out


@MODELS.register("inas_conv", config=InasConvConfig,
                 tiny={"layers": [{"kernel": 3, "filters": 4}, {"kernel": 1, "filters": 4}], "padding": "same"})
def inas_conv(cfg: InasConvConfig, input_shape: tuple, num_classes: int) -> InasConvNet:
    """iNAS conv child: stride-1 convs (kernel, filters per layer), ReLU, global average pool, linear."""
    if len(input_shape) not in (2, 3):
        raise ConfigError(f"model inas_conv: needs image (C, H, W) or sequence (C, L) inputs; this task's inputs "
                          f"have shape {tuple(input_shape)}")
    sizes = _map_sizes(input_shape, [lay["kernel"] for lay in cfg.layers], cfg.padding)
    if sizes and min(sizes) < 1:
        raise ConfigError(f"model inas_conv: kernels {[lay['kernel'] for lay in cfg.layers]} with valid padding shrink "
                          f"a {tuple(input_shape[1:])} input below 1 pixel; use padding: same or smaller kernels")
    return InasConvNet(input_shape, num_classes, cfg.layers, cfg.padding, cfg.batchnorm)


class InasConvSpace:
    """iNAS's conv space: per layer a kernel and a number of filters."""

    name = "conv"

    def __init__(self, cfg: DeviceSpaceConfig):
        self.config = cfg
        self.num_layers = cfg.layers or 5
        self.decisions = tuple(d for i in range(self.num_layers) for d in (
            Decision(f"layer{i}.kernel", "kernel", len(cfg.kernels)), Decision(f"layer{i}.filters", "filters", len(cfg.filters))))

    def decode(self, choices: Sequence[int]) -> dict:
        c = [int(x) for x in choices]
        layers = [{"kernel": self.config.kernels[c[2 * i]], "filters": self.config.filters[c[2 * i + 1]]}
                  for i in range(self.num_layers)]
        return {"space": "conv", "layers": layers}

    def legal(self, spec: dict, input_shape: Sequence[int]) -> bool:
        """False when valid padding shrinks the map below a layer's kernel (iNAS: an illegal action)."""
        if len(input_shape) not in (2, 3):
            return False
        if self.config.padding == "same":
            return True
        size = min(int(s) for s in input_shape[1:])
        for layer in spec["layers"]:
            if size <= layer["kernel"]:  # iNAS check_conv: the input map must exceed the kernel
                return False
            size -= layer["kernel"] - 1
        return size >= 1

    def model_spec(self, spec: dict) -> dict:
        return {"name": "inas_conv", "layers": [dict(lay) for lay in spec["layers"]],
                "padding": self.config.padding, "batchnorm": self.config.batchnorm}


class InasMlpSpace:
    """iNAS's KWS space: per layer a width; the child is the registered ``mlp`` model."""

    name = "mlp"

    def __init__(self, cfg: DeviceSpaceConfig):
        self.config = cfg
        self.num_layers = cfg.layers or 4
        self.decisions = tuple(Decision(f"layer{i}.width", "width", len(cfg.widths)) for i in range(self.num_layers))

    def decode(self, choices: Sequence[int]) -> dict:
        return {"space": "mlp", "hidden": [self.config.widths[int(c)] for c in choices]}

    def legal(self, spec: dict, input_shape: Sequence[int]) -> bool:
        return len(input_shape) >= 1

    def model_spec(self, spec: dict) -> dict:
        return {"name": "mlp", "hidden": list(spec["hidden"])}


def make_device_space(cfg: DeviceSpaceConfig):
    """The device-sized space a config names."""
    return InasConvSpace(cfg) if cfg.space == "conv" else InasMlpSpace(cfg)
