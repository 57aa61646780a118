"""Structured shrinking through Torch-Pruning's dependency graph (childnet.depgraph, method depgraph)."""

from __future__ import annotations

import pytest
import torch
from test_bad_inputs import FAST_PARENT, _exp, run_cli  # noqa: F401 - run_cli is a fixture
from test_cli import write
from test_registry_contract import _example
from torch import nn

from childnet import Child
from childnet.child import Lineage
from childnet.depgraph import apply_layout, depgraph_shrink, layout
from childnet.errors import ChildnetError, MissingDependencyError
from childnet.masks import structured_masks
from childnet.models import build_model
from childnet.models.base import shrinkable_models
from childnet.registry import MODELS
from childnet.shrink import shrink

#: Models that claim to be shrinkable: childnet's own unit tables, or ``depgraph=True`` at registration.
CLAIMS = [n for n in MODELS.names() if MODELS.get(n).meta.get("units") or MODELS.get(n).meta.get("depgraph")]


def _params(m):
    return sum(p.numel() for p in m.parameters())


def _tiny(name):
    shape, x = _example(name)
    torch.manual_seed(0)
    try:
        model = build_model({"name": name, **MODELS.get(name).meta["tiny"]}, shape, 3).eval()
    except MissingDependencyError as err:
        pytest.skip(str(err))
    for m in model.modules():  # non-trivial BatchNorm statistics, so a wrong slice shows in the outputs
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 1.5)
    return model, x


def test_claims_cover_the_enas_children_and_minilm():
    assert {"mlp", "cnn", "resnet", "enas_macro", "enas_micro", "minilm"} <= set(CLAIMS)


@pytest.mark.parametrize("name", CLAIMS)
def test_every_shrinkable_model_shrinks_with_equal_outputs(name, tmp_path):
    model, x = _tiny(name)
    small, report = depgraph_shrink(model, x, 0.5, scope="layer")
    assert _params(small) < _params(model), f"{name}: nothing was removed ({report.skipped})"
    assert any(g["after"] < g["before"] for g in report.groups)
    with torch.no_grad():
        out = small(x)
    assert out.shape == model(x).shape and torch.isfinite(out).all()
    assert report.max_error <= 1e-4 * (1 + float(model(x).detach().abs().max()))
    card = Lineage(method="depgraph", config={}, seed=0, extra={"shrunk_layout": layout(small, model)})
    loaded = Child.load(Child(small, card).save(tmp_path / name))
    with torch.no_grad():
        assert torch.allclose(loaded.model(x), out, atol=1e-6)


@pytest.mark.parametrize("name", sorted(shrinkable_models()))
def test_both_paths_build_the_same_child(name):
    """childnet's own tables and the dependency graph agree (inner channels, L1 filters, per layer)."""
    model, x = _tiny(name)
    ours, _ = shrink(model, structured_masks(model, 0.5))
    theirs, report = depgraph_shrink(model, x, 0.5, scope="layer", prune_stream=False)
    assert _params(ours) == _params(theirs)
    with torch.no_grad():
        assert torch.allclose(ours(x), theirs(x), atol=1e-5)
    if name == "resnet":  # the zero-padding shortcut keeps the stream, with the reason on the report
        assert any("zero-padding" in s["reason"] for s in report.skipped)


def test_minilm_heads_and_width():
    model, x = _tiny("minilm")
    small, report = depgraph_shrink(model, x, 0.5, scope="layer", round_to=16)
    att = small.encoder.encoder.layer[0].attention.self
    assert att.num_attention_heads == 6 and att.query.out_features == 6 * att.attention_head_size
    assert small.encoder.encoder.layer[0].intermediate.dense.out_features == 768
    assert any("LayerNorm" in s["reason"] for s in report.skipped)  # the hidden stream stays


def test_resnet_stream_is_pruned_with_projection_shortcuts():
    torch.manual_seed(0)
    model = build_model({"name": "resnet", "depth": 8, "width_mult": 0.5, "shortcut": "conv"}, (3, 8, 8), 3).eval()
    x = torch.randn(4, 3, 8, 8)
    full, rep = depgraph_shrink(model, x, 0.5, scope="layer")
    inner, _ = depgraph_shrink(model, x, 0.5, scope="layer", prune_stream=False)
    assert {g["kind"] for g in rep.groups} == {"stream", "inner"}
    assert _params(full) < _params(inner) < _params(model)
    rounded, rep8 = depgraph_shrink(model, x, 0.3, scope="layer", round_to=8)
    assert all(g["after"] % 8 == 0 for g in rep8.groups)


def test_global_and_layer_allocation_differ_and_random_scorer_by_name():
    torch.manual_seed(0)
    model = build_model({"name": "mlp", "hidden": [32, 8]}, (10,), 3).eval()
    with torch.no_grad():
        model.body[1].weight[:16] *= 10  # half of the first layer matters far more
    x = torch.randn(8, 10)
    _, glob = depgraph_shrink(model, x, 0.4, scope="global")
    _, layer = depgraph_shrink(model, x, 0.4, scope="layer")
    assert [g["after"] for g in glob.groups] != [g["after"] for g in layer.groups]
    a, _ = depgraph_shrink(model, x, 0.5, scorer="random", seed=1)
    b, _ = depgraph_shrink(model, x, 0.5, scorer="random", seed=2)
    assert not torch.equal(a.body[1].weight, b.body[1].weight)


def test_frozen_parent_shrinks_and_stays_frozen():
    model, x = _tiny("cnn")
    for p in model.parameters():
        p.requires_grad_(False)
    small, _ = depgraph_shrink(model, x, 0.5)
    assert _params(small) < _params(model)
    assert not any(p.requires_grad for p in small.parameters())


class Squash(nn.Module):
    """A zero channel is not a removed one here: sigmoid(0) = 0.5 still reaches the next layer."""

    def __init__(self):
        super().__init__()
        self.fc1, self.fc2, self.head = nn.Linear(6, 8), nn.Linear(8, 8), nn.Linear(8, 3)

    def forward(self, x):
        return self.head(torch.relu(self.fc2(torch.sigmoid(self.fc1(x)))))


def test_guard_refuses_a_broken_child_naming_the_layer():
    torch.manual_seed(0)
    with pytest.raises(ChildnetError, match="broke layer fc1"):
        depgraph_shrink(Squash().eval(), torch.randn(8, 6), 0.5, scope="layer")


class Untraceable(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc, self.head = nn.Linear(4, 4), nn.Linear(4, 2)

    def forward(self, x):
        return self.head(torch.from_numpy(self.fc(x).detach().numpy()))


def test_untraceable_model_is_one_sentence():
    with pytest.raises(ChildnetError, match="Torch-Pruning"):
        depgraph_shrink(Untraceable(), torch.randn(2, 4), 0.5)


def test_layout_round_trip_without_the_method():
    model, x = _tiny("enas_micro")
    small, _ = depgraph_shrink(model, x, 0.5)
    fresh = build_model(model.childnet_spec, model.childnet_spec["input_shape"], 3)
    apply_layout(fresh, layout(small, model)).load_state_dict(small.state_dict())
    with torch.no_grad():
        assert torch.allclose(fresh.eval()(x), small(x), atol=1e-6)


def test_sparsity_that_empties_a_layer_exits_2_before_training(tmp_path, run_cli):  # noqa: F811
    raw = _exp(parent=FAST_PARENT, methods=[{"name": "depgraph", "sparsity": 0.99, "scope": "layer"}], baseline="depgraph")
    raw.pop("defaults")
    path = write(tmp_path, raw)
    proc = run_cli("validate", path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "would remove every one of the 16 channels of layer body.1" in proc.stderr
    proc = run_cli("run", path, "--out", tmp_path / "run", "--workers", "0", "--quiet")
    assert proc.returncode == 2 and "would remove every one of the 16 channels" in (tmp_path / "run" /
                                                                                    "results.jsonl").read_text()


def test_childnets_own_shrink_is_guarded_too(monkeypatch):
    import childnet.shrink as own

    torch.manual_seed(0)
    model = build_model({"name": "mlp", "hidden": [8, 8]}, (6,), 3).eval()
    x = torch.randn(8, 6)
    masks = structured_masks(model, 0.5)
    small, _ = own.shrink(model, masks, check=x)  # a correct shrink passes
    real = own._slice_plan

    def wrong(groups, keep):  # a bug that slices the second layer's consumers at the wrong columns
        plan = real(groups, keep)
        plan["body.3.weight"][1] = plan["body.3.weight"][1].flip(0)
        return plan

    monkeypatch.setattr(own, "_slice_plan", wrong)
    with pytest.raises(ChildnetError, match="broke layer body.1"):
        own.shrink(model, masks, check=x)
