"""lora: low-rank adapters on the frozen parent — the PEFT baseline of the tune family.

Hu, Shen, Wallis, Allen-Zhu, Li, Wang, Wang, Chen, "LoRA: Low-Rank Adaptation of Large Language Models",
ICLR 2022 (arXiv 2106.09685). Each targeted weight ``W`` (d×k) gets ``W + (α/r)·B·A`` with ``A`` (r×k,
Kaiming-uniform) and ``B`` (d×r, zeros) trained and ``W`` frozen; dropout on the adapter's input.
Defaults: r 8, α 16 (α/r = 2), dropout 0.1 on ``query`` and ``value`` (the paper's §4.1/§7.1 choice of
W_q, W_v; PEFT's default for BERT); lr 5e-4 (the paper's RoBERTa-base GLUE range, Table 9: 4e-4–5e-4).
Implemented through Hugging Face PEFT (:mod:`childnet.methods.tune._peft`: targets, saving).

Ours: the recipe (AdamW, linear decay after warm-up, clip 1, batch 16) is the tune family's, so only
the update rule differs from vanilla; the new head trains in full.
"""

from __future__ import annotations

from pydantic import Field

from ...registry import METHODS
from . import _peft
from ._common import TuneConfig, TuneTrainConfig

__all__ = ["LoraConfig", "derive", "check"]

TINY = {"train": {"epochs": 1, "lr": 5e-3}, "r": 2}


class LoraConfig(TuneConfig):
    """LoRA: train low-rank updates B·A of the targeted weights; the parent stays frozen."""

    train: TuneTrainConfig = Field(default_factory=lambda: TuneTrainConfig(lr=5e-4),
                                   description="the fine-tuning run (lr 5e-4: LoRA, RoBERTa-base GLUE)")
    r: int = Field(8, ge=1, le=1024, description="rank r of each update B·A (paper: 1-64; 8 here)")
    alpha: float = Field(16, gt=0, description="scale α: the update is (α/r)·B·A (α/r = 2 by default)")
    dropout: float = Field(0.1, ge=0, lt=1, description="dropout on the adapter's input")
    target_modules: list[str] | None = Field(
        None, description="modules adapted (name or name suffix, e.g. query, value, intermediate.dense); "
        "null: query and value if the parent has them (BERT), else every Linear/Conv layer except the head")


def peft_config(model, cfg: LoraConfig):
    peft = _peft.require_peft()
    targets = _peft.resolve_targets(model, cfg.target_modules, _peft.BERT_LORA, "target_modules")
    return peft.LoraConfig(r=cfg.r, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout, target_modules=targets,
                           bias="none")


def check(parent, task, cfg: LoraConfig) -> None:
    """Before training (``childnet validate`` too): the peft extra is there and every target module exists."""
    peft_config(parent.model if hasattr(parent, "model") else parent, cfg)


@METHODS.register("lora", parent_use="inputs", config=LoraConfig, family="tune", tiny=TINY, check=check, extra="peft")
def derive(parent, task, cfg: LoraConfig, ctx):
    """LoRA (Hu et al. 2022) through PEFT: low-rank adapters on the frozen parent, merged into the child."""
    return _peft.derive_adapted("lora", parent, task, cfg, ctx, peft_config)
