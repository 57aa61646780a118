"""The pieces of attention-guided weight mixup (AGWM): a weight parametrization and the α step.

Somayajula, Liang, Zhang, Singh, Xie, "Generalizable and Stable Finetuning of Pretrained Language
Models on Low-Resource Texts", NAACL 2024 (arXiv 2403.12918), §3.

Each mixed layer's weight becomes W̃ = α ⊙ W + (1 − α) ⊙ W0 (paper, eq. 1), with W the trainable
task weight (initialised from the pretrained W0), W0 frozen, and a rank-1 "attention" α = a bᵀ
(a: out × 1, b: 1 × in, both initialised N(1, 0.005)). The official code's variant mixes
W̃ = (a bᵀ) ⊙ W + ((1 − a)(1 − b)ᵀ) ⊙ W0 (``form: official_code``). Like the official code, a and b
are projected onto [0, 1] after every α update, which keeps α in [0, 1] for both forms.

It is a ``torch.nn.utils.parametrize`` parametrization: the module keeps its own forward, torch's
AdamW updates W, and :func:`bake_mixup` replaces the parametrization by the plain mixed weight W̃.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from ...tasks.base import Inputs, num_examples, take, to_device
from ...train import Hook, TrainConfig, TrainState, make_optimizer, make_scheduler

__all__ = ["WeightMixup", "mixup_targets", "attach_mixup", "bake_mixup", "alpha_parameters", "weight_parameters",
           "AlphaStep"]

MIXED_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d)


class WeightMixup(nn.Module):
    """Parametrization ``W ↦ W̃``: a mix of the task weight W and the frozen pretrained W0.

    Args:
        pretrained: W0 (copied into a buffer).
        form: ``paper`` (α W + (1 − α) W0) or ``official_code`` (α W + (1 − a)(1 − b)ᵀ W0).
        init_std: a and b start at N(1, init_std²), then are projected onto [0, 1].
        generator: seeds the initialisation.
    """

    def __init__(self, pretrained: torch.Tensor, form: str = "paper", init_std: float = 0.005,
                 generator: torch.Generator | None = None):
        super().__init__()
        self.form = form
        self.register_buffer("pretrained", pretrained.detach().clone())
        out, inp, tail = pretrained.shape[0], pretrained.shape[1], (1,) * (pretrained.dim() - 2)
        draw = lambda shape: (1.0 + init_std * torch.randn(shape, generator=generator)).to(pretrained.device)  # noqa: E731
        self.a = nn.Parameter(draw((out, 1, *tail)))
        self.b = nn.Parameter(draw((1, inp, *tail)))
        self.project_()

    def alpha(self) -> torch.Tensor:
        """α = a bᵀ, the share of the task weight in each entry of W̃."""
        return self.a * self.b

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        if self.form == "paper":
            return self.pretrained + self.alpha() * (weight - self.pretrained)
        return self.alpha() * weight + (1 - self.a) * (1 - self.b) * self.pretrained

    @torch.no_grad()
    def project_(self) -> None:
        """Project a and b onto [0, 1] (so α ∈ [0, 1]); the official code's ``normalise``."""
        self.a.clamp_(0.0, 1.0)
        self.b.clamp_(0.0, 1.0)


def mixup_targets(model: nn.Module) -> dict[str, nn.Module]:
    """Layers whose weight is mixed: every Linear / Conv except the (new, not pretrained) head."""
    return {name: m for name, m in model.named_modules()
            if isinstance(m, MIXED_LAYERS) and name != "head" and not name.startswith("head.")}


def attach_mixup(model: nn.Module, pretrained_model: nn.Module, *, form: str = "paper", init_std: float = 0.005,
                 seed: int = 0, factors: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None,
                 trainable_alpha: bool = True) -> dict[str, WeightMixup]:
    """Parametrize every mixed layer of ``model``; W0 comes from ``pretrained_model`` (same layer names).

    Args:
        factors: start α from these ``(a, b)`` per layer (e.g. the re-split average) instead of N(1, σ).
        trainable_alpha: False freezes α (the final fine-tuning of AGWM).
    """
    generator = torch.Generator().manual_seed(seed)
    sources = dict(pretrained_model.named_modules())
    mixers = {}
    for name, layer in mixup_targets(model).items():
        mixer = WeightMixup(sources[name].weight, form, init_std, generator)
        if factors is not None:
            with torch.no_grad():
                mixer.a.copy_(factors[name][0])
                mixer.b.copy_(factors[name][1])
        mixer.a.requires_grad_(trainable_alpha)
        mixer.b.requires_grad_(trainable_alpha)
        parametrize.register_parametrization(layer, "weight", mixer)
        mixers[name] = mixer
    return mixers


def bake_mixup(model: nn.Module) -> None:
    """Replace every mixup parametrization by its value W̃ (plain weights, plain state-dict keys)."""
    for module in list(model.modules()):
        if parametrize.is_parametrized(module, "weight"):
            parametrize.remove_parametrizations(module, "weight", leave_parametrized=True)


def alpha_parameters(mixers: dict[str, WeightMixup]) -> list[nn.Parameter]:
    return [p for m in mixers.values() for p in (m.a, m.b)]


def weight_parameters(model: nn.Module, mixers: dict[str, WeightMixup]) -> list[nn.Parameter]:
    """Every parameter but the α factors: what the lower level (and the final fine-tuning) trains."""
    alpha_ids = {id(p) for p in alpha_parameters(mixers)}
    return [p for p in model.parameters() if id(p) not in alpha_ids]


class AlphaStep(Hook):
    """The upper level of AGWM's bi-level optimisation, run in the loop's ``after_step`` hook.

    After each lower-level AdamW step on W (one unrolled step, W' = W − η∇_W L_lower), α takes one AdamW
    step on the upper split's loss at W': ∇_α L_upper(W', α), holding W' fixed — the *first-order*
    one-step unrolled (DARTS-style) hypergradient, which is what the official code configures
    (``first_order=True``). With ``upper=None`` it is the "joint, no BLO" ablation: α steps on the
    gradient of the training loss itself, computed in the same backward pass as W's.

    Args:
        mixers: the parametrizations holding α.
        upper: ``(x, y)`` of the upper split, or None for joint training.
        lr: α learning rate (paper 2e-3), cosine schedule after ``warmup_frac`` warm-up (official code).
        weight_decay: α weight decay (official script: 0).
        batch_size: upper-level batch size.
        seed: seeds the order of upper batches.
    """

    def __init__(self, mixers: dict[str, WeightMixup], upper: tuple[Inputs, torch.Tensor] | None, *, lr: float = 2e-3,
                 weight_decay: float = 0.0, warmup_frac: float = 0.1, batch_size: int = 16, seed: int = 0):
        self.mixers, self.upper, self.batch_size, self.seed = mixers, upper, batch_size, seed
        self.alphas = alpha_parameters(mixers)
        self.config = TrainConfig(optimizer="adamw", lr=lr, weight_decay=weight_decay, decay_norm_and_bias=True,
                                  schedule="cosine", warmup_frac=warmup_frac)
        self.order: list[int] = []
        self.losses: list[float] = []

    def on_fit_start(self, state: TrainState) -> None:
        self.optimizer = make_optimizer(self.alphas, self.config)
        self.scheduler = make_scheduler(self.optimizer, self.config, state.total_steps)
        self.generator = torch.Generator().manual_seed(self.seed)
        for p in self.alphas:
            p.requires_grad_(self.upper is None)  # bi-level: the lower level never computes α's gradient

    def _next_upper_batch(self, device) -> tuple[Inputs, torch.Tensor]:
        x, y = self.upper
        if len(self.order) < self.batch_size:
            self.order += torch.randperm(num_examples(x), generator=self.generator).tolist()
        idx, self.order = torch.tensor(self.order[: self.batch_size]), self.order[self.batch_size :]
        return to_device(take(x, idx), device), y[idx].to(device)

    def upper_gradient(self, model: nn.Module, device="cpu") -> float:
        """Put ∇_α L_upper(W, α) (W held fixed) into ``α.grad``; return the upper loss."""
        xb, yb = self._next_upper_batch(device)
        norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        saved = [{k: b.clone() for k, b in m.named_buffers(recurse=False)} for m in norms]
        for p in self.alphas:
            p.requires_grad_(True)
        try:
            loss = F.cross_entropy(model(xb), yb)
            grads = torch.autograd.grad(loss, self.alphas)
        finally:
            for p in self.alphas:
                p.requires_grad_(False)
            with torch.no_grad():  # the upper split must not leak into BatchNorm statistics
                for m, buffers in zip(norms, saved):
                    for k, b in buffers.items():
                        getattr(m, k).copy_(b)
        for p, g in zip(self.alphas, grads):
            p.grad = g
        return float(loss.detach())

    def after_step(self, state: TrainState) -> None:
        if self.upper is not None:
            self.losses.append(self.upper_gradient(state.model, state.device))
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        for mixer in self.mixers.values():
            mixer.project_()

    def on_epoch_end(self, state: TrainState) -> None:
        log = state.extra.setdefault("log", {})
        log["alpha_mean"] = alpha_mean(self.mixers)
        if self.losses:
            log["upper_ce"] = sum(self.losses) / len(self.losses)
            self.losses = []


@torch.no_grad()
def alpha_mean(mixers: dict[str, WeightMixup]) -> float:
    """Mean of α over every mixed weight entry (mean(a bᵀ) = mean(a)·mean(b) per layer)."""
    total = sum(m.pretrained.numel() for m in mixers.values())
    return float(sum(m.a.mean() * m.b.mean() * m.pretrained.numel() for m in mixers.values()) / max(1, total))
