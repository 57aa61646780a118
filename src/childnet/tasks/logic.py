"""``logic-synthetic``: a generated ranking task whose right expression differs by input, by construction.

Tokens ``2v + b`` stand for "variable v has value b" (``variables`` variables); an input is 4 tokens of
distinct variables. Inputs of group A use variables from the first half and their label is
``x1 ∧ x2 ∧ x3 ∧ x4``; group B uses the second half and ``x1 ∨ x2 ∨ x3 ∨ x4``. Values are drawn so each
group's label is true half the time (P(x) = 0.5^(1/4) in A, 1 − 0.5^(1/4) in B). The candidates are
two answer tokens, YES and NO (random order); the label is the position of the right one, so the
task's accuracy is HR@1.

Read with exact logic, a single read-once expression (each variable once — what the MANAS
controller builds) computes one Boolean function for both groups, so it is capped below 1 (the best
one is measured by :func:`best_static_accuracy`); choosing AND-chains for A and OR-chains for B per
input is exact. Learned modules are not exact logic, so this is where per-input assembly *should*
help, not a proof that it will.
"""

from __future__ import annotations

import itertools

import numpy as np
import torch
from pydantic import Field

from ..registry import TASKS
from .base import Task, TaskConfig

__all__ = ["LogicSyntheticConfig", "logic_synthetic", "exact_accuracy", "best_static_accuracy"]


class LogicSyntheticConfig(TaskConfig):
    variables: int = Field(16, ge=8, le=1000, description="number of variables (half per group)")
    n_rows: int = Field(3000, ge=100, le=1_000_000, description="training rows (validation and test: a third each)")


def _generate(cfg: LogicSyntheticConfig, n: int, rng):
    half = cfg.variables // 2
    group = rng.integers(0, 2, n)
    var = np.stack([rng.permutation(half)[:4] for _ in range(n)]) + (group[:, None] * half)
    p = np.where(group == 0, 0.5 ** 0.25, 1 - 0.5 ** 0.25)
    val = (rng.random((n, 4)) < p[:, None]).astype(np.int64)
    label = np.where(group == 0, val.all(1), val.any(1)).astype(np.int64)
    tokens = 2 * var + val
    yes, no = 2 * cfg.variables, 2 * cfg.variables + 1
    pos = rng.integers(0, 2, n)
    right = np.where(label == 1, yes, no)
    wrong = np.where(label == 1, no, yes)
    cands = np.where(pos[:, None] == 0, np.stack([right, wrong], 1), np.stack([wrong, right], 1))
    x = {"user": torch.zeros(n, dtype=torch.long), "history": torch.as_tensor(tokens),
         "candidates": torch.as_tensor(cands), "group": torch.as_tensor(group), "values": torch.as_tensor(val)}
    return x, torch.as_tensor(pos)


@TASKS.register("logic-synthetic", config=LogicSyntheticConfig)
def logic_synthetic(cfg: LogicSyntheticConfig, spec: dict) -> Task:
    """Generated logic task: label = AND of 4 variables for one group of inputs, OR for the other."""
    rng = np.random.default_rng(cfg.split_seed)
    n_eval = max(50, cfg.n_rows // 3)
    xtr, ytr = _generate(cfg, cfg.n_train or cfg.n_rows, rng)
    xva, yva = _generate(cfg, n_eval, rng)
    xte, yte = _generate(cfg, n_eval, rng)
    return Task("logic-synthetic", xtr, ytr, xva, yva, xte, yte, num_classes=2,
                input_shape=(1, 2 * cfg.variables + 2, 4), kind="ranking", spec=spec,
                meta={"note": "groups: AND for the first half of the variables, OR for the second"})


def exact_accuracy(arch: list, values: np.ndarray, label: np.ndarray) -> float:
    """Accuracy of one expression (steps ``(op, a, b, neg_a, neg_b)``) read as exact Boolean logic."""
    anchors = [values[:, i].astype(bool) for i in range(values.shape[1])]
    for op, a, b, na, nb in arch:
        u, v = anchors[a] ^ bool(na), anchors[b] ^ bool(nb)
        anchors.append(u & v if op == 0 else u | v)
    return float((anchors[-1] == label.astype(bool)).mean())


def _all_read_once(n: int):
    """Every canonical expression the controller can build over ``n`` items (n − 1 steps)."""
    def rec(free, k, steps):
        if len(free) == 1:
            yield steps
            return
        for a, b in itertools.combinations(sorted(free), 2):
            for op, na, nb in itertools.product((0, 1), (0, 1), (0, 1)):
                yield from rec((free - {a, b}) | {k}, k + 1, steps + [(op, a, b, na, nb)])

    yield from rec(set(range(n)), n, [])


def best_static_accuracy(task: Task, split: str = "test") -> tuple[float, list]:
    """The best single read-once expression's exact accuracy on ``split`` (all of them are tried)."""
    x, y = task.split(split)
    values = x["values"].numpy()
    label = (x["candidates"].gather(1, y[:, None]).squeeze(1) == task.input_shape[1] - 2).numpy()
    best = max(((exact_accuracy(a, values, label), a) for a in _all_read_once(values.shape[1])), key=lambda t: t[0])
    return best
