"""What an adversarial tester did to run folders, cards and configs (second trial): nothing of theirs is lost
or silently mixed, and every damaged file ends in a sentence, not a traceback."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import yaml

from childnet import Child, run_experiment
from childnet.errors import ChildnetError

TINY = {"name": "tiny", "task": {"name": "digits", "n_train": 100},
        "parent": {"model": {"name": "mlp", "hidden": [8]}, "train": {"epochs": 1}},
        "methods": [{"name": "oneshot", "sparsity": 0.5, "tune": {"epochs": 0}}], "seeds": 1,
        "evaluate": {"latency": False, "device": False}}


def _run(exp, out, **kwargs):
    return run_experiment(exp, out, quiet=True, workers=0, **kwargs)


def _records(out):
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


def test_a_folder_of_other_files_is_never_a_run_folder(tmp_path):
    """--out . in a folder of one's own files deleted its .tmp-* entries and replaced its report.md."""
    mine = tmp_path / "thesis"
    (mine / ".tmp-build").mkdir(parents=True)
    (mine / ".tmp-build" / "thesis.tex").write_text("weeks of work")
    (mine / "report.md").write_text("my notes")
    with pytest.raises(ChildnetError, match="is not empty and holds no childnet run"):
        _run(TINY, mine)
    assert (mine / ".tmp-build" / "thesis.tex").read_text() == "weeks of work"
    assert (mine / "report.md").read_text() == "my notes"
    (tmp_path / "afile").write_text("x")
    with pytest.raises(ChildnetError, match="is a file; name a folder"):
        _run(TINY, tmp_path / "afile")


def test_an_experiment_named_dot_dot_is_refused_without_out(tmp_path, monkeypatch):
    """name: '..' and no --out wrote into runs/.., the current folder."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ChildnetError, match="name: '..' is not a usable folder name"):
        run_experiment({**TINY, "name": ".."}, quiet=True, workers=0)


def test_a_lock_symlink_is_refused_and_its_target_kept(tmp_path):
    """RunLock opened .lock through a symlink and truncated the file it pointed to."""
    victim = tmp_path / "victim.txt"
    victim.write_text("IMPORTANT DATA")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / ".lock").symlink_to(victim)
    with pytest.raises(ChildnetError, match=r"\.lock is a symlink, not childnet's lock file"):
        _run(TINY, tmp_path / "run")
    assert victim.read_text() == "IMPORTANT DATA"


def test_a_unit_whose_child_folder_is_gone_is_run_again(tmp_path):
    """An ok line counted as finished with its child folder deleted; in a pipeline that blocked for ever."""
    out = tmp_path / "run"
    _run({**TINY, "seeds": 2}, out)
    shutil.rmtree(out / "children" / "default" / "oneshot" / "seed0")
    (out / "children" / "default" / "oneshot" / "seed1" / "child.json").write_text("{broken")
    said = []
    result = run_experiment({**TINY, "seeds": 2}, out, workers=0, log=said.append, report=False)
    assert result.finished == 2 and any("lost their child folder" in s for s in said)
    for seed in (0, 1):
        Child.load(out / "children" / "default" / "oneshot" / f"seed{seed}")


def test_a_changed_test_split_is_not_mixed_into_a_resumed_run(tmp_path):
    """Only train and val were hashed: a resumed run scored new seeds on another test set, beside old ones."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(int)
    path = tmp_path / "t.npz"
    np.savez(path, x_train=x[:80], y_train=y[:80], x_test=x[80:], y_test=y[80:])
    exp = {**TINY, "task": {"name": "arrays", "path": str(path)}}
    out = tmp_path / "run"
    _run(exp, out)
    np.savez(path, x_train=x[:80], y_train=y[:80], x_test=x[80:], y_test=1 - y[80:])
    with pytest.raises(ChildnetError, match="the task's data changed since the finished units"):
        _run({**exp, "seeds": 2}, out)
    said = []  # the cached parent is reused (train/val unchanged) but measured again on the new test split
    from childnet import get_parent, load_task

    get_parent(exp["parent"], load_task(exp["task"]), log=said.append)
    assert any("the test split changed since it was cached" in s for s in said)


def test_a_pipeline_resume_reads_the_units_own_folder_not_a_path_from_a_line(tmp_path):
    """results.jsonl's child_dir was followed outside the run: the next stage derived from someone's child."""
    exp = {**TINY, "methods": None, "stages": [
        {"name": "shrink", "methods": [{"name": "oneshot", "sparsity": 0.5, "tune": {"epochs": 0}}]},
        {"name": "distil", "methods": [{"name": "kd", "train": {"epochs": 0}}]}]}
    exp.pop("methods")
    out, other = tmp_path / "run", tmp_path / "other"
    _run(exp, out)
    _run({**exp, "stages": [{**exp["stages"][0], "methods": [{"name": "oneshot", "sparsity": 0.9,
                                                              "tune": {"epochs": 0}}]}, exp["stages"][1]]}, other)
    from childnet.child import state_fingerprint

    def fingerprint(run):
        return state_fingerprint(Child.load(run / "children" / "default" / "shrink.oneshot" / "seed0").model)

    assert fingerprint(out) != fingerprint(other)
    lines = _records(out)
    kept = []
    for r in lines:
        if r["label"] == "shrink.oneshot":
            r["child_dir"] = str(other / "children" / "default" / "shrink.oneshot" / "seed0")
        if r["label"] != "distil.kd":
            kept.append(r)
    (out / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in kept))
    _run(exp, out)
    card = json.loads((out / "children" / "default" / "distil.kd" / "seed0" / "child.json").read_text())
    assert [a["stage"] for a in card["ancestors"]] == ["root", "shrink"]
    assert card["ancestors"][-1]["fingerprint"] == fingerprint(out)


def test_a_card_cannot_make_load_allocate_what_its_weights_do_not_hold(tmp_path, tiny_parent, digits_task):
    """A 70 KB weights file with a card declaring 1.6e9 parameters allocated 6.4 GB before failing."""
    from childnet import derive

    child = derive("scratch", tiny_parent, digits_task, child={"name": "mlp", "hidden": [8]}, train={"epochs": 0})
    child.save(tmp_path / "c")
    card = json.loads((tmp_path / "c" / "child.json").read_text())
    card["architecture"]["hidden"] = [4096, 4096]
    (tmp_path / "c" / "child.json").write_text(json.dumps(card))
    with pytest.raises(ChildnetError, match="more than the .* numbers that .* holds: the card does not match"):
        Child.load(tmp_path / "c")


def test_a_damaged_shrunk_layout_is_a_sentence(tmp_path, tiny_parent, digits_task):
    pytest.importorskip("torch_pruning")
    from childnet import derive

    child = derive("depgraph", tiny_parent, digits_task, sparsity=0.5, tune={"epochs": 0})
    child.save(tmp_path / "c")
    Child.load(tmp_path / "c")
    card = json.loads((tmp_path / "c" / "child.json").read_text())
    for layout in ({"shapes": {next(iter(card["extra"]["shrunk_layout"]["shapes"])): [30000, 30000]}},
                   {"shapes": {"nope.weight": [1]}}, {"attributes": {"blocks.0.0": {"forward": None}}},
                   {"shapes": [1]}):
        card["extra"]["shrunk_layout"] = layout
        (tmp_path / "c" / "child.json").write_text(json.dumps(card))
        with pytest.raises(ChildnetError, match="extra.shrunk_layout"):
            Child.load(tmp_path / "c")


def test_show_and_report_read_damaged_files_without_a_traceback(tmp_path, run_cli):
    out = tmp_path / "run"
    _run(TINY, out)
    folder = out / "children" / "default" / "oneshot" / "seed0"
    card = json.loads((folder / "child.json").read_text())
    for damage in ({"ancestors": [1, "x", {"architecture": [1], "chosen": "x", "metrics": [1]}]},
                   {"extra": {"stage": "x", "shrink": [1]}}, {"method": "[bold red]x[/] \x1b[2J"},
                   {"metrics": {"accuracy": float("nan"), "params": float("nan")}}):
        (folder / "child.json").write_text(json.dumps({**card, **damage}))
        proc = run_cli("show", folder)
        assert proc.returncode == 0 and "\x1b[2J" not in proc.stdout, damage
    lines = _records(out)
    lines[0]["metrics"] = [1]
    (out / "results.jsonl").write_text(json.dumps(lines[0]) + "\n")
    proc = run_cli("report", out)
    assert proc.returncode == 0


def test_values_no_run_can_use_are_refused_at_validate(tmp_path, run_cli):
    """epochs .inf and lr 1e300 passed validate and failed as internal errors; epochs 1e12 ran for ever."""
    for train, needle in (({"epochs": float("inf")}, "finite number"), ({"lr": 1e300}, "train.lr: must be at most 1e30"),
                          ({"epochs": 1e12}, "less than or equal to 100000")):
        exp = {**TINY, "methods": [{"name": "scratch", "child": {"name": "mlp", "hidden": [4]}, "train": train}]}
        path = tmp_path / "e.yaml"
        path.write_text(yaml.safe_dump(exp))
        proc = run_cli("validate", path)
        assert proc.returncode == 2 and needle in proc.stderr, proc.stderr


def test_a_different_experiment_names_what_differs(tmp_path):
    out = tmp_path / "run"
    _run(TINY, out)
    changed = {**TINY, "methods": [{"name": "oneshot", "sparsity": 0.7, "tune": {"epochs": 0}}]}
    with pytest.raises(ChildnetError, match=r"first difference: methods\[0\]\.options\.sparsity was 0.5, now 0.7|"
                                            r"first difference: methods\[0\].*sparsity.*0.5.*0.7"):
        _run(changed, out)
    # epochs 0 written as 0.0: the identity tells an int from a float, so the sentence must name that too (it said
    # "a different experiment" and named no difference at all)
    sparse = {**TINY, "methods": [{"name": "oneshot", "sparsity": 0.5, "tune": {"epochs": 0.0}}]}
    with pytest.raises(ChildnetError, match=r"first difference: methods\[0\]\.options\.tune\.epochs was 0, now 0\.0; "
                                            r"an integer and a decimal count as different values"):
        _run(sparse, out)


def test_predict_refuses_a_damaged_standardisation_or_class_list(tmp_path):
    from childnet import derive, get_parent, load_task, predict

    rng = np.random.default_rng(0)
    x = rng.normal(size=(90, 3)).astype(np.float32)
    y = np.array(["a", "b"])[(x[:, 0] > 0).astype(int)]
    np.savez(tmp_path / "t.npz", x_train=x[:60], y_train=y[:60], x_test=x[60:], y_test=y[60:])
    task = load_task({"name": "arrays", "path": str(tmp_path / "t.npz")})
    parent = get_parent({"model": {"name": "mlp", "hidden": [4]}, "train": {"epochs": 1}}, task)
    child = derive("scratch", parent, task, child={"name": "mlp", "hidden": [4]}, train={"epochs": 0})
    child.lineage.extra["standardize"] = {"mean": [0.0, float("nan"), 0.0], "std": [1.0, 1.0, 1.0]}
    with pytest.raises(ChildnetError, match="damaged extra.standardize"):
        predict(child, x[:4])
    child.lineage.extra["standardize"] = {"mean": [0.0] * 3, "std": [1.0] * 3}
    child.lineage.extra["classes"] = ["a"]
    with pytest.raises(ChildnetError, match="damaged extra.classes"):
        predict(child, x)


def test_a_lost_stage_child_reruns_the_stages_that_derived_from_it(tmp_path):
    """Re-running only the lost source unit kept later units derived from a child that no longer exists."""
    exp = {**TINY, "stages": [
        {"name": "shrink", "methods": [{"name": "oneshot", "sparsity": 0.5, "tune": {"epochs": 0}}]},
        {"name": "distil", "methods": [{"name": "kd", "train": {"epochs": 0}}]}]}
    exp.pop("methods")
    out = tmp_path / "run"
    _run(exp, out)
    shutil.rmtree(out / "children" / "default" / "shrink.oneshot" / "seed0")
    said = []
    result = run_experiment(exp, out, workers=0, log=said.append, report=False)
    assert result.finished == 2 and any("or derive from one that did" in s for s in said)
    assert [r["label"] for r in _records(out)][-2:] == ["shrink.oneshot", "distil.kd"]


def test_tensor_shapes_refuses_a_pickle_and_garbage_and_closes_the_file(tmp_path, monkeypatch):
    import gc
    import sys
    import warnings

    import torch

    from childnet.checkpoint import tensor_shapes

    pickled, garbage = tmp_path / "weights.safetensors", tmp_path / "junk.safetensors"
    torch.save({"w": torch.zeros(2)}, pickled)
    garbage.write_bytes(b"\xff" * 64)
    unclosed = []  # a file dropped unclosed warns as it is freed; the warning arrives as an "unraisable" error
    monkeypatch.setattr(sys, "unraisablehook", lambda u: unclosed.append(u.exc_value))
    with warnings.catch_warnings():
        warnings.simplefilter("error", ResourceWarning)
        with pytest.raises(ChildnetError, match="pickle"):
            tensor_shapes(pickled)
        with pytest.raises(ChildnetError, match="not a valid safetensors checkpoint"):
            tensor_shapes(garbage)
        gc.collect()
    assert not unclosed, unclosed


def test_a_card_that_gives_a_key_twice_is_refused(tmp_path, tiny_parent, digits_task):
    """Python's reader took the last copy, another reader may take the first: the card would say two things."""
    from test_cli import cli

    from childnet import derive

    child = derive("scratch", tiny_parent, digits_task, child={"name": "mlp", "hidden": [8]}, train={"epochs": 0})
    child.save(tmp_path / "c")
    text = (tmp_path / "c" / "child.json").read_text()
    (tmp_path / "c" / "child.json").write_text(text.replace('"method": "scratch"', '"method": "scratch", "method": "kd"', 1))
    with pytest.raises(ChildnetError, match="gives key 'method' twice"):
        Child.load(tmp_path / "c")
    res = cli("show", tmp_path / "c")
    assert res.returncode == 2 and "twice" in res.stderr and "Traceback" not in res.stderr
