"""The simulated intermittent device: hand-computed costs, monotonicity, infeasibility, bad configs."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from torch import nn

from childnet import ConfigError
from childnet.evaluate import evaluate_model
from childnet.evaluate._device_designs import LayerDims, search_layer
from childnet.evaluate.device import (DeviceConfig, cost_tables, device_config_from, device_cost,
                                      energy_per_power_cycle, op_cycles, op_energy, recharge_time)


def test_energy_per_power_cycle_matches_the_issue():
    got = [energy_per_power_cycle(DeviceConfig(capacitance_f=c)) * 1e3 for c in (1e-3, 5e-3, 10e-3)]
    assert got == pytest.approx([0.3025, 1.5126, 3.0253], abs=1e-4)  # 0.30 / 1.51 / 3.03 mJ


def test_op_costs_are_the_measured_fits():
    assert op_energy("dma_read", 10) == pytest.approx(2.7e-8 * 10 + 2.0e-7)
    assert op_cycles("dma_read", 10) == 64 * 10 + 424
    assert op_energy("vmac", 4) == pytest.approx(5.27e-10 * 4 + 2.04e-7, rel=3e-3)  # the issue rounds 2.0441e-7
    assert op_cycles("mul") == 44 and op_cycles("div") == 160


def test_a_tiny_linear_layer_by_hand():
    """Linear 2 -> 1 on a 5 mF device: one design (Tr=Tc=Tm=1, Tn=2); its cost written out in full."""
    dev = DeviceConfig()
    d = LayerDims("conv", 1, 1, 1, 2)  # R = C = 1, M = 1, N = 2
    res = search_layer(d, dev, *cost_tables(dev))
    add_e, mul_e = op_energy("add"), op_energy("mul")
    add_t, mul_t = 12 / 16e6, 44 / 16e6

    def by_hand(add, mul, rd, wr, vmac, reboot):
        ovh = lambda a, m: a * add + m * mul  # noqa: E731
        # one tile: input 1x1 transfer of Tn=2, weights 1 transfer of 2, no partial sums (n = 0 only)
        fetch = (rd(2) + ovh(7, 5)) + (rd(2) + ovh(8, 9))
        compute = vmac(2) + add + ovh(7, 5) + ovh(3, 3)
        return reboot + fetch + rd(4) + compute + wr(4)  # + the output backup, added below
    e_base = by_hand(add_e, mul_e, lambda n: op_energy("dma_read", n), lambda n: op_energy("dma_write", n),
                     lambda n: op_energy("vmac", n), 77.88e-6)
    t_base = by_hand(add_t, mul_t, lambda n: op_cycles("dma_read", n) / 16e6,
                     lambda n: op_cycles("dma_write", n) / 16e6, lambda n: op_cycles("vmac", n) / 16e6, 0.07)
    # the three loop orders differ only in the output backup overhead: reuse_O's (7 ADD, 5 MUL) is cheapest
    e = e_base + op_energy("dma_write", 1) + 7 * add_e + 5 * mul_e
    t = t_base + op_cycles("dma_write", 1) / 16e6 + 7 * add_t + 5 * mul_t
    v = math.sqrt(2 * (energy_per_power_cycle(dev) - e) / 5e-3 + 2.8 ** 2)
    recharge = -24.0 * 5e-3 * math.log((2.99 - 3.0) / (v - 3.0))
    assert res.feasible and res.design["order"] == "reuse_O" and res.power_cycles == 1
    assert res.energy_j == pytest.approx(e, rel=1e-9)
    assert res.latency_s == pytest.approx(t + recharge, rel=1e-9)
    assert float(recharge_time(dev, e)) == pytest.approx(recharge, rel=1e-12)
    assert res.design["sram_bytes"] == (2 + 2 + 1) * 2


def _conv_net(c=8):
    return nn.Sequential(nn.Conv2d(1, c, 3, bias=False), nn.BatchNorm2d(c), nn.ReLU(), nn.Conv2d(c, 16, 5), nn.ReLU(),
                         nn.MaxPool2d(2), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))


@pytest.mark.parametrize("net, shape", [(_conv_net(), (1, 16, 16)), (_conv_net(4), (1, 12, 12)),
                                        (nn.Sequential(nn.Flatten(), nn.Linear(64, 96), nn.ReLU(), nn.Linear(96, 10)),
                                         (1, 8, 8))])
def test_more_capacitance_never_needs_more_power_cycles(net, shape):
    cycles = [device_cost(net, shape, DeviceConfig(capacitance_f=c)).power_cycles for c in (1e-3, 2e-3, 5e-3, 10e-3)]
    assert all(c is not None for c in cycles)
    assert all(a >= b for a, b in zip(cycles, cycles[1:])), cycles


def test_a_layer_whose_smallest_tile_exceeds_sram_is_infeasible_with_that_reason():
    # a 7x7 kernel: the smallest tile already holds a 7x7 input patch and 49 weights (98 + 98 + 2 B)
    net = nn.Sequential(nn.Conv2d(1, 4, 7), nn.ReLU())
    cost = device_cost(net, (1, 16, 16), DeviceConfig(sram_bytes=150))
    assert not cost.feasible and cost.status == "infeasible"
    assert "layer '0' (Conv2d): SRAM" in cost.reason and "150 B" in cost.reason
    assert cost.latency_s is None and cost.metrics()["device_feasible"] == 0
    ok = device_cost(net, (1, 16, 16), DeviceConfig())
    assert ok.feasible and ok.latency_s > ok.continuous_latency_s > 0


def test_a_layer_too_big_for_one_charge_is_infeasible_for_energy():
    net = nn.Sequential(nn.Linear(64, 4))
    cost = device_cost(net, (64,), DeviceConfig(capacitance_f=1e-6))
    assert not cost.feasible and "energy" in cost.reason and cost.continuous_latency_s is not None


def test_unsupported_layers_are_not_modelled_never_a_crash():
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.LSTM(4, 4))
    cost = device_cost(net, (1, 8, 8))
    assert cost.status.startswith("not modelled") and cost.metrics() == {"device_status": cost.status}
    dil = device_cost(nn.Sequential(nn.Conv2d(1, 4, 3, dilation=2)), (1, 8, 8))
    assert dil.status == "not modelled: Conv2d with dilation or unequal strides"
    emb = device_cost(nn.Sequential(nn.Embedding(10, 4)), (5,))
    assert emb.status.startswith("not modelled")


def test_resnet_depthwise_and_1d_layers_are_costed():
    from childnet.models.base import build_model

    res = device_cost(build_model({"name": "resnet", "depth": 8}, (1, 8, 8), 10), (1, 8, 8))
    assert res.feasible and len(res.layers) >= 7
    dw = nn.Sequential(nn.Conv2d(4, 4, 3, groups=4), nn.Conv2d(4, 8, 1), nn.ReLU())
    assert device_cost(dw, (4, 8, 8)).feasible
    one_d = nn.Sequential(nn.Conv1d(2, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(4, 3))
    c = device_cost(one_d, (2, 20))
    assert c.feasible and [lay["type"] for lay in c.layers] == ["Conv1d", "AdaptiveAvgPool1d", "Linear"]


def test_design_is_fastest_feasible_and_search_is_vectorised():
    dev = DeviceConfig()
    d = LayerDims("conv", 8, 8, 8, 4, 3, 3)
    res = search_layer(d, dev, *cost_tables(dev))
    assert res.designs_searched > 500 and res.design["sram_bytes"] <= 2048
    # a smaller SRAM budget only removes designs: the fastest remaining one cannot be faster
    tight = DeviceConfig(sram_bytes=300)
    slow = search_layer(d, tight, *cost_tables(tight))
    assert slow.feasible and slow.design["sram_bytes"] <= 300 and slow.latency_s >= res.latency_s


def test_evaluate_model_adds_device_columns(digits_task):
    net = _conv_net()
    m = evaluate_model(net, digits_task, latency=False, device_model=DeviceConfig())
    assert m["device_feasible"] == 1 and m["device_latency_s"] > 0 and m["device_energy_j"] > 0
    assert m["device_continuous_latency_s"] < m["device_latency_s"]
    assert "device_latency_s" not in evaluate_model(net, digits_task, latency=False)


@pytest.mark.parametrize("raw, needle", [
    ({"capacitance_f": 0}, "evaluate.device.capacitance_f: Input should be greater than 0"),
    ({"v_on": 2.7}, "v_on must be greater than v_off"),
    ({"sram_bytes": 1}, "sram_bytes must hold at least one 2-byte element"),
    ({"capacitor": 1}, "evaluate.device.capacitor: unknown field; device fields: clock_hz"),
    ("big", "expected true, false or a mapping"),
])
def test_bad_device_config_is_one_clear_sentence(raw, needle):
    with pytest.raises(ConfigError, match=needle.replace("(", r"\(")):
        device_config_from({"device": raw})


def test_device_switches():
    assert device_config_from({}) == DeviceConfig()
    assert device_config_from({"device": False}) is None
    assert device_config_from({"device": {"capacitance_f": 0.01}}).resistance() == 22.0
    assert DeviceConfig(capacitance_f=3e-3).resistance() == pytest.approx(38.0)


def test_cli_rejects_a_bad_device_with_exit_2_before_training(tmp_path):
    exp = {"name": "bad-device", "task": {"name": "digits"}, "parent": {"model": {"name": "cnn", "width": 4}},
           "methods": ["scratch"], "evaluate": {"device": {"capacitance_f": -0.005}}}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(exp))
    cli = str(Path(sys.executable).parent / "childnet")
    proc = subprocess.run([cli, "run", str(path), "--out", str(tmp_path / "run")], capture_output=True, text=True)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "evaluate.device.capacitance_f" in proc.stderr and "Traceback" not in proc.stderr + proc.stdout
    assert not (tmp_path / "run").exists()  # stopped before any training (no run folder)


def test_a_run_records_device_columns_in_results_report_and_card(tmp_path):
    import json

    from childnet.runner import read_results, run

    exp = {"name": "device-run", "task": {"name": "digits"},
           "parent": {"model": {"name": "cnn", "width": 4, "depth": 1}, "train": {"epochs": 1}},
           "methods": [{"name": "scratch", "child": {"name": "cnn", "width": 4, "depth": 1}, "train": {"epochs": 0.2}}],
           "seeds": 1, "evaluate": {"latency": False, "device": {"capacitance_f": 0.001}}}
    run(exp, tmp_path / "run", workers=0, log=lambda s: None)
    (row,) = read_results(tmp_path / "run")
    assert row["metrics"]["device_feasible"] == 1 and row["metrics"]["device_latency_s"] > 0
    card = json.loads((tmp_path / "run" / row["child_dir"] / "child.json").read_text())
    assert card["metrics"]["device_latency_s"] == row["metrics"]["device_latency_s"]
    assert card["extra"]["device"]["config"]["capacitance_f"] == 0.001 and card["extra"]["device"]["layers"]
    assert "device latency (s)" in (tmp_path / "run" / "report.md").read_text()


def test_device_config_from_reads_a_typed_evaluate_config():
    class Typed:
        device = False

    assert device_config_from(Typed()) is None
    Typed.device = {"sram_bytes": 4096}
    assert device_config_from(Typed()).sram_bytes == 4096
