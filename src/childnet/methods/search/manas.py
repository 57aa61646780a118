"""MANAS and its baselines: a logic child assembled per input, one static expression, random assembly, BPR-MF.

Chen, Li, Zhu, Zhang, "Learn Basic Skills and Reuse: Modularized Adaptive Neural Architecture Search",
CIKM 2022 (arXiv 2208.11083); public code TalonCB/MANAS (MIT), read to check details, not copied.

``manas`` alternates, per epoch, (1) sampling an architecture for every training row with the
controller, (2) one epoch of child training (BPR with one freshly sampled negative the user never
touched, plus the logic regularisers at ``logic_weight``; Adam lr 1e-3, weight decay 1e-5, batch 256)
and (3) ``controller_steps`` REINFORCE updates, each on ``controller_batch`` validation rows with reward
nDCG@5 + nDCG@10 + HR@5 + HR@10 (entropy bonus 1e-4, moving-average baseline decay 0.99, Adam lr 0.005,
betas (0, 0.999), eps 1e-3, gradient-norm clip 5). Then ``final_epochs`` of child training with the
controller fixed. The child (``logic`` model) keeps the controller: at inference each input gets the
controller's most likely expression. Its weights (``controller.*``) are saved with the child's in
``model.safetensors``; the lineage records a histogram of the test inputs' expressions.

Baselines, all with the same child-training epochs (``search_epochs + final_epochs``):
``static_logic`` — one expression for every input; ``form: search`` trains the modules with uniformly
random expressions for ``search_epochs`` (shared weights, one-shot), scores ``candidates`` fixed
expressions (random ones plus the AND and OR chains) on validation, and trains the best for
``final_epochs``; ``form: ncr`` is NCR's ``(¬e1 ∨ … ∨ ¬e4) ∨ e_target`` throughout. ``random_assembly``
— a fresh uniformly random expression per input (and per epoch). ``bpr_mf`` — matrix factorisation
with the same BPR loss and negatives.

Differences from the paper and the authors' code (besides the controller's, in assembly.py):
- epochs and controller steps are config fields scaled to CPU (paper: 100 epochs, 50 controller steps
  per epoch, each step a pass over the whole validation set; here ``controller_batch`` rows per step);
- ``reward: example`` (default) gives each row its own reward (its architecture is its own); the
  authors reward a whole validation batch with its mean (``reward: batch``);
- batches are drawn at random and rows grouped by operation inside each (models/logic.py); the
  authors sort rows into batches by whole expression;
- the authors rank against every item the user never touched; childnet's tasks rank against 100
  sampled ones (as their NCR code does), and inference takes the controller's greedy expression
  (theirs samples);
- the BPR loss is the batch sum as in their code; the regulariser covers the module inputs and outputs
  of the batch plus the target/negative embeddings and the final OR outputs, as theirs, but by default
  only ``logic_sample`` = 256 of them drawn at random per batch (all of them cost 6x the step).
- the child's Adam follows TrainConfig's default cosine schedule within each phase (search, final) and
  does not decay biases; the authors keep the learning rate constant and decay every weight;
- the parent is not used: these methods train from scratch (the experiment's parent is a cheap
  ``bpr_mf`` on the same task, recorded in the lineage for the runner's bookkeeping).
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field

from ...config import Config
from ...errors import ConfigError
from ...models.base import build_model
from ...models.logic import format_expression, parse_expression
from ...registry import METHODS
from ...tasks.base import Task, take
from ...train import Hook, TrainConfig, fit
from ..base import make_child
from .assembly import uniform_architectures

__all__ = ["LogicSearchConfig", "ManasConfig", "StaticLogicConfig", "BprMfMethodConfig", "row_rewards"]

CHILD_TRAIN = {"optimizer": "adam", "lr": 1e-3, "weight_decay": 1e-5, "batch_size": 256, "epochs": 1}
TINY = {"search_epochs": 1, "final_epochs": 1, "dim": 8}


class LogicSearchConfig(Config):
    """Fields the logic-child methods share."""

    dim: int = Field(64, ge=2, le=1024, description="embedding size d (MANAS: 64)")
    search_epochs: int = Field(4, ge=0, description="child epochs while searching (MANAS: 100, with the controller)")
    final_epochs: int = Field(2, ge=0, description="child epochs after the search, architectures fixed")
    train: TrainConfig = Field(default_factory=lambda: TrainConfig(**CHILD_TRAIN),
                               description="child optimiser (unset options: Adam lr 1e-3, weight decay 1e-5, "
                               "batch 256 as in MANAS; epochs is ignored)")
    logic_weight: float = Field(1e-5, ge=0, description="weight of the logic regularisers (MANAS: 1e-5)")
    init_std: float | None = Field(0.01, gt=0, description="child weights N(0, std) (MANAS: 0.01); null: PyTorch "
                                   "default init")
    logic_sample: int = Field(256, ge=0, description="regularise this many of the batch's module inputs/outputs, "
                              "drawn at random (0: all of them, as the authors; about 6x slower per batch)")


class ManasConfig(LogicSearchConfig):
    controller_steps: int = Field(5, ge=0, description="controller updates after each search epoch (MANAS: 50)")
    controller_batch: int = Field(256, ge=2, description="validation rows per controller update")
    controller_lr: float = Field(0.005, gt=0, description="controller Adam learning rate (MANAS: 0.005)")
    entropy_weight: float = Field(1e-4, ge=0, description="entropy bonus (MANAS: 1e-4)")
    baseline_decay: float = Field(0.99, ge=0, lt=1, description="moving-average reward baseline decay (MANAS: 0.99)")
    reward: Literal["example", "batch"] = Field("example", description="each row's own reward, or the batch mean "
                                                "for every row (the authors')")
    controller_hidden: int = Field(64, ge=4, le=1024, description="controller LSTM size (MANAS: 64)")
    max_steps: int = Field(10, ge=1, le=20, description="expression steps at most (MANAS: 10)")
    tanh_constant: float = Field(1.5, gt=0, description="controller logits C·tanh (MANAS: 1.5)")


class StaticLogicConfig(LogicSearchConfig):
    form: Literal["search", "ncr"] = Field("search", description="best fixed expression on validation, or NCR's "
                                           "(¬e1 ∨ … ∨ ¬en) ∨ e_target")
    candidates: int = Field(32, ge=1, description="search: random fixed expressions scored (plus AND / OR chains)")


class BprMfMethodConfig(Config):
    dim: int = Field(64, ge=1, le=1024, description="embedding size")
    epochs: int = Field(6, ge=1, description="training epochs")
    train: TrainConfig = Field(default_factory=lambda: TrainConfig(**CHILD_TRAIN),
                               description="optimiser (unset: Adam lr 1e-3, weight decay 1e-5, batch 256)")


def _train_cfg(cfg, epochs: int) -> TrainConfig:
    return TrainConfig(**{**cfg.train.model_dump(), "epochs": epochs, "eval_every": 0})


def _check_task(task: Task, method: str) -> None:
    if task.kind != "ranking":
        raise ConfigError(f"{method}: needs a ranking task (sequences, amazon-beauty/cellphone/grocery, "
                          f"logic-synthetic); task '{task.name}' is {task.kind}")


def row_rewards(scores: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per row: nDCG@5 + nDCG@10 + HR@5 + HR@10 of the true item (ties against it), the MANAS reward."""
    rank = (scores >= scores.gather(1, y[:, None])).sum(1) - 1
    out = torch.zeros(len(y))
    for k in (5, 10):
        hit = (rank < k).float()
        out += hit + hit / torch.log2(rank.float() + 2.0)
    return out


class ChildTrainer(Hook):
    """Per epoch: an architecture per training row (``arch_fn``); BPR + logic loss; optional controller steps."""

    def __init__(self, model, task: Task, cfg, arch_fn, seed: int, after_epoch=None):
        self.model, self.task, self.cfg, self.arch_fn, self.after_epoch = model, task, cfg, arch_fn, after_epoch
        self.gen = torch.Generator().manual_seed(seed + 7919)
        self.sampler = task.meta.get("sampler")
        self.arch = None
        self.seen: Counter = Counter()

    def on_epoch_start(self, state) -> None:
        self.arch = self.arch_fn(self.task.x_train["history"], self.gen)

    def on_epoch_end(self, state) -> None:
        if self.after_epoch is not None:
            log = self.after_epoch(state.epoch)
            state.extra.setdefault("log", {}).update(log or {})

    def negatives(self, x, y) -> torch.Tensor:
        if self.sampler is not None:
            return self.sampler.sample(x["user"], 1, self.gen).to(y.device)
        return x["candidates"].gather(1, (1 - y)[:, None])  # two fixed candidates: the other one

    def loss(self, model, x, y, state) -> dict:
        cands = torch.cat([x["candidates"].gather(1, y[:, None]), self.negatives(x, y)], 1)
        if self.arch is None:  # matrix factorisation
            s = model({"user": x["user"], "candidates": cands})
            return {"bpr": -F.logsigmoid(s[:, 0] - s[:, 1]).sum()}
        keep: list = []
        s = model.score(model.encode(x["history"], self.arch[state.index].to(y.device), keep), cands, keep)
        terms = {"bpr": -F.logsigmoid(s[:, 0] - s[:, 1]).sum()}
        if self.cfg.logic_weight:
            vectors = torch.cat(keep)
            if self.cfg.logic_sample and len(vectors) > self.cfg.logic_sample:
                vectors = vectors[torch.randperm(len(vectors), generator=self.gen)[: self.cfg.logic_sample]]
            terms["logic"] = self.cfg.logic_weight * model.logic_regularizer(vectors)
        return terms


def _child_params(model):
    return [p for n, p in model.named_parameters() if not n.startswith("controller.")]


def _logic_model(cfg, task: Task, **opts):
    spec = {"name": "logic", "dim": cfg.dim, "init_std": cfg.init_std, **opts}
    return build_model(spec, task.input_shape, task.num_classes)


def _fit(model, task, cfg, trainer, epochs, seed, ctx) -> list:
    if epochs <= 0:
        return []
    return fit(model, (task.x_train, task.y_train), _train_cfg(cfg, epochs), loss_fn=trainer.loss, hooks=[trainer],
               params=_child_params(model), seed=seed, device=ctx.device, progress=ctx.progress)


def _histogram(model, x, top: int = 20) -> dict:
    with torch.no_grad():
        arch = model.assemble(x["history"])
    counts = Counter(format_expression(a) for a in arch)
    return {"distinct": len(counts), "rows": len(arch), "top": dict(counts.most_common(top))}


def _val_reward(model, task: Task, arch_fn=None, n: int | None = None) -> float:
    x, y = task.x_val, task.y_val
    if n is not None:
        x, y = take(x, slice(0, n)), y[:n]
    with torch.no_grad():
        arch = arch_fn(len(y)) if arch_fn else None
        return float(row_rewards(model(x, arch), y).mean())


class ControllerSteps:
    """REINFORCE on validation rows, run after each search epoch (see the module docstring)."""

    def __init__(self, model, task: Task, cfg: ManasConfig, seed: int, search_epochs: int):
        self.model, self.task, self.cfg, self.search_epochs = model, task, cfg, search_epochs
        self.ctrl = model.controller
        self.opt = torch.optim.Adam(self.ctrl.parameters(), lr=cfg.controller_lr, betas=(0.0, 0.999), eps=1e-3)
        self.gen = torch.Generator().manual_seed(seed + 104729)
        self.baseline = None
        self.trace: list = []

    def __call__(self, epoch: int) -> dict:
        if epoch >= self.search_epochs or not self.cfg.controller_steps:
            return {}
        self.model.eval()
        xv, yv = self.task.x_val, self.task.y_val
        stats = []
        for _ in range(self.cfg.controller_steps):
            idx = torch.randperm(len(yv), generator=self.gen)[: self.cfg.controller_batch]
            xb, yb = take(xv, idx), yv[idx]
            arch, logp, ent = self.ctrl.sample(xb["history"], generator=self.gen)
            with torch.no_grad():
                r = row_rewards(self.model(xb, arch), yb)
            r = r if self.cfg.reward == "example" else r.mean().expand_as(r)
            mean = float(r.mean())
            self.baseline = mean if self.baseline is None else (
                self.cfg.baseline_decay * self.baseline + (1 - self.cfg.baseline_decay) * mean)
            loss = -((r - self.baseline) * logp).mean() - self.cfg.entropy_weight * ent.mean()
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.ctrl.parameters(), 5.0)
            self.opt.step()
            stats.append((mean, float(ent.detach().mean())))
        self.model.train()
        rec = {"epoch": epoch + 1, "reward": sum(s[0] for s in stats) / len(stats),
               "entropy": sum(s[1] for s in stats) / len(stats), "baseline": self.baseline}
        self.trace.append(rec)
        return {"controller_reward": rec["reward"], "controller_entropy": rec["entropy"]}


@METHODS.register("manas", config=ManasConfig, family="search", task_kind="ranking", child_model="logic",
                  tiny={**TINY, "controller_steps": 1, "controller_batch": 16})
def manas(parent, task, cfg: ManasConfig, ctx):
    """MANAS: an LSTM controller assembles logic modules into a different expression for each input."""
    _check_task(task, "manas")
    torch.manual_seed(ctx.seed)
    model = _logic_model(cfg, task, assembly="controller", controller_hidden=cfg.controller_hidden,
                         max_steps=cfg.max_steps, tanh_constant=cfg.tanh_constant)
    steps = ControllerSteps(model, task, cfg, ctx.seed, cfg.search_epochs)

    def sample(history, gen):
        with torch.no_grad():
            return model.controller.sample(history, generator=gen)[0]

    start = time.perf_counter()
    trainer = ChildTrainer(model, task, cfg, sample, ctx.seed, after_epoch=steps)
    history = _fit(model, task, cfg, trainer, cfg.search_epochs, ctx.seed, ctx)
    history += _fit(model, task, cfg, ChildTrainer(model, task, cfg, sample, ctx.seed + 1), cfg.final_epochs,
                    ctx.seed + 1, ctx)
    extra = {"expressions": _histogram(model, task.x_test), "controller": {
        "weights": "model.safetensors, keys controller.*", "trace": steps.trace,
        "parameters": sum(p.numel() for p in model.controller.parameters())},
        "wall_time_s": time.perf_counter() - start, "task_note": task.meta.get("note")}
    return make_child(model, "manas", cfg, ctx, parent, task, history=history, extra=extra)


def _chain(n: int, steps: int, op: str, neg: bool = False) -> str:
    t = "~" if neg else ""
    parts = [f"{op}({t}0,{t}1)"] + [f"{op}({n + s - 1},{t}{s + 1})" for s in range(1, steps)]
    return ";".join(parts)


@METHODS.register("static_logic", config=StaticLogicConfig, family="search", task_kind="ranking", child_model="logic",
                  tiny={**TINY, "candidates": 2})
def static_logic(parent, task, cfg: StaticLogicConfig, ctx):
    """One global logic expression for every input: the best fixed one on validation, or NCR's form."""
    _check_task(task, "static_logic")
    torch.manual_seed(ctx.seed)
    n = task.input_shape[2]
    steps = min(n - 1, 10)
    start = time.perf_counter()
    if cfg.form == "ncr":
        expr = _chain(n, steps, "OR", neg=True)
        model = _logic_model(cfg, task, assembly="static", expression=expr, negate_expression=False)
        arch = parse_expression(expr, n)
        trainer = ChildTrainer(model, task, cfg, lambda h, g: arch.expand(len(h), -1, -1), ctx.seed)
        history = _fit(model, task, cfg, trainer, cfg.search_epochs + cfg.final_epochs, ctx.seed, ctx)
        extra = {"expression": expr, "form": "ncr"}
    else:
        shared = _logic_model(cfg, task, assembly="random")
        history = _fit(shared, task, cfg, ChildTrainer(shared, task, cfg, lambda h, g: uniform_architectures(
            len(h), n, steps, g), ctx.seed), cfg.search_epochs, ctx.seed, ctx)
        gen = torch.Generator().manual_seed(ctx.seed + 31)
        pool = [_chain(n, steps, "AND"), _chain(n, steps, "OR")]
        pool += [format_expression(a) for a in uniform_architectures(cfg.candidates, n, steps, gen)]
        pool = list(dict.fromkeys(pool))
        shared.eval()
        scored = []
        for e in pool:
            a = parse_expression(e, n)
            scored.append({"expression": e, "val_reward": _val_reward(shared, task, lambda b, a=a: a.expand(b, -1, -1))})
        best = max(scored, key=lambda c: c["val_reward"])["expression"]
        model = _logic_model(cfg, task, assembly="static", expression=best)
        model.load_state_dict(shared.state_dict(), strict=False)  # warm start from the shared modules
        arch = parse_expression(best, n)
        trainer = ChildTrainer(model, task, cfg, lambda h, g: arch.expand(len(h), -1, -1), ctx.seed + 1)
        history += _fit(model, task, cfg, trainer, cfg.final_epochs, ctx.seed + 1, ctx)
        extra = {"expression": best, "form": "search", "candidates": sorted(scored, key=lambda c: -c["val_reward"])}
    extra["wall_time_s"] = time.perf_counter() - start
    return make_child(model, "static_logic", cfg, ctx, parent, task, history=history, extra=extra)


@METHODS.register("random_assembly", config=LogicSearchConfig, family="search", task_kind="ranking", tiny=TINY,
                  child_model="logic")
def random_assembly(parent, task, cfg: LogicSearchConfig, ctx):
    """Per-input expressions sampled uniformly (fresh each epoch; at inference from a fixed generator)."""
    _check_task(task, "random_assembly")
    torch.manual_seed(ctx.seed)
    n = task.input_shape[2]
    model = _logic_model(cfg, task, assembly="random")
    trainer = ChildTrainer(model, task, cfg, lambda h, g: uniform_architectures(len(h), n, model.steps, g), ctx.seed)
    history = _fit(model, task, cfg, trainer, cfg.search_epochs + cfg.final_epochs, ctx.seed, ctx)
    return make_child(model, "random_assembly", cfg, ctx, parent, task, history=history,
                      extra={"expressions": _histogram(model, task.x_test)})


@METHODS.register("bpr_mf", config=BprMfMethodConfig, family="search", task_kind="ranking", child_model="bpr_mf",
                  tiny={"epochs": 1, "dim": 8})
def bpr_mf(parent, task, cfg: BprMfMethodConfig, ctx):
    """Plain BPR matrix factorisation (Rendle et al. 2009) with the same negatives, from scratch."""
    _check_task(task, "bpr_mf")
    torch.manual_seed(ctx.seed)
    model = build_model({"name": "bpr_mf", "dim": cfg.dim}, task.input_shape, task.num_classes)
    trainer = ChildTrainer(model, task, cfg, lambda h, g: None, ctx.seed)
    history = fit(model, (task.x_train, task.y_train), _train_cfg(cfg, cfg.epochs), loss_fn=trainer.loss,
                  hooks=[trainer], seed=ctx.seed, device=ctx.device, progress=ctx.progress)
    return make_child(model, "bpr_mf", cfg, ctx, parent, task, history=history)
