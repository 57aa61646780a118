"""The masked parent of :func:`childnet.depgraph.depgraph_shrink`: what removing a group's channels must equal.

For every module on the *output side* of a pruned group, the masked twin (a copy of the parent with the same
module names) gets the removed channels' contribution set to zero, so that a later layer reading them sees
exactly nothing — which is what removing them means. Where that zero lies depends on the module:

- Conv/Linear, BatchNorm, InstanceNorm: rows of ``weight`` and ``bias`` (dim 0);
- transposed convolutions: ``weight[:, idx]`` (their output channels are dim 1), ``bias[idx]``;
- ``nn.Embedding``: the output channels are the *columns*, ``weight[:, idx]`` (BERT's word, position and
  token-type embeddings sit in its hidden-stream group);
- parameters Torch-Pruning prunes without a module (``unwrapped parameters``, e.g. a ViT's class token):
  zeroed along the dimension Torch-Pruning prunes;
- PReLU: nothing to zero, its input is already zero on those channels;
- ``nn.LayerNorm`` over the last dimension: zeroing is not enough — a zero channel still counts in the mean
  and variance. The twin's LayerNorm is replaced by :class:`KeptLayerNorm`, which normalises over the kept
  channels only and outputs 0 on the removed ones. Removing the channels is then exactly equivalent (our
  definition; Torch-Pruning's own BERT pruning shrinks the hidden size without such a check).

:func:`refusal` names the out-side modules for which no masked twin makes removal exact (GroupNorm, a
LayerNorm over more than one dimension, MultiheadAttention, LSTM, any other module type with parameters):
their groups are kept at full width with that reason on the report.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["KeptLayerNorm", "mask_group", "refusal", "indices"]

_ROWS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear, nn.modules.batchnorm._BatchNorm,
         nn.modules.instancenorm._InstanceNorm)
_COLUMNS = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d, nn.Embedding)


class KeptLayerNorm(nn.Module):
    """A LayerNorm over the last dimension restricted to the ``kept`` channels; 0 on the others.

    ``F.layer_norm`` of ``x[..., kept]`` with the kept channels' weight and bias, scattered back into a
    tensor of the full width — the same arithmetic as the shrunk model's LayerNorm on its kept channels.
    """

    def __init__(self, norm: nn.LayerNorm, kept: torch.Tensor):
        super().__init__()
        self.eps = norm.eps
        self.width = int(norm.normalized_shape[-1])
        self.register_buffer("kept", kept.to(torch.long).clone())
        self.weight = None if norm.weight is None else nn.Parameter(norm.weight.detach().clone())
        self.bias = None if norm.bias is None else nn.Parameter(norm.bias.detach().clone())
        self._zero_removed()

    def _zero_removed(self) -> None:
        removed = torch.ones(self.width, dtype=torch.bool, device=self.kept.device)
        removed[self.kept] = False
        with torch.no_grad():
            for t in (self.weight, self.bias):
                if t is not None:
                    t[removed] = 0

    def restrict(self, idx: list[int]) -> None:
        """Remove further channels, ``idx`` counted among the channels kept so far (compose: intersect)."""
        drop = set(idx)
        self.kept = self.kept[[i for i in range(len(self.kept)) if i not in drop]]
        self._zero_removed()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kept = self.kept
        w = None if self.weight is None else self.weight[kept]
        b = None if self.bias is None else self.bias[kept]
        out = x.new_zeros(x.shape)
        out[..., kept] = F.layer_norm(x[..., kept], (len(kept),), w, b, self.eps)
        return out


def indices(idxs) -> list[int]:
    """Torch-Pruning's indices as plain ints (its hybrid (idx, root_idx) pairs → idx)."""
    return [int(getattr(i, "idx", i)) for i in idxs]


def refusal(module, label: str, norm_stream: bool) -> str | None:
    """Why a group with ``module`` on its output side cannot be shrunk exactly (``None``: it can)."""
    kind = type(module).__name__
    if isinstance(module, nn.GroupNorm):
        return (f"its channels are normalised in groups by {label} (GroupNorm): removing channels changes which "
                "channels share a mean and variance and the group count must still divide the width, so no "
                "masked parent equals the shrunk one")
    if isinstance(module, nn.LayerNorm):
        if len(module.normalized_shape) != 1:
            return (f"its channels are normalised by {label} (LayerNorm over {len(module.normalized_shape)} "
                    "dimensions): only a LayerNorm over the last dimension can be restricted to the kept channels")
        if not norm_stream:
            return (f"its channels are normalised together by {label} (LayerNorm): a zero channel still changes "
                    "the mean and variance (norm_stream: true prunes it, checked against the parent with that "
                    "LayerNorm restricted to the kept channels)")
        return None
    if isinstance(module, nn.MultiheadAttention):
        return (f"its channels are the embedding of {label} (MultiheadAttention), whose packed in-projection "
                "childnet cannot mask channel by channel")
    if isinstance(module, nn.RNNBase):
        return f"its channels are the hidden state of {label} ({kind}), which childnet cannot mask channel by channel"
    if isinstance(module, _ROWS + _COLUMNS + (nn.PReLU, nn.LayerNorm, nn.Parameter)):
        return None
    if isinstance(module, nn.Module) and any(True for _ in module.parameters(recurse=False)):
        return (f"Torch-Pruning would prune the outputs of {label} ({kind}), a module type whose removed "
                "channels childnet does not know how to mask for the guard")
    return None


def mask_group(group, masked: nn.Module, names: dict, param_names: dict) -> None:
    """Zero the pruned channels' output side in ``masked`` (same module names); restrict its LayerNorms.

    ``names``: module → name in the parent; ``param_names``: Torch-Pruning's unwrapped parameter → name.
    """
    with torch.no_grad():
        for dep, idxs in group:
            module = dep.target.module
            idx = indices(idxs)
            if module is None or not idx or not dep.handler.__name__.startswith("prune_out"):
                continue
            if isinstance(module, nn.Parameter):
                if module in param_names:
                    masked.get_parameter(param_names[module]).index_fill_(
                        dep.target.pruning_dim % module.ndim, torch.as_tensor(idx), 0.0)
                continue
            if module not in names:
                continue
            name = names[module]
            twin = masked.get_submodule(name)
            if isinstance(twin, KeptLayerNorm):
                twin.restrict(idx)
            elif isinstance(module, nn.LayerNorm):
                _replace(masked, name, KeptLayerNorm(twin, _complement(twin.normalized_shape[-1], idx)))
            elif isinstance(module, _COLUMNS):
                twin.weight[:, idx] = 0
                if getattr(twin, "bias", None) is not None:
                    twin.bias[idx] = 0
            elif isinstance(module, _ROWS):
                for t in (twin.weight, getattr(twin, "bias", None)):
                    if isinstance(t, torch.Tensor):
                        t[idx] = 0


def _complement(width: int, idx: list[int]) -> torch.Tensor:
    drop = set(idx)
    return torch.tensor([i for i in range(int(width)) if i not in drop], dtype=torch.long)


def _replace(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, attr = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, attr, new)
