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

__all__ = ["Task", "TaskConfig", "Inputs", "load_task", "take", "num_examples", "split_train_val", "encode_labels",
           "tensors_hash",
           "MAX_CLASSES"]

#: More classes than this is refused before a classifier head is allocated (a label of 10^9 would ask for
#: a head of 10^9 rows — tens of GB); a real label set of this size is not a childnet task.
MAX_CLASSES = 100_000

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


def tensors_hash(parts) -> str:
    """A content hash (16 hex digits) of tensors, arrays and dicts of them: dtype, shape and bytes, in order."""
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

    for x in parts:
        feed(x)
    return h.hexdigest()[:16]


def data_fingerprint(task: "Task") -> str:
    """A content hash of the splits a parent learns from (train and validation), so that a parent cached
    for a data file is not reused once the file's contents change."""
    return tensors_hash((task.x_train, task.y_train, task.x_val, task.y_val))


def test_fingerprint(task: "Task") -> str:
    """A content hash of the test split: what a parent's and a child's recorded scores were measured on."""
    return tensors_hash((task.x_test, task.y_test))


def task_data(task: "Task") -> str:
    """A content hash of every split of the task (test included: the units' scores were measured on it)."""
    return tensors_hash((task.x_train, task.y_train, task.x_val, task.y_val, task.x_test, task.y_test))


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


def _label_text(v) -> str:
    return str(v.item() if hasattr(v, "item") else v)


def encode_labels(ys: dict[str, np.ndarray], num_classes: int | None, where: str,
                  ) -> tuple[dict[str, np.ndarray], int, list[str] | None]:
    """Labels of every split as integers ``0..K-1``, the class count, and the class names when mapped.

    Integer labels that are already ``0..K-1`` are kept (``classes`` is ``None``). Anything else — strings,
    1-based or gapped integers, negative integers — is mapped to ``0..K-1`` in sorted order of the
    original values, and the original values are returned as ``classes`` (recorded in every child's
    card as ``extra.classes``, strings or integers as they were) so that nothing silently becomes an extra,
    empty class. Fractional labels
    and class counts above :data:`MAX_CLASSES` are refused with a sentence, before anything is allocated.
    With an explicit ``num_classes`` integer labels must lie in ``[0, num_classes)``.
    """
    kinds = {}
    for key, y in ys.items():
        y = np.asarray(y)
        if y.ndim != 1:
            raise DataError(f"{where} {key}: labels must be a 1-D array (got shape {y.shape})")
        if y.dtype.kind in "USO":
            kinds[key] = "text"
        elif y.dtype.kind in "iub":
            kinds[key] = "int"
        elif y.dtype.kind == "f":
            if y.size and not np.all(np.isfinite(y)):
                raise DataError(f"{where} {key}: {int((~np.isfinite(y)).sum())} labels are NaN or infinite")
            frac = y[np.mod(y, 1) != 0] if y.size else y
            if frac.size:
                raise DataError(f"{where} {key}: class labels must be integers or strings (got fractional values "
                                f"like {sorted(set(frac.tolist()))[:3]}); a classifier needs discrete classes")
            kinds[key] = "int"
        else:
            raise DataError(f"{where} {key}: class labels must be integers or strings (got dtype {y.dtype})")
    if len(set(kinds.values())) > 1:
        raise DataError(f"{where}: the label arrays mix strings and numbers ({', '.join(f'{k}: {v}' for k, v in kinds.items())}); "
                        "use the same kind of label in every split")
    text = "text" in kinds.values()
    arrays = {k: (np.asarray(y).astype(str) if text else np.asarray(y).astype(np.int64)) for k, y in ys.items()}
    values = np.unique(np.concatenate([a.ravel() for a in arrays.values()]))
    train_key = next(iter(arrays))
    if num_classes is None and len(arrays) > 1:
        unseen = sorted(set(values.tolist()) - set(np.unique(arrays[train_key]).tolist()))
        if unseen:
            raise DataError(f"{where}: labels {unseen[:5]} occur in the validation/test labels but never in "
                            f"{train_key}; check the files, or set task.num_classes to allow classes absent from training")
    if not text and num_classes is not None:
        if num_classes > MAX_CLASSES:
            raise DataError(f"{where}: task.num_classes {num_classes} is more than {MAX_CLASSES:,} classes; "
                            "a classifier head that size is not what you meant")
        return {k: check_labels(a, num_classes, f"{where} {k}") for k, a in arrays.items()}, num_classes, None
    if len(values) > MAX_CLASSES:
        raise DataError(f"{where}: {len(values):,} distinct labels is more than {MAX_CLASSES:,} classes; are the "
                        "labels a regression target or an ID column?")
    identity = not text and values.size and values[0] == 0 and values[-1] == len(values) - 1
    if identity:
        k = int(values[-1]) + 1
        if k < 2:
            raise DataError(f"{where}: every label is {_label_text(values[0])}; a classifier needs at least 2 classes")
        return arrays, k, None
    if len(values) < 2:
        raise DataError(f"{where}: every label is {_label_text(values[0]) if len(values) else 'missing'}; "
                        "a classifier needs at least 2 classes")
    if num_classes is not None and len(values) > num_classes:
        raise DataError(f"{where}: {len(values)} distinct labels but task.num_classes is {num_classes}")
    if text and num_classes is not None and len(values) < num_classes:
        raise DataError(f"{where}: task.num_classes is {num_classes} but the labels are {len(values)} strings "
                        f"({', '.join(map(str, values[:5]))}{' …' if len(values) > 5 else ''}): a class that never "
                        "occurs has no name to predict; drop num_classes, or use integer labels 0 … "
                        f"{num_classes - 1}")
    mapped = {k: np.searchsorted(values, a).astype(np.int64) for k, a in arrays.items()}
    # the original values, of the original kind: predict answers 1 and 2 for labels 1 and 2, not '1' and '2'
    return mapped, len(values), [str(v) if text else int(v) for v in values]


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
    kinds = len(np.unique(y[tr]))
    if len(tr) < 2 or kinds < 2 or len(va) == 0:
        why = (f"the validation split is empty (val_fraction {cfg.val_fraction} of {n} examples)" if len(va) == 0
               else f"the training split has {len(tr)} example(s) of {kinds} class(es) after holding out "
                    f"validation (val_fraction {cfg.val_fraction}{f', n_train {cfg.n_train}' if cfg.n_train else ''})")
        fix = ("raise n_train, or try another split_seed (n_train draws its examples at random, not per class)"
               if cfg.n_train and len(va) else "lower val_fraction" if len(va) else "raise val_fraction")
        raise ConfigError(f"task: {why}; a classifier needs at least 2 training examples of 2 classes and a "
                          f"validation example — {fix}")
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
    if not isinstance(spec, (str, dict)):
        raise ConfigError(f"task: expected a task name or a mapping such as {{'name': 'digits'}} "
                          f"(got {type(spec).__name__} {spec!r:.60})")
    spec = {"name": spec} if isinstance(spec, str) else dict(spec)
    problems: list[str] = []
    res = validate_entry(TASKS, spec, "task", problems)
    if problems:
        raise ConfigError(problems)
    name, cfg = res
    return TASKS.get(name).fn(cfg, spec)
