"""Traps a newcomer fell into with their own models, data and experiments (session review, after issue 18):
each is refused with a sentence before any training, or now does what the user meant."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from childnet import derive, load_task
from childnet.errors import ChildnetError


def _two_class_images(path, n=40):
    """A 2-class task with digits' input shape (1, 8, 8), so only the class count differs."""
    rng = np.random.default_rng(0)
    x = rng.random((n, 1, 8, 8), dtype=np.float32)
    y = np.arange(n) % 2
    x[y == 1] += 1.0
    np.savez(path, x_train=x, y_train=y, x_test=x[:10], y_test=y[:10])
    return str(path)


def _transfer_experiment(tmp_path, methods):
    raw = {"name": "transfer", "task": {"name": "arrays", "path": _two_class_images(tmp_path / "two.npz")},
           "parent": {"model": {"name": "cnn", "width": 4, "depth": 2}, "train": {"epochs": 1},
                      "task": {"name": "digits"}},
           "defaults": {"child": {"name": "cnn", "width": 4, "depth": 2}},
           "methods": methods, "seeds": 1, "evaluate": {"latency": False}}
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_a_parent_with_other_classes_is_refused_for_methods_that_keep_its_head(tmp_path, run_cli):
    """A parent trained on 10-class digits, pruned for a 2-class task, kept its 10-way head and scored 0
    without an error; KD crashed mid-run. Validate and run now refuse them, naming each method; the tune
    methods (a new head) and FitNets (features only) stay allowed."""
    exp = _transfer_experiment(tmp_path, [{"name": "kd", "train": {"epochs": 1}},
                                          {"name": "oneshot", "tune": {"epochs": 1}},
                                          {"name": "vanilla", "train": {"epochs": 1}},
                                          {"name": "fitnets", "train": {"epochs": 1}}])
    for cmd in (("validate", exp), ("run", exp, "--out", tmp_path / "run", "--workers", "0", "--quiet")):
        proc = run_cli(*cmd)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
        assert "2 problems" in proc.stderr and "methods[kd]" in proc.stderr and "methods[oneshot]" in proc.stderr
        assert "has 10 classes but task 'arrays' has 2" in proc.stderr and "vanilla" not in proc.stderr.split(";")[0]
    assert not (tmp_path / "run" / "results.jsonl").exists()  # refused before any unit
    ok = _transfer_experiment(tmp_path, [{"name": "vanilla", "train": {"epochs": 1}},
                                         {"name": "fitnets", "train": {"epochs": 1}}])
    run_cli("validate", ok, check=0)


def test_derive_refuses_a_wrong_parent_or_task_with_a_sentence(tiny_parent, digits_task, tmp_path):
    """derive(method, parent.model, task) and derive(method, parent, "digits") failed with AttributeError
    deep in the method; a parent trained on other classes, with a shape error from the loss."""
    with pytest.raises(ChildnetError, match=r"parent must be a childnet Parent .*got CNN — the network itself"):
        derive("kd", tiny_parent.model, digits_task)
    with pytest.raises(ChildnetError, match=r"task must be a childnet Task .*got str; .*load_task\('digits'\)"):
        derive("kd", tiny_parent, "digits")
    two = load_task({"name": "arrays", "path": _two_class_images(tmp_path / "two.npz")})
    with pytest.raises(ChildnetError, match="kd: the parent's task 'digits' has 10 classes but task 'arrays' has 2"):
        derive("kd", tiny_parent, two, train={"epochs": 1})
    five = load_task({"name": "arrays", "path": _two_class_images(tmp_path / "five.npz")})
    five.input_shape = (64,)
    with pytest.raises(ChildnetError, match=r"has inputs of shape \(1, 8, 8\) but task 'arrays' has \(64,\)"):
        derive("vanilla", tiny_parent, five)
