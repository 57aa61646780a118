"""The task-conditioned controller (Wong et al. 2018): per-task policies, advantage normalisation, transfer,
safetensors + JSON round trip, and the space check a transfer makes."""

from __future__ import annotations

import json

import pytest
import torch

from childnet.errors import ChildnetError, ConfigError
from childnet.methods.search import Decision
from childnet.methods.search.task_controller import TaskController, TaskControllerConfig

DECISIONS = [Decision("a", "a", 3), Decision("b", "b", 4), Decision("c", "c", 2)]


def _train_two_tasks(ctrl, steps=80, batch=8):
    """Task x is rewarded for b == 0, task y for b == 3: one controller must learn both."""
    for k in range(steps):
        task, good = ("x", 0) if k % 2 == 0 else ("y", 3)
        samples = ctrl.sample(batch, task)
        ctrl.update(samples, [0.5 + 0.5 * float(s[1] == good) for s in samples], task)


def test_one_controller_learns_a_different_policy_per_task():
    ctrl = TaskController(DECISIONS, {"lr": 0.03}, seed=0)
    ctrl.add_task("x"), ctrl.add_task("y")
    _train_two_tasks(ctrl)
    px = sum(s[1] == 0 for s in ctrl.sample(300, "x")) / 300
    py = sum(s[1] == 3 for s in ctrl.sample(300, "y")) / 300
    assert px > 0.6 and py > 0.6, (px, py)


def test_fresh_policy_is_close_to_uniform():
    """Before any update every choice is drawn at a rate near 1/k (weights uniform in ±0.1)."""
    ctrl = TaskController(DECISIONS, seed=3)
    ctrl.add_task("x")
    s = torch.tensor(ctrl.sample(2000, "x"))
    for i, d in enumerate(DECISIONS):
        rates = torch.bincount(s[:, i], minlength=d.num_choices) / 2000
        assert ((rates > 0.6 / d.num_choices) & (rates < 1.5 / d.num_choices)).all(), (d.name, rates)


def test_task_embedding_reaches_every_step():
    """With the previous actions fixed, changing only the task embedding changes a later decision's log-prob."""
    ctrl = TaskController(DECISIONS, seed=0)
    ctrl.add_task("x")
    choices = torch.tensor([[1, 2, 0]])
    with torch.no_grad():
        ctrl.task_embeddings[0] += 1.0
    logp_steps = []
    for emb in (ctrl.task_embeddings[0].clone() - 1.0, ctrl.task_embeddings[0].clone()):
        with torch.no_grad():
            ctrl.task_embeddings[0] = emb
        # the last decision alone: its input is [embedding of the 2nd choice ; task embedding]
        x = torch.cat([ctrl.embed[1](choices[:, 1]), emb[None]], 1)
        logp_steps.append(torch.log_softmax(ctrl._logits(ctrl.skip(x), 2), -1))
    assert not torch.allclose(logp_steps[0], logp_steps[1])
    assert ctrl.lstm.input_size == ctrl.cfg.hidden_size + ctrl.cfg.task_embedding_size


@pytest.mark.parametrize("mode", ["baseline", "std"])
def test_advantage_normalisation_per_task(mode):
    ctrl = TaskController(DECISIONS, {"advantage": mode, "baseline_decay": 0.5}, seed=0)
    first = ctrl.advantages("t", [0.2, 0.4])  # first batch: the baseline starts at its mean (0.3)
    b, s = 0.3, float(torch.tensor([0.2, 0.4]).std())
    scale = b if mode == "baseline" else s
    assert torch.allclose(first, torch.tensor([(0.2 - b) / scale, (0.4 - b) / scale]))
    b_after, s_after = ctrl.baselines["t"], ctrl.spreads["t"]
    second = ctrl.advantages("t", [0.9])
    scale = abs(b_after) if mode == "baseline" else s_after
    assert torch.allclose(second, torch.tensor([(0.9 - b_after) / scale]))
    ctrl.advantages("u", [10.0, 12.0])  # another task keeps its own baseline
    assert ctrl.baselines["u"] > 5 and ctrl.baselines["t"] < 1


def test_save_load_round_trip_is_safetensors_and_json(tmp_path):
    ctrl = TaskController(DECISIONS, {"hidden_size": 16, "task_embedding_size": 8}, seed=1,
                          choice_labels={"a": [1, 2, 3], "b": ["p", "q", "r", "s"], "c": [False, True]})
    ctrl.add_task("x")
    _train_two_tasks_once = ctrl.sample(4, "x")
    ctrl.update(_train_two_tasks_once, [0.1, 0.2, 0.3, 0.4], "x")
    ctrl.save(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["controller.json", "controller.safetensors"]
    assert json.loads((tmp_path / "controller.json").read_text())["tasks"] == ["x"]
    loaded = TaskController.load(tmp_path)
    choices = torch.tensor(_train_two_tasks_once)
    assert torch.allclose(ctrl._run(4, choices, 0)[1], loaded._run(4, choices, 0)[1])
    assert loaded.baselines == ctrl.baselines and loaded.choice_labels == ctrl.choice_labels


def test_transfer_copies_generic_weights_and_adds_a_fresh_embedding():
    ctrl = TaskController(DECISIONS, {"lr": 0.03}, seed=0)
    ctrl.add_task("x"), ctrl.add_task("y")
    _train_two_tasks(ctrl, steps=10)
    new = ctrl.transferred(seed=5)
    for k, v in ctrl.generic_state().items():
        assert torch.equal(v, new.state_dict()[k]), k
    idx = new.add_task("z")
    assert idx == 2 and new.tasks == ["x", "y", "z"] and new.pretrained_on == ["x", "y"]
    assert torch.equal(new.task_embeddings[:2], ctrl.task_embeddings)
    assert new.baselines == {}
    fresh = TaskController(DECISIONS, seed=5)
    assert not torch.equal(fresh.generic_state()["lstm.weight_ih"], new.generic_state()["lstm.weight_ih"])


def test_check_space_names_the_decision_that_differs(tmp_path):
    ctrl = TaskController(DECISIONS, seed=0, choice_labels={"a": [1, 2, 3], "b": [1, 2, 3, 4], "c": [0, 1]})
    ctrl.check_space({"a": [1, 2, 3], "b": [1.0, 2.0, 3.0, 4.0], "c": [0, 1]})
    with pytest.raises(ConfigError, match="decision 'b' differs"):
        ctrl.check_space({"a": [1, 2, 3], "b": [1, 2, 3, 5], "c": [0, 1]})
    with pytest.raises(ConfigError, match="no decision 'd'"):
        ctrl.check_space({"a": [1, 2, 3], "b": [1, 2, 3, 4], "c": [0, 1], "d": [0]})


def test_unknown_task_and_bad_files(tmp_path):
    ctrl = TaskController(DECISIONS, seed=0)
    with pytest.raises(ValueError, match="unknown task 'x'"):
        ctrl.sample(1, "x")
    with pytest.raises(ChildnetError, match="not a saved controller"):
        TaskController.load(tmp_path)
    (tmp_path / "controller.json").write_text('{"kind": "other"}')
    (tmp_path / "controller.safetensors").write_bytes(b"\x80\x04junk")
    with pytest.raises(ChildnetError, match="does not describe a task controller"):
        TaskController.load(tmp_path)
    with pytest.raises(ConfigError, match="controller.advantage"):
        TaskController(DECISIONS, {"advantage": "median"})
    assert TaskControllerConfig().advantage == "baseline"
