"""ia3: learned rescaling vectors on the frozen parent — the second PEFT baseline of the tune family.

Liu, Tam, Muqeeth, Mohta, Huang, Bansal, Raffel, "Few-Shot Parameter-Efficient Fine-Tuning is Better
and Cheaper than In-Context Learning", NeurIPS 2022 (arXiv 2205.05638), (IA)³: the keys, values and the
feed-forward's inner activations are multiplied elementwise by learned vectors ``l_k``, ``l_v``, ``l_ff``
initialised to ones (§3.3). Through Hugging Face PEFT (:mod:`childnet.methods.tune._peft`); its BERT
defaults target ``key``, ``value`` and ``output.dense`` (feed-forward: scales that layer's *input*, the
intermediate activation, as the paper's ``l_ff``). lr 3e-3: the paper's (Adafactor, T0); ours is the
tune family's AdamW recipe, so only the update rule differs from vanilla; the new head trains in full.
"""

from __future__ import annotations

from pydantic import Field

from ...registry import METHODS
from . import _peft
from ._common import TuneConfig, TuneTrainConfig

__all__ = ["IA3Config", "derive", "check"]

TINY = {"train": {"epochs": 1, "lr": 1e-2}}


class IA3Config(TuneConfig):
    """(IA)³: train one scaling vector per targeted layer; the parent stays frozen."""

    train: TuneTrainConfig = Field(default_factory=lambda: TuneTrainConfig(lr=3e-3),
                                   description="the fine-tuning run (lr 3e-3: the IA3 paper's)")
    target_modules: list[str] | None = Field(
        None, description="modules rescaled (name or name suffix); null: key, value, output.dense if the parent "
        "has them (BERT), else every Linear/Conv layer except the head")
    feedforward_modules: list[str] | None = Field(
        None, description="targets whose input (not output) is rescaled; must be among target_modules; null: "
        "output.dense for BERT, else none")


def peft_config(model, cfg: IA3Config):
    peft = _peft.require_peft()
    targets = _peft.resolve_targets(model, cfg.target_modules, _peft.BERT_IA3, "target_modules")
    ff = cfg.feedforward_modules
    if ff is None:
        ff = list(_peft.BERT_IA3_FF) if targets == _peft.BERT_IA3 else []
    else:
        _peft.resolve_targets(model, ff, [], "feedforward_modules")
        stray = [f for f in ff if f not in targets]
        if stray:
            raise _peft.ChildnetError(f"feedforward_modules: {stray[0]!r} is not among target_modules "
                                      f"({', '.join(targets)}); list it there too")
    return peft.IA3Config(target_modules=targets, feedforward_modules=ff)


def check(parent, task, cfg: IA3Config) -> None:
    """Before training (``childnet validate`` too): the peft extra is there and every target module exists."""
    peft_config(parent.model if hasattr(parent, "model") else parent, cfg)


@METHODS.register("ia3", parent_use="inputs", config=IA3Config, family="tune", tiny=TINY, check=check, extra="peft")
def derive(parent, task, cfg: IA3Config, ctx):
    """(IA)³ (Liu et al. 2022) through PEFT: learned scaling vectors on the frozen parent, merged into the child."""
    return _peft.derive_adapted("ia3", parent, task, cfg, ctx, peft_config)
