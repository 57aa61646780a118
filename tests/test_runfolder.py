"""The run folder's format (childnet.runfolder), in-process: lock, defensive reading, repair, full disk."""

from __future__ import annotations

import errno
import json
import os
import socket
import subprocess

import pytest

from childnet import runfolder as rf
from childnet.errors import ChildnetError

RESULT = {"unit": "default/a/seed0", "setting": "default", "label": "a", "seed": 0, "status": "ok"}


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def _full_disk(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_lock_refuses_a_second_holder_and_takes_over_a_dead_ones(tmp_path):
    with rf.RunLock(tmp_path):
        with pytest.raises(ChildnetError, match=rf"in use by another `childnet run` \(process {os.getpid()}"):
            rf.RunLock(tmp_path).acquire()
    assert not (tmp_path / ".lock").exists()
    dead = _dead_pid()
    (tmp_path / ".lock").write_text(json.dumps({"pid": dead, "host": socket.gethostname()}))
    with rf.RunLock(tmp_path) as lock:
        assert lock.took_over["pid"] == dead
        assert f"process {dead}" in rf.stale_lock_message(tmp_path, lock.took_over)
        assert json.loads((tmp_path / ".lock").read_text())["pid"] == os.getpid()
    assert not (tmp_path / ".lock").exists()


def test_repair_sets_bad_lines_aside_with_their_numbers(tmp_path):
    good = json.dumps(RESULT).encode()
    (tmp_path / "results.jsonl").write_bytes(good + b"\n" + b'{"unit": 3, "status": "ok"}\n' + good[:-1] + b"\n"
                                             + b"\n" + good)  # a last line without newline is kept, then closed
    said = []
    rows = rf.repair_results(tmp_path, said.append)
    assert rows == [RESULT, RESULT]
    assert [s.split(" is not")[0].rsplit(" ", 1)[1] for s in said] == ["2", "3"]
    assert "'unit' is 3, not a str" in said[0]
    assert (tmp_path / "results.jsonl").read_bytes() == good + b"\n" + good + b"\n"
    assert rf.repair_results(tmp_path, said.append) == rows and len(said) == 2  # nothing more to repair


def test_experiment_json_that_is_not_an_object_is_refused(tmp_path):
    assert rf.read_experiment(tmp_path) is None
    (tmp_path / "experiment.json").write_text("[1, 2]")
    with pytest.raises(ChildnetError, match="corrupt .a JSON list, not an object.; it is not overwritten"):
        rf.read_experiment(tmp_path)


@pytest.mark.parametrize("experiment,needle", [
    ({"methods": 5}, "field 'methods' should be a list (got int 5)"),
    ({"seeds": "x"}, "field 'seeds' should be an integer (got str 'x')"),
    ({"methods": ["kd"]}, "field 'methods[0]' should be a JSON object (got str 'kd')"),
    ({"sweep": 5}, "field 'sweep' should be a JSON object or null (got int 5)"),
    ({"stages": [3]}, "field 'stages[0]' should be a JSON object"),
    ({"baseline": 5}, "field 'baseline' should be a string or null (got int 5)"),
])
def test_a_hand_edited_experiment_json_is_named_by_field_in_the_report(tmp_path, run_cli, experiment, needle):
    (tmp_path / "experiment.json").write_text(json.dumps(experiment))
    (tmp_path / "results.jsonl").write_text("")
    proc = run_cli("report", tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and needle in proc.stderr, proc.stderr


def test_folder_names_are_checked():
    problems = rf.check_folder_names(["a b", "a_b", ".", "ok"], ["x=a/b", "x=a_b"], {"x": ["a/b", "a_b"]})
    assert any("'a b' and 'a_b' would share the folder 'a_b'" in p for p in problems)
    assert any("methods[2].label: '.' is not a usable folder name" in p for p in problems)
    assert any("settings 'x=a/b' and 'x=a_b'" in p for p in problems)
    assert rf.check_folder_names(["a", "b"], ["x=1", "x=1.5"], {"x": [1, 1.5]}) == []
    assert rf.check_folder_names(["a"], [], {"x": [1, True]}) == []  # 1 and True are different settings


def test_a_failed_append_or_atomic_write_leaves_the_file_whole(tmp_path, monkeypatch):
    path = tmp_path / "results.jsonl"
    rf.append_record(path, RESULT)
    monkeypatch.setenv("CHILDNET_TEST_FAULTS", "disk_full=results.jsonl")
    with pytest.raises(rf.DiskFullError, match="the disk is full: could not write .*results.jsonl"):
        rf.append_record(path, RESULT)
    assert path.read_bytes() == json.dumps(RESULT).encode() + b"\n"
    monkeypatch.delenv("CHILDNET_TEST_FAULTS")
    monkeypatch.setattr(rf.os, "fsync", _full_disk)
    with pytest.raises(OSError):
        rf.write_atomic(tmp_path / "report.md", "# report")
    assert os.listdir(tmp_path) == ["results.jsonl"]


def test_stale_temporaries_are_removed(tmp_path):
    for p in (tmp_path / ".tmp-x", tmp_path / "children/default/a/.tmp-seed0-y", tmp_path / ".parents"):
        p.mkdir(parents=True)
    (tmp_path / "report_files").mkdir()
    (tmp_path / "report_files" / ".tmp-z").write_text("png")
    (tmp_path / ".report.md.123.tmp").write_text("old-style report temporary")
    assert rf.remove_stale_temporaries(tmp_path) == 5
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a", "children", "default", "report_files"]
    host = socket.gethostname()
    (tmp_path / f".tmp-{host}-{_dead_pid()}-q").mkdir()
    (tmp_path / f".tmp-{host}-{os.getpid()}-q").mkdir()  # this process is alive: still writing it
    rf.remove_dead_temporaries(tmp_path)
    assert [p.name for p in tmp_path.glob(".tmp-*")] == [f".tmp-{host}-{os.getpid()}-q"]


def test_full_disk_while_writing_the_parent_cache_leaves_no_temporary(tmp_path, monkeypatch, digits_task):
    import childnet.parent as parent_mod

    monkeypatch.setenv("CHILDNET_CACHE", str(tmp_path))
    monkeypatch.setattr(parent_mod, "save_tensors", _full_disk)
    with pytest.warns(UserWarning, match="could not write the parent cache"):
        parent = parent_mod.get_parent({"model": {"name": "mlp", "hidden": [4]}, "train": {"epochs": 1}},
                                       digits_task)
    assert parent.path is None and list((tmp_path / "parents").iterdir()) == []


def test_full_disk_while_saving_a_child_stops_the_run_with_a_sentence(tmp_path, monkeypatch):
    import childnet.checkpoint
    from childnet.runner import run

    from conftest import TINY_PARENT

    exp = {"name": "t", "task": {"name": "digits"}, "parent": TINY_PARENT, "methods": ["scratch"], "seeds": 1,
           "defaults": {"child": {"name": "cnn", "width": 4, "depth": 2}, "train": {"epochs": 1}}}
    out = tmp_path / "run"
    run(exp, out, workers=0, report=False, log=lambda s: None)  # the parent is cached, and one unit done
    monkeypatch.setattr(childnet.checkpoint, "save_file", _full_disk)
    with pytest.raises(ChildnetError, match="the disk is full: could not write the child folder"):
        run(exp, out, workers=0, seeds=2, report=False, log=lambda s: None)
    assert [p for p in out.rglob("*") if ".tmp" in p.name] == [] and not (out / ".lock").exists()
    assert [r["status"] for r in rf.read_results(out)[0]] == ["ok", "failed"]


def test_full_disk_while_writing_the_report(tmp_path, monkeypatch):
    from childnet.report import build_report

    (tmp_path / "experiment.json").write_text(json.dumps({"name": "r", "methods": [{"name": "a", "label": "a"}]}))
    rf.append_record(tmp_path / "results.jsonl", dict(RESULT, metrics={"accuracy": 0.5}))
    monkeypatch.setenv("CHILDNET_TEST_FAULTS", "disk_full=report.md")
    with pytest.raises(ChildnetError, match="the disk is full: could not write the report"):
        build_report(tmp_path)
    assert [p for p in tmp_path.rglob("*") if ".tmp" in p.name] == [] and not (tmp_path / "report.md").exists()
