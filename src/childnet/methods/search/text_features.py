"""Text representations of a task, fitted and computed once, cached on disk by content hash.

A child of the text search (:mod:`childnet.models.text_child`) is a small MLP on a frozen representation;
computing the representation is the expensive part (MiniLM runs a 6-layer transformer over every text),
so it is done once per (task contents, representation) and stored under
``<cache>/text-features/<hash>/`` (``features.safetensors``: the train / val / test features;
``module.safetensors`` + ``meta.json``: the fitted representation, so the final child can embed it).
The hash covers the tokens and labels of every split and the representation's options, so a change of
data or of options never reuses stale features. A second search on the same task reads the file.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ...checkpoint import load_tensors, save_tensors
from ...config import stable_hash
from ...errors import ConfigError
from ...models.text_child import SPECIAL_IDS, build_representation
from ...tasks.base import Task, num_examples, take, tensors_hash

__all__ = ["TaskFeatures", "task_features", "content_hash", "representation_kinds"]

VOCAB_SIZE = 30522  # BERT-uncased WordPiece vocabulary of all-MiniLM-L6-v2
_MEMORY: dict[str, "TaskFeatures"] = {}


@dataclass
class TaskFeatures:
    """The features of every split under one representation, and the fitted representation."""

    spec: dict
    state: dict
    x_train: torch.Tensor
    x_val: torch.Tensor
    x_test: torch.Tensor
    seconds: float = 0.0
    from_cache: bool = False

    def module(self) -> torch.nn.Module:
        m = build_representation(self.spec)
        if self.state:
            m.load_state_dict(self.state, strict=False)
        return m.eval()


def representation_kinds(task: Task) -> tuple[str, ...]:
    """The representations a task's inputs allow."""
    return ("minilm", "tfidf_svd", "hashed_bow") if task.kind == "text" else ("raw",)


def content_hash(task: Task) -> str:
    """sha256 of the inputs and labels of every split (16 hex digits)."""
    return tensors_hash(part for s in ("train", "val", "test") for part in task.split(s))


def _doc_term_matrix(x: dict):
    """Sparse counts of WordPiece ids per text (special tokens and padding left out)."""
    import scipy.sparse as sp

    ids = x["input_ids"].numpy()
    mask = x["attention_mask"].numpy().astype(bool) & ~np.isin(ids, SPECIAL_IDS)
    rows = np.repeat(np.arange(ids.shape[0]), mask.sum(1))
    return sp.csr_matrix((np.ones(len(rows), np.float32), (rows, ids[mask])), shape=(ids.shape[0], VOCAB_SIZE))


def _fit_tfidf_svd(x_train: dict, dim: int, seed: int = 0) -> tuple[dict, dict]:
    """Smooth idf and an L2-normalised TF-IDF of the training texts; truncated SVD (LSA) of it."""
    from sklearn.decomposition import TruncatedSVD
    from sklearn.preprocessing import normalize

    counts = _doc_term_matrix(x_train)
    used = np.flatnonzero(np.asarray(counts.sum(0)).ravel() > 0)
    counts = counts[:, used]
    n = counts.shape[0]
    df = np.asarray((counts > 0).sum(0)).ravel()
    idf = np.log((1 + n) / (1 + df)) + 1.0
    tfidf = normalize(counts.multiply(idf[None, :]).tocsr())
    k = max(1, min(dim, len(used) - 1, n - 1))
    svd = TruncatedSVD(n_components=k, random_state=seed).fit(tfidf)
    index = torch.zeros(VOCAB_SIZE, dtype=torch.long)
    index[torch.as_tensor(used)] = torch.arange(1, len(used) + 1)
    state = {"index": index, "idf": torch.as_tensor(idf, dtype=torch.float32),
             "components": torch.as_tensor(svd.components_, dtype=torch.float32)}
    return {"kind": "tfidf_svd", "vocab_size": VOCAB_SIZE, "used": len(used), "dim": k}, state


def _fit(kind: str, task: Task, options: dict) -> tuple[dict, dict]:
    if kind == "tfidf_svd":
        return _fit_tfidf_svd(task.x_train, options["svd_dim"])
    if kind == "hashed_bow":
        return {"kind": "hashed_bow", "vocab_size": VOCAB_SIZE, "dim": options["hash_dim"]}, {}
    if kind == "minilm":
        return {"kind": "minilm"}, {}
    x = task.x_train.flatten(1).float()
    std = x.std(0)
    state = {"mean": x.mean(0), "std": torch.where(std > 1e-6, std, torch.ones_like(std))}
    return {"kind": "raw", "dim": x.shape[1]}, state


@torch.no_grad()
def _apply(module: torch.nn.Module, x, batch: int) -> torch.Tensor:
    out = [module(take(x, slice(i, i + batch))) for i in range(0, num_examples(x), batch)]
    return torch.cat(out).float().contiguous()


def task_features(task: Task, kind: str, options: dict, cache: Path | None = None) -> TaskFeatures:
    """Fit representation ``kind`` on ``task`` and compute every split once (memory, then disk cache).

    Args:
        task: the task (text: MiniLM token ids; numeric: ``raw``).
        kind: minilm | tfidf_svd | hashed_bow | raw.
        options: ``svd_dim``, ``hash_dim`` (sizes of the cheap representations).
        cache: cache root (default: the childnet cache folder); None and no env: ~/.cache/childnet.
    """
    import time

    from ...parent import cache_dir

    allowed = representation_kinds(task)
    if kind not in allowed:
        raise ConfigError(f"representations: '{kind}' does not fit task '{task.name}' ({task.kind} inputs; "
                          f"it allows: {', '.join(allowed)})")
    relevant = {"svd_dim": options.get("svd_dim")} if kind == "tfidf_svd" else (
        {"hash_dim": options.get("hash_dim")} if kind == "hashed_bow" else {})
    key = stable_hash({"data": content_hash(task), "kind": kind, **relevant, "version": 1})
    if key in _MEMORY:
        return _MEMORY[key]
    folder = (cache or cache_dir()) / "text-features" / key
    start = time.perf_counter()
    if (folder / "features.safetensors").exists():
        feats = load_tensors(folder / "features.safetensors")
        state = load_tensors(folder / "module.safetensors") if (folder / "module.safetensors").exists() else {}
        spec = json.loads((folder / "meta.json").read_text())["spec"]
        out = TaskFeatures(spec, state, feats["train"], feats["val"], feats["test"], time.perf_counter() - start, True)
    else:
        spec, state = _fit(kind, task, options)
        module = build_representation(spec)
        if state:
            module.load_state_dict(state, strict=False)
        module.eval()
        batch = 64 if kind == "minilm" else 512
        splits = {s: _apply(module, task.split(s)[0], batch) for s in ("train", "val", "test")}
        out = TaskFeatures(spec, state, splits["train"], splits["val"], splits["test"], time.perf_counter() - start)
        _write(folder, splits, state, spec, task)
    _MEMORY[key] = out
    return out


def _write(folder: Path, splits: dict, state: dict, spec: dict, task: Task) -> None:
    """Write the cache folder atomically; a read-only cache only costs recomputation."""
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".tmp-"))
        save_tensors(splits, tmp / "features.safetensors")
        if state:
            save_tensors(state, tmp / "module.safetensors")
        (tmp / "meta.json").write_text(json.dumps({"spec": spec, "task": task.spec}, default=str))
        if folder.exists():
            shutil.rmtree(tmp)
        else:
            os.replace(tmp, folder)
    except OSError as err:
        import warnings

        warnings.warn(f"could not write the text-feature cache at {folder}: {err}", stacklevel=2)


def clear_memory() -> None:
    """Forget the in-process copies (the disk cache stays); used by the cache benchmark and tests."""
    _MEMORY.clear()
