"""Mask scorers are a registry: every scorer is checked the moment it registers, and any method that
ranks weights takes any of them by name (issue 10 §3)."""

from __future__ import annotations

import pytest
import torch

from childnet.config import parse_experiment
from childnet.errors import ConfigError
from childnet.masks import masks_sparsity, prunable_names, scored_masks
from childnet.models import build_model
from childnet.registry import SCORERS
from childnet.scorers import score

NAMES = SCORERS.names()


@SCORERS.register("test_smallest_first")
def _smallest_first(model, names, *, seed, data):
    """Keeps the smallest |w| (the opposite of magnitude): a criterion is one function."""
    return {n: -s for n, s in score("magnitude", model, names).items()}


@pytest.fixture(scope="module")
def cnn():
    torch.manual_seed(0)
    return build_model({"name": "cnn", "width": 4, "depth": 2}, (1, 8, 8), 10)


def test_the_papers_scorers_are_registered():
    assert {"magnitude", "random", "anti_random", "fisher"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_scorer_contract(name, cnn, digits_task):
    """Every scorer: one score per weight, deterministic for a seed, and masks of the exact sparsity."""
    names = prunable_names(cnn)
    data = (digits_task.x_train[:64], digits_task.y_train[:64])
    a = score(name, cnn, names, seed=3, data=data)
    b = score(name, cnn, names, seed=3, data=data)
    assert list(a) == names
    for n in names:
        assert a[n].shape == dict(cnn.named_parameters())[n].shape and torch.equal(a[n], b[n])
    masks = scored_masks(cnn, 0.5, name, seed=3, data=data)
    assert abs(masks_sparsity(masks) - 0.5) < 1e-3


def test_scorers_rank_differently(cnn, digits_task):
    names = prunable_names(cnn)
    data = (digits_task.x_train[:64], digits_task.y_train[:64])
    masks = {n: scored_masks(cnn, 0.5, n, seed=0, data=data) for n in ("magnitude", "fisher", "test_smallest_first")}
    keep = {n: torch.cat([m.flatten() for m in ms.values()]) for n, ms in masks.items()}
    assert torch.equal(keep["test_smallest_first"], ~keep["magnitude"])
    assert not torch.equal(keep["fisher"], keep["magnitude"])
    assert len(names) == 2


def test_anti_random_pairs_are_complements(cnn):
    a = scored_masks(cnn, 0.5, "anti_random", seed=4, scope="layer")
    b = scored_masks(cnn, 0.5, "anti_random", seed=5, scope="layer")
    c = scored_masks(cnn, 0.5, "anti_random", seed=6, scope="layer")
    assert all(torch.equal(a[n], ~b[n]) for n in a)
    assert not all(torch.equal(a[n], c[n]) for n in a)


BASE = {"task": {"name": "digits"}, "parent": {"model": {"name": "cnn", "width": 8}}}


@pytest.mark.parametrize("method", ["oneshot", "iterative", "ssa", "pat", "child_tuning_d"])
def test_methods_take_any_registered_scorer_by_name(method):
    cfg = parse_experiment(dict(BASE, methods=[{"name": method, "scorer": "test_smallest_first"}]))
    assert cfg.method_config(cfg.methods[0], cfg.settings()[0]).scorer == "test_smallest_first"
    with pytest.raises(ConfigError, match=r"scorer: unknown scorer 'magnitud'. Did you mean 'magnitude'\?"):
        parse_experiment(dict(BASE, methods=[{"name": method, "scorer": "magnitud"}]))


def test_a_new_scorer_prunes_through_a_method(tiny_parent, digits_task):
    from childnet.api import derive

    child = derive("oneshot", tiny_parent, digits_task,
                   {"sparsity": 0.5, "scorer": "test_smallest_first", "tune": {"epochs": 0}}, seed=0)
    parent = dict(tiny_parent.model.named_parameters())
    for name, keep in child.masks.items():  # the kept weights are the small ones
        w = parent[name].abs()
        assert w[keep].mean() < w[~keep].mean()
