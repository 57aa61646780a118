"""Workers receive validated per-unit configs (issue 10, §3): a unit never re-parses the experiment."""

import json

import childnet.config as config_module
from childnet import runner
from childnet._unit import run_unit
from childnet.config import parse_experiment

EXPERIMENT = {
    "name": "payload",
    "task": {"name": "digits"},
    "parent": {"model": {"name": "mlp", "hidden": [16]}, "train": {"epochs": 1}},
    "defaults": {"child": {"name": "mlp", "hidden": [16]}, "train": {"epochs": 4, "lr": 0.01}},
    "methods": ["scratch", {"name": "kd", "temperature": 2}],
    "sweep": {"alpha": [0.5, 0.9]},
    "evaluate": {"latency": False, "device": False},
    "seeds": 1,
}


def test_payload_carries_validated_configs_not_the_experiment(tmp_path, monkeypatch):
    cfg = parse_experiment(EXPERIMENT)
    units = runner.plan_units(cfg)
    configs = runner._unit_configs(cfg, units)
    kd = [u for u in units if u.label == "kd"]
    assert {configs[u.setting, "kd"]["alpha"] for u in kd} == {0.5, 0.9}  # the sweep is applied in the main process
    payload = runner._payload(cfg, kd[0], tmp_path, "cpu", {}, configs)
    assert "experiment" not in payload
    json.dumps(payload)  # plain data all the way down

    def no_reparse(*a, **k):
        raise AssertionError("a unit re-parsed the experiment")

    monkeypatch.setattr(config_module, "parse_experiment", no_reparse)
    monkeypatch.setattr(runner, "parse_experiment", no_reparse)
    monkeypatch.setenv("CHILDNET_CACHE", str(tmp_path / "cache"))
    rec = run_unit(payload)
    assert rec["status"] == "ok", rec.get("error")
    assert rec["metrics"]["accuracy"] > 0.5
    card = json.loads((tmp_path / rec["child_dir"] / "child.json").read_text())
    assert card["config"]["alpha"] == configs[kd[0].setting, "kd"]["alpha"]

