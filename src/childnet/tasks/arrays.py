"""The user's own data: an ``.npz`` of arrays or a ``.csv`` table.

``.npz`` keys: ``x_train``, ``y_train``, ``x_test``, ``y_test`` and optionally ``x_val``, ``y_val``
(otherwise validation is carved from train). ``.csv``: numeric feature columns and a label column
(``label`` by default); a fixed ``test_fraction`` becomes the test split.

Layouts (``layout: auto`` decides from the array's shape; docs/tasks.md has the table):

- ``(N, F)`` — tabular features (MLP), or one-channel 1-D signals of length F for ``cnn`` / ``resnet``.
- ``(N, C, L)``, ``(N, L, 1)``, ``(N, C, L, 1)``, ``(N, C, 1, L)`` — 1-D sequences, stored as ``(N, C, L)``;
  ``cnn`` and ``resnet`` then use 1-D convolutions.
- ``(N, C, H, W)`` and ``(N, H, W)`` — images (a grey channel is added to ``(N, H, W)``).

A 3-D array ``(N, A, B)`` is read as grey images when it is roughly square (both sides ≥ 4, ratio ≤ 4),
otherwise as ``C = A`` channels of length ``L = B``; ``layout`` overrides the guess.

Labels may be any integers or strings: anything but ``0..K-1`` is mapped to ``0..K-1`` in sorted order and
the original values are kept as the task's ``classes`` (recorded in every child's card).

``standardize`` (default: on for tabular data) subtracts the mean and divides by the standard deviation
of each feature (each channel for images and sequences), both fitted on the training split only; the
statistics are recorded in every child's card (``extra.standardize``) and applied again by
:func:`childnet.predict` to new inputs.
"""

from __future__ import annotations

import csv
import zipfile
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from pydantic import Field

from ..errors import DataError
from ..registry import TASKS
from ._csv import NUMERIC_FIELD_LIMIT, field_limit
from .base import MAX_CLASSES, Task, TaskConfig, encode_labels, split_train_val

__all__ = ["ArraysConfig", "arrays", "apply_standardize"]

REQUIRED = ("x_train", "y_train", "x_test", "y_test")
#: What a file must start with to be an .npz archive (zip local header, or an empty zip).
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")


class ArraysConfig(TaskConfig):
    path: str = Field(description="path to a .npz (x_train, y_train, x_test, y_test[, x_val, y_val]) or a .csv")
    num_classes: int | None = Field(None, ge=2, le=MAX_CLASSES,
                                    description="number of classes (default: the distinct labels)")
    label_column: str = Field("label", description="csv only: name of the label column")
    test_fraction: float = Field(0.2, gt=0.0, lt=1.0, description="csv only: fraction held out as test")
    layout: Literal["auto", "tabular", "sequence", "image"] = Field(
        "auto", description="how to read x: tabular (N, F); sequence (N, C, L) for 1-D convolutions; image "
        "(N, C, H, W); auto guesses from the shape (see docs/tasks.md)")
    standardize: bool | None = Field(
        None, description="subtract the mean and divide by the std of each feature (each channel for "
        "sequences and images), fitted on the training split only and stored with every child; default: on "
        "for tabular data, off otherwise")


def _load_npz(path: Path) -> dict[str, np.ndarray]:
    with open(path, "rb") as fh:
        head = fh.read(8)
    if not head.startswith(_ZIP_MAGIC):
        if head.startswith(b"\x93NUMPY"):
            what = "a single .npy array (np.save)"
        elif head[:1] == b"\x80":
            what = "a Python pickle (never loaded: it could run code)"
        else:
            what = f"not a zip archive (it starts with {head!r})"
        raise DataError(f"{path} is {what}, not an .npz archive; write one with "
                        "np.savez(path, x_train=..., y_train=..., x_test=..., y_test=...)")
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except ValueError as err:
        if "pickle" in str(err):
            raise DataError(f"{path} holds an array of Python objects (saved with pickling), which childnet never "
                            "loads; save numeric arrays, or labels as strings (np.asarray(y, dtype=str))") from None
        raise DataError(f"{path} is not a readable .npz file of arrays ({err})") from None
    except (zipfile.BadZipFile, OSError, EOFError) as err:
        raise DataError(f"{path} is not a readable .npz file of arrays ({err})") from None
    known = {*REQUIRED, "x_val", "y_val"}
    splits = sorted(k[2:] for k in data if k.startswith("x_") and f"y_{k[2:]}" in data and k not in known)
    if splits:  # an x_valid / y_valid pair is a split under another name: dropping it would lose it silently
        raise DataError(f"{path} has the arrays x_{splits[0]} and y_{splits[0]}, which childnet does not read as a "
                        f"split (it reads {list(REQUIRED)} and, for your own validation split, x_val and y_val); "
                        "rename them")
    missing = [k for k in REQUIRED if k not in data]
    if ("x_val" in data) != ("y_val" in data):
        missing.append("y_val" if "x_val" in data else "x_val")
    if missing:
        raise DataError(f"{path} is missing arrays {missing}; it has {sorted(data)} (needs {list(REQUIRED)})")
    for split in ("train", "val", "test"):
        if f"x_{split}" in data and data[f"x_{split}"].ndim == 0:
            raise DataError(f"{path}: x_{split} is a single value, not an array of examples")
        if f"x_{split}" in data and len(data[f"x_{split}"]) != len(data[f"y_{split}"]):
            raise DataError(
                f"{path}: x_{split} has {len(data[f'x_{split}'])} rows but y_{split} has {len(data[f'y_{split}'])}"
            )
        if f"x_{split}" in data and len(data[f"x_{split}"]) == 0:
            raise DataError(f"{path}: x_{split} is empty")
    return data


def _read_csv_rows(path: Path) -> list[list[str]]:
    try:
        with field_limit(NUMERIC_FIELD_LIMIT), open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            try:
                return list(reader)
            except csv.Error as err:
                raise DataError(f"{path} line {reader.line_num}: {err} — a numeric CSV field is never that long; "
                                "look for an unclosed quote") from None
    except UnicodeDecodeError as err:
        raise DataError(f"{path} is not UTF-8 text (byte {err.object[err.start:err.start + 1]!r} at offset "
                        f"{err.start}); re-save it as UTF-8") from None


def _load_csv(path: Path, cfg: ArraysConfig) -> dict[str, np.ndarray]:
    from sklearn.model_selection import train_test_split

    rows = [r for r in _read_csv_rows(path) if r]
    if len(rows) < 3:
        raise DataError(f"{path}: expected a header and at least two rows")
    header, body = rows[0], rows[1:]
    unnamed = [j + 1 for j, h in enumerate(header) if not h.strip() or h.startswith("Unnamed: ")]
    if unnamed:
        raise DataError(f"{path}: column {unnamed[0]} has no name — usually the row index that pandas' to_csv "
                        "writes, which would become a feature (and leak the row order); save with "
                        "to_csv(path, index=False), or name the column if it is a real feature")
    if cfg.label_column not in header:
        raise DataError(f"{path}: no '{cfg.label_column}' column (columns: {header}); set task.label_column")
    ragged = [(i + 2, len(r)) for i, r in enumerate(body) if len(r) != len(header)]
    if ragged:
        line, n = ragged[0]
        raise DataError(f"{path}: line {line} has {n} fields but the header has {len(header)} "
                        f"({len(ragged)} such row(s)); every row needs one value per column")
    li = header.index(cfg.label_column)
    labels = np.asarray([r[li].strip() for r in body])
    empty = np.flatnonzero(labels == "")
    if empty.size:
        raise DataError(f"{path}: line {empty[0] + 2} has no '{cfg.label_column}' ({empty.size} row(s) without a "
                        "label); drop those rows or fill in their labels")
    try:
        numeric = np.asarray([float(v) for v in labels])
        labels = numeric.astype(np.int64) if np.all(np.mod(numeric, 1) == 0) else numeric
    except ValueError:
        pass  # string labels: mapped to classes later
    feats = [[v for j, v in enumerate(r) if j != li] for r in body]
    names = [h for j, h in enumerate(header) if j != li]
    try:
        x = np.array([[float(v) for v in r] for r in feats], dtype=np.float64)
    except ValueError:
        for i, r in enumerate(feats):
            for j, v in enumerate(r):
                try:
                    float(v)
                except ValueError:
                    raise DataError(f"{path}: line {i + 2}, column '{names[j]}' is {v!r}, not a number; every "
                                    f"column but '{cfg.label_column}' must be numeric") from None
        raise
    xtr, xte, ytr, yte = train_test_split(x.astype(np.float32), labels, test_size=cfg.test_fraction, random_state=0)
    return {"x_train": xtr, "y_train": ytr, "x_test": xte, "y_test": yte}


def _check_arrays(data: dict[str, np.ndarray], path: Path) -> None:
    """Numeric, real, finite inputs — each a sentence, not a traceback."""
    for key, a in data.items():
        if key.startswith("y_"):
            if np.iscomplexobj(a):
                raise DataError(f"{path}: {key} is complex-valued; class labels must be integers or strings")
            continue
        if np.iscomplexobj(a):
            raise DataError(f"{path}: {key} is complex-valued ({a.dtype}); childnet needs real inputs — store the "
                            "real and imaginary parts as two channels, e.g. np.stack([x.real, x.imag], axis=1)")
        if not (np.issubdtype(a.dtype, np.number) or np.issubdtype(a.dtype, np.bool_)):
            raise DataError(f"{path}: {key} must be numeric (got dtype {a.dtype})")
        bad = int(a.size - np.isfinite(a).sum())
        if bad:
            raise DataError(f"{path}: {key} has {bad} NaN or infinite values; clean or impute them first")


def _layout(shape: tuple, cfg: ArraysConfig, path: Path) -> str:
    """``tabular`` | ``sequence`` | ``image`` for one example of ``shape`` (see the module docstring)."""
    if cfg.layout != "auto":
        return cfg.layout
    if len(shape) == 1:
        return "tabular"
    if len(shape) == 2:
        a, b = shape
        square = min(a, b) >= 4 and max(a, b) <= 4 * min(a, b)
        if not square and a > b > 1:
            raise DataError(f"{path}: x has examples of shape {shape}: {a} channels of length {b}, or (channels-last) "
                            f"length {a} with {b} channels? childnet reads sequences as (N, C, L): save "
                            "x.transpose(0, 2, 1) if the last axis holds the channels, or set task.layout: sequence "
                            "to read them as they are")
        return "image" if square else "sequence"
    if len(shape) == 3:
        c, h, w = shape
        if w == 1 and min(c, h) >= 4 and max(c, h) <= 4 * min(c, h):
            raise DataError(f"{path}: x has examples of shape {shape}, which looks channels-last (grey images "
                            "(N, H, W, 1)); save x.transpose(0, 3, 1, 2) for images, or set task.layout: sequence if "
                            "these are (N, C, L, 1) signals")
        if h == 1 or w == 1:
            return "sequence"
        if w in (1, 3, 4) and c not in (1, 3, 4):
            raise DataError(f"{path}: x has examples of shape {shape}, which looks channels-last (N, H, W, C); childnet "
                            "expects images as (N, C, H, W): save x.transpose(0, 3, 1, 2)")
        return "image"
    raise DataError(f"{path}: x has examples of shape {shape}; childnet reads (N, F) tables, (N, C, L) sequences "
                    "and (N, C, H, W) images")


def _reshape(x: np.ndarray, layout: str, path: Path) -> np.ndarray:
    """Bring one split into the canonical shape of ``layout``."""
    shape = x.shape[1:]
    if layout == "tabular":
        return x.reshape(len(x), -1)
    if layout == "sequence":
        if len(shape) == 1:
            return x[:, None, :]
        if len(shape) == 2:
            return x.transpose(0, 2, 1) if shape[1] == 1 and shape[0] > 1 else x
        if len(shape) == 3 and 1 in shape[1:]:
            return x.reshape(len(x), shape[0], -1)
        raise DataError(f"{path}: task.layout is sequence but x has examples of shape {shape}; a sequence is (C, L), "
                        "(L,), (L, 1) or (C, L, 1)")
    if len(shape) == 2:
        return x[:, None]
    if len(shape) == 3:
        return x
    raise DataError(f"{path}: task.layout is image but x has examples of shape {shape}; an image is (C, H, W) or (H, W)")


def apply_standardize(x: torch.Tensor, stats: dict) -> torch.Tensor:
    """Apply standardisation statistics recorded by the ``arrays`` task (``task.meta["standardize"]``)."""
    mean = torch.as_tensor(stats["mean"], dtype=x.dtype, device=x.device)
    std = torch.as_tensor(stats["std"], dtype=x.dtype, device=x.device)
    view = (1, -1) + (1,) * (x.dim() - 2)
    return (x - mean.view(view)) / std.view(view)


def _standardize(task: Task) -> dict:
    """Fit per-feature (per-channel) mean and std on the training split; apply them to every split."""
    x = task.x_train
    dims = [0] + list(range(2, x.dim()))
    mean = x.double().mean(dim=dims)
    std = x.double().std(dim=dims, unbiased=False)
    std = torch.where(std > 1e-12, std, torch.ones_like(std))  # a constant feature stays constant (0)
    stats = {"mean": mean.tolist(), "std": std.tolist(), "per": "feature" if x.dim() == 2 else "channel"}
    for split in ("train", "val", "test"):
        setattr(task, f"x_{split}", apply_standardize(getattr(task, f"x_{split}"), stats).float().contiguous())
    return stats


@TASKS.register("arrays", config=ArraysConfig)
def arrays(cfg: ArraysConfig, spec: dict) -> Task:
    """Your own data from an .npz (x_train, y_train, x_test, y_test[, x_val, y_val]) or a .csv."""
    path = Path(cfg.path).expanduser()
    if not path.exists():
        raise DataError(f"task.path: file not found: {path}")
    if path.is_dir():
        raise DataError(f"task.path: {path} is a folder; give a .npz or .csv file")
    if path.suffix == ".npz":
        csv_only = sorted({"label_column", "test_fraction"} & cfg.model_fields_set)
        if csv_only:
            raise DataError(f"task.{csv_only[0]}: applies to .csv files only; {path.name} is an .npz, whose "
                            "labels are y_train / y_test and whose test split is x_test")
        data = _load_npz(path)
    elif path.suffix == ".csv":
        data = _load_csv(path, cfg)
    else:
        raise DataError(f"task.path: expected a .npz or .csv file (got '{path.suffix or path.name}')")
    _check_arrays(data, path)
    splits = [s for s in ("train", "val", "test") if f"x_{s}" in data]
    layout = _layout(data["x_train"].shape[1:], cfg, path)
    xs = {s: _reshape(np.asarray(data[f"x_{s}"], dtype=np.float32), layout, path) for s in splits}
    for s in splits[1:]:
        if xs[s].shape[1:] != xs["train"].shape[1:]:
            raise DataError(f"{path}: x_{s} examples have shape {data[f'x_{s}'].shape[1:]}, x_train "
                            f"{data['x_train'].shape[1:]}")
    ys, num_classes, classes = encode_labels({f"y_{s}": data[f"y_{s}"] for s in splits}, cfg.num_classes, str(path))
    meta: dict = {"layout": layout, "source": str(path)}
    if classes is not None:
        meta["classes"] = classes
    as_x = lambda a: torch.as_tensor(np.ascontiguousarray(a))  # noqa: E731
    as_y = lambda a: torch.as_tensor(a, dtype=torch.long)  # noqa: E731
    if "val" in xs:
        parts = {s: (as_x(xs[s]), as_y(ys[f"y_{s}"])) for s in splits}
    else:
        tr, va = split_train_val(xs["train"], ys["y_train"], cfg)
        parts = {"train": (as_x(xs["train"][tr]), as_y(ys["y_train"][tr])),
                 "val": (as_x(xs["train"][va]), as_y(ys["y_train"][va])),
                 "test": (as_x(xs["test"]), as_y(ys["y_test"]))}
    kind = {"tabular": "tabular", "sequence": "sequence", "image": "image"}[layout]
    task = Task("arrays", *parts["train"], *parts["val"], *parts["test"], num_classes,
                tuple(xs["train"].shape[1:]), kind, spec, meta)
    if cfg.standardize if cfg.standardize is not None else layout == "tabular":
        meta["standardize"] = _standardize(task)
    return task
