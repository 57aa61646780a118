"""Structured shrinking through Torch-Pruning's dependency graph (childnet.depgraph, method depgraph)."""

from __future__ import annotations

import pytest
import torch
from test_bad_inputs import FAST_PARENT, _exp
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


@pytest.mark.parametrize("over,needle", [
    ({"ignored": ["nonexistent_layer"]}, "ignored: 'nonexistent_layer' is not a module of MLP; name modules by their "
                                          "path in the model, e.g. its Conv/Linear layers: body.1"),
    ({"ignored": [""]}, "ignored: '' is not a module of MLP"),
    ({"round_to": 64}, "sparsity 0.5 would remove nothing: round_to 64 keeps every group at full width (the widest "
                       "has 16); raise sparsity or lower round_to"),
])
def test_bad_depgraph_options_exit_2_in_validate(tmp_path, run_cli, over, needle):  # noqa: F811
    raw = _exp(parent=FAST_PARENT, methods=[{"name": "depgraph", "sparsity": 0.5, **over}], baseline="depgraph")
    raw.pop("defaults")
    proc = run_cli("validate", write(tmp_path, raw))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and needle in proc.stderr, proc.stderr


def test_the_head_is_kept_whatever_ignored_lists():
    model, x = _tiny("cnn")
    with torch.no_grad():
        want = model(x).shape
    for ignored in ([], ["blocks.0.0"]):
        small, report = depgraph_shrink(model, x, 0.5, scope="layer", ignored=ignored)
        assert small(x).shape == want and small.head.out_features == model.head.out_features
    assert small.get_submodule("blocks.0.0").out_channels == model.get_submodule("blocks.0.0").out_channels


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


# --- the hidden stream through LayerNorm (norm_stream) -------------------------------------------------------

_LAYER = "encoder.encoder.layer.0"


def _stream_only(model, x, **kw):
    """Shrink only MiniLM's hidden stream (heads off, the feed-forward group's root ignored)."""
    return depgraph_shrink(model, x, 0.5, scope="layer", norm_stream=True, heads=False,
                           ignored=["head", f"{_LAYER}.intermediate.dense"], **kw)


def _hand_masked(model, kept):
    """The masked parent written out by hand: removed channels zero at every producer, LayerNorms over ``kept``."""
    import copy

    import torch.nn.functional as F

    class Restricted(nn.Module):
        def __init__(self, ln):
            super().__init__()
            self.ln = ln

        def forward(self, h):
            out = torch.zeros_like(h)
            out[..., kept] = F.layer_norm(h[..., kept], (len(kept),), self.ln.weight[kept], self.ln.bias[kept],
                                          self.ln.eps)
            return out

    masked = copy.deepcopy(model)
    removed = [i for i in range(384) if i not in set(kept.tolist())]
    emb, layer = masked.encoder.embeddings, masked.encoder.encoder.layer[0]
    with torch.no_grad():
        for e in (emb.word_embeddings, emb.position_embeddings, emb.token_type_embeddings):
            e.weight[:, removed] = 0
        for lin in (layer.attention.output.dense, layer.output.dense):
            lin.weight[removed] = 0
            lin.bias[removed] = 0
    emb.LayerNorm = Restricted(emb.LayerNorm)
    layer.attention.output.LayerNorm = Restricted(layer.attention.output.LayerNorm)
    layer.output.LayerNorm = Restricted(layer.output.LayerNorm)
    return masked


def test_minilm_hidden_stream_shrinks_through_layernorm_and_round_trips(tmp_path):
    model, x = _tiny("minilm")
    small, report = _stream_only(model, x)
    emb = small.encoder.embeddings
    assert emb.word_embeddings.embedding_dim == 192 and emb.word_embeddings.weight.shape == (30522, 192)
    assert emb.LayerNorm.normalized_shape == (192,) and small.head.in_features == 192
    assert small.encoder.encoder.layer[0].attention.self.query.in_features == 192
    assert [g["kind"] for g in report.groups] == ["stream"]
    assert [s["reason"] for s in report.skipped] == ["it is the attention heads (heads: false)"]
    assert _params(small) < 0.55 * _params(model)
    # which channels were kept: the parent's embedding columns the child holds
    parent_cols = model.encoder.embeddings.word_embeddings.weight[:50]
    kept = torch.tensor([int((parent_cols - c[:, None]).abs().sum(0).argmin()) for c in
                         emb.word_embeddings.weight[:50].T])
    assert kept.unique().numel() == 192
    with torch.no_grad():
        out, ref = small(x), _hand_masked(model, kept)(x)
        assert torch.allclose(out, ref, atol=1e-5), float((out - ref).abs().max())
        assert not torch.allclose(out, model(x), atol=1e-3)  # restricting the LayerNorms is a real change
    card = Lineage(method="depgraph", config={}, seed=0, extra={"shrunk_layout": layout(small, model)})
    loaded = Child.load(Child(small, card).save(tmp_path / "stream"))
    with torch.no_grad():
        assert torch.equal(loaded.model(x), out)


def test_guard_refuses_a_layernorm_left_unrestricted(monkeypatch):
    import childnet._depgraph_mask as dm

    model, x = _tiny("minilm")
    real = dm._replace

    def forget_one(masked, name, new):  # the masked twin keeps one LayerNorm over all 384 channels
        if name != f"{_LAYER}.output.LayerNorm":
            real(masked, name, new)

    monkeypatch.setattr(dm, "_replace", forget_one)
    with pytest.raises(ChildnetError, match=f"broke layer {_LAYER}.output.dense"):
        _stream_only(model, x)


def test_kept_layernorm_composes_and_matches_a_small_layernorm():
    from childnet._depgraph_mask import KeptLayerNorm

    torch.manual_seed(0)
    ln = nn.LayerNorm(8)
    with torch.no_grad():
        ln.weight.uniform_(0.5, 1.5)
        ln.bias.uniform_(-1, 1)
    kept = KeptLayerNorm(ln, torch.tensor([0, 2, 3, 5, 6, 7]))
    kept.restrict([1, 4])  # positions among the kept: channels 2 and 6 go too
    assert kept.kept.tolist() == [0, 3, 5, 7]
    x = torch.randn(4, 8)
    out = kept(x)
    idx = [0, 3, 5, 7]
    small = nn.LayerNorm(4)
    with torch.no_grad():
        small.weight.copy_(ln.weight[idx])
        small.bias.copy_(ln.bias[idx])
    assert torch.allclose(out[:, idx], small(x[:, idx]), atol=1e-6)
    assert out[:, [1, 2, 4, 6]].abs().max() == 0 and kept.weight[[1, 2, 4, 6]].abs().max() == 0


class Tokens(nn.Module):
    """Word + position embeddings into a residual block: the embeddings' columns are the stream's channels."""

    def __init__(self):
        super().__init__()
        self.word, self.pos = nn.Embedding(20, 8), nn.Embedding(10, 8)
        self.fc, self.head = nn.Linear(8, 8), nn.Linear(8, 3)

    def forward(self, ids):
        h = self.word(ids) + self.pos(torch.arange(ids.shape[1]))
        h = h + torch.relu(self.fc(h))
        return self.head(h.mean(1))


def test_embedding_channels_are_columns(monkeypatch):
    import childnet._depgraph_mask as dm

    torch.manual_seed(0)
    model, ids = Tokens().eval(), torch.randint(0, 20, (6, 5))
    small, report = depgraph_shrink(model, ids, 0.5, scope="layer")
    assert small.word.weight.shape == (20, 4) and small.pos.embedding_dim == 4
    assert report.groups[0]["kind"] == "stream"
    # zeroing rows (tokens) instead of columns would make a wrong masked parent: the guard then refuses
    monkeypatch.setattr(dm, "_COLUMNS", tuple(c for c in dm._COLUMNS if c is not nn.Embedding))
    monkeypatch.setattr(dm, "_ROWS", dm._ROWS + (nn.Embedding,))
    with pytest.raises(ChildnetError, match="broke layer fc"):
        depgraph_shrink(model, ids, 0.5, scope="layer")


class Grouped(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.norm, self.head = nn.Conv2d(1, 8, 3), nn.GroupNorm(2, 8), nn.Linear(8, 3)

    def forward(self, x):
        return self.head(torch.relu(self.norm(self.conv(x))).mean((2, 3)))


def test_groupnorm_and_multihead_attention_are_refused_with_the_reason():
    torch.manual_seed(0)
    _, report = depgraph_shrink(Grouped().eval(), torch.randn(2, 1, 6, 6), 0.5, norm_stream=True)
    assert not report.groups and "GroupNorm" in report.skipped[0]["reason"]
    from childnet._depgraph_mask import refusal

    assert "MultiheadAttention" in refusal(nn.MultiheadAttention(8, 2), "att", True)
    assert "LSTM" in refusal(nn.LSTM(4, 4), "rnn", True)
    assert "over 2 dimensions" in refusal(nn.LayerNorm((4, 4)), "ln", True)
    assert refusal(nn.LayerNorm(4), "ln", True) is None and "norm_stream" in refusal(nn.LayerNorm(4), "ln", False)


class Shift(nn.Module):
    """A bare parameter added to the stream: Torch-Pruning prunes it as an unwrapped parameter."""

    def __init__(self):
        super().__init__()
        self.fc0, self.fc, self.head = nn.Linear(6, 8), nn.Linear(8, 8), nn.Linear(8, 3)
        self.shift = nn.Parameter(torch.randn(8))

    def forward(self, x):
        h = self.fc0(x) + self.shift
        return self.head(h + torch.relu(self.fc(h)))


def test_unwrapped_parameter_is_masked_in_the_parent():
    torch.manual_seed(0)
    small, report = depgraph_shrink(Shift().eval(), torch.randn(5, 6), 0.5, scope="layer")
    assert small.shift.shape == (4,) and report.groups[0]["after"] == 4


def _bn_net():
    """Conv → BN → ReLU → Conv → BN → ReLU → pool → Linear, with equal filters and BN scales that differ."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
                          nn.Conv2d(8, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 3)).eval()
    with torch.no_grad():
        model[0].weight.copy_(model[0].weight[:1].repeat(8, 1, 1, 1))  # every channel's filter the same
        model[1].weight.copy_(torch.tensor([1.0, 0.01, 1.0, 1.0, 0.02, 1.0, 1.0, 1.0]))
    return model


@pytest.mark.parametrize("importance", ["group", "bn_scale"])
def test_bn_aware_importance_removes_the_channels_batchnorm_scales_down(importance):
    from childnet.depgraph import plan_groups

    model, x = _bn_net(), torch.randn(4, 1, 12, 12)
    _, plans, _ = plan_groups(model, x, 0.25, scope="layer", importance=importance)
    first = next(p for p in plans if p["name"] == "0")
    assert first["prune"] == [1, 4]
    # the producers' filters are equal, so the default ranking cannot see the scales (ties: lowest index)
    _, plans, _ = plan_groups(model, x, 0.25, scope="layer")
    assert next(p for p in plans if p["name"] == "0")["prune"] == [0, 1]
    small, _ = depgraph_shrink(model, x, 0.25, scope="layer", importance=importance)
    assert small[0].out_channels == 6 and small[1].num_features == 6


def test_bn_scale_on_a_model_without_batchnorm_is_refused():
    model = build_model({"name": "mlp", "hidden": [16, 16]}, (1, 8, 8), 3)
    with pytest.raises(ChildnetError, match="bn_scale.*no BatchNorm layer.*producers or group"):
        depgraph_shrink(model, torch.randn(4, 1, 8, 8), 0.5, importance="bn_scale")


def test_importance_config_names_the_field_and_the_accepted_values():
    from pydantic import ValidationError

    from childnet.methods.prune.depgraph import DepGraphConfig

    with pytest.raises(ValidationError, match="(?s)importance.*producers, group, bn_scale.*'l1'"):
        DepGraphConfig(importance="l1")
    with pytest.raises(ValidationError, match="(?s)importance: group .*scorer must be magnitude.*'fisher'"):
        DepGraphConfig(importance="group", scorer="fisher")
    assert DepGraphConfig(importance="bn_scale").importance == "bn_scale"


def test_an_ensemble_of_depgraph_shrunk_members_saves_and_loads_back(tmp_path):
    """combine_members through the Python API: the card records the members' shapes (the saver finds them)."""
    from childnet.models.base import model_spec
    from childnet.models.ensemble import combine_members

    torch.manual_seed(0)
    model = build_model({"name": "cnn", "channels": [8, 16]}, (1, 12, 12), 3).eval()
    x = torch.randn(4, 1, 12, 12)
    members = [depgraph_shrink(model, x, s, scope="layer")[0] for s in (0.5, 0.25)]
    ensemble = combine_members(members)
    before = torch.get_rng_state()
    Child(ensemble, Lineage(method="mine", config={}, seed=0, architecture=model_spec(ensemble)), {}).save(tmp_path / "c")
    assert torch.equal(torch.get_rng_state(), before)  # saving draws no random numbers
    back = Child.load(tmp_path / "c")
    assert _params(back.model) == _params(ensemble) < 2 * _params(model)
    assert torch.allclose(back.model(x), ensemble(x), atol=1e-6)


def test_bn_scale_ties_and_dead_scales_under_global_allocation():
    from childnet.depgraph import plan_groups

    model, x = _bn_net(), torch.randn(4, 1, 12, 12)
    with torch.no_grad():
        model[1].weight.fill_(1.0)  # an untrained parent: every scale ties
        model[4].weight.fill_(1.0)
    _, plans, _ = plan_groups(model, x, 0.25, scope="global", importance="bn_scale")
    assert sorted(len(p["prune"]) for p in plans) == [2, 2]  # the ties go round the groups, none is emptied
    with torch.no_grad():
        model[4].weight.zero_()  # a layer whose scales are all 0 (its channels output only their shift)
    _, plans, _ = plan_groups(model, x, 0.25, scope="global", importance="bn_scale")
    assert {p["name"]: len(p["prune"]) for p in plans} == {"3": 4, "0": 0}  # it goes first (it was NaN)


def test_bn_scale_without_a_usable_scale_is_refused_or_skipped_with_the_reason():
    from childnet.depgraph import plan_groups

    model = nn.Sequential(nn.Conv2d(1, 8, 3), nn.BatchNorm2d(8, affine=False), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                          nn.Flatten(), nn.Linear(8, 3))
    with pytest.raises(ChildnetError, match="no BatchNorm layer with a scale"):
        depgraph_shrink(model, torch.randn(2, 1, 8, 8), 0.5, importance="bn_scale")

    class Split(nn.Module):  # one conv's channels normalised by two BatchNorms: Torch-Pruning cannot score it
        def __init__(self):
            super().__init__()
            self.conv, self.bn_a, self.bn_b = nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(8), nn.BatchNorm2d(8)
            self.conv2, self.bn2, self.fc = nn.Conv2d(16, 8, 3, padding=1), nn.BatchNorm2d(8), nn.Linear(8, 3)

        def forward(self, x):
            a, b = torch.split(self.conv(x), 8, dim=1)
            y = torch.cat([self.bn_a(a), self.bn_b(b)], 1).relu()
            return self.fc(self.bn2(self.conv2(y)).relu().mean((2, 3)))

    _, plans, skipped = plan_groups(Split().eval(), torch.randn(2, 1, 8, 8), 0.25, importance="bn_scale")
    assert [p["name"] for p in plans] == ["conv2"]
    assert skipped[0]["layer"] == "conv" and "could not score it" in skipped[0]["reason"]


def test_a_shrunk_minilm_saved_through_the_api_loads_back(tmp_path):
    from childnet.models.base import model_spec

    model, x = _tiny("minilm")
    small, _ = depgraph_shrink(model, x, 0.5, scope="layer")
    Child(small, Lineage(method="mine", config={}, seed=0, architecture=model_spec(small)), {}).save(tmp_path / "c")
    back = Child.load(tmp_path / "c")  # built on the CPU: a pretrained encoder cannot be built on the meta device
    assert _params(back.model) == _params(small) < _params(model)
    with torch.no_grad():
        assert torch.allclose(back.model(x), small(x), atol=1e-5)
