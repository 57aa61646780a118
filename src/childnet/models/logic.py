"""Ranking models: MANAS's logic child (modules assembled per input) and plain BPR matrix factorisation.

Both take a ranking task's inputs ``{"user", "history", "candidates"}`` (tasks/sequences.py) and
return one score per candidate. ``input_shape`` is ``(num_users, num_items, history_length)``.

The logic child (Chen, Li, Zhu, Zhang, CIKM 2022, arXiv 2208.11083, section 3; TalonCB/MANAS
``logic_module.py``): item embeddings (d = 64), NOT (d → d), AND and OR (2d → d), each
Linear–LeakyReLU–Linear, weights N(0, 0.01); a fixed random unit TRUE vector (uniform [0, 0.1]
entries, normalised). An *architecture* is a list of steps ``(op, left, right, neg_left, neg_right)``
over anchors — the history items, then each step's output — and the expression's value is the last
step's output. A candidate scores ``10 · cos(OR(NOT(expr), e_c), TRUE)``: "the history implies c".

Evaluating a batch with a different architecture per row: :func:`run_steps` works step by step and
groups rows by what they do at that step — NOT on the rows that negate an input, AND on the rows
whose step is AND, OR on the rest — so a batch costs a fixed number of module calls whatever the mix
of architectures ("operation-level" grouping). The paper batches rows that share a whole expression
(``grouping="expression"`` here; ``"example"`` runs one row at a time) — benchmarks/manas_speed.py
times all three.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from ..config import Config
from ..errors import ConfigError
from ..registry import MODELS

__all__ = ["LogicConfig", "LogicChild", "BprMfConfig", "BprMF", "parse_expression", "format_expression",
           "run_steps"]

AND, OR = 0, 1


def _mlp(d_in: int, d: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, d), nn.LeakyReLU(), nn.Linear(d, d))


def parse_expression(text: str, n_items: int) -> torch.Tensor:
    """``"AND(~0,1);OR(4,~2);AND(5,3)"`` → a (steps, 5) long tensor; anchor i ≥ n_items is step i − n_items."""
    steps = []
    for k, part in enumerate(p.strip() for p in text.split(";") if p.strip()):
        try:
            op, rest = part.split("(", 1)
            a, b = rest.rstrip(")").split(",")
            row = [("AND", "OR").index(op.strip().upper())]
            idx = [int(v.strip().lstrip("~")) for v in (a, b)]
            neg = [int(v.strip().startswith("~")) for v in (a, b)]
        except ValueError:
            raise ConfigError(f"expression: cannot read step {part!r} (expected like 'AND(~0,1)'; steps joined by "
                              "';', '~' negates, anchors are item positions then earlier step outputs)") from None
        if any(i >= n_items + k or i < 0 for i in idx) or idx[0] == idx[1]:
            raise ConfigError(f"expression: step {part!r} must join two different anchors among 0..{n_items + k - 1}")
        steps.append(row + idx + neg)
    if not steps:
        raise ConfigError(f"expression: {text!r} has no steps")
    return torch.tensor(steps, dtype=torch.long)


def format_expression(arch) -> str:
    """The inverse of :func:`parse_expression` for one architecture (a (steps, 5) tensor or list)."""
    rows = arch.tolist() if hasattr(arch, "tolist") else arch
    return ";".join(f"{('AND', 'OR')[o]}({'~' * na}{a},{'~' * nb}{b})" for o, a, b, na, nb in rows)


def run_steps(mod: "LogicChild", leaves: torch.Tensor, arch: torch.Tensor, keep: list | None = None) -> torch.Tensor:
    """Evaluate per-row architectures ``arch`` (B, S, 5) over ``leaves`` (B, n, d), grouped by operation.

    ``keep`` (a list) collects every module input and output for the logic regularisers.
    """
    b = leaves.shape[0]
    anchors = list(leaves.unbind(1))
    rows = torch.arange(b, device=leaves.device)
    out = anchors[0]
    for s in range(arch.shape[1]):
        op, ia, ib, na, nb = arch[:, s].unbind(-1)
        stack = torch.stack(anchors, 1)
        pair = []
        for idx, neg in ((ia, na), (ib, nb)):
            v = stack[rows, idx]
            m = neg.nonzero().squeeze(1)
            if len(m):
                v = v.index_put((m,), mod.NOT(v[m]))
            pair.append(v)
        cat = torch.cat(pair, -1)
        out = torch.zeros_like(pair[0])
        for code, module in ((AND, mod.AND), (OR, mod.OR)):
            m = (op == code).nonzero().squeeze(1)
            if len(m):
                out = out.index_put((m,), module(cat[m]))
        anchors.append(out)
        if keep is not None:
            keep.extend(pair + [out])
    return out


def run_grouped(mod: "LogicChild", leaves: torch.Tensor, arch: torch.Tensor, grouping: str) -> torch.Tensor:
    """The expression outputs with rows grouped as the paper does (``expression``) or one by one (``example``)."""
    if grouping == "operation":
        return run_steps(mod, leaves, arch)
    if grouping == "example":
        return torch.cat([run_steps(mod, leaves[i:i + 1], arch[i:i + 1]) for i in range(len(arch))])
    flat = arch.reshape(len(arch), -1)
    uniq, inv = torch.unique(flat, dim=0, return_inverse=True)
    out = leaves.new_zeros(leaves.shape[0], leaves.shape[2])
    for g in range(len(uniq)):
        m = (inv == g).nonzero().squeeze(1)
        out = out.index_put((m,), run_steps(mod, leaves[m], arch[m[:1]].expand(len(m), -1, -1)))
    return out


class LogicConfig(Config):
    dim: int = Field(64, ge=2, le=1024, description="item embedding size d (MANAS: 64)")
    assembly: Literal["controller", "static", "random"] = Field(
        "controller", description="how each input's expression is chosen at inference: the controller's most "
        "likely one (MANAS), one fixed expression, or uniformly at random (seeded)")
    expression: str | None = Field(None, description="static: the expression, e.g. 'AND(~0,1);OR(4,~2);AND(5,3)'")
    negate_expression: bool = Field(True, description="score OR(NOT(expr), c) (MANAS); false: OR(expr, c) "
                                    "(NCR's form with the negations written into expr)")
    controller_hidden: int = Field(64, ge=4, le=1024, description="controller LSTM size (MANAS: 64)")
    max_steps: int = Field(10, ge=1, le=20, description="controller steps at most (MANAS: 10)")
    tanh_constant: float = Field(1.5, gt=0, description="controller logits C·tanh(l) (MANAS: 1.5)")
    init_std: float | None = Field(0.01, gt=0, description="weights and embeddings N(0, std) (MANAS: 0.01); "
                                   "null: PyTorch's default init (trains deep expressions in far fewer epochs)")
    grouping: Literal["operation", "expression", "example"] = Field(
        "operation", description="how a batch with mixed architectures is evaluated (same result, speed differs)")


class LogicChild(nn.Module):
    """The logic modules, the item embeddings and (for ``assembly: controller``) the assembling controller."""

    def __init__(self, cfg: LogicConfig, num_items: int, history: int):
        super().__init__()
        from ..methods.search.assembly import AssemblyController

        d, self.cfg, self.n = cfg.dim, cfg, history
        self.item = nn.Embedding(num_items, d)
        self.NOT, self.AND, self.OR = _mlp(d, d), _mlp(2 * d, d), _mlp(2 * d, d)
        for m in self.modules() if cfg.init_std else ():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, 0.0, cfg.init_std)
                if getattr(m, "bias", None) is not None:
                    nn.init.normal_(m.bias, 0.0, cfg.init_std)
        self.register_buffer("true", F.normalize(torch.rand(d) * 0.1, dim=0))
        self.steps = min(history - 1, cfg.max_steps)
        if cfg.assembly == "static":
            if not cfg.expression:
                raise ConfigError("expression: assembly 'static' needs an expression, e.g. 'AND(0,1);AND(4,2);AND(5,3)'")
            self.register_buffer("static_arch", parse_expression(cfg.expression, history))
        self.controller = (AssemblyController(num_items, cfg.controller_hidden, self.steps, cfg.tanh_constant)
                           if cfg.assembly == "controller" else None)

    def assemble(self, history: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Each row's architecture (B, S, 5) as this child picks it at inference."""
        b = len(history)
        if self.cfg.assembly == "static":
            return self.static_arch.unsqueeze(0).expand(b, -1, -1)
        if self.cfg.assembly == "random":
            from ..methods.search.assembly import uniform_architectures

            gen = generator or torch.Generator().manual_seed(0)
            return uniform_architectures(b, self.n, self.steps, gen).to(history.device)
        with torch.no_grad():
            return self.controller.sample(history, greedy=True)[0]

    def encode(self, history: torch.Tensor, arch: torch.Tensor, keep: list | None = None) -> torch.Tensor:
        leaves = self.item(history)
        if keep is not None or self.cfg.grouping == "operation":
            return run_steps(self, leaves, arch, keep)
        return run_grouped(self, leaves, arch, self.cfg.grouping)

    def score(self, expr: torch.Tensor, candidates: torch.Tensor, keep: list | None = None) -> torch.Tensor:
        """``10 · cos(OR(NOT(expr), e_c), TRUE)`` for each candidate c: (B, d), (B, C) → (B, C)."""
        e = self.item(candidates)
        lhs = self.NOT(expr) if self.cfg.negate_expression else expr
        v = self.OR(torch.cat([lhs.unsqueeze(1).expand_as(e), e], -1))
        if keep is not None:
            keep.extend([e.reshape(-1, e.shape[-1]), v.reshape(-1, v.shape[-1])])
        return 10.0 * F.cosine_similarity(v, self.true.expand_as(v), dim=-1)

    def forward(self, x: dict, arch: torch.Tensor | None = None) -> torch.Tensor:
        arch = self.assemble(x["history"]) if arch is None else arch
        return self.score(self.encode(x["history"], arch), x["candidates"])

    def logic_regularizer(self, vectors: torch.Tensor) -> torch.Tensor:
        """MANAS/NCR logic rules as 1 − cos terms: ¬¬x = x, ¬x ≠ x, x∨T = T, x∨F = x, x∨x = x, x∨¬x = T, T ≠ F."""
        t = self.true.unsqueeze(0)
        f = self.NOT(t)
        cos = lambda a, b: F.cosine_similarity(a, b, dim=-1)  # noqa: E731
        orr = lambda a, b: self.OR(torch.cat([a, b], -1))  # noqa: E731
        nv = self.NOT(vectors)
        tv, fv = t.expand_as(vectors), f.expand_as(vectors)
        terms = [
            1 - cos(self.NOT(f), t).sum(),
            (1 - cos(self.NOT(nv), vectors)).mean(),
            (1 + cos(nv, vectors)).mean(),
            (1 - cos(orr(vectors, tv), tv)).mean(),
            (1 - cos(orr(vectors, fv), vectors)).mean(),
            (1 - cos(orr(vectors, vectors), vectors)).mean(),
            (1 - cos(orr(vectors, nv), tv)).mean(),
            (1 - cos(orr(nv, vectors), tv)).mean(),
            (1 + cos(t, f)).sum(),
        ]
        return sum(terms)


@MODELS.register("logic", config=LogicConfig, inputs="ranking", tiny={"dim": 8})
def logic(cfg: LogicConfig, input_shape: tuple, num_classes: int) -> LogicChild:
    """MANAS's child: logic modules over item embeddings, an expression per input (ranking tasks)."""
    _check_ranking_shape("logic", input_shape)
    return LogicChild(cfg, int(input_shape[1]), int(input_shape[2]))


class BprMfConfig(Config):
    dim: int = Field(64, ge=1, le=1024, description="embedding size of users and items")


class BprMF(nn.Module):
    """Matrix factorisation ⟨p_u, q_i⟩ + b_i (Rendle et al., UAI 2009, trained with BPR by the methods)."""

    def __init__(self, num_users: int, num_items: int, dim: int):
        super().__init__()
        self.user, self.item = nn.Embedding(num_users, dim), nn.Embedding(num_items, dim)
        self.bias = nn.Embedding(num_items, 1)
        for e in (self.user, self.item):
            nn.init.normal_(e.weight, 0.0, 0.01)
        nn.init.zeros_(self.bias.weight)

    def forward(self, x: dict) -> torch.Tensor:
        # (B, C, d) @ (B, d, 1): a batched product, so the MAC counter sees its d multiply-adds per candidate
        u = self.user(x["user"]).unsqueeze(-1)
        return torch.bmm(self.item(x["candidates"]), u).squeeze(-1) + self.bias(x["candidates"]).squeeze(-1)


@MODELS.register("bpr_mf", config=BprMfConfig, inputs="ranking", tiny={"dim": 8})
def bpr_mf(cfg: BprMfConfig, input_shape: tuple, num_classes: int) -> BprMF:
    """BPR matrix factorisation for ranking tasks: user · item + item bias."""
    _check_ranking_shape("bpr_mf", input_shape)
    return BprMF(int(input_shape[0]), int(input_shape[1]), cfg.dim)


def _check_ranking_shape(name: str, input_shape: tuple) -> None:
    if len(input_shape) != 3:
        raise ConfigError(f"model '{name}' needs a ranking task (inputs user/history/candidates; tasks sequences, "
                          f"amazon-*, logic-synthetic); this task's inputs have shape {tuple(input_shape)}")
