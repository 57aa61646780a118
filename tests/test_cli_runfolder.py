"""Nothing silently lost or duplicated, through the real CLI: folder clashes, the run lock, a dead worker,
SIGTERM, an unwritable parent cache, a corrupt run folder and a full disk."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from test_cli import CLI, TINY, ok_units, user_error, write

from childnet.config import parse_experiment

ONE = dict(TINY, methods=["scratch"], seeds=1)


def cli(*args, check=None, env=None):
    proc = subprocess.run(CLI + [str(a) for a in args], capture_output=True, text=True,
                          env=dict(env or os.environ, COLUMNS="200"))
    if check is not None:
        assert proc.returncode == check, proc.stdout + proc.stderr
    return proc


def _tmp_files(root: Path) -> list[Path]:
    return [p for p in root.rglob(".tmp-*")] + [p for p in root.rglob("*.tmp")]


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_labels_and_sweep_values_that_share_a_folder_are_refused(tmp_path):
    raw = dict(TINY, methods=["scratch", {"name": "kd", "label": "s/1"}, {"name": "kd", "label": "s_1"},
                              {"name": "kd", "label": ".."}], sweep={"temperature": [4, 4]})
    user_error(cli("validate", write(tmp_path, raw)), "labels 's/1' and 's_1' would share the folder 's_1'",
               "methods[3].label: '..' is not a usable folder name", "sweep.temperature: the value 4 appears more")
    long = dict(ONE, methods=[{"name": "scratch", "label": "x" * 300}])
    out = tmp_path / "run"
    proc = cli("run", write(tmp_path, long, "long.yaml"), "--out", out, "--workers", "0")
    user_error(proc, "methods[0].label: 300 characters", "at most 100")
    assert not out.exists()  # refused before anything was written or trained


def test_a_second_run_on_the_same_folder_is_refused_at_once(tmp_path):
    from childnet.runfolder import RunLock

    out = tmp_path / "run"
    out.mkdir()
    with RunLock(out):  # as a first `childnet run` would hold it
        t0 = time.time()
        proc = cli("run", write(tmp_path, ONE), "--out", out, "--workers", "0")
        user_error(proc, "is in use by another `childnet run`", f"process {os.getpid()} on {socket.gethostname()}")
        assert time.time() - t0 < 60 and not (out / "results.jsonl").exists()
    assert not (out / ".lock").exists()


@pytest.mark.slow
def test_a_dead_worker_fails_only_its_unit_and_the_next_run_retries_it(tmp_path):
    exp, out = write(tmp_path, dict(TINY, seeds=1)), tmp_path / "run"
    env = dict(os.environ, CHILDNET_TEST_FAULTS="kill_worker=default/kd/seed0")  # see childnet._faults
    proc = cli("run", exp, "--out", out, "--workers", "2", "--quiet", env=env)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    rows = {r["unit"]: r for r in ok_units(out)}
    assert rows["default/scratch/seed0"]["status"] == "ok"
    dead = rows["default/kd/seed0"]
    assert dead["status"] == "failed" and "worker process died (signal 9, SIGKILL)" in dead["error"]
    assert "1 unit(s) failed" in proc.stderr
    assert not (out / ".lock").exists()
    # The next run retries it; it also takes over the lock a killed run left behind, and says so.
    (out / ".lock").write_text(json.dumps({"pid": _dead_pid(), "host": socket.gethostname()}))
    again = cli("run", exp, "--out", out, "--workers", "0", check=0)
    assert "took over the stale lock" in again.stderr and "no longer running" in again.stderr
    last = {r["unit"]: r for r in ok_units(out)}
    assert last["default/kd/seed0"]["status"] == "ok" and len(ok_units(out)) == 3
    assert not (out / ".lock").exists()


def _group_alive(pgid: int) -> list[int]:
    alive = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            alive.append(int(stat.parent.name))
    return alive


def _start_and_wait_for_a_unit(exp, out, done=0):
    """Start a run with 2 workers; return once it has finished a unit (so its workers are busy)."""
    proc = subprocess.Popen(CLI + ["run", str(exp), "--out", str(out), "--workers", "2", "--quiet"],
                            start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    results, deadline = out / "results.jsonl", time.time() + 180
    while time.time() < deadline and not (results.exists() and results.read_text().count("\n") > done):
        time.sleep(0.1)
    return proc


def _gone_within(pgid: int, seconds: float) -> bool:
    deadline = time.time() + seconds
    while time.time() < deadline and _group_alive(pgid):
        time.sleep(0.2)
    return not _group_alive(pgid)


@pytest.mark.slow
def test_sigterm_or_death_of_the_main_process_stops_its_workers(tmp_path):
    raw = dict(TINY, methods=["scratch"], seeds=8, defaults={"child": {"name": "cnn", "width": 4, "depth": 2},
                                                             "train": {"epochs": 6, "lr": 0.01}})
    exp, out = write(tmp_path, raw), tmp_path / "run"
    proc = _start_and_wait_for_a_unit(exp, out)
    os.kill(proc.pid, signal.SIGTERM)  # the main process only (a service manager, `kill PID`)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143 and "terminated" in err and "Traceback" not in err, err
    assert _gone_within(proc.pid, 10), "a worker outlived the main process"
    before = ok_units(out)
    assert 1 <= len(before) < 8 and not (out / ".lock").exists()
    # The main process killed outright (no chance to clean up): its workers die with it.
    proc = _start_and_wait_for_a_unit(exp, out, done=len(before))
    assert len(_group_alive(proc.pid)) >= 2  # the main process and its workers
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert _gone_within(proc.pid, 10), "a worker outlived the killed main process"
    time.sleep(1.0)
    n = len(ok_units(out))
    saved = len(list((out / "children").rglob("child.json")))
    time.sleep(1.5)
    assert len(list((out / "children").rglob("child.json"))) == saved and len(ok_units(out)) == n


@pytest.mark.slow
def test_unwritable_parent_cache_gives_every_worker_the_one_parent(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("the cache cannot be created under a file")
    exp, out = write(tmp_path, dict(ONE, seeds=2)), tmp_path / "run"
    proc = cli("run", exp, "--out", out, "--workers", "2", check=0,
               env=dict(os.environ, CHILDNET_CACHE=str(blocker / "cache")))
    assert proc.stderr.count("could not write the parent cache") == 1, proc.stderr  # trained once, not per worker
    rows = ok_units(out)
    assert len(rows) == 2 and len({r["parent"]["fingerprint"] for r in rows}) == 1
    assert rows[0]["parent"]["source"] == "trained" and not (out / ".parents").exists()


def _finished_folder(tmp_path, raw):
    """A run folder whose one unit already finished (written by hand: resuming it trains nothing)."""

    out = tmp_path / "run"
    out.mkdir()
    (out / "experiment.json").write_text(json.dumps(parse_experiment(raw).model_dump(), default=str))
    folder = out / "children" / "default" / "scratch" / "seed0"  # a finished unit has its child folder
    folder.mkdir(parents=True)
    (folder / "child.json").write_text(json.dumps({"method": "scratch", "config": {}, "seed": 0}))
    save_file({"w": torch.zeros(1)}, str(folder / "model.safetensors"))
    unit = {"unit": "default/scratch/seed0", "setting": "default", "overrides": {}, "method": "scratch",
            "label": "scratch", "seed": 0, "status": "ok", "error": None,
            "metrics": {"accuracy": 0.5, "params": 10}, "history": [], "child_dir": "x", "wall_time_s": 1.0}
    return out, json.dumps(unit).encode() + b"\n"


def test_resume_sets_invalid_result_lines_aside_and_refuses_a_corrupt_folder(tmp_path):
    exp = write(tmp_path, ONE)
    out, good = _finished_folder(tmp_path, ONE)
    bad = [b"\xff\xfe not utf-8", b"[1, 2]", b'{"status": "ok"}']
    (out / "results.jsonl").write_bytes(good + b"\n".join(bad) + b"\n" + b'{"unit": "default/scr')
    proc = cli("run", exp, "--out", out, "--workers", "0", check=0)
    for number, why in ((2, "not UTF-8"), (3, "a JSON list"), (4, "the key 'unit' is missing"), (5, "not JSON")):
        assert f"line {number} is not a valid result ({why}" in proc.stderr.replace("\n", ""), proc.stderr
    assert "resuming: 1 of 1 units already finished" in proc.stderr
    assert (out / "results.jsonl").read_bytes() == good
    assert (out / "results.rejected.jsonl").read_bytes() == b"\n".join(bad + [b'{"unit": "default/scr']) + b"\n"

    (out / "experiment.json").write_text('{"name": "tiny", "task": ')  # cut by a crash or an editor
    user_error(cli("run", exp, "--out", out, "--workers", "0"), "experiment.json is corrupt", "not overwritten")
    assert (out / "experiment.json").read_text() == '{"name": "tiny", "task": '

    out2 = tmp_path / "elsewhere"
    out2.mkdir()
    (out2 / "experiment.json").write_text(json.dumps(parse_experiment(ONE).model_dump(), default=str))
    (out2 / "results.jsonl").symlink_to(out / "results.jsonl")
    user_error(cli("run", exp, "--out", out2, "--workers", "0"), "results.jsonl is a symbolic link")


def test_full_disk_is_one_sentence_and_leaves_no_temporaries(tmp_path):
    exp, out = write(tmp_path, ONE), tmp_path / "run"
    (out / "children" / "default" / "scratch").mkdir(parents=True)
    (out / "experiment.json").write_text(json.dumps(parse_experiment(ONE).model_dump(), default=str))  # killed
    (out / "children" / "default" / "scratch" / ".tmp-seed0-left-by-a-kill").mkdir()
    (out / ".tmp-abc").write_text("half an experiment.json")
    env = dict(os.environ, CHILDNET_TEST_FAULTS="disk_full=results.jsonl")  # see childnet._faults
    user_error(cli("run", exp, "--out", out, "--workers", "0", env=env), "the disk is full", "results.jsonl",
               "free some space")
    assert (out / "results.jsonl").read_bytes() == b""  # the half-written line was cut off again
    assert _tmp_files(out) == [] and not (out / ".lock").exists()
    env["CHILDNET_TEST_FAULTS"] = "disk_full=report.html"
    user_error(cli("run", exp, "--out", out, "--workers", "0", env=env), "the disk is full", "report")
    assert len(ok_units(out)) == 1 and _tmp_files(out) == []
