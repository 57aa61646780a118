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

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from ...tasks.base import Inputs, num_examples, take, to_device
from ...train import Hook, TrainConfig, TrainState, make_optimizer, make_scheduler

__all__ = ["WeightMixup", "mixup_targets", "attach_mixup", "bake_mixup", "alpha_parameters", "weight_parameters",
           "AlphaStep", "schedule_sum"]

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
    """Every trainable parameter but the α factors: what the lower level (and the final fine-tuning) trains
    (a parameter the parent's builder left frozen stays out)."""
    alpha_ids = {id(p) for p in alpha_parameters(mixers)}
    return [p for p in model.parameters() if id(p) not in alpha_ids and p.requires_grad]


class AlphaStep(Hook):
    """The upper level of AGWM's bi-level optimisation, run in the loop's ``after_step`` hook.

    After each lower-level AdamW step on W, α takes one AdamW step on the upper split's loss. Its
    gradient (``hypergradient``):

    - ``implicit`` (default; the official code's engine, Betty 0.2.0, with ``type="darts"`` and
      ``first_order=True`` on the upper problem): the direct term ∇_α L_up(W, α) **plus** the implicit
      finite-difference term of DARTS (Liu et al. 2019, eq. 8) read as implicit differentiation:
      with v = ∇_W L_up(W, α) and ε = R / ‖v‖ (R = ``darts_r``, Betty's ``darts_alpha`` 0.01),
      − [∇_α L_low(W + εv, α) − ∇_α L_low(W − εv, α)] / (2ε), the lower loss taken on the lower
      batch of the step just made. ``precondition`` (the official inner problem's
      ``darts_preconditioned=True``) first divides each tensor of v by Betty 0.2.0's scalar Adam
      denominator (√mean(β₂·v̂) + eps) / √(1 − β₂ᵗ) of the lower optimiser's state. Like Betty, no
      lower learning rate multiplies the term (DARTS's ξ).
    - ``direct``: ∇_α L_up(W, α) only, W held fixed — the first-order DARTS approximation.

    With ``upper=None`` it is the "joint, no BLO" ablation: α steps on the gradient of the training
    loss itself, computed in the same backward pass as W's.

    Differences from Betty 0.2.0 that remain: Betty restores W after the finite difference with a
    non-in-place ``add`` (so W stays shifted by −εv); we restore it exactly. Betty clips the lower
    gradient at 5.0 (``gradient_clipping``); the lower run here clips at ``blo.grad_clip``.

    Args:
        mixers: the parametrizations holding α.
        upper: ``(x, y)`` of the upper split, or None for joint training.
        weights: the lower-level parameters W (needed by ``implicit``).
        lr: α learning rate (paper 2e-3), cosine schedule after ``warmup_frac`` warm-up (official code).
        lr_sum: if set, α's peak learning rate is chosen so that the sum of its per-step learning
            rates over the run equals ``lr_sum`` (``lr`` is then ignored).
        weight_decay: α weight decay (official script: 0).
        batch_size: upper-level batch size.
        seed: seeds the order of upper batches.
        hypergradient: ``implicit`` or ``direct`` (above).
        darts_r: R of the finite difference.
        precondition: Betty's ``darts_preconditioned`` scaling of v.
    """

    def __init__(self, mixers: dict[str, WeightMixup], upper: tuple[Inputs, torch.Tensor] | None, *, lr: float = 2e-3,
                 weight_decay: float = 0.0, warmup_frac: float = 0.1, batch_size: int = 16, seed: int = 0,
                 weights: list[nn.Parameter] | None = None, hypergradient: str = "implicit", darts_r: float = 0.01,
                 precondition: bool = True, lr_sum: float | None = None):
        if hypergradient not in ("implicit", "direct"):
            raise ValueError(f"hypergradient must be implicit or direct (got {hypergradient!r})")
        self.mixers, self.upper, self.batch_size, self.seed = mixers, upper, batch_size, seed
        self.alphas = alpha_parameters(mixers)
        self.weights = list(weights or [])
        self.hypergradient, self.darts_r, self.precondition, self.lr_sum = hypergradient, darts_r, precondition, lr_sum
        self.config = TrainConfig(optimizer="adamw", lr=lr, weight_decay=weight_decay, decay_norm_and_bias=True,
                                  schedule="cosine", warmup_frac=warmup_frac)
        self.order: list[int] = []
        self.losses: list[float] = []
        self.implicit_ratio: list[float] = []
        self.lr_total = 0.0
        self.steps = 0

    def on_fit_start(self, state: TrainState) -> None:
        if self.lr_sum is not None:
            shape = schedule_sum(self.config.model_copy(update={"lr": 1.0}), state.total_steps)
            self.config = self.config.model_copy(update={"lr": self.lr_sum / max(shape, 1e-12)})
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

    def _grads(self, model: nn.Module, x, y, wrt: list) -> tuple[float, tuple]:
        for p in self.alphas:
            p.requires_grad_(True)
        try:
            loss = F.cross_entropy(model(x), y)
            grads = torch.autograd.grad(loss, wrt, allow_unused=True)
        finally:
            for p in self.alphas:
                p.requires_grad_(False)
        return float(loss.detach()), tuple(torch.zeros_like(p) if g is None else g for p, g in zip(wrt, grads))

    def _preconditioned(self, vector: list[torch.Tensor], optimizer) -> list[torch.Tensor]:
        """Betty 0.2.0's ``precondition`` for an Adam-type lower optimiser (SGD: unchanged)."""
        if not isinstance(optimizer, (torch.optim.Adam, torch.optim.AdamW)):
            return vector
        out = []
        for v, p in zip(vector, self.weights):
            st = optimizer.state.get(p, {})
            if "exp_avg_sq" not in st:
                out.append(v)
                continue
            group = next(g for g in optimizer.param_groups if any(q is p for q in g["params"]))
            beta2, eps, step = group["betas"][1], group["eps"], float(st["step"])
            denom = (torch.sqrt(torch.mean(beta2 * st["exp_avg_sq"])) + eps) / math.sqrt(1 - beta2**step)
            out.append(v / denom)
        return out

    @torch.no_grad()
    def _shift(self, vector: list[torch.Tensor], scale: float) -> None:
        for p, v in zip(self.weights, vector):
            p.add_(v, alpha=scale)

    def implicit_term(self, model: nn.Module, lower: tuple, v: list[torch.Tensor], optimizer=None) -> list[torch.Tensor]:
        """−[∇_α L_low(W + εv) − ∇_α L_low(W − εv)] / (2ε), ε = R / ‖v‖; W is restored exactly."""
        if self.precondition and optimizer is not None:
            v = self._preconditioned(v, optimizer)
        norm = float(torch.sqrt(sum((t.float() ** 2).sum() for t in v)))
        eps = self.darts_r / (norm + 1e-12)
        xb, yb = lower
        saved = [p.detach().clone() for p in self.weights]
        self._shift(v, eps)
        try:
            _, g_plus = self._grads(model, xb, yb, self.alphas)
            self._shift(v, -2 * eps)
            _, g_minus = self._grads(model, xb, yb, self.alphas)
        finally:
            with torch.no_grad():
                for p, w in zip(self.weights, saved):
                    p.copy_(w)
        return [(gm - gp) / (2 * eps) for gp, gm in zip(g_plus, g_minus)]

    def upper_gradient(self, model: nn.Module, device="cpu", lower: tuple | None = None, optimizer=None) -> float:
        """Put α's hypergradient into ``α.grad`` (see the class docstring); return the upper loss.

        Args:
            lower: the lower batch ``(x, y)`` of the step just made (needed by ``implicit``).
            optimizer: the lower optimiser (for ``precondition``).
        """
        xb, yb = self._next_upper_batch(device)
        norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        saved = [{k: b.clone() for k, b in m.named_buffers(recurse=False)} for m in norms]
        implicit = self.hypergradient == "implicit" and lower is not None and self.weights
        try:
            wrt = self.alphas + (self.weights if implicit else [])
            loss, grads = self._grads(model, xb, yb, wrt)
            direct, v = list(grads[: len(self.alphas)]), list(grads[len(self.alphas) :])
            if implicit:
                extra = self.implicit_term(model, lower, v, optimizer)
                d_norm = float(torch.sqrt(sum((g**2).sum() for g in direct)))
                i_norm = float(torch.sqrt(sum((g**2).sum() for g in extra)))
                self.implicit_ratio.append(i_norm / (d_norm + 1e-12))
                direct = [d + e for d, e in zip(direct, extra)]
        finally:
            with torch.no_grad():  # the upper split must not leak into BatchNorm statistics
                for m, buffers in zip(norms, saved):
                    for k, b in buffers.items():
                        getattr(m, k).copy_(b)
        for p, g in zip(self.alphas, direct):
            p.grad = g
        return loss

    def after_step(self, state: TrainState) -> None:
        if self.upper is not None:
            self.losses.append(self.upper_gradient(state.model, state.device, state.batch, state.optimizer))
        self.lr_total += self.optimizer.param_groups[0]["lr"]
        self.steps += 1
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        for mixer in self.mixers.values():
            mixer.project_()

    def on_epoch_end(self, state: TrainState) -> None:
        log = state.extra.setdefault("log", {})
        log["alpha_mean"] = alpha_mean(self.mixers)
        log["alpha_min"] = min(float(m.alpha().detach().min()) for m in self.mixers.values()) if self.mixers else None
        log["alpha_lr_sum"] = self.lr_total
        log["alpha_steps"] = self.steps
        if self.losses:
            log["upper_ce"] = sum(self.losses) / len(self.losses)
            self.losses = []
        if self.implicit_ratio:
            log["implicit_to_direct_norm"] = sum(self.implicit_ratio) / len(self.implicit_ratio)
            self.implicit_ratio = []


def schedule_sum(config: TrainConfig, total_steps: int) -> float:
    """Sum over ``total_steps`` of the per-step learning rate ``config`` gives (its schedule included)."""
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=config.lr)
    sched = make_scheduler(opt, config, total_steps)
    total = 0.0
    for _ in range(max(0, total_steps)):
        total += opt.param_groups[0]["lr"]
        opt.step()  # no gradient: a no-op that keeps the scheduler's call order
        sched.step()
    return total


@torch.no_grad()
def alpha_mean(mixers: dict[str, WeightMixup]) -> float:
    """Mean of α over every mixed weight entry (mean(a bᵀ) = mean(a)·mean(b) per layer)."""
    total = sum(m.pretrained.numel() for m in mixers.values())
    return float(sum(m.a.mean() * m.b.mean() * m.pretrained.numel() for m in mixers.values()) / max(1, total))
