"""weight_mixup: attention-guided weight mixup with bi-level optimisation (AGWM).

Somayajula, Liang, Zhang, Singh, Xie, "Generalizable and Stable Finetuning of Pretrained Language
Models on Low-Resource Texts", NAACL 2024 (arXiv 2403.12918); official code
github.com/Sai-Ashish/Attention_guided_weight_mixup_BLO (``run_mlo.sh``).

Every Linear (and Conv) weight except the head's becomes W̃ = α ⊙ W + (1 − α) ⊙ W0 with a rank-1
α = a bᵀ ∈ [0, 1] (:mod:`._mixup`). Procedure (``optimization: bilevel``, the paper):

1. Split the training set 80 / 20 (``upper_fraction``) at random. From fresh pretrained weights and a
   fresh α, train W on the 80 % split with α fixed (lower level, ``blo`` run: 3 epochs in the official
   script) and, after every lower step, α on the 20 % split (upper level, AdamW lr 2e-3, cosine). α's
   hypergradient (``hypergradient``, :class:`._mixup.AlphaStep`) is by default the one the official
   code's engine computes (Betty 0.2.0, ``type="darts"``, ``first_order=True``): the direct gradient
   ∇_α L_up(W, α) PLUS DARTS's implicit finite-difference term −∇²_{αW} L_low · v, v = ∇_W L_up,
   with Betty's Adam preconditioning of v (``darts_precondition``); ``hypergradient: direct`` keeps
   only the direct term (W held fixed). (An earlier docstring called the direct term alone what the
   official code configures; it is not: ``first_order=True`` only drops the second-order unrolled
   graph, the finite-difference term stays.)
2. Repeat on ``n_resplits`` (5) re-splits and average the α factors a and b (the official code's
   average; α of the average stays rank-1).
3. Fine-tune W on the whole training set with the averaged α frozen (``train`` run), from fresh
   pretrained weights, or — ``average_weights: true``, the official script's ``--total_avg true`` —
   from the average of ALL the re-splits' parameters (W, biases, LayerNorm, head; α is averaged too).

How far α moves depends on the sum of its learning rates over its steps: the official RTE run (1,992
lower examples, batch 16: 375 α steps per re-split at 2e-3 peak, 10 % warm-up then cosine) sums to about
0.375; 300 examples give 45 steps, 8× less. ``alpha_lr_sum`` sets α's peak learning rate per re-split so
that this sum is reached; the lineage records, per re-split, where α ends (mean, min), its steps and the sum.

``optimization: joint`` is the paper's "no BLO" ablation: W and α trained together on the whole
training set, one loss, one phase (α still with its own AdamW and lr).

The returned child is plain: the parametrizations are removed and W̃ baked into the weights; the
α factors are kept in ``child.masks`` (``<layer>.alpha_a`` / ``.alpha_b``) and summarised in the lineage.

Remaining differences from the official code: α is re-initialised for every re-split (below); the
finite difference restores W exactly (Betty 0.2.0 leaves it shifted by −εv); the lower level clips at
``blo.grad_clip`` (default 1.0; official: 5.0, set in the reproduction); ``alpha_lr_sum`` (when set)
replaces the fixed α learning rate; BERT-large and its lr 2e-5 are the experiment's to choose.

Choices of ours, documented: α is re-initialised for every re-split ("fresh" per METHODS.md; the
official loop only reloads the BERT weights); the final run defaults to the same ``train`` recipe as
the other tune methods (3 epochs; the official script uses 1 — set ``train: {epochs: 1}``); the head
is not mixed (it is new, so it has no pretrained weight to mix with).
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from ...parent import unfreeze
from ...registry import METHODS
from ...tasks.base import num_examples, take
from ...train import fit
from ..base import fit_on
from ._common import TuneConfig, TuneTrainConfig, extra_hooks, prepare_model, tune_child
from ._mixup import AlphaStep, alpha_mean, alpha_parameters, attach_mixup, bake_mixup, weight_parameters

__all__ = ["WeightMixupConfig", "derive"]

TINY = {"train": {"epochs": 1, "lr": 1e-3}, "blo": {"epochs": 0.25, "lr": 1e-3}, "n_resplits": 2}


class WeightMixupConfig(TuneConfig):
    """AGWM: per-layer mix of tuned and pretrained weights through a learned rank-1 α."""

    optimization: Literal["bilevel", "joint"] = Field(
        "bilevel", description="bilevel: α on a held-out 20 % split (paper); joint: α and W on one loss (ablation)")
    form: Literal["paper", "official_code"] = Field(
        "paper", description="paper: αW + (1-α)W0; official_code: αW + (1-a)(1-b)ᵀW0")
    n_resplits: int = Field(5, ge=1, le=100, description="random 80/20 re-splits whose α are averaged")
    upper_fraction: float = Field(0.2, gt=0.0, lt=1.0, description="share of the training set the upper level (α) uses")
    blo: TuneTrainConfig = Field(default_factory=TuneTrainConfig, description="lower-level (W) run in each re-split")
    alpha_lr: float = Field(2e-3, gt=0, description="learning rate of α (AdamW, cosine schedule)")
    alpha_weight_decay: float = Field(0.0, ge=0, description="weight decay of α (official script: 0)")
    alpha_warmup_frac: float = Field(0.1, ge=0, lt=1, description="warm-up of α's learning rate")
    alpha_init_std: float = Field(0.005, ge=0, description="a, b ~ N(1, std²) at initialisation")
    average_weights: bool = Field(False, description="start the final run from the mean of ALL the re-splits' "
                                  "parameters (official --total_avg true; the paper reproduction sets it)")
    hypergradient: Literal["implicit", "direct"] = Field(
        "implicit", description="α's gradient: direct + DARTS implicit finite-difference term (Betty, official "
                                "code) or the direct term only")
    darts_r: float = Field(0.01, gt=0, description="R of the finite difference: ε = R / ‖v‖ (Betty darts_alpha)")
    darts_precondition: bool = Field(True, description="divide v by the lower Adam's RMS (Betty darts_preconditioned)")
    alpha_lr_sum: float | None = Field(None, gt=0, description="if set, α's peak lr per re-split is chosen so that "
                                       "the sum of its per-step learning rates equals this (alpha_lr ignored)")


def _resplit(n: int, upper_fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_upper = min(n - 1, max(1, round(upper_fraction * n)))
    return perm[n_upper:].sort().values, perm[:n_upper].sort().values


def _alpha_step(mixers, cfg: WeightMixupConfig, upper, seed: int, weights=None) -> AlphaStep:
    return AlphaStep(mixers, upper, lr=cfg.alpha_lr, weight_decay=cfg.alpha_weight_decay,
                     warmup_frac=cfg.alpha_warmup_frac, batch_size=cfg.blo.batch_size, seed=seed, weights=weights,
                     hypergradient=cfg.hypergradient, darts_r=cfg.darts_r, precondition=cfg.darts_precondition,
                     lr_sum=cfg.alpha_lr_sum)


def _factors(mixers) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    return {name: (m.a.detach().clone(), m.b.detach().clone()) for name, m in mixers.items()}


def _search_alpha(parent, task, cfg: WeightMixupConfig, ctx) -> tuple[dict, dict | None, list]:
    """Steps 1-2: bi-level runs on ``n_resplits`` re-splits; mean α factors (and mean W if asked)."""
    x, y = task.x_train, task.y_train
    sums: dict = {}
    weight_sums: dict[str, torch.Tensor] = {}
    records = []
    for r in range(cfg.n_resplits):
        seed = ctx.seed * 1000 + r + 1
        lower, upper = _resplit(num_examples(x), cfg.upper_fraction, seed)
        model, _ = prepare_model(parent, task, cfg, ctx)
        mixers = attach_mixup(model, parent.model, form=cfg.form, init_std=cfg.alpha_init_std, seed=seed)
        weights = weight_parameters(model, mixers)
        hook = _alpha_step(mixers, cfg, (take(x, upper), y[upper]), seed, weights)
        history = fit(model, (take(x, lower), y[lower]), cfg.blo, hooks=[hook, *extra_hooks(ctx)],
                      params=weights, seed=seed, device=ctx.device, progress=ctx.progress)
        for name, (a, b) in _factors(mixers).items():
            sa, sb = sums.get(name, (0.0, 0.0))
            sums[name] = (sa + a / cfg.n_resplits, sb + b / cfg.n_resplits)
        if cfg.average_weights:
            alpha_ids = {id(p) for p in alpha_parameters(mixers)}
            for name, p in model.named_parameters():
                if id(p) not in alpha_ids:
                    weight_sums[name] = weight_sums.get(name, 0.0) + p.detach() / cfg.n_resplits
        records.append({"resplit": r, "lower": len(lower), "upper": len(upper), "alpha_mean": alpha_mean(mixers),
                        "alpha_min": min((float(m.alpha().detach().min()) for m in mixers.values()), default=None),
                        "alpha_steps": hook.steps, "alpha_lr_sum": hook.lr_total,
                        "alpha_peak_lr": hook.config.lr, "hypergradient": cfg.hypergradient, "history": history})
    return sums, (weight_sums or None), records


def _finetune(parent, task, cfg: WeightMixupConfig, ctx, factors, mean_weights):
    """Step 3: fine-tune W on the whole training set with α frozen at ``factors``."""
    model, replaced = prepare_model(parent, task, cfg, ctx)
    mixers = attach_mixup(model, parent.model, form=cfg.form, seed=ctx.seed, factors=factors, trainable_alpha=False)
    if mean_weights is not None:
        with torch.no_grad():
            for name, p in model.named_parameters():
                if name in mean_weights:
                    p.copy_(mean_weights[name])
    history = fit_on(task, model, cfg.train, ctx, hooks=extra_hooks(ctx), params=weight_parameters(model, mixers),
                     val=cfg.val_accuracy)
    return model, mixers, replaced, history


def _joint(parent, task, cfg: WeightMixupConfig, ctx):
    """The "no BLO" ablation: W and α trained together on the whole training set."""
    model, replaced = prepare_model(parent, task, cfg, ctx)
    mixers = attach_mixup(model, parent.model, form=cfg.form, init_std=cfg.alpha_init_std, seed=ctx.seed)
    hook = _alpha_step(mixers, cfg, None, ctx.seed)
    history = fit_on(task, model, cfg.train, ctx, hooks=[hook, *extra_hooks(ctx)],
                     params=weight_parameters(model, mixers), val=cfg.val_accuracy)
    return model, mixers, replaced, history


@METHODS.register("weight_mixup", parent_use="inputs", config=WeightMixupConfig, family="tune", tiny=TINY)
def derive(parent, task, cfg: WeightMixupConfig, ctx):
    """AGWM: mix tuned and pretrained weights through a rank-1 α learned by bi-level optimisation."""
    records = []
    if cfg.optimization == "joint":
        model, mixers, replaced, history = _joint(parent, task, cfg, ctx)
    else:
        factors, mean_weights, records = _search_alpha(parent, task, cfg, ctx)
        model, mixers, replaced, history = _finetune(parent, task, cfg, ctx, factors, mean_weights)
    masks = {f"{name}.alpha_{k}": t for name, (a, b) in _factors(mixers).items() for k, t in (("a", a), ("b", b))}
    extra = {"alpha_mean": alpha_mean(mixers), "mixed_layers": len(mixers), "resplits": records,
             "alpha_mean_by_layer": {n: float((m.a.mean() * m.b.mean()).detach()) for n, m in mixers.items()}}
    bake_mixup(model)
    unfreeze(model, parent.frozen)
    return tune_child(model, "weight_mixup", cfg, ctx, parent, task, head_replaced=replaced, history=history,
                      masks=masks, extra=extra)
