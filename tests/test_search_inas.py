"""iNAS and its baselines on digits: reward, L_req, untrained infeasible children, lineage, bad input."""

from __future__ import annotations

import pytest

from childnet import ConfigError, build_model
from childnet.api import derive, method_config
from childnet.evaluate.device import DeviceConfig, device_cost
from childnet.methods.search.device_spaces import DeviceSpaceConfig, make_device_space
from childnet.methods.search.inas import MovingAccuracy, inas_reward

TINY = {"space": "conv", "layers": 2, "kernels": [1, 3], "filters": [2, 8], "padding": "same", "trials": 4,
        "child_train": {"epochs": 0.2, "batch_size": 128}, "retrain": {"epochs": 0.2, "batch_size": 128},
        "l_req_samples": 8}


def test_reward_is_the_public_codes_and_the_corrected_variant_flips_the_latency_term():
    assert inas_reward(0.9, 0.88, 5.0, 10.0) == pytest.approx(0.02 + 0.05)
    assert inas_reward(0.9, 0.88, 5.0, 10.0, "corrected") == pytest.approx(0.02 - 0.05)
    assert inas_reward(0.9, 0.88, 2.0, 10.0) < inas_reward(0.9, 0.88, 8.0, 10.0)  # public code: slower pays more
    assert inas_reward(0.9, 0.88, 2.0, 10.0, "corrected") > inas_reward(0.9, 0.88, 8.0, 10.0, "corrected")
    assert inas_reward(0.9, 0.0, 5.0, 10.0) == 0.1 and inas_reward(0.1, 0.9, None, None) == -0.1


def test_moving_accuracy_is_bias_corrected_on_the_first_update():
    ewa = MovingAccuracy(0.8)
    assert ewa.value == 0.0
    ewa.update(0.5)
    assert ewa.value == pytest.approx(0.5)
    ewa.update(1.0)
    assert ewa.value == pytest.approx(0.8 * 0.5 + 0.2 * 1.0)


def test_conv_space_follows_inas_and_adapts_to_the_input():
    space = make_device_space(DeviceSpaceConfig())
    assert len(space.decisions) == 10 and {d.num_choices for d in space.decisions} == {4}
    deep = space.decode([3, 3] * 5)  # five 7x7 convs, valid padding
    assert not space.legal(deep, (1, 28, 28)) and space.legal(space.decode([1, 0] * 5), (1, 28, 28))
    model = build_model(space.model_spec(space.decode([1, 2] * 5)), (1, 28, 28), 10)
    cost = device_cost(model, (1, 28, 28))
    assert cost.feasible and [lay["type"] for lay in cost.layers] == ["Conv2d"] * 5 + ["AdaptiveAvgPool2d", "Linear"]
    mlp = make_device_space(DeviceSpaceConfig(space="mlp"))
    assert len(mlp.decisions) == 4 and mlp.model_spec(mlp.decode([0, 1, 2, 3]))["hidden"] == [48, 64, 96, 128]


def test_inas_never_trains_infeasible_or_too_slow_children(digits_task):
    # SRAM of 150 B: a 7x7 layer's smallest tile (49 inputs + 49 weights + 1 output, 198 B) does not fit
    cfg = dict(TINY, kernels=[1, 7], device={"sram_bytes": 150}, trials=6)
    child = derive("inas", None, digits_task, cfg, seed=1)
    search = child.lineage.extra["search"]
    statuses = {r["status"] for r in search["trace"]}
    assert "infeasible" in statuses and len(search["trace"]) == 6
    for r in search["trace"]:
        assert ("val_accuracy" in r) == (r["status"] == "trained")
        if r["status"] in ("infeasible", "over_l_req"):
            assert r["reward"] == -0.1
    assert search["fraction_feasible"] == pytest.approx(sum(r["device_feasible"] for r in search["trace"]) / 6)
    assert search["l_req"]["percentile"] == 50 and search["l_req"]["intermittent_s"] > 0
    if any(r["status"] == "trained" for r in search["trace"]):
        assert search["best"]["meets_l_req"] and search["best"]["device_feasible"]
    assert child.lineage.extra["spec"] == search["spec"]


def test_baselines_use_their_own_latency(digits_task):
    hw = derive("hw_nas", None, digits_task, TINY, seed=0).lineage.extra["search"]
    acc = derive("accuracy_nas", None, digits_task, TINY, seed=0).lineage.extra["search"]
    assert hw["objective"] == "continuous" and acc["objective"] == "none"
    assert hw["l_req"]["continuous_s"] < hw["l_req"]["intermittent_s"]
    assert all(r["status"] == "trained" for r in acc["trace"])  # no hardware term: every child trained


@pytest.mark.parametrize("opts, needle", [
    ({"device": {"v_on": 1.0}}, "v_on must be greater than v_off"),
    ({"device": {"farads": 1}}, "device.farads: unknown field"),
    ({"reward": "flipped"}, "reward"),
    ({"l_req_percentile": 100}, "l_req_percentile"),
    ({"filters": [4, 4]}, "filters"),
])
def test_bad_inas_options_are_config_errors(opts, needle):
    with pytest.raises(ConfigError, match=needle):
        method_config("inas", opts)


def test_device_defaults_are_used():
    cfg = method_config("inas", {"device": {"capacitance_f": 0.001}})
    assert cfg.device_config() == DeviceConfig(capacitance_f=0.001)
    assert cfg.child_train.optimizer == "adam" and cfg.retrain.epochs == 3
