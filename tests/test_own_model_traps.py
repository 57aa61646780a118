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


@pytest.fixture
def register():
    """Register test models for one test (removed afterwards)."""
    from pydantic import Field

    from childnet.models import Config
    from childnet.registry import MODELS

    class HiddenConfig(Config):
        hidden: int = Field(16, ge=1)

    added = []

    def add(name, build):
        MODELS.register(name, config=HiddenConfig)(lambda cfg, shape, n: build(int(np.prod(shape)), cfg.hidden, n))
        added.append(name)

    yield add
    for name in added:
        MODELS._entries.pop(name, None)


class ClassifierFirst(nn.Module):
    """Declares its classifier (not named head) before the body: declaration order is not call order."""

    def __init__(self, n_in, hidden, n_out):
        super().__init__()
        self.out = nn.Linear(hidden, n_out)
        self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(n_in, hidden), nn.ReLU(), nn.Linear(hidden, hidden),
                                     nn.ReLU())

    def forward(self, x):
        return self.out(self.encoder(x))


def test_a_classifier_declared_first_is_still_the_one_kept(digits_task, register):
    """The head was 'the last Linear declared': oneshot zeroed the real classifier (accuracy below chance) and
    depgraph tried to remove classes."""
    from childnet.masks import prunable_names

    register("classifier_first_test", ClassifierFirst)
    parent = get_parent({"model": {"name": "classifier_first_test"}, "train": {"epochs": 1}}, digits_task)
    assert prunable_names(parent.model) == ["encoder.1.weight", "encoder.3.weight"]
    child = derive("oneshot", parent, digits_task, sparsity=0.9, tune={"epochs": 0})
    assert torch.equal(child.model.out.weight, parent.model.out.weight)
    pytest.importorskip("torch_pruning")
    small = derive("depgraph", parent, digits_task, sparsity=0.5, tune={"epochs": 0})
    assert small.model.out.out_features == 10 and small.model.out.in_features < 16


class TwinTied(nn.Module):
    """Two layers sharing one weight tensor (b.weight = a.weight)."""

    def __init__(self, n_in, hidden, n_out):
        super().__init__()
        self.inp, self.a, self.b = nn.Linear(n_in, hidden), nn.Linear(hidden, hidden), nn.Linear(hidden, hidden)
        self.b.weight = self.a.weight
        self.head = nn.Linear(hidden, n_out)

    def forward(self, x):
        return self.head(torch.relu(self.b(torch.relu(self.a(torch.relu(self.inp(x.flatten(1))))))))


def test_a_tied_weight_gets_one_mask_so_pat_members_stay_complementary(digits_task, register):
    """Each name of the shared tensor drew its own random mask: both landed on it, so PAT's 'complementary'
    members shared pruned weights (75 % zeros each, half of them zero in both)."""
    from childnet.masks import prunable_names

    register("twin_tied_test", TwinTied)
    parent = get_parent({"model": {"name": "twin_tied_test"}, "train": {"epochs": 1}}, digits_task)
    assert prunable_names(parent.model) == ["inp.weight", "a.weight"]
    ens = derive("pat", parent, digits_task, members=2, sparsity=0.5, tune={"epochs": 0})
    m0, m1 = ens.model.members
    z0, z1 = m0.a.weight == 0, m1.a.weight == 0
    assert m0.a.weight is m0.b.weight
    assert abs(z0.float().mean().item() - 0.5) < 0.02 and not (z0 & z1).any()


class FrozenFirst(nn.Module):
    def __init__(self, n_in, hidden, n_out):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(n_in, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU())
        self.body[1].requires_grad_(False)
        self.head = nn.Linear(hidden, n_out)

    def forward(self, x):
        return self.head(self.body(x))


@pytest.mark.parametrize("method,options", [("oneshot", {"sparsity": 0.5, "tune": {"epochs": 0}}),
                                            ("pat", {"members": 2, "tune": {"epochs": 0}})])
def test_a_layer_the_builder_froze_is_not_pruned(digits_task, register, method, options):
    """own-model.md promises frozen parameters stay as they are; oneshot/ssa/pat zeroed a third to a half of
    them, and with requires_grad False tuning could never bring them back."""
    register("frozen_first_prune_test", FrozenFirst)
    parent = get_parent({"model": {"name": "frozen_first_prune_test"}, "train": {"epochs": 1}}, digits_task)
    child = derive(method, parent, digits_task, **options)
    for model in getattr(child.model, "members", [child.model]):
        assert torch.equal(model.body[1].weight, parent.model.body[1].weight)
        assert (model.body[3].weight == 0).any()


def test_a_parent_with_other_class_names_is_refused_for_methods_that_read_its_outputs(tmp_path):
    """Same data, classes renamed: kd and oneshot accepted the parent and recorded the new names."""
    path, _, _ = _labelled_table(tmp_path / "t.npz")
    raw = dict(np.load(path))
    renamed = {k: (np.array(["cat", "dog", "eel"])[np.searchsorted(["alpha", "beta", "gamma"], v)] if k.startswith("y_")
                   else v) for k, v in raw.items()}
    np.savez(tmp_path / "renamed.npz", **renamed)
    task = load_task({"name": "arrays", "path": path})
    other = load_task({"name": "arrays", "path": str(tmp_path / "renamed.npz")})
    parent = get_parent({"model": {"name": "mlp", "hidden": [8]}, "train": {"epochs": 1}}, task)
    for method in ("kd", "oneshot"):
        with pytest.raises(ChildnetError, match=r"classes \[alpha, beta, gamma\] but task 'arrays' \(renamed.npz\) "
                                                r"has \[cat, dog, eel\]"):
            derive(method, parent, other)
    derive("vanilla", parent, other, train={"epochs": 0})  # a tune method fits a new head


class Reused(nn.Module):
    """Calls one Linear twice in its forward."""

    def __init__(self, n_in, hidden, n_out):
        super().__init__()
        self.inp, self.shared, self.head = nn.Linear(n_in, hidden), nn.Linear(hidden, hidden), nn.Linear(hidden, n_out)

    def forward_features(self, x):
        return torch.relu(self.shared(torch.relu(self.shared(torch.relu(self.inp(x.flatten(1)))))))

    def forward(self, x):
        return self.head(self.forward_features(x))


@pytest.mark.parametrize("method,options", [("hkt", {"parent_layers": ["stages.1"], "child_layers": ["shared"]}),
                                            ("fitnets", {"parent_layer": "stages.1", "child_layer": "shared"})])
def test_a_layer_called_twice_in_the_forward_is_refused_for_features(digits_task, register, method, options):
    """HKT replaced the output at both calls and read the second; FitNets hinted the second call only."""
    register("reused_test", Reused)
    parent = get_parent({"model": {"name": "resnet", "depth": 8, "width_mult": 0.25}, "train": {"epochs": 1}},
                        digits_task)
    with pytest.raises(ChildnetError, match="layer 'shared' is called more than once in one forward pass"):
        derive(method, parent, digits_task, child={"name": "reused_test"}, train={"epochs": 1}, **options)


def test_depgraph_ignored_names_a_container_and_a_failing_cut_is_a_sentence(digits_task, register):
    """ignored: [pw] (a Sequential) was accepted and not honoured; ignoring the grouped conv the guard named
    then crashed inside Torch-Pruning with a raw RuntimeError."""
    pytest.importorskip("torch_pruning")

    class Grouped(nn.Module):
        def __init__(self, n_in, hidden, n_out):
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU())
            self.dw = nn.Sequential(nn.Conv2d(16, 16, 3, padding=1, groups=16), nn.ReLU())
            self.pw = nn.Sequential(nn.Conv2d(16, 32, 1, groups=2), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
            self.head = nn.Linear(32, n_out)

        def forward(self, x):
            return self.head(self.pw(self.dw(self.stem(x))))

    register("grouped_test", Grouped)
    parent = get_parent({"model": {"name": "grouped_test"}, "train": {"epochs": 1}}, digits_task)
    with pytest.raises(ChildnetError, match=r"cannot prune layer dw.0: Torch-Pruning failed .* add dw.0 to ignored"):
        derive("depgraph", parent, digits_task, sparsity=0.5, tune={"epochs": 0}, ignored=["pw.0"])
    with pytest.raises(ChildnetError, match="no channel group to prune"):  # pw and dw ignored: nothing left
        derive("depgraph", parent, digits_task, sparsity=0.5, tune={"epochs": 0}, ignored=["pw", "dw.0"])


def test_include_head_with_structured_pruning_is_refused():
    """include_head: true with structure: neurons was accepted and did nothing."""
    from childnet.registry import METHODS

    for method in ("oneshot", "iterative", "pat"):
        with pytest.raises(ValueError, match="include_head: true applies to structure: weights only"):
            METHODS.get(method).config.model_validate({"include_head": True, "structure": "neurons"})


def test_show_names_the_widths_depgraph_left(tmp_path, digits_task, run_cli):
    """show printed the parent's architecture spec (hidden=16) for a child 8 wide."""
    pytest.importorskip("torch_pruning")
    parent = get_parent({"model": {"name": "mlp", "hidden": [16, 16]}, "train": {"epochs": 1}}, digits_task)
    child = derive("depgraph", parent, digits_task, sparsity=0.5, tune={"epochs": 0})
    child.save(tmp_path / "c")
    proc = run_cli("show", str(tmp_path / "c"))
    import re

    assert proc.returncode == 0 and re.search(r"shrunk by depgraph: body\.\d 16→\d+, body\.\d 16→\d+", proc.stdout), \
        proc.stdout


def test_diversity_of_members_without_a_head_uses_a_named_layer(digits_task, register, tmp_path):
    """Activation maximisation was fixed on 'features' (the head's input): an ensemble of a model without a
    head could not be analysed even with --layers given."""
    from childnet.evaluate.diversity import diversity_report

    register("classifier_first_div_test", ClassifierFirst)
    parent = get_parent({"model": {"name": "classifier_first_div_test"}, "train": {"epochs": 1}}, digits_task)
    ens = derive("independent", parent, digits_task, members=2, train={"epochs": 1})
    rep = diversity_report(ens, digits_task, layers=["encoder.1", "encoder.3"], steps=2, units=2)
    assert rep["activation_maximisation"]["layer"] == "encoder.3" and set(rep["cka"]) == {"encoder.1", "encoder.3"}


def test_the_report_lists_picks_per_seed_not_their_mean():
    """The other-metrics table showed select_train.lr 0.021 for picks 0.03, 0.03, 0.003: no candidate."""
    from childnet.report.tables import extra_metrics_table

    entry = {"metrics": {"select_train.lr": 0.021, "select_candidates": 2.0, "select_val_accuracy": 0.8},
             "picks": {"train.lr": [0.03, 0.03, 0.003]}, "wall_time_s": 1.0}
    table = extra_metrics_table({"settings": {"default": {"methods": {"vanilla": entry}}}}, "default")
    assert "select_train.lr" not in table.headers and "select_candidates" in table.headers


def test_a_units_wall_time_leaves_out_the_workers_start_up(tmp_path, monkeypatch):
    """The first unit of a worker also loaded the task and the parent: 4.2 s against 0.1 s for the others, and
    the report's mean wall time made whichever method ran first look 20× slower. Here loading the parent is
    made slow (3 s) in-process: that time must land in setup_s, not in the unit's wall time."""
    import json
    import time

    from childnet import _unit, run_experiment

    slow = _unit._unit_parent

    def slow_parent(*args, **kwargs):
        time.sleep(3.0)
        return slow(*args, **kwargs)

    monkeypatch.setattr(_unit, "_unit_parent", slow_parent)
    exp = {"name": "walls", "task": {"name": "digits", "n_train": 100},
           "parent": {"model": {"name": "mlp", "hidden": [8]}, "train": {"epochs": 1}},
           "methods": [{"name": "oneshot", "sparsity": 0.5, "tune": {"epochs": 0}}], "seeds": 2,
           "evaluate": {"latency": False, "device": False}}
    run_experiment(exp, tmp_path / "run", quiet=True, workers=0)
    records = [json.loads(line) for line in (tmp_path / "run" / "results.jsonl").read_text().splitlines()]
    units = [r for r in records if r.get("unit")]
    assert len(units) == 2 and all(r["setup_s"] >= 3.0 and r["wall_time_s"] < 3.0 for r in units)


class TokensClassifierFirst(nn.Module):
    """Embeds token ids; declares its classifier first (a float forward cannot run it)."""

    def __init__(self, n_in, hidden, n_out):
        super().__init__()
        self.classifier = nn.Linear(hidden, n_out)
        self.emb = nn.Embedding(50, hidden)
        self.body = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU())

    def forward(self, x):
        return self.classifier(self.body(self.emb(x.long()).mean(1)))


class TiedHead(nn.Module):
    """The classifier shares its weight with an earlier projection (declared first)."""

    def __init__(self, n_in, hidden, n_out):
        super().__init__()
        self.inp = nn.Linear(n_in, n_out)
        self.proj = nn.Linear(n_out, n_out)
        self.head = nn.Linear(n_out, n_out)
        self.head.weight = self.proj.weight

    def forward(self, x):
        return self.head(torch.relu(self.proj(torch.relu(self.inp(x.flatten(1))))))


def test_the_classifier_is_found_for_token_inputs_and_a_tie_with_it_is_left_whole():
    from childnet.masks import prunable_names
    from childnet.models import build_model
    from childnet.registry import MODELS
    from pydantic import Field

    from childnet.models import Config

    class C(Config):
        hidden: int = Field(8, ge=1)

    MODELS.register("tokens_first_test", config=C)(lambda cfg, shape, n: TokensClassifierFirst(0, cfg.hidden, n))
    MODELS.register("tied_head_test", config=C)(lambda cfg, shape, n: TiedHead(int(np.prod(shape)), cfg.hidden, n))
    try:
        assert prunable_names(build_model({"name": "tokens_first_test"}, (12,), 3)) == ["body.0.weight"]
        assert prunable_names(build_model({"name": "tied_head_test"}, (6,), 3)) == ["inp.weight"]
    finally:
        MODELS._entries.pop("tokens_first_test", None)
        MODELS._entries.pop("tied_head_test", None)


def test_a_ranking_model_is_not_run_on_zeros_of_its_task_sizes():
    """input_shape of a ranking task is (users, items, history): zeros of it allocated gigabytes."""
    from childnet.models import build_model
    from childnet.models.base import called_layers

    model = build_model({"name": "logic", "dim": 8}, (800, 12000, 10), 1)
    assert called_layers(model) is None
