"""Issue 18's paper settings: AGWM's implicit hypergradient, weight averaging and α budget; HKT's gate log;
poisoning with k total branches and the paper's ops; PAT's paper preset; ENAS's random-children spread."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from childnet import derive
from childnet.methods.tune import weight_mixup as wm
from childnet.methods.tune._mixup import AlphaStep, alpha_parameters, attach_mixup, weight_parameters
from childnet.train import TrainConfig, TrainState


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.body, self.head = nn.Linear(6, 5), nn.Linear(5, 3)

    def forward(self, x):
        return self.head(torch.tanh(self.body(x)))


def _mixed_problem():
    torch.manual_seed(0)
    pre = _Net().double()
    model = copy.deepcopy(pre)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    mixers = attach_mixup(model, pre, seed=0)
    with torch.no_grad():
        for m in mixers.values():
            m.a.copy_(0.3 + 0.6 * torch.rand_like(m.a))
            m.b.copy_(0.3 + 0.6 * torch.rand_like(m.b))
    x = torch.randn(40, 6, dtype=torch.float64)
    y = torch.randint(0, 3, (40,))
    return model, mixers, (x[:20], y[:20]), (x[20:], y[20:])


def _hypergradient(kind: str, model, mixers, upper, lower) -> list[torch.Tensor]:
    weights = weight_parameters(model, mixers)
    hook = AlphaStep(mixers, upper, batch_size=len(upper[1]), weights=weights, hypergradient=kind, precondition=False)
    hook.on_fit_start(TrainState(model, TrainConfig(), None, None, total_steps=10, steps_per_epoch=10))
    hook.upper_gradient(model, lower=lower)
    return [p.grad.clone() for p in alpha_parameters(mixers)]


def test_implicit_term_changes_the_hypergradient_and_matches_the_exact_mixed_second_derivative():
    model, mixers, upper, lower = _mixed_problem()
    alphas, weights = alpha_parameters(mixers), weight_parameters(model, mixers)
    before = [p.detach().clone() for p in weights]
    direct = _hypergradient("direct", model, mixers, upper, lower)
    full = _hypergradient("implicit", model, mixers, upper, lower)
    assert all(torch.equal(p, b) for p, b in zip(weights, before))  # W restored exactly after the finite difference
    # exact: direct − ∇_α [∇_W L_low(W, α) · v], v = ∇_W L_up(W, α) held constant
    for p in alphas:
        p.requires_grad_(True)
    loss_up = nn.functional.cross_entropy(model(upper[0]), upper[1])
    exact_direct = torch.autograd.grad(loss_up, alphas, retain_graph=True)
    v = [g.detach() for g in torch.autograd.grad(loss_up, weights)]
    g_low = torch.autograd.grad(nn.functional.cross_entropy(model(lower[0]), lower[1]), weights, create_graph=True)
    hvp = torch.autograd.grad(sum((g * u).sum() for g, u in zip(g_low, v)), alphas)
    for d, ed in zip(direct, exact_direct):
        assert torch.allclose(d, ed, atol=1e-12)
    implicit = [f - d for f, d in zip(full, direct)]
    assert sum(float(i.norm()) for i in implicit) > 1e-3 * sum(float(d.norm()) for d in direct)
    for i, h in zip(implicit, hvp):
        assert torch.allclose(i, -h, rtol=1e-4, atol=1e-8)


def test_average_weights_starts_the_final_run_from_the_mean_of_every_resplit(tiny_parent, digits_task, monkeypatch):
    trained = []
    real_fit = wm.fit

    def spy(model, *args, **kwargs):
        history = real_fit(model, *args, **kwargs)
        trained.append({n: p.detach().clone() for n, p in model.named_parameters()})
        return history

    monkeypatch.setattr(wm, "fit", spy)
    cfg = {"train": {"epochs": 0}, "blo": {"epochs": 0.3, "lr": 1e-2}, "n_resplits": 2, "average_weights": True,
           "alpha_lr": 0.05}
    child = derive("weight_mixup", tiny_parent, digits_task, cfg, seed=0)
    assert len(trained) == 2
    final = dict(child.model.named_parameters())
    plain = [n for n in final if not n.endswith(".weight") or n.startswith("head.")]  # biases, norms and the head
    assert plain
    for name in plain:
        mean = sum(t[name] for t in trained) / 2
        assert torch.allclose(final[name], mean, atol=1e-6), name
        assert not torch.allclose(final[name], trained[0][name], atol=1e-6) or name.startswith("norm")


def test_alpha_lr_sum_sets_the_alpha_budget_and_the_lineage_records_where_alpha_ends(tiny_parent, digits_task):
    cfg = {"train": {"epochs": 0}, "blo": {"epochs": 1, "lr": 1e-3}, "n_resplits": 1, "alpha_lr_sum": 0.3}
    child = derive("weight_mixup", tiny_parent, digits_task, cfg, seed=0)
    record = child.lineage.extra["resplits"][0]
    assert record["alpha_lr_sum"] == pytest.approx(0.3, rel=1e-6)
    assert record["alpha_steps"] > 0 and record["alpha_mean"] < 1.0 and record["alpha_min"] <= record["alpha_mean"]
    assert record["hypergradient"] == "implicit"
    assert record["history"][-1]["implicit_to_direct_norm"] > 0
    # the reproduction JSON carries where α ends, per re-split (report.export_results → diagnostics)
    from childnet.report.summary import card_diagnostics

    exported = card_diagnostics(child.lineage.extra)
    (row,) = exported["alpha_by_resplit"]  # rounded to 6 decimals in the export
    assert row == {k: pytest.approx(record[k], abs=1e-6) for k in ("alpha_mean", "alpha_min", "alpha_steps",
                                                                    "alpha_lr_sum")}
    assert exported["alpha_mean"] == pytest.approx(child.lineage.extra["alpha_mean"], abs=1e-6)


# -- search-space poisoning (Wu et al. 2021) ----------------------------------------------------------

def test_paper_preset_counts_k_as_total_poison_branches_with_the_paper_ops():
    from childnet.methods.search.ops import RelativeNoise
    from childnet.methods.search.spaces import SpaceConfig, make_space

    for k in (0, 6, 36, 120, 300):
        space = make_space(SpaceConfig(layers=2, poison=["P6"], poison_copies=k, poison_preset="paper"))
        assert len(space.op_choices) == 6 + k
        branches = space.op_choices[6:]
        assert sorted(set(branches)) == (sorted(space.poison_ops) if k else [])
        if k:
            counts = [branches.count(op) for op in set(branches)]
            assert max(counts) - min(counts) <= 1
    ours = make_space(SpaceConfig(layers=2, poison=["P6"], poison_copies=6))
    assert len(ours.op_choices) == 6 + 6 * 6  # our per-op count is kept as the default
    odd = make_space(SpaceConfig(layers=2, poison=["P4"], poison_copies=3, poison_count="total"))
    assert odd.op_choices[6:] == ("tconv3x3", "tconv3x3", "tconv5x5")

    cfg = SpaceConfig(layers=2, poison=["P6"], poison_copies=6, poison_preset="paper")
    assert (cfg.noise_sigma, cfg.dropout_p, cfg.noise_detach, cfg.bare_tconv) == (10.0, 1.0, True, True)
    assert SpaceConfig(poison_preset="paper", noise_sigma=2.0).noise_sigma == 2.0  # explicit fields win
    net = make_space(cfg).build_supernet((1, 8, 8), 10)
    modules = dict(net.named_modules())
    tconv = next(m for n, m in modules.items() if n.endswith("ops.tconv3x3"))
    assert isinstance(tconv, nn.ConvTranspose2d)  # bare: no ReLU, no BatchNorm
    drop = next(m for n, m in modules.items() if n.endswith("ops.dropout"))
    assert drop.p == 1.0
    noise = next(m for n, m in modules.items() if n.endswith("ops.noise"))
    assert isinstance(noise, RelativeNoise) and noise.sigma == 10.0 and noise.detach
    x = torch.randn(4, 3, requires_grad=True)
    noise.train()
    torch.manual_seed(0)
    noise(x).sum().backward()
    assert torch.allclose(x.grad, torch.ones_like(x))  # the scale carries no gradient


def test_enas_records_shared_weight_and_random_children_accuracies(tiny_parent, digits_task):
    cfg = {"layers": 2, "channels": 4, "shared_train": {"epochs": 1}, "controller_steps": 2, "controller_batch": 2,
           "reward_batch": 32, "derive_samples": 2, "retrain": {"epochs": 1}, "random_children": 4,
           "poison": ["P6"], "poison_copies": 6, "poison_preset": "paper"}
    child = derive("enas", tiny_parent, digits_task, cfg, seed=0)
    search = child.lineage.extra["search"]
    spread = search["random_children"]
    assert spread["n"] == 4 and len(spread["val_accuracies"]) == 4
    assert spread["min"] <= spread["mean"] <= spread["max"] and spread["std"] >= 0
    assert 0 <= search["shared_weights_test_accuracy"] <= 1
    assert search["op_choices"] == 12 and search["final_entropy"] is not None
    assert all(e["entropy"] is not None for e in search["epochs"])


# -- HKT (Tchenko et al. 2025) ------------------------------------------------------------------------

def test_hkt_logs_the_gate_per_epoch_and_same_width_pairs_use_identities(tiny_parent, digits_task):
    cfg = {"child": {"name": "cnn", "width": 8, "depth": 1}, "train": {"epochs": 2, "lr": 0.01}}
    child = derive("hkt", tiny_parent, digits_task, cfg, seed=0)
    extra = child.lineage.extra
    assert extra["transfer_identity"] == [True] and extra["back_projection_identity"] is True
    gates = extra["gate_by_epoch"]
    assert len(gates) == 2 and all(0 < g["ga_gate_mean"] < 1 and g["ga_gate_std"] >= 0 for g in gates)
    from childnet.report.summary import card_diagnostics  # the reproduction JSON carries the gate per epoch

    exported = card_diagnostics(extra)
    assert exported["gate_mean_by_epoch"] == [round(g["ga_gate_mean"], 6) for g in gates]
    assert exported["gate_std_by_epoch"] == [round(g["ga_gate_std"], 6) for g in gates]
    static = derive("hkt", tiny_parent, digits_task, {**cfg, "train": {"epochs": 1, "lr": 0.01}, "mixture": "static",
                                                      "w_fused": 0}, seed=0)
    assert static.lineage.extra["gate_by_epoch"][0]["ga_gate_mean"] == pytest.approx(0.7)
    assert static.lineage.extra["gate_by_epoch"][0]["ga_gate_std"] == pytest.approx(0.0, abs=1e-6)


# -- PAT (Whitaker & Whitley 2022) --------------------------------------------------------------------

def test_pat_paper_preset_is_the_authors_one_cycle_and_explicit_fields_win():
    from childnet.methods.ensemble.pat import PATConfig
    from childnet.train import make_optimizer, make_scheduler

    tune = PATConfig(preset="paper").tune
    assert (tune.epochs, tune.batch_size, tune.nesterov, tune.pct_start, tune.div_factor) == (10, 128, True, 0.1, 100.0)
    assert PATConfig(preset="paper", tune={"epochs": 3}).tune.epochs == 3
    assert PATConfig(preset="paper", tune={"epochs": 3}).tune.nesterov is True
    assert PATConfig().tune.pct_start == 0.3 and PATConfig().tune.nesterov is False  # the default is unchanged
    opt = make_optimizer([nn.Parameter(torch.zeros(1))], tune)
    sched = make_scheduler(opt, tune, 100)
    lrs = []
    for _ in range(100):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(0.1 / 100) and max(range(100), key=lrs.__getitem__) == 10


# -- calibration at matched accuracy -----------------------------------------------------------------

def test_matched_accuracy_difference_removes_the_part_explained_by_accuracy():
    from childnet.report.calibration import matched_accuracy_difference

    rng = torch.Generator().manual_seed(0)
    acc_a = 0.65 + 0.05 * torch.rand(6, generator=rng)  # A: less accurate ...
    acc_b = 0.74 + 0.05 * torch.rand(6, generator=rng)
    noise = 0.0002 * torch.randn(12, generator=rng)
    # ... and its ECE is lower only because ECE rises with accuracy (slope 2) — plus a true offset of −0.01
    a = {s: {"accuracy": float(acc_a[s]), "ece": float(2 * acc_a[s] - 0.01 + noise[s])} for s in range(6)}
    b = {s: {"accuracy": float(acc_b[s]), "ece": float(2 * acc_b[s] + noise[6 + s])} for s in range(6)}
    out = matched_accuracy_difference(a, b, "ece")
    assert out["raw_difference"]["mean"] < -0.05  # raw: A looks far better calibrated
    assert out["slope"] == pytest.approx(2.0, abs=0.1) and 0 < out["slope_se"] < 0.05
    assert out["adjusted_difference"]["mean"] == pytest.approx(-0.01, abs=0.003)
    assert out["adjusted_means"]["a"] - out["adjusted_means"]["b"] == pytest.approx(-0.01, abs=0.003)
    assert out["overlap"] is False  # accuracy ranges do not overlap: the comparison extrapolates
    with pytest.raises(ValueError, match="at least 2 seeds"):
        matched_accuracy_difference({0: a[0]}, {0: b[0]})
