"""The user's own data: an ``.npz`` of arrays or a ``.csv`` table.

``.npz`` keys: ``x_train``, ``y_train``, ``x_test``, ``y_test`` and optionally ``x_val``, ``y_val``
(otherwise validation is carved from train). ``.csv``: numeric feature columns and a label column
(``label`` by default); a fixed ``test_fraction`` becomes the test split.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch
from pydantic import Field

from ..errors import DataError
from ..registry import TASKS
from .base import Task, TaskConfig, check_labels, make_task

__all__ = ["ArraysConfig", "arrays"]

REQUIRED = ("x_train", "y_train", "x_test", "y_test")


class ArraysConfig(TaskConfig):
    path: str = Field(description="path to a .npz (x_train, y_train, x_test, y_test[, x_val, y_val]) or a .csv")
    num_classes: int | None = Field(None, ge=2, description="number of classes (default: max label + 1)")
    label_column: str = Field("label", description="csv only: name of the label column")
    test_fraction: float = Field(0.2, gt=0.0, lt=1.0, description="csv only: fraction held out as test")


def _load_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except (zipfile.BadZipFile, OSError, ValueError) as err:
        raise DataError(f"{path} is not a readable .npz file of arrays ({err})") from None
    missing = [k for k in REQUIRED if k not in data]
    if ("x_val" in data) != ("y_val" in data):
        missing.append("y_val" if "x_val" in data else "x_val")
    if missing:
        raise DataError(f"{path} is missing arrays {missing}; it has {sorted(data)} (needs {list(REQUIRED)})")
    for split in ("train", "val", "test"):
        if f"x_{split}" in data and len(data[f"x_{split}"]) != len(data[f"y_{split}"]):
            raise DataError(
                f"{path}: x_{split} has {len(data[f'x_{split}'])} rows but y_{split} has {len(data[f'y_{split}'])}"
            )
        if f"x_{split}" in data and len(data[f"x_{split}"]) == 0:
            raise DataError(f"{path}: x_{split} is empty")
    return data


def _load_csv(path: Path, cfg: ArraysConfig) -> dict[str, np.ndarray]:
    import csv

    from sklearn.model_selection import train_test_split

    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    if len(rows) < 3:
        raise DataError(f"{path}: expected a header and at least two rows")
    header, body = rows[0], rows[1:]
    if cfg.label_column not in header:
        raise DataError(f"{path}: no '{cfg.label_column}' column (columns: {header}); set task.label_column")
    li = header.index(cfg.label_column)
    try:
        arr = np.array([[float(v) for v in r] for r in body], dtype=np.float64)
    except ValueError as err:
        raise DataError(f"{path}: every column must be numeric ({err})") from None
    y, x = arr[:, li], np.delete(arr, li, axis=1).astype(np.float32)
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=cfg.test_fraction, random_state=0)
    return {"x_train": xtr, "y_train": ytr, "x_test": xte, "y_test": yte}


def _check_arrays(data: dict[str, np.ndarray], path: Path) -> None:
    """Numeric, finite inputs; integer labels; images channels-first — each a sentence, not a traceback."""
    for key, a in data.items():
        if key.startswith("y_"):
            if not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)
                    or np.issubdtype(a.dtype, np.bool_)):
                raise DataError(f"{path}: {key} must hold integer class labels 0..K-1 (got dtype {a.dtype}, values "
                                f"like {a.ravel()[:3].tolist()}); map them to integers first")
            continue
        if not (np.issubdtype(a.dtype, np.number) or np.issubdtype(a.dtype, np.bool_)):
            raise DataError(f"{path}: {key} must be numeric (got dtype {a.dtype})")
        bad = int(a.size - np.isfinite(a).sum())
        if bad:
            raise DataError(f"{path}: {key} has {bad} NaN or infinite values; clean or impute them first")
        if a.ndim == 4 and a.shape[-1] in (1, 3, 4) and a.shape[1] not in (1, 3, 4):
            raise DataError(f"{path}: {key} has shape {a.shape}, which looks channels-last (N, H, W, C); childnet "
                            "expects images as (N, C, H, W): save x.transpose(0, 3, 1, 2)")


@TASKS.register("arrays", config=ArraysConfig)
def arrays(cfg: ArraysConfig, spec: dict) -> Task:
    """Your own data from an .npz (x_train, y_train, x_test, y_test[, x_val, y_val]) or a .csv."""
    path = Path(cfg.path).expanduser()
    if not path.exists():
        raise DataError(f"task.path: file not found: {path}")
    if path.suffix == ".npz":
        data = _load_npz(path)
    elif path.suffix == ".csv":
        data = _load_csv(path, cfg)
    else:
        raise DataError(f"task.path: expected a .npz or .csv file (got '{path.suffix or path.name}')")
    _check_arrays(data, path)
    ys = [data[k] for k in ("y_train", "y_val", "y_test") if k in data]
    num_classes = cfg.num_classes or int(max(np.max(y) for y in ys)) + 1
    if num_classes < 2:
        raise DataError(f"{path}: every label is {int(np.max(data['y_train']))}; a classifier needs at least 2 classes")
    if not cfg.num_classes:
        unseen = sorted(set(np.unique(np.concatenate([y.ravel() for y in ys[1:]])).tolist())
                        - set(np.unique(data["y_train"]).tolist())) if len(ys) > 1 else []
        if unseen:
            raise DataError(f"{path}: labels {unseen[:5]} occur in the validation/test labels but never in y_train; "
                            "check the files, or set task.num_classes to allow classes absent from training")
    x_train = data["x_train"].astype(np.float32)
    if x_train.ndim == 3:  # (N, H, W) images: add the channel axis
        x_train, data["x_test"] = x_train[:, None], data["x_test"][:, None]
        if "x_val" in data:
            data["x_val"] = data["x_val"][:, None]
    if data["x_test"].shape[1:] != x_train.shape[1:]:
        raise DataError(f"{path}: x_test rows have shape {data['x_test'].shape[1:]}, x_train {x_train.shape[1:]}")
    if "x_val" not in data:
        return make_task("arrays", spec, cfg, x_train, data["y_train"], data["x_test"].astype(np.float32),
                         data["y_test"], num_classes, kind="image" if x_train.ndim == 4 else "tabular")
    f32 = lambda a: torch.as_tensor(np.asarray(a, dtype=np.float32))  # noqa: E731
    lab = lambda a, w: torch.as_tensor(check_labels(a, num_classes, f"{path} {w}"))  # noqa: E731
    return Task("arrays", f32(x_train), lab(data["y_train"], "y_train"), f32(data["x_val"]),
                lab(data["y_val"], "y_val"), f32(data["x_test"]), lab(data["y_test"], "y_test"),
                num_classes, tuple(x_train.shape[1:]), "image" if x_train.ndim == 4 else "tabular", spec)
