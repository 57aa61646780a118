"""The tune family on a small CNN parent: Child-Tuning_F/D masks, AGWM mixup and α, head swaps."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from childnet import Child, derive, get_parent
from childnet.errors import ChildnetError, ConfigError
from childnet.methods.tune._common import body_parameters
from childnet.methods.tune._mixup import AlphaStep, WeightMixup, attach_mixup, weight_parameters
from childnet.methods.tune.child_tuning import BernoulliGradientMask, fisher_information, top_fraction_mask
from childnet.registry import METHODS
from childnet.train import TrainConfig, TrainState

FAST = {"train": {"epochs": 1, "lr": 1e-3}}


def _trainable_copy(parent) -> nn.Module:
    model = parent.copy_model()
    for p in model.parameters():
        p.requires_grad_(True)
    return model.train()


def test_child_tuning_f_mask_density_is_p_and_gradient_unbiased():
    hook = BernoulliGradientMask([], keep=0.2, seed=0)
    masks = hook.sample((20000, 64))
    assert torch.unique(masks).tolist() == pytest.approx([0.0, 1 / hook.keep])
    assert (masks > 0).float().mean().item() == pytest.approx(0.2, abs=0.002)
    grad = torch.randn(64)
    mean_masked = (grad * masks).mean(0)  # E[g ⊙ M / p] over 20,000 draws; std error ≈ 0.014·|g|
    assert torch.all((mean_masked - grad).abs() <= 0.07 * grad.abs() + 1e-6)


def test_child_tuning_f_masks_real_gradients_and_only_touched_embedding_rows():
    torch.manual_seed(0)
    table, linear = nn.Embedding(50, 32), nn.Linear(32, 400)
    ids = torch.tensor([[1, 2, 3, 7]])
    linear(table(ids)).pow(2).sum().backward()
    before_l = linear.weight.grad.clone()
    hook = BernoulliGradientMask([(table.weight, True), (linear.weight, False)], keep=0.3, seed=1)
    hook.mask()
    kept = linear.weight.grad != 0
    assert kept.float().mean().item() == pytest.approx(0.3, abs=0.02)
    assert torch.allclose(linear.weight.grad[kept], before_l[kept] / hook.keep)
    untouched = torch.ones(50, dtype=torch.bool)
    untouched[ids.flatten()] = False
    assert torch.all(table.weight.grad[untouched] == 0)
    assert 0 < (table.weight.grad[ids.flatten()] != 0).float().mean() < 1


@pytest.mark.parametrize("method,field", [("child_tuning_f", "p_f"), ("child_tuning_d", "p_d")])
@pytest.mark.parametrize("value", [0.0, -0.1, 1.5])
def test_fraction_outside_unit_interval_is_a_clear_config_error(tiny_parent, digits_task, method, field, value):
    with pytest.raises(ConfigError, match=rf"{field}.*\(0, 1\].*got {value}"):
        derive(method, tiny_parent, digits_task, {field: value})


def test_child_tuning_f_with_p_one_is_vanilla(tiny_parent, digits_task):
    a = derive("vanilla", tiny_parent, digits_task, FAST, seed=3).model.state_dict()
    b = derive("child_tuning_f", tiny_parent, digits_task, {**FAST, "p_f": 1.0}, seed=3).model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_child_tuning_d_keeps_exactly_top_fraction_by_fisher(tiny_parent, digits_task):
    model = _trainable_copy(tiny_parent)
    body = body_parameters(model)
    assert not any(n.startswith("head.") for n in body)
    scores = fisher_information(model, digits_task.x_train[:200], digits_task.y_train[:200], body, batch_size=16)
    masks = top_fraction_mask(scores, 0.3)
    flat_s = torch.cat([scores[n].flatten() for n in masks])
    flat_m = torch.cat([masks[n].flatten() for n in masks])
    assert int(flat_m.sum()) == round(0.3 * flat_s.numel())
    assert flat_s[flat_m].min() >= flat_s[~flat_m].max()


def test_child_tuning_d_updates_only_the_child_and_always_the_head(tiny_parent, digits_task):
    cfg = {"train": {"epochs": 1, "lr": 1e-3, "weight_decay": 0.0}, "p_d": 0.2}
    child = derive("child_tuning_d", tiny_parent, digits_task, cfg, seed=0)
    tuned, start = dict(child.model.named_parameters()), dict(tiny_parent.model.named_parameters())
    assert child.masks and child.lineage.extra["kept_fraction"] == pytest.approx(0.2, abs=1e-4)
    moved_in_child = 0
    for name, mask in child.masks.items():
        moved = tuned[name].detach() != start[name]
        assert not moved[~mask].any(), f"{name}: a weight outside the child moved"
        moved_in_child += int(moved[mask].sum())
    assert moved_in_child > 0.9 * sum(int(m.sum()) for m in child.masks.values())
    assert not torch.equal(tuned["head.weight"], start["head.weight"])


def test_weight_mixup_alpha_one_is_tuned_alpha_zero_is_pretrained():
    w0, w = torch.randn(5, 7), torch.randn(5, 7)
    for form in ("paper", "official_code"):
        mix = WeightMixup(w0, form)
        with torch.no_grad():
            mix.a.fill_(1.0), mix.b.fill_(1.0)
        assert torch.allclose(mix(w), w)
        with torch.no_grad():
            mix.a.fill_(0.0), mix.b.fill_(0.0)
        assert torch.allclose(mix(w), w0)


def test_upper_level_step_moves_only_alpha(tiny_parent, digits_task):
    model = _trainable_copy(tiny_parent)
    mixers = attach_mixup(model, tiny_parent.model, seed=0)
    hook = AlphaStep(mixers, (digits_task.x_val, digits_task.y_val), lr=0.05, warmup_frac=0.0, batch_size=32)
    opt = torch.optim.AdamW(weight_parameters(model, mixers))
    with torch.no_grad():  # as after a lower-level step: W ≠ W0, so α has a gradient
        for p in weight_parameters(model, mixers):
            p.add_(0.01 * torch.randn_like(p))
    hook.on_fit_start(TrainState(model, TrainConfig(), opt, None, total_steps=10, steps_per_epoch=10))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    hook.after_step(TrainState(model, TrainConfig(), opt, None, 10, 10))
    after = model.state_dict()
    moved = {k for k in before if not torch.equal(before[k], after[k])}
    assert moved and all(k.endswith((".a", ".b")) for k in moved), moved
    assert all(p.grad is None for p in weight_parameters(model, mixers))


@pytest.mark.parametrize("options", [{}, {"optimization": "joint", "alpha_lr": 0.05}])
def test_weight_mixup_alpha_stays_in_unit_interval_and_round_trips(tiny_parent, digits_task, tmp_path, options):
    cfg = {**FAST, "blo": {"epochs": 0.5, "lr": 1e-3}, "n_resplits": 2, "alpha_lr": 0.05, **options}
    child = derive("weight_mixup", tiny_parent, digits_task, cfg, seed=1)
    alphas = [t for k, t in child.masks.items() if ".alpha_" in k]
    assert alphas and all(t.min() >= 0 and t.max() <= 1 for t in alphas)
    assert child.lineage.extra["alpha_mean"] < 1.0  # α moved away from its N(1, 0.005) start
    assert not any("parametrizations" in k for k in child.model.state_dict())
    loaded = Child.load(child.save(tmp_path / "wm"))
    assert loaded.lineage.config["optimization"] == child.lineage.config["optimization"]
    assert set(loaded.masks) == set(child.masks)
    x = digits_task.x_test[:64]
    assert torch.equal(loaded.model(x), child.model.eval()(x))


def test_child_tuning_d_round_trips_masks(tiny_parent, digits_task, tmp_path):
    child = derive("child_tuning_d", tiny_parent, digits_task, FAST, seed=0)
    loaded = Child.load(child.save(tmp_path / "ctd"))
    assert all(torch.equal(loaded.masks[k], child.masks[k]) for k in child.masks)
    assert loaded.lineage.extra["kept_fraction"] == child.lineage.extra["kept_fraction"]


@pytest.fixture(scope="module")
def five_class_parent(digits_task, tmp_path_factory):
    """A CNN trained on digits 0-4 only (another task), to be tuned on all ten digits."""
    keep_tr, keep_te = digits_task.y_train < 5, digits_task.y_test < 5
    path = tmp_path_factory.mktemp("five") / "digits04.npz"
    np.savez(path, x_train=digits_task.x_train[keep_tr].numpy(), y_train=digits_task.y_train[keep_tr].numpy(),
             x_test=digits_task.x_test[keep_te].numpy(), y_test=digits_task.y_test[keep_te].numpy())
    spec = {"model": {"name": "cnn", "width": 8, "depth": 2}, "train": {"epochs": 2, "lr": 0.01},
            "task": {"name": "arrays", "path": str(path)}}
    return get_parent(spec, digits_task)


@pytest.mark.parametrize("method", METHODS.names(family="tune"))
def test_parent_from_another_task_gets_a_new_head(five_class_parent, digits_task, tmp_path, method):
    assert five_class_parent.model.head.out_features == 5
    cfg = {**FAST, "blo": {"epochs": 0.3, "lr": 1e-3}, "n_resplits": 1} if method == "weight_mixup" else FAST
    child = derive(method, five_class_parent, digits_task, cfg, seed=0)
    assert child.model.head.out_features == 10 and child.lineage.extra["head"] == "new"
    loaded = Child.load(child.save(tmp_path / method))
    assert loaded.model(digits_task.x_test[:4]).shape == (4, 10)


def test_keeping_a_head_with_the_wrong_class_count_is_refused(five_class_parent, digits_task):
    with pytest.raises(ChildnetError, match="head: auto"):
        derive("vanilla", five_class_parent, digits_task, {**FAST, "head": "keep"})
