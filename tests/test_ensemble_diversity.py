"""Diversity analysis: linear CKA's defining properties, disagreement / KL, the report and its bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from childnet import ChildnetError
from childnet.api import derive
from childnet.evaluate.diversity import (activation_maximisation, diversity_for_run, diversity_report, linear_cka,
                                         member_probabilities, pairwise_disagreement, pairwise_kl)
from childnet.models.ensemble import combine_members


def direct_linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Kornblith et al. 2019, eq. 5 (feature form): ‖YᵀX‖²_F / (‖XᵀX‖_F ‖YᵀY‖_F), centred columns."""
    x = x - x.mean(0)
    y = y - y.mean(0)
    return np.linalg.norm(y.T @ x) ** 2 / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y))


@pytest.fixture
def reps():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(40, 12, generator=gen, dtype=torch.float64)
    y = x @ torch.randn(12, 7, generator=gen, dtype=torch.float64) + 0.5 * torch.randn(40, 7, generator=gen,
                                                                                        dtype=torch.float64)
    return x, y


def test_cka_of_a_representation_with_itself_is_one(reps):
    x, _ = reps
    assert linear_cka(x, x) == pytest.approx(1.0, abs=1e-12)


def test_cka_is_invariant_to_orthogonal_transforms_and_isotropic_scaling(reps):
    x, y = reps
    q, _ = torch.linalg.qr(torch.randn(12, 12, generator=torch.Generator().manual_seed(1), dtype=torch.float64))
    base = linear_cka(x, y)
    assert linear_cka(x @ q, y) == pytest.approx(base, abs=1e-10)
    assert linear_cka(3.7 * x, 0.2 * y) == pytest.approx(base, abs=1e-10)
    assert linear_cka(x + 5.0, y) == pytest.approx(base, abs=1e-10)  # centring: translation too
    # but not invariant to an arbitrary (non-orthogonal) linear map: the property is not trivial
    skew = torch.diag(torch.linspace(0.1, 10, 12, dtype=torch.float64))
    assert abs(linear_cka(x @ skew, y) - base) > 1e-3


def test_cka_matches_a_direct_computation_on_small_matrices(reps):
    x, y = reps
    assert linear_cka(x, y) == pytest.approx(direct_linear_cka(x.numpy(), y.numpy()), abs=1e-10)
    wide = torch.randn(10, 30, generator=torch.Generator().manual_seed(2), dtype=torch.float64)  # features > rows
    assert linear_cka(wide, x[:10]) == pytest.approx(direct_linear_cka(wide.numpy(), x[:10].numpy()), abs=1e-10)


def test_identical_members_never_disagree(tiny_parent, digits_task):
    probs = member_probabilities([tiny_parent.model] * 3, digits_task.x_test)
    assert pairwise_disagreement(probs).abs().max() == 0
    assert pairwise_kl(probs).abs().max() < 1e-9
    other = probs.clone()
    other[1] = other[1].roll(1, dims=-1)  # a member predicting the next class everywhere
    assert pairwise_disagreement(other)[0, 1] == 1.0 and pairwise_kl(other)[0, 1] > 0.1


@pytest.fixture(scope="module")
def run_dir(tiny_parent, digits_task, tmp_path_factory):
    child = derive("pat", tiny_parent, digits_task, {"members": 2, "tune": {"epochs": 1, "optimizer": "sgd",
                                                                            "lr": 0.05, "schedule": "onecycle"}})
    root = tmp_path_factory.mktemp("run")
    child.save(root / "children" / "default" / "pat" / "seed0")
    return root


def test_diversity_for_run_writes_figures_and_json(run_dir):
    summary = diversity_for_run(run_dir, out=run_dir / "div")
    rep = summary["children"]["default/pat/seed0"]
    assert rep["has_parent"] and set(rep["cka"]) == {"blocks.0", "blocks.1", "features"}
    cka = np.array(rep["cka"]["features"]["matrix"])
    assert cka.shape == (3, 3) and np.allclose(np.diag(cka), 1) and np.allclose(cka, cka.T)
    folder = run_dir / "div" / "default" / "pat" / "seed0"
    for name in rep["figures"].values():
        assert (folder / name).read_bytes()[:4] == b"\x89PNG"
    assert json.loads((run_dir / "div" / "diversity.json").read_text())["by_method"]["default/pat"]["seeds"] == 1


def test_unknown_cka_layer_lists_the_valid_ones(run_dir, digits_task):
    with pytest.raises(ChildnetError, match=r"layer 'blocks\.9' does not exist.*valid layers: .*blocks\.1"):
        diversity_report(run_dir / "children" / "default" / "pat" / "seed0", digits_task, layers=["blocks.9"])


def test_a_non_ensemble_is_refused(tiny_parent, digits_task):
    with pytest.raises(ChildnetError, match="not an ensemble"):
        diversity_report(tiny_parent.model, digits_task)
    with pytest.raises(ChildnetError, match="no ensemble child"):
        diversity_for_run(Path(__file__).parent)


def test_bad_ensemble_config_exits_2_without_traceback(tmp_path, capsys):
    from childnet.cli import main

    exp = {"task": {"name": "digits"}, "parent": {"model": {"name": "cnn", "width": 8, "depth": 2}},
           "methods": [{"name": "pat", "members": 1, "sparsity": 1.2}], "seeds": 1}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(exp))
    with pytest.raises(SystemExit) as exit_:
        main(["validate", str(path)])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "Traceback" not in err
    assert "members" in err and "sparsity" in err and "1.2" in err


def test_ensemble_of_members_of_different_shape_is_refused(digits_task):
    from childnet.models import build_model

    a = build_model({"name": "cnn", "width": 4, "depth": 2}, digits_task.input_shape, 10)
    b = build_model({"name": "cnn", "width": 4, "depth": 2}, digits_task.input_shape, 5)
    with pytest.raises(ChildnetError, match="disagree"):
        combine_members([a, b])


def test_activation_maximisation_raises_the_units_activation(tiny_parent, digits_task):
    units = [0, 1, 2, 3]
    start, a0 = activation_maximisation(tiny_parent.model, "blocks.1", units, digits_task.input_shape, steps=0)
    images, a1 = activation_maximisation(tiny_parent.model, "blocks.1", units, digits_task.input_shape, steps=60)
    assert images.shape == (4, *digits_task.input_shape) and images.min() >= 0 and images.max() <= 1
    alive = a0 > 0
    assert alive.any() and (a1[alive] > 1.5 * a0[alive]).all()
    assert not torch.equal(images[0], images[1])  # each unit gets its own input


def test_without_its_parent_the_analysis_runs_on_the_members(run_dir, digits_task, tmp_path, monkeypatch):
    monkeypatch.setenv("CHILDNET_CACHE", str(tmp_path))  # an empty cache: the parent cannot be found
    rep = diversity_report(run_dir / "children" / "default" / "pat" / "seed0", digits_task, units=0,
                           layers=["features"])
    assert not rep["has_parent"] and np.array(rep["cka"]["features"]["matrix"]).shape == (2, 2)
    assert "activation_maximisation" not in rep


def test_members_shrunk_to_different_widths_are_analysed_on_the_units_they_share(run_dir, digits_task, tmp_path):
    from childnet import Child
    from childnet.depgraph import depgraph_shrink
    from childnet.evaluate.diversity import member_models

    pat = Child.load(run_dir / "children" / "default" / "pat" / "seed0")
    small, _ = depgraph_shrink(pat.model, digits_task.x_train[:16], 0.5, scope="layer",
                               ignored=["members.0.blocks.1.0"])  # member 0 keeps its last block's width
    widths = [m.get_submodule("blocks.1.0").out_channels for m in member_models(small)]
    assert widths[0] == 2 * widths[1], widths
    rep = diversity_report(small, digits_task, units=8, steps=2)
    assert rep["activation_maximisation"]["units"] == list(range(min(widths)))
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(ChildnetError, match="is a file; name a folder"):
        diversity_report(small, digits_task, out=tmp_path / "a_file")


def test_diversity_out_never_overwrites_other_files_and_says_when_it_replaces_an_analysis(run_dir, tmp_path):
    keep = tmp_path / "mine"
    keep.mkdir()
    (keep / "notes.txt").write_text("mine")
    with pytest.raises(ChildnetError, match=r"holds other files \(notes\.txt\).*nothing was written"):
        diversity_for_run(run_dir, out=keep)
    assert sorted(p.name for p in keep.iterdir()) == ["notes.txt"]
    first = diversity_for_run(run_dir, out=tmp_path / "div")
    again = diversity_for_run(run_dir, out=tmp_path / "div")  # an earlier analysis is replaced, and said so
    assert not first["replaced_earlier"] and again["replaced_earlier"]
    assert "replaced_earlier" not in json.loads((tmp_path / "div" / "diversity.json").read_text())
    (tmp_path / "div" / "diversity.json").unlink()  # an analysis interrupted before its summary: run again
    child = next((tmp_path / "div").rglob("diversity.json"))
    child.unlink()  # ... even inside a child's folder, its figures written, its report not yet
    assert diversity_for_run(run_dir, out=tmp_path / "div")["children"] and child.is_file()


def test_seeds_that_ensemble_different_architectures_are_summarised_over_the_layers_they_hold():
    """In a pipeline, the stage before an ensemble picks its child per seed: seed 0 may ensemble an ENAS child
    (layers stem, features), seed 1 a CNN (blocks.0, ...). The run summary raised KeyError 'stem'."""
    from childnet.evaluate._diversity_io import summarise_by_method

    def rep(cka: dict) -> dict:
        return {"method": "pat", "ensemble_accuracy": 0.9, "disagreement_mean": 0.1, "kl_mean": 0.2,
                "member_accuracy": [0.8, 0.9],
                "cka": {layer: {"member_pairs_mean": v, "member_parent_mean": v / 2} for layer, v in cka.items()}}

    out = summarise_by_method({"default/e.pat/seed0": rep({"stem": 0.9, "features": 0.4}),
                               "default/e.pat/seed1": rep({"blocks.0": 0.8, "features": 0.6})})
    cka = out["default/e.pat"]["cka"]
    assert cka["features"] == {"member_pairs_mean": pytest.approx(0.5), "member_parent_mean": pytest.approx(0.25)}
    assert cka["stem"] == {"member_pairs_mean": 0.9, "member_parent_mean": 0.45, "seeds": 1}
    assert cka["blocks.0"]["seeds"] == 1
