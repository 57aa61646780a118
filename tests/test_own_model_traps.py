"""Traps a researcher fell into with their own models and tabular data (prune, ensemble, inherit; second
newcomer trial): each now does what the user meant, or is refused with a sentence."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from childnet import Child, derive, get_parent, load_task, predict
from childnet.errors import ChildnetError


def _labelled_table(path, n=150):
    """Three string classes, one feature a thousand times larger than the others: predict must both name
    the classes and standardise as the task did."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 5)).astype(np.float32)
    y_idx = (x[:, 0] > 0.4).astype(int) + (x[:, 1] > 0).astype(int)
    x[:, 2] *= 1000.0
    y = np.array(["alpha", "beta", "gamma"])[y_idx]
    np.savez(path, x_train=x[:100], y_train=y[:100], x_test=x[100:], y_test=y[100:])
    return str(path), x[100:], y[100:]


@pytest.mark.parametrize("method,options", [("independent", {"members": 2, "train": {"epochs": 1}}),
                                            ("pat", {"members": 2, "tune": {"epochs": 1}})])
def test_predict_on_a_saved_ensemble_names_the_classes_and_standardises(tmp_path, method, options):
    """An ensemble's card had no classes and no standardisation: predict answered class numbers on raw inputs."""
    path, x_raw, y = _labelled_table(tmp_path / "t.npz")
    task = load_task({"name": "arrays", "path": path})
    parent = get_parent({"model": {"name": "mlp", "hidden": [16]}, "train": {"epochs": 2, "lr": 0.02}}, task)
    child = derive(method, parent, task, seed=0, **options)
    child.save(tmp_path / "ens")
    loaded = Child.load(tmp_path / "ens")
    pred = predict(loaded, x_raw)
    assert set(pred.tolist()) <= {"alpha", "beta", "gamma"}
    with torch.no_grad():
        expected = loaded.model.eval()(task.x_test).argmax(1).numpy()
    assert (pred == np.array(task.meta["classes"])[expected]).all()
