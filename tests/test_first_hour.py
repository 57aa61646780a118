"""A user's first hour (issue 11): their own data, a plain script, progress — each trap through the CLI or
the README's Python. Data-file messages of issue 10 §2 are here too."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from childnet import Child, load_task, predict
from childnet.errors import DataError

SRC = str(Path(__file__).resolve().parents[1] / "src")


def user_error(proc, *needles):
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    for n in needles:
        assert n in proc.stderr, f"{n!r} not in {proc.stderr!r}"


def _signals(shape_of_one, n=60, seed=0, classes=2):
    """Two classes of 1-D signals told apart by frequency, in the requested per-example shape."""
    rng = np.random.default_rng(seed)
    length = int(np.prod(shape_of_one))
    t = np.linspace(0, 1, length, dtype=np.float32)
    y = np.arange(n) % classes
    x = np.stack([np.sin(2 * np.pi * (2 + 4 * k) * t) for k in y]) + 0.1 * rng.normal(size=(n, length))
    return x.reshape(n, *shape_of_one).astype(np.float32), y


def _npz(path, shape_of_one, labels=None, **over):
    xtr, ytr = _signals(shape_of_one, 60, 0)
    xte, yte = _signals(shape_of_one, 20, 1)
    if labels is not None:
        ytr, yte = np.asarray(labels)[ytr], np.asarray(labels)[yte]
    data = {"x_train": xtr, "y_train": ytr, "x_test": xte, "y_test": yte, **over}
    np.savez(path, **data)
    return str(path)


def _experiment(tmp_path, task, model="cnn", methods=("scratch",), **extra):
    small = {"cnn": {"name": "cnn", "width": 4, "depth": 2}, "resnet": {"name": "resnet", "depth": 8, "width_mult": 0.25}}
    raw = {"name": "fh", "task": task,
           "parent": {"model": small[model], "train": {"epochs": 1, "lr": 0.01}},
           "defaults": {"child": small[model], "train": {"epochs": 1, "lr": 0.01}},
           "methods": list(methods), "seeds": 1, "evaluate": {"latency": False}, **extra}
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


# ------------------------------------------------------------------ 1-D data


@pytest.mark.parametrize("shape, want", [((32,), (32,)), ((2, 32), (2, 32)), ((1, 32, 1), (1, 32)), ((32, 1), (1, 32))])
def test_sequence_layouts_are_read_as_sequences(tmp_path, shape, want):
    task = load_task({"name": "arrays", "path": _npz(tmp_path / "s.npz", shape)})
    assert task.input_shape == want
    assert task.meta["layout"] == ("tabular" if len(shape) == 1 else "sequence")


@pytest.mark.parametrize("model, shape", [("cnn", (1, 32, 1)), ("resnet", (2, 32))])
def test_1d_signals_train_with_cnn_and_resnet_through_the_cli(tmp_path, model, shape, run_cli):
    path = _npz(tmp_path / "s.npz", shape)
    exp = _experiment(tmp_path, {"name": "arrays", "path": path}, model=model)
    proc = run_cli("run", exp, "--out", tmp_path / "run", "--workers", "0", "--quiet")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rec = json.loads((tmp_path / "run" / "results.jsonl").read_text().splitlines()[0])
    assert rec["status"] == "ok", rec
    card = json.loads((tmp_path / "run" / rec["child_dir"] / "child.json").read_text())
    assert card["extra"]["layout"] == "sequence" and len(card["architecture"]["input_shape"]) == 2


def test_2d_cnn_on_a_too_thin_image_layout_is_refused_by_shape(tmp_path):
    with pytest.raises(DataError, match="task.layout is sequence"):
        load_task({"name": "arrays", "path": _npz(tmp_path / "s.npz", (2, 4, 4)), "layout": "sequence"})


# ------------------------------------------------------------------ labels and scale


def test_one_based_and_string_labels_are_mapped_and_recorded(tmp_path):
    t = load_task({"name": "arrays", "path": _npz(tmp_path / "a.npz", (16,), labels=[1, 2])})
    assert t.num_classes == 2 and t.meta["classes"] == [1, 2] and set(t.y_train.tolist()) == {0, 1}
    t = load_task({"name": "arrays", "path": _npz(tmp_path / "b.npz", (16,), labels=["cat", "dog"])})
    assert t.num_classes == 2 and t.meta["classes"] == ["cat", "dog"]
    gapped = load_task({"name": "arrays", "path": _npz(tmp_path / "c.npz", (16,), labels=[0, 7])})
    assert gapped.num_classes == 2 and gapped.meta["classes"] == [0, 7]


def test_tabular_features_are_standardised_on_train_only(tmp_path):
    path = _npz(tmp_path / "t.npz", (16,))
    data = dict(np.load(path))
    data["x_train"] = data["x_train"] * 1000 + 50
    data["x_test"] = data["x_test"] * 1000 + 50
    np.savez(path, **data)
    t = load_task({"name": "arrays", "path": path})
    assert abs(float(t.x_train.mean())) < 1e-4 and abs(float(t.x_train.std(0, unbiased=False).mean()) - 1) < 1e-3
    stats = t.meta["standardize"]
    assert len(stats["mean"]) == 16 and stats["per"] == "feature"
    raw = load_task({"name": "arrays", "path": path, "standardize": False})
    assert float(raw.x_train.abs().max()) > 100
    seq = load_task({"name": "arrays", "path": _npz(tmp_path / "s.npz", (1, 16))})
    assert "standardize" not in seq.meta


def test_readme_python_predicts_new_data_with_the_childs_scaling_and_labels(tmp_path):
    from childnet import derive, get_parent

    path = _npz(tmp_path / "t.npz", (16,), labels=["low", "high"])
    data = dict(np.load(path))
    np.savez(path, **{k: (v * 100 + 7 if k.startswith("x") else v) for k, v in data.items()})
    task = load_task({"name": "arrays", "path": path})
    parent = get_parent({"model": {"name": "mlp", "hidden": [16]}, "train": {"epochs": 15, "lr": 0.01}}, task)
    child = derive("scratch", parent, task, seed=0, child={"name": "mlp", "hidden": [8]},
                   train={"epochs": 15, "lr": 0.01})
    child.save(tmp_path / "child")
    loaded = Child.load(tmp_path / "child")
    assert loaded.lineage.extra["classes"] == ["high", "low"] and "standardize" in loaded.lineage.extra
    raw_test = np.load(path)["x_test"]
    pred = predict(loaded, raw_test)
    assert set(pred.tolist()) <= {"high", "low"}
    assert np.mean(pred == np.load(path)["y_test"]) > 0.8  # the raw (unscaled) inputs are scaled as in training


# ------------------------------------------------------------------ data files (issue 10 §2)


def test_bad_data_files_get_the_right_sentence(tmp_path):
    def refused(path, needle, **task):
        with pytest.raises(DataError, match=needle):
            load_task({"name": "arrays", "path": str(path), **task})

    (tmp_path / "text.npz").write_text("x_train,y_train\n1,2\n")
    refused(tmp_path / "text.npz", "not a zip archive")
    np.save(tmp_path / "one.npy", np.zeros(3))
    os.replace(tmp_path / "one.npy", tmp_path / "one.npz")
    refused(tmp_path / "one.npz", "single .npy array")
    refused(_npz(tmp_path / "f.npz", (8,), y_train=np.linspace(0, 1, 60)), "fractional values")
    neg = load_task({"name": "arrays", "path": _npz(tmp_path / "n.npz", (8,), labels=[-1, 1])})
    assert neg.meta["classes"] == [-1, 1]
    xc = _signals((8,))[0].astype(np.complex64)
    refused(_npz(tmp_path / "c.npz", (8,), x_train=xc), "complex-valued")
    big = np.arange(60) % 2
    big[0] = 10**9
    refused(_npz(tmp_path / "b2.npz", (8,), y_train=big, y_test=np.arange(20) % 2), "outside the class range",
            num_classes=2)
    rows = ["a,b,label"] + [f"{i},{i},{i % 2}" for i in range(10)]
    (tmp_path / "ragged.csv").write_text("\n".join(rows[:4] + ["5,1"] + rows[5:]))
    refused(tmp_path / "ragged.csv", "line 5 has 2 fields but the header has 3")
    (tmp_path / "latin.csv").write_bytes("a,b,label\n".encode() + "1,2,caf\xe9\n".encode("latin-1") * 5)
    refused(tmp_path / "latin.csv", "not UTF-8")
    (tmp_path / "long.csv").write_text("a,b,label\n" + '1,"' + "9" * 200_000 + '\n' + "1,2,0\n" * 5)
    refused(tmp_path / "long.csv", "field larger than field limit")


def test_absurd_class_count_is_refused_before_allocating(tmp_path):
    y = np.arange(60) % 2
    y[:2] = 10**9
    yt = np.arange(20) % 2
    yt[0] = 10**9
    task = load_task({"name": "arrays", "path": _npz(tmp_path / "g.npz", (8,), y_train=y, y_test=yt)})
    assert task.num_classes == 3 and task.meta["classes"] == [0, 1, 1000000000]  # a gap, not 10^9 classes
    many = np.arange(200_000)
    np.savez(tmp_path / "m.npz", x_train=np.zeros((200_000, 1), np.float32), y_train=many,
             x_test=np.zeros((2, 1), np.float32), y_test=many[:2])
    with pytest.raises(DataError, match="more than 100,000 classes"):
        load_task({"name": "arrays", "path": str(tmp_path / "m.npz")})


# ------------------------------------------------------------------ plain scripts and progress

SCRIPT = """
from childnet import run_experiment
run_experiment({exp!r}, {out!r}, workers={workers})
print("done")
"""


@pytest.mark.parametrize("how", ["file", "stdin"])
def test_run_experiment_in_an_unguarded_script(tmp_path, how):
    exp = _experiment(tmp_path, {"name": "digits", "n_train": 200})
    code = SCRIPT.format(exp=str(exp), out=str(tmp_path / "run"), workers="None")
    env = dict(os.environ, PYTHONPATH=SRC)
    if how == "file":
        (tmp_path / "script.py").write_text(code)
        proc = subprocess.run([sys.executable, str(tmp_path / "script.py")], capture_output=True, text=True, env=env,
                              timeout=300)
    else:
        proc = subprocess.run([sys.executable, "-"], input=code, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "done" in proc.stdout and "in this process" in proc.stdout
    assert "<stdin>" not in proc.stderr
    assert json.loads((tmp_path / "run" / "results.jsonl").read_text().splitlines()[0])["status"] == "ok"


def test_unguarded_script_asking_for_workers_is_told_the_guard(tmp_path):
    exp = _experiment(tmp_path, {"name": "digits", "n_train": 200})
    (tmp_path / "script.py").write_text(SCRIPT.format(exp=str(exp), out=str(tmp_path / "run"), workers=2))
    proc = subprocess.run([sys.executable, str(tmp_path / "script.py")], capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=SRC), timeout=300)
    assert proc.returncode != 0 and 'if __name__ == "__main__":' in proc.stderr


def test_get_parent_shows_progress_when_interactive(monkeypatch, capsys):
    from childnet import _progress, get_parent

    monkeypatch.setattr(_progress, "interactive", lambda: True)
    task = load_task({"name": "digits", "n_train": 100})
    get_parent({"model": {"name": "mlp", "hidden": [4]}, "train": {"epochs": 2}, "seed": 11}, task, use_cache=False)
    err = capsys.readouterr().err
    assert "training parent" in err and "2/2" in err
    get_parent({"model": {"name": "mlp", "hidden": [4]}, "train": {"epochs": 2}, "seed": 11}, task, use_cache=False,
               progress=None)
    assert capsys.readouterr().err == ""


def test_diverging_loss_on_huge_inputs_names_the_scale():
    from childnet.errors import TrainingDiverged
    from childnet.models import build_model
    from childnet.train import TrainConfig, fit

    torch = pytest.importorskip("torch")
    x = torch.randn(64, 4) * 1e12
    y = torch.arange(64) % 2
    model = build_model({"name": "mlp", "hidden": [8]}, (4,), 2)
    with pytest.raises(TrainingDiverged, match="scale"):
        fit(model, (x, y), TrainConfig(epochs=3, lr=10.0, optimizer="sgd"), seed=0)


# ------------------------------------------------------------------ validate


def test_validate_builds_every_network_before_training(tmp_path, run_cli):
    path = _npz(tmp_path / "t.npz", (12,))
    raw = {"task": {"name": "arrays", "path": path}, "parent": {"model": {"name": "mlp", "hidden": [8]}},
           "methods": [{"name": "kd", "child": {"name": "cnn", "width": 4}}, "random_search",
                       {"name": "oneshot", "structure": "channels"}], "seeds": 1}
    exp = tmp_path / "bad.yaml"
    exp.write_text(yaml.safe_dump(raw))
    proc = run_cli("validate", exp)
    user_error(proc, "problems", "methods[random_search]", "image inputs", "methods[oneshot].structure")
    assert not (tmp_path / "cache").exists()
    raw["methods"] = ["kd"]
    raw["task"]["path"] = str(tmp_path / "missing.npz")
    exp.write_text(yaml.safe_dump(raw))
    user_error(run_cli("validate", exp), "file not found")


def test_structured_pruning_shrinks_a_1d_cnn(tmp_path):
    from childnet import derive, get_parent

    task = load_task({"name": "arrays", "path": _npz(tmp_path / "s.npz", (2, 32))})
    parent = get_parent({"model": {"name": "cnn", "width": 8, "depth": 2}, "train": {"epochs": 1}}, task)
    child = derive("oneshot", parent, task, seed=0, sparsity=0.5, structure="channels", tune={"epochs": 1})
    assert sum(p.numel() for p in child.model.parameters()) < sum(p.numel() for p in parent.model.parameters())
    assert child.model(task.x_test[:3]).shape == (3, 2)
