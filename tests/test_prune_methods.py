"""oneshot / iterative / ssa on the tiny digits parent: exact sparsity, zeros that stay zero, SSA's
annealing reaching its target, structured children that are smaller, children that save and load."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from childnet import Child
from childnet.api import derive
from childnet.checkpoint import save_tensors
from childnet.errors import ChildnetError, ConfigError
from childnet.evaluate import count_params, predict_proba
from childnet.masks import apply_masks, magnitude_masks
from childnet.methods.prune.iterative import round_sparsity
from childnet.methods.prune.ssa import SubnetworkAnnealing
from childnet.registry import METHODS
from childnet.train import Hook, TrainConfig, fit

TUNE = {"epochs": 1, "optimizer": "sgd", "lr": 0.05, "momentum": 0.9, "weight_decay": 5e-4}


def _weights(child):
    return dict(child.model.named_parameters())


@pytest.mark.parametrize("method", [n for n in METHODS.names(family="prune") if not METHODS.get(n).meta.get("structured")])
def test_exact_sparsity_and_pruned_weights_are_zero(method, tiny_parent, digits_task, tmp_path):
    child = derive(method, tiny_parent, digits_task, {"sparsity": 0.8, "tune": TUNE}, seed=1)
    masks = child.masks
    n = sum(m.numel() for m in masks.values())
    assert sum(int((~m).sum()) for m in masks.values()) == round(0.8 * n)
    weights = _weights(child)
    for name, m in masks.items():
        assert (weights[name][~m] == 0).all(), f"{method}: pruned weights of {name} moved during tuning"
    assert weights["blocks.0.0.weight"][masks["blocks.0.0.weight"]].ne(0).all()
    child.save(tmp_path / "c")
    loaded = Child.load(tmp_path / "c")
    assert all(torch.equal(loaded.masks[k], masks[k]) for k in masks)
    x = digits_task.x_test[:32]
    assert torch.allclose(predict_proba(loaded.model, x), predict_proba(child.model, x), atol=1e-6)


def test_iterative_reaches_the_target_through_nested_rounds(tiny_parent, digits_task):
    assert round_sparsity(0.9, 5, 5) == pytest.approx(0.9)
    assert round_sparsity(0.9, 1, 5) == pytest.approx(1 - 0.1 ** 0.2)
    child = derive("iterative", tiny_parent, digits_task, {"sparsity": 0.9, "rounds": 3, "tune": TUNE}, seed=0)
    rounds = [h.get("prune_round") for h in child.lineage.history]
    assert rounds[-1] == 3
    assert child.lineage.extra["sparsity"] == pytest.approx(0.9, abs=1e-3)


def test_ssa_anneals_probabilities_to_zero_and_ends_on_the_target(tiny_parent, digits_task):
    model = tiny_parent.copy_model().requires_grad_(True)
    target = magnitude_masks(model, 0.9)
    apply_masks(model, target, zero_pruned=False)
    hook = SubnetworkAnnealing(target, t0=0.5, anneal="cosine", anneal_frac=0.5, seed=0)
    seen_pruned_in = []

    class Watch(Hook):  # record how many pruned weights each step's sampled mask let in
        def after_step(self, state):
            m = hook.buffers["blocks.1.0.weight"]
            seen_pruned_in.append(int((m & ~target["blocks.1.0.weight"]).sum()))

    fit(model, (digits_task.x_train, digits_task.y_train), TrainConfig(**TUNE), hooks=[hook, Watch()], seed=0)
    start = hook.probabilities(0)["blocks.1.0.weight"]
    assert start[~target["blocks.1.0.weight"]].eq(0.5).all() and start[target["blocks.1.0.weight"]].eq(1).all()
    assert seen_pruned_in[0] > 0, "pruned weights should be sampled in early on"
    half = len(seen_pruned_in) // 2
    assert all(n == 0 for n in seen_pruned_in[half + 1:]), "after annealing only the target is used"
    final = hook.probabilities()
    for name, m in target.items():
        assert final[name][~m].eq(0).all() and final[name][m].eq(1).all()
        assert torch.equal(hook.buffers[name], m)


def test_ssa_same_seed_same_child_and_random_variant(tiny_parent, digits_task):
    cfg = {"sparsity": 0.7, "variant": "random", "t0": 1.0, "tune": TUNE}
    a = derive("ssa", tiny_parent, digits_task, cfg, seed=5)
    b = derive("ssa", tiny_parent, digits_task, cfg, seed=5)
    assert all(torch.equal(x, y) for x, y in zip(a.model.state_dict().values(), b.model.state_dict().values()))
    assert a.lineage.extra["ssa_final_max_p_pruned"] == 0.0


@pytest.mark.parametrize("method", ["oneshot", "iterative"])
def test_structured_child_is_smaller_and_loads(method, tiny_parent, digits_task, tmp_path):
    child = derive(method, tiny_parent, digits_task, {"sparsity": 0.5, "structure": "channels", "tune": TUNE}, seed=0)
    assert child.model.childnet_spec["channels"] == [4, 4]
    assert count_params(child.model) < count_params(tiny_parent.model)
    child.save(tmp_path / "c")
    loaded = Child.load(tmp_path / "c")
    x = digits_task.x_test[:32]
    assert torch.allclose(predict_proba(loaded.model, x), predict_proba(child.model, x), atol=1e-6)


def test_oneshot_with_a_mask_file(tiny_parent, digits_task, tmp_path):
    masks = magnitude_masks(tiny_parent.model, 0.6, scope="layer")
    save_tensors(masks, tmp_path / "good.safetensors")
    child = derive("oneshot", tiny_parent, digits_task, {"masks": str(tmp_path / "good.safetensors"), "tune": TUNE})
    assert all(torch.equal(child.masks[k], masks[k]) for k in masks)
    save_tensors({"blocks.0.0.weight": torch.ones(3, 3)}, tmp_path / "bad.safetensors")
    with pytest.raises(ChildnetError, match="do not match the model"):
        derive("oneshot", tiny_parent, digits_task, {"masks": str(tmp_path / "bad.safetensors"), "tune": TUNE})


def test_bad_configs_name_the_field(tiny_parent, digits_task):
    with pytest.raises(ConfigError, match=r"sparsity.*\[0, 1\).*got 1.0"):
        derive("oneshot", tiny_parent, digits_task, {"sparsity": 1.0})
    with pytest.raises(ConfigError, match="structure: SSA anneals individual weights"):
        derive("ssa", tiny_parent, digits_task, {"structure": "channels"})
    with pytest.raises(ChildnetError, match="has channels, not neurons"):
        derive("oneshot", tiny_parent, digits_task, {"structure": "neurons", "tune": TUNE})


def test_cli_rejects_a_bad_sparsity_with_exit_code_2(tmp_path, capsys):
    from childnet.cli import main

    raw = yaml.safe_load(Path("experiments/ssa-mnist.yaml").read_text())
    raw.pop("sweep")
    raw["methods"][0] = {"name": "oneshot", "sparsity": 1.2}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(SystemExit) as exit_:
        main(["validate", str(path)])
    err = capsys.readouterr().err
    assert exit_.value.code == 2, err
    assert "Traceback" not in err
    assert "sparsity" in err and "1.2" in err and "[0, 1)" in err
