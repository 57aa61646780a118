"""A plain VGG-style CNN: ``depth`` conv-BN-ReLU blocks, width doubling after each pool.

Image inputs ``(C, H, W)`` use 2-D convolutions; sequence inputs ``(C, L)`` (and tabular ``(F,)``, read as
one channel of length F) use the same blocks with 1-D convolutions, pooling and BatchNorm — chosen from
the task's input shape, with the same layer names, so everything keyed on names works for both.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator
from torch import nn

from .._base import Config
from ..registry import MODELS
from .base import MAX_LAYERS, MAX_UNITS, ChildnetModel, UnitGroup, layer_params, norm_params

__all__ = ["CNN", "CNNConfig"]


class CNNConfig(Config):
    width: int = Field(32, ge=1, le=MAX_UNITS, description="channels of the first block")
    depth: int = Field(3, ge=1, le=12, description="number of conv blocks")
    channels: list[Annotated[int, Field(ge=1, le=MAX_UNITS)]] | None = Field(
        None, min_length=1, max_length=MAX_LAYERS, description="explicit channels per block (overrides width/depth)")
    kernel: int = Field(3, ge=1, le=31, description="kernel size (odd); k×k for images, k for sequences")
    pool_every: int = Field(1, ge=1, le=MAX_LAYERS,
                            description="max-pool by 2 after every this many blocks (while the map is ≥ 4)")
    batchnorm: bool = Field(True, description="BatchNorm after each conv")

    @model_validator(mode="after")
    def _check(self):
        if self.kernel % 2 == 0:
            raise ValueError(f"kernel must be odd (got {self.kernel})")
        if self.channels is not None and (not self.channels or min(self.channels) < 1):
            raise ValueError(f"channels must be a non-empty list of positive ints (got {self.channels})")
        return self

    def block_channels(self) -> list[int]:
        if self.channels is not None:
            return list(self.channels)
        return [self.width * 2 ** (i // 2) for i in range(self.depth)]


class CNN(ChildnetModel):
    """Blocks named ``blocks.i`` (Conv→BN→ReLU[→MaxPool]); global average pool; linear head.

    ``hw`` is the smallest side of the input map (its length for sequences); ``dims`` is 2 for images
    and 1 for sequences.
    """

    def __init__(self, in_ch: int, hw: int, channels: list[int], num_classes: int, kernel=3, pool_every=1, bn=True,
                 dims: int = 2):
        super().__init__()
        conv, norm, maxpool, avgpool = _LAYERS[dims]
        blocks, c, size = [], in_ch, hw
        for i, out in enumerate(channels):
            layers = [conv(c, out, kernel, padding=kernel // 2, bias=not bn)]
            layers += [norm(out)] if bn else []
            layers += [nn.ReLU(inplace=True)]
            if (i + 1) % pool_every == 0 and size >= 4:
                layers.append(maxpool(2))
                size //= 2
            blocks.append(nn.Sequential(*layers))
            c = out
        self.blocks = nn.Sequential(*blocks)
        self.pool = avgpool(1)
        self.dims = dims
        self.head = nn.Linear(c, num_classes)

    def forward_features(self, x):
        if x.dim() == self.dims + 1:  # features (N, F) read as one channel of length F
            x = x.unsqueeze(1)
        return self.pool(self.blocks(x)).flatten(1)

    def unit_groups(self) -> list[UnitGroup]:
        """The output channels of every conv block (filter, bias, BatchNorm scale/shift and running
        statistics); the next conv's (or the head's) input channels go with them."""
        groups = []
        for i, block in enumerate(self.blocks):
            conv = block[0]
            bn = block[1] if len(block) > 1 and isinstance(block[1], nn.modules.batchnorm._BatchNorm) else None
            bn_p, bn_b = norm_params(f"blocks.{i}.1", bn)
            consumer = f"blocks.{i + 1}.0.weight" if i + 1 < len(self.blocks) else "head.weight"
            groups.append(UnitGroup(f"blocks.{i}", f"blocks.{i}.0.weight",
                                    layer_params(f"blocks.{i}.0", conv) + bn_p, bn_b, (consumer,), conv.out_channels))
        return groups

    def shrunk_spec(self, spec: dict, widths: list[int]) -> dict:
        spec = {k: v for k, v in spec.items() if k not in ("width", "depth")}
        return {**spec, "channels": list(widths)}


#: The layers of each dimensionality: conv, norm, max-pool, adaptive average pool.
_LAYERS = {2: (nn.Conv2d, nn.BatchNorm2d, nn.MaxPool2d, nn.AdaptiveAvgPool2d),
           1: (nn.Conv1d, nn.BatchNorm1d, nn.MaxPool1d, nn.AdaptiveAvgPool1d)}


def conv_layout(input_shape: tuple, model: str) -> tuple[int, int, int]:
    """``(channels, smallest side, dims)`` of an image ``(C, H, W)``, a sequence ``(C, L)`` or a table ``(F,)``
    (one channel of length F); anything else is refused with the shapes accepted."""
    from ..errors import ConfigError

    shape = tuple(int(s) for s in input_shape)
    if len(shape) == 3 and min(shape) >= 1:
        return shape[0], min(shape[1:]), 2
    if len(shape) == 2 and min(shape) >= 1:
        return shape[0], shape[1], 1
    if len(shape) == 1 and shape[0] >= 1:
        return 1, shape[0], 1
    raise ConfigError(f"model {model}: needs images (C, H, W), sequences (C, L) or features (F,); this task's "
                      f"inputs have shape {shape or '() (text)'}")


@MODELS.register("cnn", config=CNNConfig, units="channels", tiny={"width": 4, "depth": 2})
def cnn(cfg: CNNConfig, input_shape: tuple, num_classes: int) -> CNN:
    """CNN: conv-BN-ReLU-pool blocks (width doubling every 2 blocks), global pool, linear head; 1-D for sequences."""
    c, size, dims = conv_layout(input_shape, "cnn")
    return CNN(c, size, cfg.block_channels(), num_classes, cfg.kernel, cfg.pool_every, cfg.batchnorm, dims)
