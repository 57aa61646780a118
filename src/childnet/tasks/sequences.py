"""Next-item ranking tasks from user sequences: your own file, or the Amazon sets shipped with childnet.

A row is ``uid, iid, sequence``: the user, the next item and the previous items (comma-separated);
any other column (e.g. ``label``) is ignored. Per user, in file order, the last row is the test
example and the one before it validation (leave-last-out, as in the MANAS/NCR setup of Chen et al.
2022, arXiv 2208.11083); users with fewer than ``min_rows`` rows are dropped and counted in
``task.meta``. Validation and test rank the true item against ``num_negatives`` items the user never
touched (neither as target nor in a sequence), sampled once from ``split_seed`` so every method and
seed ranks the same candidates. Training rows carry one such negative (resampled by the methods).

A ranking task's inputs are a dict of integer tensors ``{"user": (N,), "history": (N, L),
"candidates": (N, C)}`` and its labels the position of the true item among the candidates (placed
at a random position, so ties never favour it). ``input_shape`` is ``(num_users, num_items, L)`` —
what a ranking model needs to size its embeddings — and ``num_classes`` is the candidate count.
"""

from __future__ import annotations

import csv
import gzip
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from pydantic import Field, model_validator

from ..errors import ConfigError, DataError
from ..registry import TASKS
from .base import Task, TaskConfig

__all__ = ["SequencesConfig", "AmazonConfig", "sequences", "NegativeSampler", "build_ranking_task"]

REQUIRED_COLUMNS = ("uid", "iid", "sequence")
AMAZON = {"amazon-beauty": "Beauty", "amazon-cellphone": "Cellphone", "amazon-grocery": "Grocery"}


class RankingTaskConfig(TaskConfig):
    num_negatives: int = Field(100, ge=1, description="sampled negatives ranked against the true item (NCR: 100)")
    min_rows: int = Field(3, ge=3, description="users with fewer rows are dropped (train, validation, test need 3)")
    max_users: int | None = Field(None, ge=10, description="keep a random subset of this many users (CPU scale)")
    history: int | None = Field(None, ge=2, le=11, description="items of history kept per row (default: the "
                                "first row's length); rows with fewer are dropped and counted")

    @model_validator(mode="after")
    def _k_fits(self):
        from ..evaluate.ranking import RANKING_KS

        if self.num_negatives + 1 < max(RANKING_KS):
            raise ValueError(f"num_negatives = {self.num_negatives} gives {self.num_negatives + 1} candidates, fewer "
                             f"than k = {max(RANKING_KS)} of the ranking metrics; use at least {max(RANKING_KS) - 1}")
        return self


class SequencesConfig(RankingTaskConfig):
    path: str = Field(description="a .tsv or .csv (optionally .gz) with columns uid, iid, sequence")


class AmazonConfig(RankingTaskConfig):
    pass


def _read_rows(path: Path, where: str) -> tuple[list[str], list[str], list[str]]:
    opener = gzip.open if path.suffix == ".gz" else open
    stem = path.name[:-3] if path.suffix == ".gz" else path.name
    delimiter = "\t" if stem.endswith(".tsv") else ","
    try:
        with opener(path, "rt", newline="", encoding="utf-8-sig") as fh:  # a BOM (Excel's CSV) is not a name
            rows = list(csv.reader(fh, delimiter=delimiter))
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"{where}: cannot read {path} ({err})") from None
    if len(rows) < 2:
        raise DataError(f"{where}: {path} needs a header row and at least one data row")
    header = [h.strip() for h in rows[0]]
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise DataError(f"{where}: {path} has no column {missing} (columns: {header}; needs {list(REQUIRED_COLUMNS)})")
    idx = [header.index(c) for c in REQUIRED_COLUMNS]
    cols: list[list[str]] = [[], [], []]
    for n, r in enumerate(rows[1:], start=2):
        if len(r) > len(header) and not any(v.strip() for v in r[len(header):]):
            r = r[:len(header)]  # trailing empty fields (a tab at the end of a line)
        if len(r) != len(header):
            quote = (" (a sequence with commas in a .csv must be quoted, \"1,2,3\", or the file tab-separated .tsv)"
                     if len(r) > len(header) else "")
            raise DataError(f"{where}: {path} line {n} has {len(r)} fields, the header has {len(header)}{quote}")
        for c, i in zip(cols, idx):
            c.append(r[i].strip())
    return cols[0], cols[1], cols[2]


def _as_int(values: list[str], what: str, where: str, path) -> np.ndarray:
    try:
        out = np.array([int(v) for v in values], dtype=np.int64)
    except ValueError:
        bad = next(v for v in values if not v.lstrip("-").isdigit())
        raise DataError(f"{where}: {path} column {what} must hold integer item ids (got {bad!r})") from None
    if (out < 0).any():
        raise DataError(f"{where}: {path} column {what} must hold item ids >= 0 (got {int(out.min())})")
    return out


class NegativeSampler:
    """Items a user never touched, drawn by rejection against a sorted array of ``user * items + item``."""

    def __init__(self, users: np.ndarray, items_touched: np.ndarray, pool: np.ndarray, num_items: int):
        self.keys = np.unique(users.astype(np.int64) * num_items + items_touched)
        self.pool = torch.as_tensor(pool, dtype=torch.long)
        self.num_items = num_items

    def touched(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        k = (users.long() * self.num_items + items.long()).cpu().numpy()
        pos = np.clip(np.searchsorted(self.keys, k), 0, len(self.keys) - 1)
        return torch.as_tensor(self.keys[pos] == k).to(items.device)

    def sample(self, users: torch.Tensor, n: int, generator: torch.Generator, tries: int = 20) -> torch.Tensor:
        """``(len(users), n)`` negatives (with replacement across the row; a rare clash keeps its last draw)."""
        shape = (len(users), n)
        out = self.pool[torch.randint(len(self.pool), shape, generator=generator)]
        u = users.cpu()[:, None].expand(shape)
        for _ in range(tries):
            bad = self.touched(u, out)
            if not bad.any():
                break
            out[bad] = self.pool[torch.randint(len(self.pool), (int(bad.sum()),), generator=generator)]
        return out


def _sample_eval(users, targets, touched: dict, pool: np.ndarray, k: int, rng, where: str) -> np.ndarray:
    out = np.empty((len(users), k), dtype=np.int64)
    for r, u in enumerate(users):
        seen = touched[u]
        cand = rng.choice(pool, size=min(len(pool), k + len(seen) + 8), replace=False)
        at = np.minimum(np.searchsorted(seen, cand), len(seen) - 1)  # seen is sorted: np.isin, faster
        cand = cand[seen[at] != cand][:k]
        if len(cand) < k:
            raise DataError(f"{where}: user {u} touched {len(seen)} of the {len(pool)} items, fewer than "
                            f"task.num_negatives = {k} are left to sample; lower num_negatives")
        out[r] = cand
    return out


def build_ranking_task(name: str, spec: dict, cfg: RankingTaskConfig, uid: list[str], iid: np.ndarray,
                       seqs: list[np.ndarray], where: str) -> Task:
    """Leave-last-out split per user and sampled candidate lists; see the module docstring."""
    hist = cfg.history or len(seqs[0])
    limits = type(cfg).model_fields["history"].metadata
    low = next((m.ge for m in limits if getattr(m, "ge", None) is not None), 2)
    high = next((m.le for m in limits if getattr(m, "le", None) is not None), 11)
    if cfg.history is None and not low <= hist <= high:
        raise DataError(f"{where}: the first row's sequence has {hist} items, so the history would be {hist}; "
                        f"task.history accepts {low}–{high}: set it (rows with fewer items are dropped and counted)")
    keep_row = np.array([len(s) >= hist for s in seqs])
    short_rows = int((~keep_row).sum())
    users_raw = np.array(uid, dtype=object)
    order: dict[str, list[int]] = {}
    for r in np.flatnonzero(keep_row):
        order.setdefault(users_raw[r], []).append(int(r))
    kept = {u: rows for u, rows in order.items() if len(rows) >= cfg.min_rows}
    dropped_users = len(order) - len(kept)
    dropped_rows = sum(len(rows) for u, rows in order.items() if u not in kept)
    if not kept:
        raise DataError(f"{where}: no user has {cfg.min_rows} or more rows with {hist} history items "
                        f"({len(order)} users, {dropped_rows} rows dropped); lower task.min_rows or task.history")
    rng = np.random.default_rng(cfg.split_seed)
    names = list(kept)
    if cfg.max_users is not None and cfg.max_users < len(names):
        names = [names[i] for i in np.sort(rng.choice(len(names), cfg.max_users, replace=False))]
    user_id = {u: i for i, u in enumerate(names)}
    hist_arr = np.stack([np.asarray(s[-hist:]) if len(s) >= hist else np.zeros(hist, np.int64) for s in seqs])
    rows_of = {s: [] for s in ("train", "val", "test")}
    for u in names:
        rows = kept[u]
        rows_of["test"].append(rows[-1])
        rows_of["val"].append(rows[-2])
        rows_of["train"].extend(rows[:-2])
    all_rows = np.concatenate([np.asarray(kept[u]) for u in names])
    num_items = int(max(iid[all_rows].max(), hist_arr[all_rows].max())) + 1
    pool = np.unique(np.concatenate([iid[all_rows], hist_arr[all_rows].ravel()]))
    touched = {}
    for u in names:
        r = np.asarray(kept[u])
        touched[user_id[u]] = np.unique(np.concatenate([iid[r], np.concatenate([seqs[i] for i in r])]))
    sampler = NegativeSampler(np.concatenate([np.full(len(v), k) for k, v in touched.items()]),
                              np.concatenate(list(touched.values())), pool, num_items)

    def split(which: str, k: int):
        r = np.asarray(rows_of[which], dtype=np.int64)
        users = np.array([user_id[users_raw[i]] for i in r], dtype=np.int64)
        negs = _sample_eval(users, iid[r], touched, pool, k, rng, where)
        pos = rng.integers(0, k + 1, size=len(r))
        cands = np.empty((len(r), k + 1), dtype=np.int64)
        for j in range(len(r)):
            cands[j] = np.insert(negs[j], pos[j], iid[r[j]])
        x = {"user": torch.as_tensor(users), "history": torch.as_tensor(hist_arr[r]),
             "candidates": torch.as_tensor(cands)}
        return x, torch.as_tensor(pos, dtype=torch.long)

    x_tr, y_tr = split("train", 1)
    if cfg.n_train is not None:
        if cfg.n_train > len(y_tr):
            raise ConfigError(f"task.n_train: {cfg.n_train} is larger than the {len(y_tr)} training rows")
        sel = torch.as_tensor(np.sort(rng.choice(len(y_tr), cfg.n_train, replace=False)))
        x_tr, y_tr = {k: v[sel] for k, v in x_tr.items()}, y_tr[sel]
    x_va, y_va = split("val", cfg.num_negatives)
    x_te, y_te = split("test", cfg.num_negatives)
    meta = {"num_users": len(names), "num_items": num_items, "history": hist, "dropped_users": dropped_users,
            "dropped_rows": dropped_rows, "short_rows": short_rows, "sampler": sampler,
            "note": f"{dropped_users} users with fewer than {cfg.min_rows} rows dropped ({dropped_rows} rows); "
                    f"{short_rows} rows with fewer than {hist} history items dropped"}
    return Task(name, x_tr, y_tr, x_va, y_va, x_te, y_te, num_classes=cfg.num_negatives + 1,
                input_shape=(len(names), num_items, hist), kind="ranking", spec=spec, meta=meta)


def _load(path, cfg: RankingTaskConfig, name: str, spec: dict, where: str) -> Task:
    uid, iid_s, seq_s = _read_rows(path, where)
    iid = _as_int(iid_s, "iid", where, path)
    try:
        seqs = [np.array([int(v) for v in s.split(",") if v.strip()], dtype=np.int64) for s in seq_s]
    except ValueError:
        bad = next(s for s in seq_s if not all(v.strip().lstrip("-").isdigit() for v in s.split(",") if v.strip()))
        raise DataError(f"{where}: {path} column sequence must hold comma-separated integer item ids "
                        f"(got {bad!r})") from None
    if any((s < 0).any() for s in seqs):
        raise DataError(f"{where}: {path} column sequence must hold item ids >= 0")
    if cfg.history is None and not len(seqs[0]):
        raise DataError(f"{where}: {path} first row has an empty sequence; set task.history")
    return build_ranking_task(name, spec, cfg, uid, iid, seqs, where)


@TASKS.register("sequences", config=SequencesConfig)
def sequences(cfg: SequencesConfig, spec: dict) -> Task:
    """Your own next-item data: a .tsv/.csv (uid, iid, sequence), leave-last-out, 100 sampled negatives."""
    path = Path(cfg.path).expanduser()
    if not path.exists():
        raise DataError(f"task.path: file not found: {path}")
    return _load(path, cfg, "sequences", spec, "task.path")


def _amazon(key: str):
    def build(cfg: AmazonConfig, spec: dict) -> Task:
        ref = resources.files("childnet.data") / "manas" / f"{AMAZON[key]}.train.tsv.gz"
        with resources.as_file(ref) as path:
            if not Path(path).exists():
                raise DataError(f"task '{key}': the packaged data file {ref} is missing; reinstall childnet")
            return _load(Path(path), cfg, key, spec, f"task '{key}'")

    build.__doc__ = (f"Amazon {AMAZON[key]} next-item sequences (MANAS authors' processing, MIT), "
                     "leave-last-out, 100 sampled negatives.")
    return build


for _key in AMAZON:
    TASKS.register(_key, config=AmazonConfig, tiny={"max_users": 200})(_amazon(_key))
