"""Tasks load real data; the user's arrays are checked with clear errors."""

import numpy as np
import pytest
import torch

from childnet import load_task
from childnet.errors import ChildnetError, ConfigError, DataError


def test_digits_splits_are_deterministic_and_disjoint():
    a, b = load_task("digits"), load_task("digits")
    assert torch.equal(a.x_val, b.x_val) and a.input_shape == (1, 8, 8) and a.num_classes == 10
    n = len(a.y_train) + len(a.y_val) + len(a.y_test)
    assert n == 1797
    c = load_task({"name": "digits", "split_seed": 1})
    assert not torch.equal(a.x_val, c.x_val)


def test_mnist5k_is_real_mnist():
    t = load_task("mnist5k")
    assert t.input_shape == (1, 28, 28)
    assert len(t.y_train) + len(t.y_val) + len(t.y_test) == 5000
    assert set(t.y_train.tolist()) == set(range(10))
    assert 0.0 <= float(t.x_train.min()) and float(t.x_train.max()) <= 1.0


def test_n_train_subset_and_too_large():
    t = load_task({"name": "digits", "n_train": 100})
    assert len(t.y_train) == 100
    with pytest.raises(ConfigError, match="n_train: 5000 is larger"):
        load_task({"name": "digits", "n_train": 5000})


def _npz(path, **arrays):
    np.savez(path, **arrays)
    return str(path)


def test_arrays_npz_roundtrip(tmp_path):
    rng = np.random.default_rng(0)
    p = _npz(tmp_path / "d.npz", x_train=rng.normal(size=(50, 6)), y_train=rng.integers(0, 3, 50),
             x_test=rng.normal(size=(20, 6)), y_test=rng.integers(0, 3, 20))
    t = load_task({"name": "arrays", "path": p})
    assert t.input_shape == (6,) and t.num_classes == 3 and t.kind == "tabular"
    assert len(t.y_train) + len(t.y_val) == 50


def test_arrays_errors(tmp_path):
    rng = np.random.default_rng(0)
    missing = _npz(tmp_path / "m.npz", x_train=rng.normal(size=(5, 2)), y_train=np.zeros(5))
    with pytest.raises(DataError, match=r"missing arrays \['x_test', 'y_test'\]"):
        load_task({"name": "arrays", "path": missing})
    mism = _npz(tmp_path / "l.npz", x_train=rng.normal(size=(5, 2)), y_train=np.zeros(4),
                x_test=rng.normal(size=(3, 2)), y_test=np.zeros(3))
    with pytest.raises(DataError, match="x_train has 5 rows but y_train has 4"):
        load_task({"name": "arrays", "path": mism})
    labels = _npz(tmp_path / "y.npz", x_train=rng.normal(size=(20, 2)), y_train=np.arange(20) % 4,
                  x_test=rng.normal(size=(4, 2)), y_test=np.array([0, 1, 2, 7]))
    with pytest.raises(DataError, match=r"labels outside the class range \[0, 4\)"):
        load_task({"name": "arrays", "path": labels, "num_classes": 4})
    with pytest.raises(DataError, match="file not found"):
        load_task({"name": "arrays", "path": str(tmp_path / "none.npz")})
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(DataError, match="expected a .npz or .csv"):
        load_task({"name": "arrays", "path": str(tmp_path / "x.txt")})


def test_arrays_csv(tmp_path):
    rows = ["a,b,label"] + [f"{i},{i * 2},{i % 2}" for i in range(30)]
    (tmp_path / "d.csv").write_text("\n".join(rows))
    t = load_task({"name": "arrays", "path": str(tmp_path / "d.csv")})
    assert t.input_shape == (2,) and t.num_classes == 2
    with pytest.raises(DataError, match="no 'y' column"):
        load_task({"name": "arrays", "path": str(tmp_path / "d.csv"), "label_column": "y"})


def test_unknown_task_option():
    with pytest.raises(ChildnetError, match="unknown field"):
        load_task({"name": "digits", "n_trian": 3})


def _image_npz(path, **over):
    rng = np.random.default_rng(0)
    data = {"x_train": rng.random((40, 1, 6, 6), dtype=np.float32), "y_train": np.arange(40) % 3,
            "x_test": rng.random((12, 1, 6, 6), dtype=np.float32), "y_test": np.arange(12) % 3}
    data.update(over)
    np.savez(path, **data)
    return str(path)


@pytest.mark.parametrize("over, needle", [
    ({"x_train": np.zeros((40, 6, 6, 1), np.float32), "x_test": np.zeros((12, 6, 6, 1), np.float32)},
     "looks channels-last"),
    ({"y_train": np.array(list("abc") * 13 + ["a"])}, "mix strings and numbers"),
    ({"x_train": np.full((40, 1, 6, 6), np.nan, np.float32)}, "NaN or infinite"),
    ({"y_test": np.array([0, 1, 2, 7] * 3)}, "never in y_train"),
    ({"y_train": np.zeros(40, int), "y_test": np.zeros(12, int)}, "at least 2 classes"),
])
def test_bad_arrays_are_refused_with_a_sentence(tmp_path, over, needle):
    with pytest.raises(DataError, match=needle):
        load_task({"name": "arrays", "path": _image_npz(tmp_path / "d.npz", **over)})


def test_changed_data_file_is_not_served_a_stale_cached_parent(tmp_path):
    from childnet import get_parent

    path = _image_npz(tmp_path / "d.npz")
    cfg = {"model": {"name": "mlp", "hidden": [8]}, "train": {"epochs": 1}}
    first = get_parent(cfg, load_task({"name": "arrays", "path": path}))
    _image_npz(tmp_path / "d.npz", y_train=(np.arange(40) + 1) % 3)  # same file name, new labels
    msgs = []
    second = get_parent(cfg, load_task({"name": "arrays", "path": path}), log=msgs.append)
    assert second.source == "trained" and not any("reused" in m for m in msgs)
    assert first.fingerprint != second.fingerprint


def test_pretrained_needs_a_model_that_ships_weights():
    from childnet import get_parent

    with pytest.raises(ConfigError, match="model 'cnn' has no pretrained weights.*minilm"):
        get_parent({"model": {"name": "cnn"}, "pretrained": True}, load_task("digits"))
