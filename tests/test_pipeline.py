"""Pipelines of generations (issue 16): stages through the real CLI, choices on validation, resume, lineage
across generations, the family tree, the Pareto view, and bad stage input (exit 2 before any training)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from childnet import Child
from childnet.child import state_fingerprint
from childnet.report.generations import pareto_front, pareto_png

CLI = Path(sys.executable).parent / "childnet"

BASE = {
    "name": "pipe",
    "task": {"name": "digits"},
    "parent": {"model": {"name": "cnn", "width": 4, "depth": 2}, "train": {"epochs": 1, "lr": 0.01}},
    "evaluate": {"latency": False, "device": False},
    "seeds": 2,
}

STAGES = [
    {"name": "shrink", "methods": [{"name": "iterative", "structure": "channels", "sparsity": 0.5, "rounds": 1,
                                    "tune": {"epochs": 1}}]},
    {"name": "distil", "methods": [{"name": "kd", "teacher": "root", "train": {"epochs": 1}},
                                   {"name": "scratch", "start": "fresh", "train": {"epochs": 1}}]},
    {"name": "ensemble", "methods": [{"name": "pat", "members": 2, "tune": {"epochs": 1}}]},
]


def _cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, CHILDNET_CACHE=str(tmp_path / "cache"))
    return subprocess.run([str(CLI), *args], capture_output=True, text=True, env=env, timeout=900)


def _write(tmp_path: Path, name: str, **fields) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({**BASE, **fields}))
    return path


def _records(out: Path) -> dict[str, dict]:
    return {r["unit"]: r for r in map(json.loads, (out / "results.jsonl").read_text().splitlines())}


@pytest.mark.slow
def test_pipeline_chains_chooses_on_validation_resumes_and_keeps_lineage(tmp_path):
    exp, out = _write(tmp_path, "pipe", stages=STAGES), tmp_path / "run"
    proc = _cli(tmp_path, "run", str(exp), "--out", str(out), "--workers", "0", "--quiet")
    assert proc.returncode == 0, proc.stderr
    recs = _records(out)
    assert len(recs) == 8 and all(r["status"] == "ok" for r in recs.values())
    choices = json.loads((out / "stages.json").read_text())["choices"]["default"]
    parent_params = recs["default/shrink.iterative/seed0"]["parent"]["metrics"]["params"]
    for seed in (0, 1):
        vals = {lab: recs[f"default/{lab}/seed{seed}"]["metrics"]["val_accuracy"]
                for lab in ("distil.kd", "distil.scratch")}
        best = max(vals, key=vals.get)  # ties go to the first method of the stage, as max does
        assert choices[f"seed{seed}"]["distil"]["chosen"] == best
        ens = recs[f"default/ensemble.pat/seed{seed}"]
        assert ens["incoming"]["label"] == best and ens["stage"] == "ensemble"
        assert recs[f"default/shrink.iterative/seed{seed}"]["metrics"]["params"] < parent_params
    # resume: the last stage is lost; only its units run again, from the recorded choices
    lines = (out / "results.jsonl").read_text().splitlines()
    (out / "results.jsonl").write_text("\n".join(ln for ln in lines if "ensemble.pat" not in ln) + "\n")
    proc = _cli(tmp_path, "run", str(exp), "--out", str(out), "--workers", "0", "--quiet")
    assert proc.returncode == 0, proc.stderr
    after = (out / "results.jsonl").read_text().splitlines()
    assert len(after) == 8 and after[:6] == [ln for ln in lines if "ensemble.pat" not in ln]
    again = _records(out)
    assert all(again[f"default/ensemble.pat/seed{s}"]["incoming"] == recs[f"default/ensemble.pat/seed{s}"]["incoming"]
               for s in (0, 1))
    # the card lists every ancestor; each fingerprint is that ancestor's saved child
    card = json.loads((out / "children/default/ensemble.pat/seed0/child.json").read_text())
    chain = card["ancestors"]
    assert [a["stage"] for a in chain] == ["root", "shrink", "distil"]
    assert chain[0]["fingerprint"] == recs["default/shrink.iterative/seed0"]["parent"]["fingerprint"]
    for a in chain[1:]:
        loaded = Child.load(out / "children/default" / a["label"] / "seed0")
        assert a["fingerprint"] == state_fingerprint(loaded.model)
    report = (out / "report.md").read_text()
    assert "Stage distil" in report and "Stage ensemble" in report
    assert (out / "report_files/family_tree_0.png").stat().st_size > 0
    assert (out / "report_files/pareto_0.png").stat().st_size > 0
    # any generation loads alone, without its ancestors' folders
    alone = tmp_path / "alone"
    shutil.copytree(out / "children/default/ensemble.pat/seed0", alone)
    x = torch.randn(3, 1, 8, 8)
    want = Child.load(out / "children/default/ensemble.pat/seed0").model(x)
    shutil.rmtree(out)
    assert torch.allclose(Child.load(alone).model(x), want)
    show = _cli(tmp_path, "show", str(alone))
    assert show.returncode == 0 and "gen 0 [root]" in show.stdout and "[distil]" in show.stdout


BAD = {  # several problems in one file: every one is named at once (one CLI call each, to keep the suite fast)
    "config": ([{"name": "ens", "methods": [{"name": "pat", "teacher": "root"}]},
                {"name": "a", "methods": []},
                {"name": "b", "from": "nowhere", "methods": ["scratch"]},
                {"name": "ens", "methods": ["kd"]}],
               ["stages[ens].methods[0](pat).teacher", "has no teacher", "stages[a].methods", "at least one method",
                "stages[b].from", "nowhere", "stages[3].name", "used twice"]),
    "cycle": ([{"name": "a", "from": "b", "methods": ["scratch"]}, {"name": "b", "from": "a", "methods": ["kd"]}],
              ["stages[a].from", "cycle"]),
    "enas then channels": ([{"name": "search", "methods": [{"name": "enas"}]},
                            {"name": "shrink", "methods": [{"name": "iterative", "structure": "channels"}]}],
                           ["stages[shrink].methods[0](iterative).structure", "enas_macro"]),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_stages_exit_2_naming_stage_and_field_before_training(tmp_path, case, run_cli, monkeypatch):
    stages, words = BAD[case]
    monkeypatch.setenv("CHILDNET_CACHE", str(tmp_path / "cache"))
    proc = run_cli("run", _write(tmp_path, "bad", stages=stages), "--out", tmp_path / "r")
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and "training parent" not in proc.stderr + proc.stdout
    for w in words:
        assert w in proc.stderr
    assert not (tmp_path / "cache").exists()


def test_wrong_units_of_the_root_parent_are_named(tmp_path, run_cli):
    stages = [{"name": "shrink", "methods": [{"name": "iterative", "structure": "neurons"}]}]
    proc = run_cli("validate", _write(tmp_path, "bad", stages=stages))
    assert proc.returncode == 2
    assert "stages[shrink].methods[0](iterative).structure" in proc.stderr and "channels" in proc.stderr


def test_pareto_front_and_plot_for_any_run():
    pts = [{"label": "parent", "y": 0.99, "macs": 100}, {"label": "a", "y": 0.95, "macs": 10},
           {"label": "a", "y": 0.90, "macs": 20}, {"label": "b", "y": 0.97, "macs": 50},
           {"label": "b", "y": 0.96, "macs": 50}]
    assert [p["macs"] for p in pareto_front(pts, "macs")] == [10, 50, 100]
    assert [p["y"] for p in pareto_front(pts, "macs", higher=False)] == [0.95, 0.90]
    units = [{"status": "ok", "setting": "default", "label": p["label"], "seed": 0, "metrics": {"accuracy": p["y"],
              "macs": p["macs"]}} for p in pts[1:]]
    summary = {"name": "x", "metric": "accuracy", "higher_is_better": True, "parent": None,
               "settings": {"default": {"parent": {"metrics": {"accuracy": 0.99, "macs": 100}}}}}
    assert pareto_png(summary, units, "default")[:4] == b"\x89PNG"


def test_run_folders_written_before_pipelines_resume(tmp_path):
    from childnet.config import parse_experiment
    from childnet.runner import _check_experiment

    cfg = parse_experiment({**BASE, "methods": ["scratch"]})
    old = cfg.model_dump()
    del old["stages"]  # experiment.json as runs before issue 16 wrote it
    (tmp_path / "experiment.json").write_text(json.dumps(old, default=str))
    _check_experiment(tmp_path, cfg)  # the same experiment: no "holds a different experiment"
    staged = parse_experiment({**BASE, "stages": STAGES})
    (tmp_path / "results.jsonl").write_text(json.dumps({"unit": "default/scratch/seed0", "setting": "default",
                                                        "label": "scratch", "seed": 0, "status": "ok"}) + "\n")
    with pytest.raises(Exception, match="different experiment"):
        _check_experiment(tmp_path, staged)
    (tmp_path / "results.jsonl").unlink()  # a run that stopped before its first unit leaves nothing to mix
    said = []
    _check_experiment(tmp_path, staged, said.append)
    assert "no result yet: its experiment.json is replaced" in said[0]
    assert json.loads((tmp_path / "experiment.json").read_text())["stages"]


def test_a_safetensors_header_of_384_bytes_is_not_taken_for_a_pickle(tmp_path):
    from childnet.checkpoint import load_tensors, save_tensors

    for n in range(1, 60):  # find tensor names whose header length is 0x80 modulo 256 (its first byte)
        path = tmp_path / f"t{n}.safetensors"
        save_tensors({f"w{'x' * n}": torch.ones(2, dtype=torch.bool)}, path)
        if path.read_bytes()[0] == 0x80:
            assert torch.equal(load_tensors(path)[f"w{'x' * n}"], torch.ones(2, dtype=torch.bool))
            break
    else:
        pytest.fail("no header of length 0x80 modulo 256 was produced")
    pickled = tmp_path / "p.pt"
    torch.save({"w": torch.ones(2)}, pickled)
    with pytest.raises(Exception, match="pickle"):
        load_tensors(pickled)


def test_a_physically_shrunk_generation_feeds_fresh_same_size_children_and_ensembles_that_load_alone(tmp_path):
    """depgraph (issue 17) inside a pipeline (issue 16): ENAS → depgraph → {kd, scratch start: fresh} → PAT.
    The fresh child had the UNSHRUNK size (its spec alone rebuilds the unshrunk model), the KD child and the
    ensemble did not load (shape mismatch); now every generation has the shrunk shapes and loads alone."""
    from childnet import Child
    from childnet.runner import run

    exp = {"name": "shrunk-chain", "task": {"name": "digits"}, "seeds": 1, "evaluate": {"latency": False, "device": False},
           "parent": {"model": {"name": "cnn", "width": 8, "depth": 2}, "train": {"epochs": 1, "lr": 0.01}},
           "defaults": {"train": {"epochs": 1, "lr": 0.01}},
           "stages": [{"name": "search", "methods": [{"name": "enas", "space": "macro", "layers": 2, "channels": 8,
                                                      "shared_train": {"epochs": 1}, "controller_steps": 1,
                                                      "retrain": {"epochs": 1}}]},
                      {"name": "shrink", "methods": [{"name": "depgraph", "sparsity": 0.5, "tune": {"epochs": 1}}]},
                      {"name": "distil", "methods": [{"name": "kd", "teacher": "root"},
                                                     {"name": "scratch", "start": "fresh"}]},
                      {"name": "ensemble", "methods": [{"name": "pat", "members": 2, "tune": {"epochs": 1}}]}]}
    out = tmp_path / "run"
    result = run(exp, out, workers=0, report=False, log=lambda m: None)
    assert not result.failed, result.failed[0]["error"]
    sizes = {}
    for card in out.glob("children/*/*/seed0/child.json"):
        child = Child.load(card.parent)
        sizes[card.parent.parent.name] = sum(p.numel() for p in child.model.parameters())
    shrunk = sizes["shrink.depgraph"]
    assert shrunk < sizes["search.enas"]
    assert sizes["distil.kd"] == sizes["distil.scratch"] == shrunk  # same size as the incoming child
    assert sizes["ensemble.pat"] == 2 * shrunk


def test_a_stage_name_used_twice_is_one_problem_not_also_a_cycle():
    from childnet.config import parse_experiment
    from childnet.errors import ConfigError

    with pytest.raises(ConfigError) as err:
        parse_experiment({**BASE, "stages": [{"name": "a", "methods": ["scratch"]}, {"name": "a", "methods": ["kd"]}]})
    assert "used twice" in str(err.value) and "cycle" not in str(err.value)


def test_a_method_that_cannot_take_an_ensemble_is_refused_after_an_ensemble_stage(tmp_path, run_cli):
    """``validate`` said ok; at run time, after the parent and the ensemble stage had trained, vanilla, hkt and
    snapshot each failed on the ensemble child (no ``head``; an ensemble of ensembles)."""
    import yaml

    exp = {"task": {"name": "digits"}, "parent": {"model": {"name": "cnn", "width": 8}, "train": {"epochs": 1}},
           "stages": [{"name": "ens", "methods": [{"name": "pat", "members": 2, "tune": {"epochs": 1}}]},
                      {"name": "after", "methods": [
                          {"name": "vanilla", "train": {"epochs": 1}}, {"name": "hkt", "train": {"epochs": 1}},
                          {"name": "snapshot", "members": 2}, {"name": "kd", "train": {"epochs": 1}},
                          {"name": "hkt", "label": "hkt-root", "teacher": "root",
                           "child": {"name": "cnn", "width": 4}, "train": {"epochs": 1}},
                          {"name": "oneshot", "sparsity": 0.5, "tune": {"epochs": 1}}]}],
           "seeds": 1}
    path = tmp_path / "e.yaml"
    path.write_text(yaml.safe_dump(exp))
    proc = run_cli("validate", path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    err = " ".join(proc.stderr.split())
    assert "3 problems" in err  # kd, oneshot and an hkt with its own child taught by the root take it
    for i, name in ((0, "vanilla"), (1, "hkt"), (2, "snapshot")):
        assert f"stages[after].methods[{i}]({name}): the child of stage ens is an ensemble" in err
