"""Contract tests over EVERY registered method (a new method is tested the moment it registers).

Each method runs with its registered ``tiny`` options on sklearn digits from a tiny CNN parent:
finite training losses, same seed → identical child weights, another seed → a different child,
save → load → identical predictions, a lineage card that names the method, its config and the
parent, and (prune family) a child never larger than its parent.
"""

import math

import pytest
import torch

from childnet import Child
from childnet.api import derive
from childnet.evaluate import count_nonzero, count_params, predict_proba
from childnet.registry import METHODS

#: Ranking-only methods (MANAS and its baselines) have the same contract tested on a ranking task in test_manas.py.
NAMES = [n for n in METHODS.names() if METHODS.get(n).meta.get("task_kind") != "ranking"]


def _tiny(name):
    return dict(METHODS.get(name).meta.get("tiny", {}))


def test_every_method_declares_tiny_options():
    missing = [n for n in NAMES if "tiny" not in METHODS.get(n).meta]
    assert not missing, f"register tiny={{...}} options for the contract tests: {missing}"


@pytest.mark.parametrize("name", NAMES)
def test_method_contract(name, tiny_parent, digits_task, tmp_path):
    a = derive(name, tiny_parent, digits_task, _tiny(name), seed=3)
    b = derive(name, tiny_parent, digits_task, _tiny(name), seed=3)
    for rec in a.lineage.history:
        for k, v in rec.items():
            if isinstance(v, float):
                assert math.isfinite(v), f"{name}: {k} = {v} in epoch {rec.get('epoch')}"
    sa, sb = a.model.state_dict(), b.model.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), f"{name}: same seed gave different {k}"
    c = derive(name, tiny_parent, digits_task, _tiny(name), seed=4)
    sc = c.model.state_dict()
    assert sc.keys() != sa.keys() or any(not torch.equal(sa[k], sc[k]) for k in sa), f"{name}: seed ignored"
    if METHODS.get(name).family == "prune":
        assert count_params(a.model) <= count_params(tiny_parent.model)
        assert count_nonzero(a.model) < count_nonzero(tiny_parent.model), f"{name}: nothing was pruned"
    assert a.lineage.method == name and a.lineage.seed == 3
    assert a.lineage.parent["fingerprint"] == tiny_parent.fingerprint
    a.save(tmp_path / "child")
    loaded = Child.load(tmp_path / "child")
    x = digits_task.x_test[:64]
    assert torch.allclose(predict_proba(a.model, x), predict_proba(loaded.model, x), atol=1e-6)
    assert loaded.lineage.config == a.lineage.config
    assert set(loaded.masks) == set(a.masks)


@pytest.mark.parametrize("name", METHODS.names())
def test_method_config_round_trips_as_plain_data(name):
    """Workers rebuild each unit's method config from its JSON dump (runner._unit_configs): the dump of the
    default and of the tiny config must validate back to an equal config."""
    cls = METHODS.get(name).config
    if cls is None:
        return
    for opts in ({}, _tiny(name)):
        cfg = cls(**opts)
        dumped = cfg.model_dump(mode="json")
        assert cls.model_validate(dumped) == cfg, f"{name}: {opts} does not survive model_dump(mode='json')"
