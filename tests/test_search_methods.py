"""enas and random_search end to end on digits: lineage, trace, executor, compute, bad input."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
import yaml

from childnet import Child, ConfigError
from childnet.api import derive, method_config
from childnet.evaluate import predict_proba
from childnet.methods.base import Context
from childnet.registry import METHODS

TINY_ENAS = {"layers": 3, "channels": 4, "shared_train": {"epochs": 2, "batch_size": 128}, "controller_steps": 2,
             "controller_batch": 3, "reward_batch": 32, "derive_samples": 3, "retrain": {"epochs": 1}}


@pytest.fixture(scope="module")
def poisoned_child(tiny_parent, digits_task):
    cfg = dict(TINY_ENAS, poison=["P2", "P3"], poison_copies=4)
    return derive("enas", tiny_parent, digits_task, cfg, seed=1)


def test_enas_child_carries_spec_trace_and_compute(poisoned_child, tiny_parent, digits_task, tmp_path):
    extra = poisoned_child.lineage.extra
    space = extra["search"]
    assert extra["spec"]["space"] == "macro" and len(extra["spec"]["layers"]) == 3
    assert space["op_choices"] == 6 + 2 * 4 and space["poison_ops"] == ["dropout", "noise"]
    epochs = space["epochs"]
    assert [e["epoch"] for e in epochs] == [1, 2]
    for e in epochs:
        assert 0 <= e["poison_fraction"] <= 1 and e["entropy"] > 0 and 0 <= e["reward_mean"] <= 1
        assert set(e["op_frequencies"]) == {"conv3x3", "conv5x5", "sep3x3", "sep5x5", "avgpool", "maxpool",
                                            "noise", "dropout"}
        assert sum(e["op_frequencies"].values()) == pytest.approx(1, abs=1e-3)
    assert space["poison_fraction"] > 0.2  # 8 of 14 entries are poison: a fresh controller samples them often
    assert len(space["candidates"]) == 3 and space["wall_time_s"] > 0
    compute = extra["compute"]
    curve = compute["search_curve"]
    assert [p["epoch"] for p in curve] == [1, 2]
    assert 0 < curve[0]["train_macs"] < curve[1]["train_macs"] == compute["search_train_macs"]
    assert compute["macs_per_example"] == poisoned_child.model.child_macs(poisoned_child.model.arch)
    # saved and loaded with its architecture, spec and trace
    poisoned_child.save(tmp_path / "child")
    loaded = Child.load(tmp_path / "child")
    assert loaded.lineage.architecture["name"] == "enas_macro"
    assert loaded.lineage.extra["spec"] == extra["spec"]
    assert loaded.lineage.extra["search"]["epochs"] == json.loads(json.dumps(epochs))
    x = digits_task.x_test[:32]
    assert torch.allclose(predict_proba(poisoned_child.model, x), predict_proba(loaded.model, x), atol=1e-6)


def test_enas_micro_runs_and_round_trips(tiny_parent, digits_task, tmp_path):
    cfg = dict(TINY_ENAS, space="micro", layers=3, nodes=2, shared_train={"epochs": 1, "batch_size": 128})
    child = derive("enas", tiny_parent, digits_task, cfg, seed=0)
    assert set(child.lineage.extra["spec"]) == {"space", "normal", "reduce"}
    assert child.lineage.config["controller"] == {}
    assert method_config("enas", cfg).controller_config().lr == 0.0035  # ENAS's micro setting
    child.save(tmp_path / "micro")
    loaded = Child.load(tmp_path / "micro")
    x = digits_task.x_test[:16]
    assert torch.allclose(predict_proba(child.model, x), predict_proba(loaded.model, x), atol=1e-6)


def test_random_search_through_an_executor_matches_sequential(tiny_parent, digits_task):
    entry = METHODS.get("random_search")
    cfg = method_config("random_search", {"layers": 2, "channels": 4, "num_architectures": 3,
                                          "child_train": {"epochs": 0.5, "batch_size": 128},
                                          "retrain": {"epochs": 0.5, "batch_size": 128}})
    seq = entry.fn(tiny_parent, digits_task, cfg, Context(seed=2))
    with ThreadPoolExecutor(max_workers=2) as pool:
        par = entry.fn(tiny_parent, digits_task, cfg, Context(seed=2, executor=pool))
    s_trials, p_trials = seq.lineage.extra["search"]["trials"], par.lineage.extra["search"]["trials"]
    assert [t["spec"] for t in s_trials] == [t["spec"] for t in p_trials]
    assert [t["val_accuracy"] for t in s_trials] == [t["val_accuracy"] for t in p_trials]
    assert seq.lineage.extra["spec"] == max(s_trials, key=lambda t: t["val_accuracy"])["spec"]
    curve = seq.lineage.extra["compute"]["search_curve"]
    assert len(curve) == 3 and curve[-1]["train_macs"] == sum(t["train_macs"] for t in s_trials)
    assert curve[-1]["best_val_accuracy"] == max(t["val_accuracy"] for t in s_trials)
    for k, v in seq.model.state_dict().items():
        assert torch.equal(v, par.model.state_dict()[k])


@pytest.mark.parametrize("opts, needle", [
    ({"poison_copies": -1}, "poison_copies"),
    ({"poison_copies": 36}, "poison_copies 36 poisons the space, but no poison set is given"),  # a clean space
    ({"ops": ["conv3x3", "conv9x9"]}, "conv9x9"),
    ({"space": "nasnet"}, "macro"),
    ({"controller": {"lr": -1}}, "controller.lr"),
    ({"controller": {"learning_rate": 0.1}}, "controller.learning_rate"),
    ({"retrain": {"epochs": -2}}, "retrain.epochs"),
])
def test_bad_search_options_are_clear_config_errors(opts, needle):
    with pytest.raises(ConfigError, match=needle):
        method_config("enas", opts)


def test_an_explicit_empty_poison_set_is_a_clean_arm_beside_a_shared_k():
    assert method_config("enas", {"poison": [], "poison_copies": 6}).poison == []


def test_search_needs_image_inputs(tiny_parent):
    from childnet.tasks.base import Task

    flat = Task("flat", torch.rand(20, 5), torch.arange(20) % 2, torch.rand(6, 5), torch.arange(6) % 2,
                torch.rand(6, 5), torch.arange(6) % 2, 2, (5,), kind="tabular")
    with pytest.raises(ConfigError, match="needs image inputs"):
        derive("random_search", tiny_parent, flat, {"num_architectures": 1})


def test_cli_rejects_negative_k_with_exit_code_2(tmp_path, run_cli):
    exp = yaml.safe_load((Path(__file__).parents[1] / "experiments" / "poison-enas.yaml").read_text())
    exp["methods"][0]["poison_copies"] = -1
    exp.pop("sweep", None)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(exp))
    proc = run_cli("validate", path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "poison_copies" in proc.stderr and "Traceback" not in proc.stderr + proc.stdout
