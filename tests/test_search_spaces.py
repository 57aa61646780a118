"""Search spaces, the supernet and poisoning: specs are JSON, models deterministic, weights shared."""

from __future__ import annotations

import json

import pytest
import torch

from childnet import ConfigError, build_model
from childnet.evaluate import count_macs
from childnet.methods.search import POISON_SETS, make_space
from childnet.methods.search.controller import UniformController

SHAPE = (1, 8, 8)


def _specs(space, n, seed=0):
    return [space.decode(c) for c in UniformController(space.decisions, seed).sample(n)]


@pytest.mark.parametrize("cfg", [{"space": "macro", "layers": 4, "channels": 4},
                                 {"space": "micro", "layers": 3, "nodes": 3, "channels": 4}])
def test_spec_is_json_and_round_trips_through_choices(cfg):
    space = make_space(cfg)
    choices = UniformController(space.decisions, seed=1).sample(5)
    for c in choices:
        spec = space.decode(c)
        assert json.loads(json.dumps(spec)) == spec
        assert space.encode(spec) == c


@pytest.mark.parametrize("cfg", [{"space": "macro", "layers": 4, "channels": 4, "poison": ["P6"]},
                                 {"space": "micro", "layers": 3, "nodes": 3, "channels": 4}])
def test_spec_to_model_is_deterministic_and_macs_are_exact(cfg):
    space = make_space(cfg)
    x = torch.rand(5, *SHAPE)
    for spec in _specs(space, 3, seed=2):
        mspec = space.model_spec(spec)
        torch.manual_seed(0)
        a = build_model(mspec, SHAPE, 10).eval()
        torch.manual_seed(0)
        b = build_model(json.loads(json.dumps(mspec)), SHAPE, 10).eval()
        sa, sb = a.state_dict(), b.state_dict()
        assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
        assert torch.equal(a(x), b(x))
        assert a.child_macs(a.arch) == count_macs(a, x[:1])  # per-op flop-counter sums == whole child


def test_children_sharing_an_op_share_its_parameter_tensor_in_the_supernet():
    space = make_space({"space": "macro", "layers": 3, "channels": 4})
    net = space.build_supernet(SHAPE, 10)
    a = {"layers": [{"op": "conv3x3", "skips": []}, {"op": "sep5x5", "skips": [0]}, {"op": "maxpool", "skips": []}]}
    b = {"layers": [{"op": "conv3x3", "skips": []}, {"op": "conv5x5", "skips": []}, {"op": "avgpool", "skips": [1]}]}

    def used(spec):
        net.zero_grad(set_to_none=True)
        net.set_arch(spec)
        net(torch.rand(4, *SHAPE)).sum().backward()
        return {name: p for name, p in net.named_parameters() if p.grad is not None}

    ua, ub = used(a), used(b)
    shared_op = "layers.0.ops.conv3x3.1.weight"
    assert ua[shared_op] is ub[shared_op]  # one tensor serves both children
    assert "layers.1.ops.sep5x5.1.0.weight" in ua and "layers.1.ops.sep5x5.1.0.weight" not in ub
    assert "layers.1.ops.conv5x5.1.weight" in ub and "layers.1.ops.conv5x5.1.weight" not in ua
    # a standalone child is a path through the supernet: same parameter names, same function
    child = build_model(space.model_spec({"space": "macro", **a}), SHAPE, 10)
    missing, unexpected = child.load_state_dict(net.state_dict(), strict=False)
    assert not [k for k in missing if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))]
    assert all(".ops." in k and k.split(".ops.")[1].split(".")[0] != _op_of(a, k) for k in unexpected)
    x = torch.rand(6, *SHAPE)
    net.set_arch(a)
    child.train()
    assert torch.allclose(child(x), net(x), atol=1e-5)


def _op_of(spec, key):
    return spec["layers"][int(key.split(".")[1])]["op"]


def test_poison_ops_appear_with_the_requested_multiplicity():
    space = make_space({"space": "macro", "layers": 2, "channels": 4, "poison": ["P6"], "poison_copies": 3})
    base = ("conv3x3", "conv5x5", "sep3x3", "sep5x5", "avgpool", "maxpool")
    assert space.op_choices[:6] == base
    for op in POISON_SETS["P6"]:
        assert space.op_choices.count(op) == 3
    assert len(space.op_choices) == 6 + 3 * 6 and space.decisions[0].num_choices == 24
    assert space.poison_ops == set(POISON_SETS["P6"])
    assert set(POISON_SETS["P4"]) == {"tconv3x3", "tconv5x5"}
    # copies share one module per op in the supernet
    net = space.build_supernet(SHAPE, 10)
    assert sorted(net.layers[0].ops) == sorted(set(space.op_choices))
    clean = make_space({"space": "macro", "poison": ["P1", "P3"], "poison_copies": 0})
    assert clean.op_choices == base and not clean.poison_ops
    two = make_space({"space": "macro", "poison": ["P1", "P3"], "poison_copies": 2})
    assert two.op_choices[6:] == ("identity", "dropout", "identity", "dropout")
    spec = {"space": "macro", "layers": [{"op": "dropout", "skips": []}] + [{"op": "conv3x3", "skips": []}] * 5}
    assert two.poison_fraction(spec) == pytest.approx(1 / 6)


def test_poison_ops_act_as_the_paper_defines():
    from childnet.methods.search.ops import OpOptions, build_op

    x = torch.randn(2, 4, 7, 7)
    noise = build_op("noise", OpOptions(4, noise_sigma=10.0))
    assert not torch.equal(noise.train()(x), x) and torch.equal(noise.eval()(x), x)  # training only
    drop = build_op("dropout", OpOptions(4, dropout_p=1.0))
    assert torch.count_nonzero(drop.train()(x)) == 0 and torch.equal(drop.eval()(x), x)
    for op in ("stretched3x3", "tconv3x3", "tconv5x5"):
        assert build_op(op, OpOptions(4)).eval()(x).shape == x.shape


@pytest.mark.parametrize("bad, needle", [
    ({"space": "macro", "ops": ["conv3x3", "conv7x7"]}, "conv7x7"),
    ({"space": "hyper"}, "macro"),
    ({"space": "macro", "poison_copies": -1}, "poison_copies"),
    ({"space": "macro", "poison": ["P9"]}, "P9"),
])
def test_bad_space_config_is_a_clear_error(bad, needle):
    with pytest.raises(ConfigError, match=needle):
        make_space(bad)


def test_a_spec_that_does_not_fit_the_space_is_a_clear_error():
    macro = make_space({"space": "macro", "layers": 3})
    with pytest.raises(ConfigError, match="expected a list of 3 layers"):
        macro.encode({"space": "macro", "layers": [{"op": "conv3x3"}]})
    with pytest.raises(ConfigError, match="noise.*not in this macro space"):
        macro.encode({"layers": [{"op": "noise"}] * 3})
    with pytest.raises(ConfigError, match="layers 0..0"):
        macro.encode({"layers": [{"op": "conv3x3"}, {"op": "conv3x3", "skips": [1]}, {"op": "conv3x3"}]})
    with pytest.raises(ConfigError, match="micro"):
        macro.encode({"space": "micro"})
    micro = make_space({"space": "micro", "nodes": 2})
    with pytest.raises(ConfigError, match="inputs"):
        micro.encode({"normal": [{"inputs": [0, 5], "ops": ["identity", "sep3x3"]}] * 2,
                      "reduce": [{"inputs": [0, 1], "ops": ["identity", "sep3x3"]}] * 2})
    with pytest.raises(ConfigError, match="conv7x7"):
        build_model({"name": "enas_macro", "layers": [{"op": "conv7x7"}]}, SHAPE, 10)
    with pytest.raises(ConfigError, match="needs image inputs|need image inputs"):
        build_model({"name": "enas_macro", "layers": [{"op": "conv3x3"}]}, (64,), 10)
