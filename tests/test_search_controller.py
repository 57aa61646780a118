"""The controller protocol: an LSTM REINFORCE controller learns a toy bandit; uniform sampling is uniform."""

from __future__ import annotations

import pytest
import torch

from childnet.methods.search import ControllerConfig, Decision, LSTMController, UniformController


def _train_bandit(ctrl, rewarded, steps=60, batch=8):
    for _ in range(steps):
        samples = ctrl.sample(batch)
        ctrl.update(samples, [float(s[0] == rewarded) for s in samples])
    picks = ctrl.sample(400)
    return sum(s[0] == rewarded for s in picks) / len(picks)


def test_lstm_controller_learns_to_prefer_the_rewarded_choice():
    decisions = [Decision("arm", "op", 5), Decision("other", "input", 3)]
    ctrl = LSTMController(decisions, ControllerConfig(lr=0.05, tanh_constant=2.5), seed=0)
    before = sum(s[0] == 3 for s in ctrl.sample(400)) / 400
    after = _train_bandit(ctrl, rewarded=3)
    assert before < 0.35
    assert after > 0.75, f"P(rewarded arm) only {after:.2f} after training"


def test_tanh_shaping_bounds_the_preference():
    """C * tanh(l / T) caps any logit gap at 2C: the lever multiple-instance poisoning pulls."""
    decisions = [Decision("arm", "op", 2)]
    ctrl = LSTMController(decisions, ControllerConfig(lr=0.2, tanh_constant=0.5), seed=0)
    after = _train_bandit(ctrl, rewarded=0, steps=150)
    bound = torch.softmax(torch.tensor([0.5, -0.5]), 0)[0].item()  # e^{2C} odds at most
    assert after < bound + 0.06


def test_skip_penalty_pulls_skip_probability_to_its_target():
    decisions = [Decision(f"skip{i}", "skip", 2) for i in range(4)]
    cfg = ControllerConfig(lr=0.05, skip_target=0.2, skip_weight=5.0, entropy_weight=0.0)
    ctrl = LSTMController(decisions, cfg, seed=1)
    for _ in range(80):
        samples = ctrl.sample(8)
        stats = ctrl.update(samples, [0.5] * 8)  # no signal from the reward: only the penalty acts
    rate = sum(map(sum, ctrl.sample(500))) / 2000
    assert abs(rate - 0.2) < 0.08 and set(stats) >= {"reward", "baseline", "entropy", "skip_rate"}


def test_controllers_are_seeded_and_validate_rewards():
    decisions = [Decision("a", "op", 6), Decision("b", "skip", 2)]
    a, b = LSTMController(decisions, seed=4), LSTMController(decisions, seed=4)
    assert a.sample(10) == b.sample(10)
    with pytest.raises(ValueError, match="one reward per sample"):
        a.update(a.sample(2), [1.0])
    cond = LSTMController(decisions, seed=0, condition_dim=3)
    assert len(cond.sample(2, condition=torch.ones(3))) == 2
    u1, u2 = UniformController(decisions, seed=7), UniformController(decisions, seed=7)
    picks = u1.sample(3000)
    assert picks[:5] == u2.sample(5)
    counts = torch.bincount(torch.tensor([p[0] for p in picks]), minlength=6).float() / 3000
    assert torch.all((counts - 1 / 6).abs() < 0.03)
