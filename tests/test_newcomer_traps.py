"""Traps a newcomer fell into with their own models, data and experiments (session review, after issue 18):
each is refused with a sentence before any training, or now does what the user meant."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from childnet import derive, get_parent, load_task
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


def test_every_setting_of_a_task_sweep_is_checked_against_the_parents_task(tmp_path, run_cli):
    """The run checked only the first setting's task (one parent serves them all): a swept 3-class file
    trained, then failed at evaluate. Now every setting is checked before the parent trains."""
    ten = tmp_path / "ten.npz"
    rng = np.random.default_rng(0)
    x = rng.random((60, 1, 8, 8), dtype=np.float32)
    np.savez(ten, x_train=x, y_train=np.arange(60) % 10, x_test=x[:20], y_test=np.arange(20) % 10)
    three = _two_class_images(tmp_path / "three.npz")
    data = dict(np.load(three))
    np.savez(three, **{k: (v % 3 if k.startswith("y") else v) for k, v in data.items()})
    raw = {"name": "sw", "task": {"name": "arrays", "path": str(ten)},
           "parent": {"model": {"name": "cnn", "width": 4, "depth": 2}, "train": {"epochs": 1},
                      "task": {"name": "digits"}},
           "methods": [{"name": "oneshot", "tune": {"epochs": 1}}], "seeds": 1,
           "sweep": {"task.path": [str(ten), str(three)]}, "evaluate": {"latency": False}}
    exp = tmp_path / "exp.yaml"
    exp.write_text(yaml.safe_dump(raw))
    proc = run_cli("run", exp, "--out", tmp_path / "run", "--workers", "0", "--quiet")
    assert proc.returncode == 2 and "methods[oneshot] (task.path=" in proc.stderr, proc.stderr
    assert "has 10 classes but task 'arrays' has 2" in proc.stderr  # (the 2-class file, labels % 3 of 0/1)
    assert not (tmp_path / "run" / "results.jsonl").exists()


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
    mnist = load_task({"name": "mnist5k"})
    mlp = get_parent({"model": {"name": "mlp", "hidden": [8]}, "train": {"epochs": 1}}, digits_task)
    with pytest.raises(ChildnetError, match=r"has inputs of shape \(1, 8, 8\) but task 'mnist5k' has \(1, 28, 28\), "
                                            r"and the parent network cannot read them"):
        derive("vanilla", mlp, mnist)


def test_a_cnn_parent_of_other_image_sizes_still_transfers(tiny_parent, digits_task, tmp_path):
    """The first version of the check refused any other input shape; a CNN (adaptive pooling) reads 8×8 and
    28×28 alike, and transfer from one to the other ran before — it still does, and the child's card says
    which inputs it reads, so it loads and predicts on them."""
    from childnet import Child, predict
    from childnet.evaluate import evaluate

    mnist = load_task({"name": "mnist5k", "n_train": 200})
    child = derive("vanilla", tiny_parent, mnist, train={"epochs": 1})
    assert evaluate(child, mnist, latency=False)["accuracy"] > 0.1
    loaded = Child.load(child.save(tmp_path / "c"))
    assert tuple(loaded.lineage.architecture["input_shape"]) == (1, 28, 28)
    assert predict(loaded, mnist.x_test[:4].numpy()).shape == (4,)


def test_predict_answers_integer_labels_as_integers(tmp_path):
    """Labels 1 and 2 came back from predict as the strings '1' and '2', so (predict(c, x) == y).mean() was 0."""
    from childnet import Child, get_parent, predict

    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 6)).astype(np.float32)
    y = np.where(x[:, 0] > 0, 2, 1)
    np.savez(tmp_path / "one_based.npz", x_train=x[:90], y_train=y[:90], x_test=x[90:], y_test=y[90:])
    task = load_task({"name": "arrays", "path": str(tmp_path / "one_based.npz")})
    parent = get_parent({"model": {"name": "mlp", "hidden": [8]}, "train": {"epochs": 2, "lr": 0.02}}, task)
    child = derive("scratch", parent, task, child={"name": "mlp", "hidden": [8]}, train={"epochs": 60, "lr": 0.05})
    child.save(tmp_path / "child")
    pred = predict(Child.load(tmp_path / "child"), x[90:])
    assert pred.dtype.kind == "i" and set(pred.tolist()) <= {1, 2}
    assert np.mean(pred == y[90:]) > 0.8


def test_data_mistakes_that_used_to_become_data(tmp_path):
    """A pandas index column became a feature, an empty label a class '', x_valid was dropped, label_column
    on an .npz was ignored, and num_classes above the string labels' count crashed predict later."""
    from childnet.errors import ConfigError, DataError

    def refused(needle, err=DataError, **task):
        with pytest.raises(err, match=needle):
            load_task({"name": "arrays", **task})

    rows = [f"{i},{i % 3},{i * 0.5},{'ab'[i % 2]}" for i in range(30)]
    (tmp_path / "index.csv").write_text(",f1,f2,label\n" + "\n".join(rows))
    refused("column 1 has no name — usually the row index that pandas' to_csv", path=str(tmp_path / "index.csv"))
    (tmp_path / "empty.csv").write_text("f1,f2,label\n" + "\n".join(r.split(",", 1)[1] for r in rows) + "\n1,2,\n")
    refused(r"line 32 has no 'label' \(1 row\(s\) without a label\)", path=str(tmp_path / "empty.csv"))
    x = np.zeros((20, 4), np.float32)
    np.savez(tmp_path / "valid.npz", x_train=x, y_train=np.arange(20) % 2, x_test=x, y_test=np.arange(20) % 2,
             x_valid=x, y_valid=np.arange(20) % 2)
    refused(r"has the arrays x_valid and y_valid, which childnet does not read as a split", path=str(tmp_path / "valid.npz"))
    np.savez(tmp_path / "meta.npz", x_train=x, y_train=np.arange(20) % 2, x_test=x, y_test=np.arange(20) % 2,
             x_mean=x.mean(0))  # metadata next to the splits is not a split: still loads
    assert load_task({"name": "arrays", "path": str(tmp_path / "meta.npz")}).num_classes == 2
    np.savez(tmp_path / "ok.npz", x_train=x, y_train=np.arange(20) % 2, x_test=x, y_test=np.arange(20) % 2)
    refused("task.label_column: applies to .csv files only", path=str(tmp_path / "ok.npz"), label_column="y")
    (tmp_path / "str.csv").write_text("f1,f2,label\n" + "\n".join(r.split(",", 1)[1] for r in rows))
    refused("task.num_classes is 5 but the labels are 2 strings", path=str(tmp_path / "str.csv"), num_classes=5)
    refused(r"the training split has 1 example\(s\) of 1 class\(es\)", ConfigError,
            path=str(tmp_path / "ok.npz"), val_fraction=0.95)


def test_evaluate_refuses_a_child_of_another_task(tiny_parent, digits_task, tmp_path):
    """A child evaluated on a task with other inputs failed with 'mat1 and mat2 shapes cannot be multiplied';
    with the same inputs but other classes it would score against the wrong labels."""
    from childnet.evaluate import evaluate

    child = derive("scratch", tiny_parent, digits_task, child={"name": "cnn", "width": 4, "depth": 2},
                   train={"epochs": 0})
    two = load_task({"name": "arrays", "path": _two_class_images(tmp_path / "two.npz")})
    with pytest.raises(ChildnetError, match=r"predicts 10 classes \(trained on task 'digits'\) but task 'arrays' has 2"):
        evaluate(child, two, latency=False)
    mlp_child = derive("scratch", tiny_parent, digits_task, child={"name": "mlp", "hidden": [4]}, train={"epochs": 0})
    with pytest.raises(ChildnetError, match=r"reads inputs of shape \(1, 8, 8\) \(trained on task 'digits'\) but "
                                            r"task 'mnist5k' has inputs of shape \(1, 28, 28\)"):
        evaluate(mlp_child, load_task({"name": "mnist5k"}), latency=False)


def test_own_model_doc_example_runs_and_frozen_layers_stay_frozen(tmp_path, monkeypatch):
    """docs/own-model.md's example as written; the layer its builder freezes is left untouched by the
    parent's training and by every child that starts from the parent (vanilla and oneshot trained it)."""
    import re
    from pathlib import Path

    import torch

    from childnet.registry import MODELS

    doc = (Path(__file__).parents[1] / "docs" / "own-model.md").read_text()
    block = re.search(r"```python\n(.*?)```", doc, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    ns: dict = {}
    try:
        exec(compile(block, "own-model.md", "exec"), ns)
        parent, small, tuned, again = ns["parent"], ns["small"], ns["tuned"], ns["again"]
        assert parent.frozen == ("body.1.weight", "body.1.bias")
        n = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
        assert n(small.model) < 0.75 * n(parent.model) and n(again.model) == n(small.model)
        assert torch.equal(tuned.model.body[1].weight, parent.model.body[1].weight)
        assert not torch.equal(tuned.model.body[3].weight, parent.model.body[3].weight)
        assert not tuned.model.body[1].weight.requires_grad and not again.model.body[1].weight.requires_grad
        pruned = derive("oneshot", parent, parent.task, sparsity=0.5, tune={"epochs": 1})
        kept = pruned.model.body[1].weight != 0
        assert torch.equal(pruned.model.body[1].weight[kept], parent.model.body[1].weight[kept])
    finally:
        MODELS._entries.pop("two_layer", None)  # other tests iterate over every registered model


def test_run_experiment_quiet_prints_nothing(tmp_path, capsys):
    """quiet was a CLI flag only: run_experiment(..., quiet=True) raised TypeError."""
    from childnet import run_experiment

    exp = {"name": "q", "task": {"name": "digits", "n_train": 100},
           "parent": {"model": {"name": "mlp", "hidden": [8]}, "train": {"epochs": 1}},
           "methods": [{"name": "scratch", "child": {"name": "mlp", "hidden": [4]}, "train": {"epochs": 1}}],
           "seeds": 1, "evaluate": {"latency": False}}
    capsys.readouterr()
    result = run_experiment(exp, tmp_path / "run", quiet=True, workers=0)
    out = capsys.readouterr()
    assert out.out == "" and out.err == "" and result is not None
    assert (tmp_path / "run" / "results.jsonl").exists()


def test_fewer_seeds_than_the_folder_holds_is_said(tmp_path):
    """`--seeds 2` on a folder holding more seeds reported them all without a word."""
    from childnet import run_experiment

    exp = {"name": "s", "task": {"name": "digits", "n_train": 100},
           "parent": {"model": {"name": "mlp", "hidden": [8]}, "train": {"epochs": 1}},
           "methods": [{"name": "scratch", "child": {"name": "mlp", "hidden": [4]}, "train": {"epochs": 1}}],
           "seeds": 3, "evaluate": {"latency": False}}
    run_experiment(exp, tmp_path / "run", quiet=True, workers=0)
    lines: list[str] = []
    run_experiment(exp, tmp_path / "run", workers=0, seeds=1, log=lines.append)
    assert any("also holds finished units of seed(s) 1, 2 beyond the 1 asked for" in line for line in lines), lines


PLUGIN = '''
from pydantic import Field
from torch import nn

from childnet.models import ChildnetModel, Config
from childnet.registry import MODELS


class WideConfig(Config):
    hidden: int = Field(16, ge=1)


class Wide(ChildnetModel):
    def __init__(self, n_in, hidden, n_out):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(n_in, hidden), nn.ReLU())
        self.head = nn.Linear(hidden, n_out)

    def forward_features(self, x):
        return self.body(x)


@MODELS.register("plugin_wide", config=WideConfig)
def plugin_wide(cfg, input_shape, num_classes):
    n = 1
    for d in input_shape:
        n *= d
    return Wide(n, cfg.hidden, num_classes)
'''


def test_childnet_plugins_brings_your_model_to_the_cli_and_its_workers(tmp_path, run_cli, monkeypatch):
    """The CLI could not use a model registered in the user's own file: `unknown model`. CHILDNET_PLUGINS
    imports it in the command, in its worker processes (a real pool here) and when a child loads."""
    import json
    import os
    import subprocess
    import sys

    from childnet import plugins
    from childnet.registry import MODELS

    (tmp_path / "my_models.py").write_text(PLUGIN)
    exp = {"name": "plug", "task": {"name": "digits", "n_train": 120},
           "parent": {"model": {"name": "plugin_wide", "hidden": 16}, "train": {"epochs": 1}},
           "methods": [{"name": "kd", "child": {"name": "plugin_wide", "hidden": 4}, "train": {"epochs": 1}},
                       {"name": "oneshot", "sparsity": 0.5, "tune": {"epochs": 1}}],
           "seeds": 1, "evaluate": {"latency": False}}
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump(exp))
    monkeypatch.chdir(tmp_path)
    try:
        proc = run_cli("validate", "exp.yaml")
        assert proc.returncode == 2 and "unknown model 'plugin_wide'" in proc.stderr
        assert "set CHILDNET_PLUGINS to its module or .py file" in " ".join(proc.stderr.split())  # the way out
        monkeypatch.setenv("CHILDNET_PLUGINS", "my_models.py")
        run_cli("validate", "exp.yaml", check=0)
        env = dict(os.environ, CHILDNET_PLUGINS="my_models.py", OMP_NUM_THREADS="1")
        done = subprocess.run([sys.executable, "-m", "childnet.cli", "run", "exp.yaml", "--out", "run", "--workers",
                               "1", "--quiet"], env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stdout + done.stderr
        recs = [json.loads(line) for line in (tmp_path / "run" / "results.jsonl").read_text().splitlines()]
        assert [r["status"] for r in recs] == ["ok", "ok"], recs
        shown = run_cli("show", tmp_path / "run" / recs[0]["child_dir"], check=0)
        assert "plugin_wide" in shown.stdout
        monkeypatch.setenv("CHILDNET_PLUGINS", "missing.py, not_a_module_xyz")
        proc = run_cli("validate", "exp.yaml")
        assert proc.returncode == 2 and "CHILDNET_PLUGINS" in proc.stderr and "missing.py: no such file" in proc.stderr
        (tmp_path / "needs.py").write_text("import not_installed_pkg_xyz\n")
        monkeypatch.setenv("CHILDNET_PLUGINS", "needs.py")
        proc = run_cli("validate", "exp.yaml")
        assert proc.returncode == 2 and "needs the module 'not_installed_pkg_xyz', which is not installed" in proc.stderr
        (tmp_path / "broken.py").write_text("raise RuntimeError('oops')\n")
        monkeypatch.setenv("CHILDNET_PLUGINS", "broken.py")
        proc = run_cli("validate", "exp.yaml")
        assert proc.returncode == 2 and "importing" in proc.stderr and "RuntimeError: oops" in proc.stderr
        # a script that imports the file itself while the variable names it too: one registration, no error
        monkeypatch.setenv("CHILDNET_PLUGINS", "my_models.py")
        script = tmp_path / "script.py"
        script.write_text("import my_models\nimport childnet\nfrom childnet.plugins import load_plugins\n"
                          "load_plugins()\nprint(childnet.registry.MODELS.get('plugin_wide').name)\n")
        again = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=300,
                               cwd=tmp_path)
        assert again.returncode == 0 and again.stdout.strip() == "plugin_wide", again.stderr
    finally:
        MODELS._entries.pop("plugin_wide", None)
        plugins._loaded.clear()


def test_hkt_on_a_plain_module_with_a_head_and_refuses_one_without(digits_task):
    """HKT read parent.model.feature_dim, which only childnet's base class has (AttributeError); it now
    measures the features the parent's head reads, and a model without a head gets a sentence."""
    from pydantic import Field
    from torch import nn

    from childnet import get_parent
    from childnet.models import Config
    from childnet.registry import MODELS

    class PlainConfig(Config):
        hidden: int = Field(16, ge=1)
        with_head: bool = True

    class Plain(nn.Module):  # not a ChildnetModel: no forward_features, no feature_dim
        def __init__(self, hidden, n_out, with_head):
            super().__init__()
            self.body = nn.Sequential(nn.Flatten(), nn.Linear(64, hidden), nn.ReLU())
            last = nn.Linear(hidden, n_out)
            if with_head:
                self.head = last
            else:
                self.out = last

        def forward(self, x):
            return (self.head if hasattr(self, "head") else self.out)(self.body(x))

    MODELS.register("plain_test", config=PlainConfig)(lambda cfg, shape, n: Plain(cfg.hidden, n, cfg.with_head))
    try:
        parent = get_parent({"model": {"name": "plain_test", "hidden": 24}, "train": {"epochs": 1}}, digits_task)
        child = derive("hkt", parent, digits_task, child={"name": "plain_test", "hidden": 8}, train={"epochs": 1})
        assert child.lineage.method == "hkt"
        headless = get_parent({"model": {"name": "plain_test", "with_head": False}, "train": {"epochs": 1}},
                              digits_task)
        with pytest.raises(ChildnetError, match=r"hkt: the parent \(Plain\) has no `head` module"):
            derive("hkt", headless, digits_task, child={"name": "plain_test"}, train={"epochs": 1})
    finally:
        MODELS._entries.pop("plain_test", None)


def test_builder_frozen_layers_stay_frozen_through_pipeline_stages(tmp_path):
    """A later stage built its parent from the incoming child with every parameter frozen, then unfroze
    them all: the layer the builder freezes was trained again in generation 2."""
    import torch
    from pydantic import Field
    from torch import nn

    from childnet import Child, run_experiment
    from childnet.models import ChildnetModel, Config
    from childnet.registry import MODELS

    class FrozenFirstConfig(Config):
        hidden: int = Field(16, ge=1)

    class FrozenFirst(ChildnetModel):
        def __init__(self, hidden, n_out):
            super().__init__()
            self.body = nn.Sequential(nn.Flatten(), nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, hidden),
                                      nn.ReLU())
            self.body[1].requires_grad_(False)
            self.head = nn.Linear(hidden, n_out)

        def forward_features(self, x):
            return self.body(x)

    MODELS.register("frozen_first_test", config=FrozenFirstConfig)(lambda cfg, shape, n: FrozenFirst(cfg.hidden, n))
    try:
        exp = {"name": "ff", "task": {"name": "digits", "n_train": 200},
               "parent": {"model": {"name": "frozen_first_test"}, "train": {"epochs": 1}},
               "stages": [{"name": "prune", "methods": [{"name": "oneshot", "sparsity": 0.3, "tune": {"epochs": 1}}]},
                          {"name": "next", "methods": [{"name": "kd", "train": {"epochs": 1, "lr": 0.05}},
                                                       {"name": "vanilla", "train": {"epochs": 1, "lr": 0.05}}]}],
               "seeds": 1, "evaluate": {"latency": False, "device": False}}
        run_experiment(exp, tmp_path / "run", quiet=True, workers=0)
        kids = {p.parts[-2]: Child.load(p) for p in (tmp_path / "run" / "children").glob("*/*/seed0")}
        first = kids["prune.oneshot"].model.body[1].weight
        for label in ("next.kd", "next.vanilla"):
            assert torch.equal(kids[label].model.body[1].weight, first), label
            assert not torch.equal(kids[label].model.body[3].weight, kids["prune.oneshot"].model.body[3].weight), label
    finally:
        MODELS._entries.pop("frozen_first_test", None)


def test_a_tiny_n_train_that_draws_one_class_names_the_fix(tmp_path):
    x = np.random.default_rng(0).random((40, 4)).astype(np.float32)
    np.savez(tmp_path / "b.npz", x_train=x, y_train=np.arange(40) % 2, x_test=x, y_test=np.arange(40) % 2)
    from childnet.errors import ConfigError

    bad = [s for s in range(40) if _refused({"name": "arrays", "path": str(tmp_path / "b.npz"), "n_train": 2,
                                              "split_seed": s}, ConfigError)]
    assert bad and len(bad) < 40  # depends on the draw; the message says so
    with pytest.raises(ConfigError, match="try another split_seed"):
        load_task({"name": "arrays", "path": str(tmp_path / "b.npz"), "n_train": 2, "split_seed": bad[0]})


def _refused(spec, err) -> bool:
    try:
        load_task(spec)
    except err:
        return True
    return False


def test_a_later_stage_taught_by_the_root_parent_is_checked_too(tmp_path, run_cli):
    raw = yaml.safe_load(_transfer_experiment(tmp_path, ["vanilla"]).read_text())
    raw.pop("methods")
    raw["stages"] = [{"name": "tune", "methods": [{"name": "vanilla", "train": {"epochs": 1}}]},
                     {"name": "distil", "methods": [{"name": "kd", "teacher": "root", "train": {"epochs": 1}}]}]
    exp = tmp_path / "pipe.yaml"
    exp.write_text(yaml.safe_dump(raw))
    for cmd in (("validate", exp), ("run", exp, "--out", tmp_path / "run", "--workers", "0", "--quiet")):
        proc = run_cli(*cmd)
        assert proc.returncode == 2 and "kd: the parent's task 'digits' has 10 classes" in proc.stderr, proc.stderr


def test_derive_selects_on_validation_like_an_experiment(tiny_parent, digits_task):
    """select was an experiment-file feature only (derive: 'kd.select: unknown field')."""
    child = derive("scratch", tiny_parent, digits_task, child={"name": "mlp", "hidden": [8]}, train={"epochs": 1},
                   select={"lr": [1e-3, 3e-2]})
    tried = child.lineage.extra["select"]["candidates"]
    assert [c["values"] for c in tried] == [{"train.lr": 1e-3}, {"train.lr": 3e-2}]
    best = max(tried, key=lambda c: c["val"])
    assert child.lineage.config["train"]["lr"] == best["values"]["train.lr"]
    with pytest.raises(ChildnetError, match=r"scratch\.select.*no field 'lrr'"):
        derive("scratch", tiny_parent, digits_task, select={"lrr": [1e-3]})


def test_predict_refuses_channels_last_images(tmp_path):
    """(N, H, W, C) images have as many values as (N, C, H, W): predict reshaped them and answered wrongly."""
    from childnet import get_parent, predict

    rng = np.random.default_rng(0)
    x = rng.random((60, 3, 6, 6)).astype(np.float32)
    np.savez(tmp_path / "rgb.npz", x_train=x, y_train=np.arange(60) % 2, x_test=x[:10], y_test=np.arange(10) % 2)
    task = load_task({"name": "arrays", "path": str(tmp_path / "rgb.npz")})
    parent = get_parent({"model": {"name": "cnn", "width": 4, "depth": 2}, "train": {"epochs": 1}}, task)
    child = derive("scratch", parent, task, child={"name": "cnn", "width": 4, "depth": 2}, train={"epochs": 0})
    with pytest.raises(ChildnetError, match=r"got \(6, 6, 3\).*channels-last images\? x\.transpose\(0, 3, 1, 2\)"):
        predict(child, x[:4].transpose(0, 2, 3, 1))
    assert predict(child, x[:4].reshape(4, -1)).shape == (4,)  # flat examples are read as the task read them
    assert predict(child, x[:4, :, None]).shape == (4,)  # an extra singleton axis too


def test_validate_catches_what_run_would_refuse(tmp_path, run_cli):
    """validate said ok to a ranking metric on a classifier and to MANAS on images; run then refused, or
    trained the parent before the unit failed. Both now stop in validate and before any training."""
    raw = {"task": {"name": "digits", "n_train": 100},
           "parent": {"model": {"name": "mlp", "hidden": [8]}, "train": {"epochs": 1}},
           "methods": [{"name": "scratch", "child": {"name": "mlp", "hidden": [4]}}, "manas"],
           "metric": "hr@10", "seeds": 1}
    exp = tmp_path / "exp.yaml"
    exp.write_text(yaml.safe_dump(raw))
    for cmd in (("validate", exp), ("run", exp, "--out", tmp_path / "run", "--workers", "0", "--quiet")):
        proc = run_cli(*cmd)
        assert proc.returncode == 2, proc.stderr
        assert "metric: 'hr@10' needs a ranking task" in proc.stderr and "manas needs a ranking task" in proc.stderr
    assert not (tmp_path / "run" / "results.jsonl").exists()


def test_predict_reads_a_tabular_layout_as_the_task_did(tmp_path):
    """layout: tabular flattens every example; predict on the file's own (N, 6, 5) data must do the same."""
    from childnet import get_parent, predict

    x = np.random.default_rng(0).random((80, 6, 5)).astype(np.float32)
    np.savez(tmp_path / "t.npz", x_train=x, y_train=np.arange(80) % 2, x_test=x[:10], y_test=np.arange(10) % 2)
    task = load_task({"name": "arrays", "path": str(tmp_path / "t.npz"), "layout": "tabular"})
    parent = get_parent({"model": {"name": "mlp", "hidden": [8]}, "train": {"epochs": 1}}, task)
    child = derive("scratch", parent, task, child={"name": "mlp", "hidden": [4]}, train={"epochs": 0})
    assert predict(child, x[:4]).shape == (4,)
