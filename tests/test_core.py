"""Models, trainer, parent cache, checkpoints and cost functions."""

import pytest
import torch
from torch import nn

from childnet import build_model, get_parent
from childnet.checkpoint import save_tensors
from childnet.errors import ChildnetError, ConfigError, TrainingDiverged
from childnet.evaluate import count_macs, count_nonzero, count_params, expected_calibration_error
from childnet.train import Hook, TrainConfig, fit, make_optimizer, make_scheduler


@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 28, 28), (3, 32, 32)])
@pytest.mark.parametrize("spec", [
    {"name": "mlp"}, {"name": "cnn", "width": 4}, {"name": "resnet", "depth": 8, "width_mult": 0.25},
    {"name": "resnet", "depth": 20, "width_mult": 0.25, "shortcut": "conv"},
])
def test_models_run_on_small_and_mnist_sized_images(spec, shape):
    model = build_model(spec, shape, 7)
    assert model(torch.zeros(2, *shape)).shape == (2, 7)
    assert model.forward_features(torch.zeros(2, *shape)).shape[1] == model.feature_dim


def test_resnet_depths_and_widths():
    assert sum(isinstance(m, nn.Conv2d) for m in build_model({"name": "resnet", "depth": 110}, (1, 8, 8), 10).modules()) == 109
    with pytest.raises(ConfigError, match="6n\\+2"):
        build_model({"name": "resnet", "depth": 21}, (1, 8, 8), 10)
    wide = build_model({"name": "resnet", "depth": 8, "width_mult": 2}, (1, 8, 8), 10)
    assert wide.feature_dim == 128


def test_schedules():
    model = nn.Linear(2, 2)
    for schedule, check in [("cosine", lambda lrs: lrs[0] > lrs[50] > lrs[-1] >= 0),
                            ("onecycle", lambda lrs: max(lrs) == pytest.approx(0.1, rel=1e-3) and lrs[0] < 0.01),
                            ("multistep", lambda lrs: lrs[10] == pytest.approx(0.1) and lrs[60] == pytest.approx(0.01)
                             and lrs[90] == pytest.approx(0.001)),
                            ("constant", lambda lrs: len(set(lrs)) == 1)]:
        cfg = TrainConfig(lr=0.1, schedule=schedule, optimizer="sgd")
        opt = make_optimizer(model.parameters(), cfg)
        sched = make_scheduler(opt, cfg, 100)
        lrs = []
        for _ in range(100):
            lrs.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
        assert check(lrs), (schedule, lrs[:3], lrs[-3:])


def test_no_weight_decay_on_biases_and_norms():
    model = nn.Sequential(nn.Linear(3, 3), nn.LayerNorm(3))
    opt = make_optimizer(model.parameters(), TrainConfig(weight_decay=0.1))
    decays = {p.ndim: g["weight_decay"] for g in opt.param_groups for p in g["params"]}
    assert decays == {2: 0.1, 1: 0.0}


def test_fit_is_deterministic_and_calls_hooks(digits_task):
    calls = []

    class Recorder(Hook):
        def after_backward(self, state):
            calls.append(("after_backward", state.step))

        def on_epoch_end(self, state):
            state.extra["log"] = {"custom": 1.0}

    def run():
        torch.manual_seed(0)
        model = build_model({"name": "cnn", "width": 4, "depth": 2}, (1, 8, 8), 10)
        hist = fit(model, (digits_task.x_train, digits_task.y_train), TrainConfig(epochs=2, batch_size=128),
                   hooks=[Recorder()], val=(digits_task.x_val, digits_task.y_val), seed=5)
        return model, hist

    (a, ha), (b, hb) = run(), run()
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert ha == hb and ha[-1]["custom"] == 1.0 and "val_accuracy" in ha[-1]
    assert calls[0] == ("after_backward", 0) and len(calls) == 2 * 2 * 10


def test_fractional_epochs_and_nan_detection(digits_task):
    model = build_model({"name": "mlp", "hidden": [8]}, (1, 8, 8), 10)
    hist = fit(model, (digits_task.x_train, digits_task.y_train), TrainConfig(epochs=0.5, batch_size=100))
    assert len(hist) == 1
    with pytest.raises(TrainingDiverged, match="non-finite"):
        fit(model, (digits_task.x_train, digits_task.y_train), TrainConfig(epochs=1),
            loss_fn=lambda m, x, y, s: {"bad": m(x).sum() * float("nan")})


def test_parent_cache_reused_and_checkpoint_loads(digits_task, tmp_path):
    cfg = {"model": {"name": "cnn", "width": 4, "depth": 2}, "train": {"epochs": 1}, "seed": 11}
    msgs = []
    first = get_parent(cfg, digits_task, log=msgs.append)
    second = get_parent(cfg, digits_task, log=msgs.append)
    assert first.source == "trained" and second.source == "cache" and "reused cached parent" in msgs[-1]
    assert first.fingerprint == second.fingerprint
    save_tensors(first.model.state_dict(), tmp_path / "p.safetensors")
    loaded = get_parent({"model": cfg["model"], "checkpoint": str(tmp_path / "p.safetensors")}, digits_task)
    assert loaded.fingerprint == first.fingerprint and loaded.source == "checkpoint"
    with pytest.raises(ChildnetError, match="does not fit parent.model"):
        get_parent({"model": {"name": "cnn", "width": 8}, "checkpoint": str(tmp_path / "p.safetensors")}, digits_task)



def test_parent_training_is_deterministic_whatever_the_global_rng_state(digits_task):
    cfg = {"model": {"name": "cnn", "width": 4, "depth": 2}, "train": {"epochs": 1}, "seed": 3}
    torch.manual_seed(123)
    first = get_parent(cfg, digits_task, use_cache=False)
    torch.rand(1000)  # another global RNG state: initialisation must not depend on it
    second = get_parent(cfg, digits_task, use_cache=False)
    assert first.fingerprint == second.fingerprint

def test_cost_functions():
    lin = nn.Linear(10, 4)
    assert count_params(lin) == 44
    assert count_macs(lin, torch.zeros(1, 10)) == 40
    with torch.no_grad():
        lin.weight[:2] = 0
    assert count_nonzero(lin) == 44 - 20
    probs = torch.tensor([[0.9, 0.1], [0.6, 0.4]])
    # bin of 0.9: acc 1 → |0.9−1|; bin of 0.6: acc 0 → |0.6−0|; ECE = ½(0.1) + ½(0.6)
    assert expected_calibration_error(probs, torch.tensor([0, 1])) == pytest.approx(0.35)


def test_saving_a_child_never_deletes_what_a_user_keeps(tmp_path):
    from childnet import Child, Lineage

    child = Child(build_model({"name": "mlp", "hidden": [4]}, (1, 8, 8), 10), Lineage(method="scratch", config={}, seed=0))
    keep = tmp_path / "notes"
    keep.mkdir()
    (keep / "thesis.txt").write_text("hi")
    with pytest.raises(ChildnetError, match="not empty and holds no child"):
        child.save(keep)
    assert (keep / "thesis.txt").read_text() == "hi" and sorted(p.name for p in keep.iterdir()) == ["thesis.txt"]
    with pytest.raises(ChildnetError, match="is a file"):
        child.save(keep / "thesis.txt")
    with pytest.raises(ChildnetError, match="cannot create a folder in .*thesis.txt"):
        child.save(keep / "thesis.txt" / "c")  # a file where a parent folder should be
    first = child.save(tmp_path / "c")  # new folder
    (tmp_path / "empty").mkdir()
    child.save(tmp_path / "empty")  # an empty folder is fine
    with pytest.raises(ChildnetError, match="already holds a child; pass overwrite=True"):
        child.save(first)
    other = Child(build_model({"name": "mlp", "hidden": [4]}, (1, 8, 8), 10), Lineage(method="kd", config={}, seed=1))
    other.save(first, overwrite=True)
    assert Child.load(first).lineage.method == "kd"
