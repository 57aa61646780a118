"""The Task: train / val / test splits of real data, with its input spec and class count."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Union

import numpy as np
import torch
from pydantic import Field

from .._base import Config, Seed, stable_hash, validate_entry
from ..errors import ConfigError, DataError
from ..registry import TASKS

__all__ = ["Task", "TaskConfig", "Inputs", "load_task", "take", "num_examples", "split_train_val"]

#: Inputs are a tensor (images, tabular) or a dict of tensors (tokenised text).
Inputs = Union[torch.Tensor, dict]


def take(x: Inputs, idx) -> Inputs:
    """Index a batch out of a tensor or a dict of tensors."""
    if isinstance(x, dict):
        return {k: v[idx] for k, v in x.items()}
    return x[idx]


def num_examples(x: Inputs) -> int:
    return len(next(iter(x.values()))) if isinstance(x, dict) else len(x)


def to_device(x: Inputs, device) -> Inputs:
    if isinstance(x, dict):
        return {k: v.to(device) for k, v in x.items()}
    return x.to(device)


class TaskConfig(Config):
    """Options every task shares."""

    val_fraction: float = Field(0.15, gt=0.0, lt=1.0, description="fraction of train held out for validation")
    split_seed: Seed = Field(0, description="seed of the train/val carve (and of n_train subsets), 0 … 2³²−1")
    n_train: int | None = Field(None, ge=1, description="use only this many training examples (low-resource)")


@dataclass
class Task:
    """Splits of one labelled dataset.

    Attributes:
        name: registry name.
        x_train, y_train, x_val, y_val, x_test, y_test: tensors (``x`` may be a dict for text).
        num_classes: number of classes; labels are in ``[0, num_classes)``.
        input_shape: shape of one example (``(C, H, W)``, ``(D,)``, or ``()`` for text).
        kind: ``image`` | ``tabular`` | ``text``.
        spec: the task spec it was built from (for lineage and caching).
    """

    name: str
    x_train: Inputs
    y_train: torch.Tensor
    x_val: Inputs
    y_val: torch.Tensor
    x_test: Inputs
    y_test: torch.Tensor
    num_classes: int
    input_shape: tuple
    kind: str = "image"
    spec: dict = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def split(self, which: str) -> tuple[Inputs, torch.Tensor]:
        if which not in ("train", "val", "test"):
            raise ValueError(f"split must be train, val or test (got {which!r})")
        return getattr(self, f"x_{which}"), getattr(self, f"y_{which}")

    @property
    def fingerprint(self) -> str:
        return stable_hash(self.spec)

    def example_input(self, batch: int = 1) -> Inputs:
        return take(self.x_test, slice(0, batch))

    def __repr__(self) -> str:
        n = [num_examples(getattr(self, f"x_{s}")) for s in ("train", "val", "test")]
        return f"Task({self.name!r}, train/val/test={n[0]}/{n[1]}/{n[2]}, classes={self.num_classes}, input={self.input_shape})"


def data_fingerprint(task: "Task") -> str:
    """A content hash of the splits a parent learns from (train and validation), so that a parent cached
    for a data file is not reused once the file's contents change."""
    import hashlib

    h = hashlib.sha256()

    def feed(x) -> None:
        if isinstance(x, dict):
            for k in sorted(x):
                h.update(k.encode())
                feed(x[k])
        else:
            t = torch.as_tensor(x).detach().cpu().contiguous()
            h.update(str((t.dtype, tuple(t.shape))).encode())
            h.update(t.numpy().tobytes())

    for x in (task.x_train, task.y_train, task.x_val, task.y_val):
        feed(x)
    return h.hexdigest()[:16]


def check_labels(y: np.ndarray, num_classes: int, where: str) -> np.ndarray:
    """Labels must be integers in [0, num_classes)."""
    y = np.asarray(y)
    if y.ndim != 1:
        raise DataError(f"{where}: labels must be a 1-D array (got shape {y.shape})")
    if y.size and not np.all(np.equal(np.mod(y, 1), 0)):
        raise DataError(f"{where}: labels must be integers (got {y.dtype} values like {y[:3].tolist()})")
    y = y.astype(np.int64)
    bad = (y < 0) | (y >= num_classes)
    if bad.any():
        raise DataError(
            f"{where}: {int(bad.sum())} labels outside the class range [0, {num_classes}) "
            f"(e.g. {sorted(set(y[bad].tolist()))[:5]})"
        )
    return y


def split_train_val(x, y, cfg: TaskConfig, stratify: bool = True):
    """Carve validation from train, deterministically by ``cfg.split_seed``; then apply ``n_train``."""
    from sklearn.model_selection import train_test_split

    n = len(y)
    idx = np.arange(n)
    strat = y if stratify and np.bincount(y).min() >= 2 else None
    try:
        tr, va = train_test_split(idx, test_size=cfg.val_fraction, random_state=cfg.split_seed, stratify=strat)
    except ValueError:
        tr, va = train_test_split(idx, test_size=cfg.val_fraction, random_state=cfg.split_seed)
    if cfg.n_train is not None:
        if cfg.n_train > len(tr):
            raise ConfigError(
                f"task.n_train: {cfg.n_train} is larger than the {len(tr)} training examples available "
                f"after holding out validation"
            )
        rng = np.random.default_rng(cfg.split_seed)
        tr = np.sort(rng.choice(tr, size=cfg.n_train, replace=False))
    return tr, va


def make_task(name, spec, cfg: TaskConfig, x, y, x_test, y_test, num_classes, kind="image", meta=None) -> Task:
    """Build a Task from numpy arrays: carve validation, convert to tensors."""
    y = check_labels(y, num_classes, f"task '{name}' train labels")
    y_test = check_labels(y_test, num_classes, f"task '{name}' test labels")
    tr, va = split_train_val(x, y, cfg)
    as_x = lambda a: torch.as_tensor(np.ascontiguousarray(a), dtype=torch.float32)  # noqa: E731
    as_y = lambda a: torch.as_tensor(a, dtype=torch.long)  # noqa: E731
    return Task(
        name=name,
        x_train=as_x(x[tr]), y_train=as_y(y[tr]),
        x_val=as_x(x[va]), y_val=as_y(y[va]),
        x_test=as_x(x_test), y_test=as_y(y_test),
        num_classes=num_classes, input_shape=tuple(x.shape[1:]), kind=kind, spec=spec, meta=meta or {},
    )


def load_task(spec: dict | str) -> Task:
    """Build a registered task from its spec, e.g. ``{"name": "digits", "n_train": 300}``."""
    spec = {"name": spec} if isinstance(spec, str) else dict(spec)
    problems: list[str] = []
    res = validate_entry(TASKS, spec, "task", problems)
    if problems:
        raise ConfigError(problems)
    name, cfg = res
    return TASKS.get(name).fn(cfg, spec)
