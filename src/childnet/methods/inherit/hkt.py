"""hkt: Hereditary Knowledge Transfer — Extraction, Transfer, Mixture with Genetic Attention.

Tchenko, Mohr, Hadj-Abdelkader & Tabia 2025, "Hereditary Knowledge Transfer" (arXiv 2508.09743).

- **Extraction**: features of the parent at one or more inheritance points (the paper's CIFAR code
  uses the pooled penultimate features, our ``features``; "2HKT/3HKT" use 2–3 points).
- **Transfer**: align them to the child's feature shape (:class:`FeatureTransfer`: identity when
  shapes match, else a learned 1×1 conv / linear projection plus resizing).
- **Mixture** by Genetic Attention, q = child feature, k = v = aligned parent feature, C = channels:
  a = σ(⟨q, k⟩/√C) (per sample; per position for maps), GA = a·v + (1 − a)·q,
  fused = q + λ·(v − GA), λ = 0.6 as in the code.
- **Loss** (the code): CE(child_head(q), y) + CE(child_head(fused), y) + CE(parent_head(fused), y), no
  temperature; the parent's weights are frozen. **At inference the child runs alone**; the transfer,
  attention and back-projection modules are discarded, so the child's size and cost do not change.

Choices where the paper is silent (config fields):
- ``mixture: static`` fixes the gate to ``static_gate`` = 0.7 (GA = 0.7·v + 0.3·q) — our reading of the
  "static 0.7 / 0.3" variant. ``learnable_lambda`` makes λ a parameter (clamped to [0, 1]) — the authors'
  follow-up.
- When child and parent feature sizes differ, ``parent_head(fused)`` needs the parent's size: a learned
  linear back-projection child → parent is trained with the child (identity when sizes match, as in the
  paper's ResNet-110 → ResNet-20 setting, both 64-d).
- The gate a is logged per epoch (``ga_gate_mean`` / ``ga_gate_std`` in the history, ``gate_by_epoch``
  in the lineage), so one can see whether the mixture leans on the parent (a → 1) or the child.
- Ablation "parent-head term only": ``w_fused: 0`` keeps CE(child_head(q)) and CE(parent_head(fused)).
- Intermediate (map) inheritance points are mixed in a second forward pass of the child in which each
  point's output is replaced by its fused map, so the inherited features flow through the rest of the child
  to its head; with only ``features`` (the default) a single pass suffices.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from torch import nn

from ...errors import ChildnetError
from ...features import FEATURES, capture, replace_outputs
from ...registry import METHODS
from ...tasks.base import to_device
from ...train import Hook, TrainState
from ..base import fit_on, make_child
from ._common import InheritConfig, init_child, parent_outputs
from .transfer import FeatureTransfer

__all__ = ["HKTConfig", "GeneticAttention", "GateLog", "derive"]


class HKTConfig(InheritConfig):
    parent_layers: list[str] = Field([FEATURES], min_length=1, description="inheritance points in the parent")
    child_layers: list[str] | None = Field(None, description="matching points in the child (default: same names)")
    mixture: Literal["dynamic", "static"] = Field("dynamic", description="GA gate: σ(⟨q,k⟩/√C) or fixed")
    static_gate: float = Field(0.7, ge=0, le=1, description="static variant: fixed gate a on the parent feature")
    lam: float = Field(0.6, ge=0, le=1, description="mixing strength λ (0.6 in the paper's code)")
    learnable_lambda: bool = Field(False, description="learn λ (the authors' follow-up variant)")
    w_child: float = Field(1.0, ge=0, description="weight of CE(child_head(q), y)")
    w_fused: float = Field(1.0, ge=0, description="weight of CE(child_head(fused), y)")
    w_parent_head: float = Field(1.0, ge=0, description="weight of CE(parent_head(fused), y)")

    @model_validator(mode="after")
    def _pairs(self):
        if self.child_layers is not None and len(self.child_layers) != len(self.parent_layers):
            raise ValueError(f"child_layers ({len(self.child_layers)}) and parent_layers "
                             f"({len(self.parent_layers)}) must pair up one to one")
        return self


class GeneticAttention(nn.Module):
    """GA(q, k=v, v) and the fused feature q + λ·(v − GA) (Tchenko et al. 2025, §3)."""

    def __init__(self, lam: float = 0.6, learnable: bool = False, mode: str = "dynamic", static_gate: float = 0.7):
        super().__init__()
        self.mode, self.static_gate = mode, static_gate
        self.gate_sum, self.gate_sq, self.gate_n = 0.0, 0.0, 0  # running gate statistics (see GateLog)
        lam_t = torch.tensor(float(lam))
        self.lam = nn.Parameter(lam_t) if learnable else None
        if not learnable:
            self.register_buffer("_lam", lam_t, persistent=False)

    def gate(self, q: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        if self.mode == "static":
            return torch.full_like(q[:, :1], self.static_gate)
        return torch.sigmoid((q * v).sum(1, keepdim=True) / math.sqrt(q.shape[1]))

    def forward(self, q: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        a = self.gate(q, v)
        if torch.is_grad_enabled():
            d = a.detach().double()
            self.gate_sum += float(d.sum())
            self.gate_sq += float((d * d).sum())
            self.gate_n += d.numel()
        ga = a * v + (1 - a) * q
        lam = self.lam.clamp(0, 1) if self.lam is not None else self._lam
        return q + lam * (v - ga)


class GateLog(Hook):
    """Logs, per epoch, the mean and std of each Genetic Attention gate a over the epoch's training passes."""

    def __init__(self, mixers: nn.ModuleList):
        self.mixers = mixers

    def on_epoch_end(self, state: TrainState) -> None:
        log = state.extra.setdefault("log", {})
        for i, mx in enumerate(self.mixers):
            suffix = "" if len(self.mixers) == 1 else f"_{i}"
            if mx.gate_n:
                mean = mx.gate_sum / mx.gate_n
                log[f"ga_gate_mean{suffix}"] = mean
                log[f"ga_gate_std{suffix}"] = max(0.0, mx.gate_sq / mx.gate_n - mean * mean) ** 0.5
            mx.gate_sum, mx.gate_sq, mx.gate_n = 0.0, 0.0, 0


def _device_of(model: nn.Module) -> torch.device:
    return next((p.device for p in model.parameters()), torch.device("cpu"))


def _shapes(model: nn.Module, layers: list[str], example) -> list[tuple]:
    with capture(model, layers) as f:
        was = model.training
        model.eval()
        with torch.no_grad():
            model(example)
        model.train(was)
    return [tuple(f[n].shape[1:]) for n in layers]


@METHODS.register("hkt", parent_use="outputs", config=HKTConfig, family="inherit",
                  tiny={"train": {"epochs": 1}, "child": {"name": "cnn", "width": 4, "depth": 2}})
def derive(parent, task, cfg: HKTConfig, ctx):
    """Train the child with inherited parent features mixed in by Genetic Attention (Tchenko et al. 2025)."""
    model = init_child(parent, task, cfg, ctx)
    for who, net in (("parent", parent.model), ("child", model)):
        if not isinstance(getattr(net, "head", None), nn.Module):
            raise ChildnetError(f"hkt: the {who} ({type(net).__name__}) has no `head` module; HKT mixes the "
                                "features the head reads and trains both heads on them, so parent and child "
                                "need head(features) (see docs/own-model.md)")
    p_layers = list(cfg.parent_layers)
    c_layers = list(cfg.child_layers or p_layers)
    inherited = parent_outputs(parent, task.x_train, p_layers, device=ctx.device)
    example = task.example_input(2)
    c_shapes = _shapes(model, c_layers + [FEATURES], example)
    transfers = nn.ModuleList(FeatureTransfer(tuple(inherited[p].shape[1:]), s) for p, s in zip(p_layers, c_shapes))
    mixers = nn.ModuleList(GeneticAttention(cfg.lam, cfg.learnable_lambda, cfg.mixture, cfg.static_gate)
                           for _ in p_layers)
    back = FeatureTransfer(c_shapes[-1], _shapes(parent.model, [FEATURES], to_device(example, _device_of(parent.model)))[0])
    extras = nn.ModuleList([transfers, mixers, back]).to(ctx.device)
    v_all = [inherited[p].to(ctx.device) for p in p_layers]
    map_points = [i for i, n in enumerate(c_layers) if n != FEATURES]
    feat_point = c_layers.index(FEATURES) if FEATURES in c_layers else None

    def mixed(i, q, idx):
        return mixers[i](q, transfers[i](v_all[i][idx]))

    def loss(m, x, y, state):
        idx = state.index
        with capture(m, [FEATURES]) as f:
            logits_q = m(x)
        q = f[FEATURES]
        if map_points:
            fns = {c_layers[i]: (lambda o, i=i: mixed(i, o, idx)) for i in map_points}
            with replace_outputs(m, fns), capture(m, [FEATURES]) as f2:
                m(x)
            q = f2[FEATURES]
        fused = mixed(feat_point, q, idx) if feat_point is not None else q
        return {
            "ce_child": cfg.w_child * F.cross_entropy(logits_q, y),
            "ce_fused": cfg.w_fused * F.cross_entropy(m.head(fused), y),
            "ce_parent_head": cfg.w_parent_head * F.cross_entropy(parent.model.head(back(fused)), y),
        }

    params = list(model.parameters()) + list(extras.parameters())
    history = fit_on(task, model, cfg.train, ctx, loss_fn=loss, params=params, hooks=[GateLog(mixers)])
    lams = [float(mx.lam.detach().clamp(0, 1)) if mx.lam is not None else cfg.lam for mx in mixers]
    return make_child(model, "hkt", cfg, ctx, parent, task, history=history,
                      extra={"parent_layers": p_layers, "child_layers": c_layers, "lambda": lams,
                             "transfer_identity": [t.is_identity for t in transfers],
                             "back_projection_identity": back.is_identity,
                             "gate_by_epoch": [{k: r[k] for k in r if k.startswith("ga_gate")} for r in history]})
