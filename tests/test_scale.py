"""Issue 15: units as Ray tasks on a real multi-node cluster, and tracking in TensorBoard and MLflow.

The cluster test starts a head node and a second node with ``ray start`` (as the README says); the
second node runs in its own mount namespace where the head's files (its parent cache and run folders)
are hidden under an empty tmpfs — so a unit that finishes there proves nothing was read from the
head's disk. Every test stops the nodes it started (SIGTERM to ``ray start --block``; no ``ray stop``,
which would also stop other people's clusters on the machine).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

RAY = str(Path(sys.executable).parent / "ray")
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
#: Latency depends on the machine's load, not on the executor.
VOLATILE = ("latency_ms_b1", "latency_ms_b64")


def rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


def stable_metrics(rec: dict) -> dict:
    return {k: v for k, v in rec["metrics"].items() if k not in VOLATILE}


def scalar_metrics(rec: dict) -> dict:
    """What a tracker holds as scalars: the numeric metrics (a status string such as device_status is not)."""
    return {k: v for k, v in stable_metrics(rec).items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


# ---------------------------------------------------------------- readers (the libraries' own)


def read_tensorboard(out: Path) -> dict[str, dict]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    found = {}
    for unit_dir in sorted(p.parent for p in (out / "tensorboard").rglob("hparams")):
        unit = str(unit_dir.relative_to(out / "tensorboard"))
        scalars = EventAccumulator(str(unit_dir))
        scalars.Reload()
        epochs = {tag: [(e.step, e.value) for e in scalars.Scalars(tag)] for tag in scalars.Tags()["scalars"]}
        hp = EventAccumulator(str(unit_dir / "hparams"))
        hp.Reload()
        final = {tag.split("/", 1)[1]: hp.Scalars(tag)[-1].value for tag in hp.Tags()["scalars"]}
        content = hp.PluginTagToContent("hparams")
        params = {}
        for blob in content.values():
            data = plugin_data_pb2.HParamsPluginData.FromString(blob)
            if data.HasField("session_start_info"):
                for k, v in data.session_start_info.hparams.items():
                    params[k] = v.WhichOneof("kind") and getattr(v, v.WhichOneof("kind"))
        found[unit] = {"epochs": epochs, "final": final, "hparams": params}
    return found


def read_mlflow(out: Path, name: str = "tiny") -> dict[str, object]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=(out / "mlruns").resolve().as_uri())
    exp = client.get_experiment_by_name(name)
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    return {r.data.tags["childnet.unit"]: (r, client) for r in runs}


def check_tracking(out: Path) -> None:
    """What TensorBoard and MLflow hold is what results.jsonl holds, unit by unit."""
    results = {r["unit"]: r for r in rows(out) if r["status"] == "ok"}
    tb = read_tensorboard(out)
    assert sorted(tb) == sorted(results)
    for unit, rec in results.items():
        got = tb[unit]
        for k, v in scalar_metrics(rec).items():
            assert got["final"][k] == pytest.approx(v, rel=1e-6), (unit, k)
        for h in rec["history"]:
            for k, v in h.items():
                if k != "epoch":
                    assert (h["epoch"], pytest.approx(v, rel=1e-6)) in got["epochs"][f"epoch/{k}"], (unit, k)
        assert got["hparams"]["method"] == rec["method"] and got["hparams"]["seed"] == rec["seed"]
    ml = read_mlflow(out)
    assert sorted(ml) == sorted(results)
    for unit, (run, client) in ml.items():
        rec = results[unit]
        card = json.loads((out / rec["child_dir"] / "child.json").read_text())
        assert run.info.status == "FINISHED"
        for k, v in scalar_metrics(rec).items():
            assert run.data.metrics[k] == pytest.approx(v, rel=1e-6), (unit, k)
        for k in rec["history"][-1]:
            if k != "epoch":
                hist = client.get_metric_history(run.info.run_id, k)
                assert [(m.step, m.value) for m in hist] == [(h["epoch"], pytest.approx(h[k])) for h in rec["history"]]
        assert str(card["config"]["train"]["epochs"]) == run.data.params["train.epochs"]
        art = Path(client.download_artifacts(run.info.run_id, "child.json", str(out / ".dl" / unit)))
        assert json.loads(art.read_text()) == card


def test_tracking_catches_up_on_lines_it_missed(tmp_path, monkeypatch):
    """--track on a folder run without it logged only new units (a finished run got nothing), and a kill while
    a unit was being logged left its MLflow run RUNNING for good. Each sink now logs the lines it lacks."""
    pytest.importorskip("tensorboard")
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    from childnet.runner import run
    from childnet.tracking import LEDGER_NAME, record_id

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    out = tmp_path / "run"
    run(TINY, out, workers=0, report=False, log=lambda s: None)  # no tracking
    track = dict(workers=0, report=False, track=["tensorboard", "mlflow"])
    lines: list[str] = []
    run(TINY, out, log=lines.append, **track)  # nothing left to run: it catches up
    assert sum("logging 4 earlier result line(s)" in line for line in lines) == 2, lines
    check_tracking(out)
    client = MlflowClient(tracking_uri=(out / "mlruns").resolve().as_uri())
    exp = client.get_experiment_by_name("tiny").experiment_id
    first = rows(out)[0]
    # a kill while the first line was being logged: its MLflow run is RUNNING, TensorBoard's ledger lacks it
    done = [r for r in client.search_runs([exp]) if r.data.tags["childnet.unit"] == first["unit"]]
    client.delete_run(done[0].info.run_id)
    client.create_run(exp, run_name=first["unit"], tags={"childnet.unit": first["unit"],
                                                         "childnet.run_folder": str(out.resolve())})
    ledger = out / "tensorboard" / LEDGER_NAME
    ledger.write_text("".join(f"{i}\n" for i in ledger.read_text().split() if i != record_id(first)))
    lines = []
    run(TINY, out, log=lines.append, **track)
    assert sum("logging 1 earlier result line(s)" in line for line in lines) == 2, lines
    runs = client.search_runs([exp], max_results=1000)
    assert sorted(r.data.tags["childnet.unit"] for r in runs) == sorted(r["unit"] for r in rows(out))  # one each
    assert {r.info.status for r in runs} == {"FINISHED"}
    check_tracking(out)
    lines = []
    run(TINY, out, log=lines.append, **track)
    assert not any("earlier result line" in line for line in lines), lines
    shutil.rmtree(out / "tensorboard")  # deleted to be rebuilt: its ledger went with it
    lines = []
    run(TINY, out, log=lines.append, **track)
    assert [line for line in lines if "earlier result line" in line] == \
        ["tracking: tensorboard: logging 4 earlier result line(s) it does not have yet"], lines
    check_tracking(out)
    # two run folders in one shared MLflow store: each catches up on its own lines only
    shared = (tmp_path / "shared").resolve().as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", shared)
    quiet = dict(workers=0, report=False, log=lambda s: None)
    run(TINY, tmp_path / "a", track=["mlflow"], **quiet)
    run(TINY, tmp_path / "b", **quiet)
    lines = []
    run(TINY, tmp_path / "b", workers=0, report=False, log=lines.append, track=["mlflow"])
    assert any("mlflow: logging 4 earlier" in line for line in lines), lines
    store = MlflowClient(tracking_uri=shared)
    assert len(store.search_runs([store.get_experiment_by_name("tiny").experiment_id])) == 8


# ---------------------------------------------------------------- a two-node cluster


def _wait_for(path: Path, pattern: str, proc, timeout: float = 120) -> re.Match:
    deadline = time.time() + timeout
    while time.time() < deadline:
        m = re.search(pattern, path.read_text()) if path.exists() else None
        if m:
            return m
        if proc.poll() is not None:
            raise RuntimeError(f"ray start exited early:\n{path.read_text()}")
        time.sleep(0.2)
    raise TimeoutError(f"ray start did not come up:\n{path.read_text()}")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def _stop(proc) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)  # `ray start --block` stops the node's processes
        try:
            proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A head (no CPUs: it runs no unit) and a second node with 2 CPUs, its own cache and working folder."""
    if importlib.util.find_spec("ray") is None:
        pytest.skip("the ray extra is not installed")
    head_files = tmp_path_factory.getbasetemp()  # the head's cache and run folders live here
    worker = Path(tempfile.mkdtemp(prefix="childnet-worker-node-"))
    (worker / "cwd").mkdir()
    token = secrets.token_hex(16)
    env = dict(os.environ, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token, RAY_USAGE_STATS_ENABLED="0")
    procs = []
    try:
        # Explicit free ports: Ray's fixed defaults (8265, 10001, 52365) would clash with another cluster here.
        head = subprocess.Popen([RAY, "start", "--head", "--port=0", "--num-cpus=0", "--include-dashboard=false",
                                 f"--dashboard-port={_free_port()}", f"--ray-client-server-port={_free_port()}",
                                 f"--dashboard-agent-listen-port={_free_port()}", "--block"], env=env, start_new_session=True, stderr=subprocess.STDOUT,
                                stdout=open(worker / "head.log", "w"))
        procs.append(head)
        address = _wait_for(worker / "head.log", r"ray start --address='([0-9.]+:[0-9]+)'", head).group(1)
        wenv = dict(env, CHILDNET_CACHE=str(worker / "cache"), CHILDNET_WORKER_DIR=str(worker / "scratch"))
        start = [RAY, "start", f"--address={address}", "--num-cpus=2", f"--dashboard-agent-listen-port={_free_port()}",
                 "--block"]
        hidden = shutil.which("unshare") is not None and subprocess.run(
            ["unshare", "-m", "true"], capture_output=True).returncode == 0
        if hidden:  # the worker node cannot see the head's files at all
            start = ["unshare", "-m", "sh", "-c", f'mount -t tmpfs none "{head_files}" && exec "$@"', "sh", *start]
        node = subprocess.Popen(start, env=wenv, cwd=worker / "cwd", start_new_session=True,
                                stderr=subprocess.STDOUT, stdout=open(worker / "node.log", "w"))
        procs.append(node)
        _wait_for(worker / "node.log", r"Ray runtime started", node)
        yield {"address": address, "token": token, "worker": worker, "hidden": hidden, "node": node,
               "head_files": head_files}
    finally:
        for p in reversed(procs):
            _stop(p)
        shutil.rmtree(worker, ignore_errors=True)


@pytest.mark.slow
def test_ray_cluster_gives_the_process_pool_numbers_without_the_head_disk_and_tracks_both(
        cluster, tmp_path, monkeypatch):
    pytest.importorskip("tensorboard")
    pytest.importorskip("mlflow")
    from childnet.runner import run

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    quiet = dict(report=False, log=lambda s: None, track=["tensorboard", "mlflow"])
    pool = run(TINY, tmp_path / "pool", workers=0, **quiet)
    assert pool.finished == 4 and not pool.failed
    exp = tmp_path / "exp.yaml"
    exp.write_text(yaml.safe_dump(TINY))
    # The CLI as the README shows it: the cluster's token in the environment, --address of its head.
    env = dict(os.environ, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=cluster["token"])
    proc = subprocess.run(CLI + ["run", str(exp), "--out", str(tmp_path / "ray"), "--executor", "ray", "--address",
                                 cluster["address"], "--track", "tensorboard,mlflow", "--quiet"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr

    by_unit = {r["unit"]: r for r in rows(tmp_path / "pool")}
    ray_rows = rows(tmp_path / "ray")
    assert sorted(r["unit"] for r in ray_rows) == sorted(by_unit)
    worker = cluster["worker"]
    for rec in ray_rows:  # same numbers as the process pool, seed for seed
        ref = by_unit[rec["unit"]]
        assert stable_metrics(rec) == stable_metrics(ref) and rec["history"] == ref["history"], rec["unit"]
        assert rec["parent"]["fingerprint"] == ref["parent"]["fingerprint"]
        ex = rec["executor"]  # every unit ran on the second node, with its own cache and working folder
        assert ex["cache"] == str(worker / "cache") and ex["cwd"] == str(worker / "cwd"), ex
        assert (tmp_path / "ray" / rec["child_dir"] / "model.safetensors").read_bytes() == \
               (tmp_path / "pool" / ref["child_dir"] / "model.safetensors").read_bytes()
    assert len(list((worker / "cache" / "parents").iterdir())) == 1  # shipped through the object store
    if cluster["hidden"]:  # inside the worker node's mount namespace the head's folder is empty
        seen = subprocess.run(["nsenter", "-t", str(cluster["node"].pid), "-m", "ls", "-A",
                               str(cluster["head_files"])], capture_output=True, text=True)
        assert seen.returncode == 0 and seen.stdout.strip() == "", seen
    check_tracking(tmp_path / "pool")
    check_tracking(tmp_path / "ray")


@pytest.mark.slow
def test_a_pipeline_of_generations_on_the_cluster_matches_the_process_pool(cluster, tmp_path):
    """Stages on Ray: each later stage's incoming child travels with its unit (the worker node cannot read the
    head's run folder), so the choices, numbers and weights equal the process pool's, seed for seed."""
    from childnet.runner import run

    pipe = dict(TINY, name="pipe", methods=None, baseline=None, defaults=None, evaluate={"latency": False}, seeds=1,
                stages=[{"name": "shrink", "methods": [{"name": "iterative", "structure": "channels", "sparsity": 0.5,
                                                        "rounds": 1, "tune": {"epochs": 1}}]},
                        {"name": "distil", "methods": [{"name": "kd", "teacher": "root", "train": {"epochs": 1}},
                                                       {"name": "scratch", "start": "fresh", "train": {"epochs": 1}}]}])
    pipe = {k: v for k, v in pipe.items() if v is not None}
    pool = run(pipe, tmp_path / "pool", workers=0, report=False, log=lambda s: None)
    assert pool.finished == 3 and not pool.failed
    exp = tmp_path / "pipe.yaml"
    exp.write_text(yaml.safe_dump(pipe))
    env = dict(os.environ, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=cluster["token"])
    proc = subprocess.run(CLI + ["run", str(exp), "--out", str(tmp_path / "ray"), "--executor", "ray", "--address",
                                 cluster["address"], "--quiet"], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    by_unit = {r["unit"]: r for r in rows(tmp_path / "pool")}
    ray_rows = rows(tmp_path / "ray")
    assert sorted(r["unit"] for r in ray_rows) == sorted(by_unit)
    for rec in ray_rows:
        ref = by_unit[rec["unit"]]
        assert rec["executor"]["cache"] == str(cluster["worker"] / "cache"), rec["executor"]  # ran on the node
        assert stable_metrics(rec) == stable_metrics(ref) and rec.get("incoming") == ref.get("incoming"), rec["unit"]
        assert (tmp_path / "ray" / rec["child_dir"] / "model.safetensors").read_bytes() == \
               (tmp_path / "pool" / ref["child_dir"] / "model.safetensors").read_bytes()
    choices = [json.loads((tmp_path / out / "stages.json").read_text())["choices"] for out in ("pool", "ray")]
    assert choices[0] == choices[1] and "distil" in choices[1]["default"]["seed0"]
    assert sum(1 for r in ray_rows if r.get("incoming")) == 2  # both distil methods start from shrink's child


# ---------------------------------------------------------------- a private local cluster, killed and resumed


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def _unit_workers(pid: int) -> list[int]:
    found = []
    for p in _descendants(pid):
        try:
            cmd = Path(f"/proc/{p}/cmdline").read_bytes()
        except OSError:
            continue
        if cmd.startswith(b"ray::_ray_unit"):
            found.append(p)
    return found


def _ray_scratch_run(tmp_path: Path, seeds: int) -> tuple[list[str], dict, Path]:
    """The command, environment and run folder of a Ray run of `seeds` scratch units (3 epochs each)."""
    raw = dict(TINY, methods=["scratch"], seeds=seeds, defaults={"child": {"name": "cnn", "width": 4, "depth": 2},
                                                                 "train": {"epochs": 3, "lr": 0.01}})
    exp, out = tmp_path / "exp.yaml", tmp_path / "run"
    exp.write_text(yaml.safe_dump(raw))
    env = dict(os.environ, CHILDNET_WORKER_DIR=str(tmp_path / "workers"))
    return CLI + ["run", str(exp), "--out", str(out), "--executor", "ray", "--workers", "2", "--quiet"], env, out


def _wait_for_rows(out: Path, deadline: float, n: int = 1) -> None:
    results = out / "results.jsonl"
    while time.time() < deadline and not (results.exists() and results.read_text().count("\n") >= n):
        time.sleep(0.1)


def _stop(proc) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@pytest.mark.slow
def test_killed_ray_worker_is_retried_ctrl_c_stops_and_the_run_resumes(tmp_path):
    pytest.importorskip("ray")
    # enough units that the Ctrl-C after the retried unit lands while some are still pending, even when the
    # retry is scheduled behind the others on a loaded machine (8 were all done by then once)
    SEEDS = 16  # noqa: N806
    cmd, env, out = _ray_scratch_run(tmp_path, SEEDS)
    proc = subprocess.Popen(cmd, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.time() + 180
        _wait_for_rows(out, deadline)
        finished_before_kill = rows(out)
        victims = []
        while time.time() < deadline and not victims:
            victims = _unit_workers(proc.pid)
            time.sleep(0.05)
        assert victims, "no Ray worker was running a unit"
        os.kill(victims[0], signal.SIGKILL)  # a worker process dies mid-unit
        while time.time() < deadline and not any(r["executor"]["attempt"] == 2 for r in rows(out)):
            time.sleep(0.1)
        os.killpg(proc.pid, signal.SIGINT)  # then Ctrl-C
        _, err = proc.communicate(timeout=90)
    finally:
        _stop(proc)
    assert proc.returncode == 130 and "interrupted" in err and "Traceback" not in err, err
    before = rows(out)
    assert before[: len(finished_before_kill)] == finished_before_kill  # no finished unit was lost
    assert all(r["status"] == "ok" for r in before) and 2 <= len(before) < SEEDS, before
    retried = [r for r in before if r["executor"]["attempt"] == 2]
    assert len(retried) == 1 and retried[0]["executor"]["pid"] != victims[0]
    assert not _unit_workers(proc.pid)
    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    after = rows(out)
    assert after[: len(before)] == before  # resumed: nothing redone
    assert sorted(r["unit"] for r in after) == sorted(f"default/scratch/seed{s}" for s in range(SEEDS))
    # a new run counts its own attempts: the units cancelled by Ctrl-C (and the retried one) start at 1 again
    # (the markers were keyed on the job id, which every private cluster reuses, and piled up across runs)
    assert [r["executor"]["attempt"] for r in after[len(before):]] == [1] * (SEEDS - len(before))


# ---------------------------------------------------------------- bad input: one sentence, nothing lost


def test_bad_executor_track_address_and_tracking_uri(tmp_path, monkeypatch):
    from childnet.errors import ChildnetError
    from childnet.runner import run

    quiet = dict(report=False, log=lambda s: None, workers=0)
    with pytest.raises(ChildnetError, match="valid executors: process, ray"):
        run(TINY, tmp_path / "a", executor="dask", **quiet)
    with pytest.raises(ChildnetError, match="valid trackers: tensorboard, mlflow"):
        run(TINY, tmp_path / "a", track="tensorboard,wandb", **quiet)
    with monkeypatch.context() as m:
        m.setitem(sys.modules, "ray", None)  # as if the extra were not installed
        with pytest.raises(ChildnetError, match=r"pip install 'childnet\[ray\]'"):
            run(TINY, tmp_path / "a", executor="ray", **quiet)
    if importlib.util.find_spec("ray"):
        t0 = time.time()
        with pytest.raises(ChildnetError, match="cannot reach a Ray cluster at 127.0.0.1:9"):
            run(TINY, tmp_path / "a", executor="ray", address="127.0.0.1:9", **quiet)
        assert time.time() - t0 < 30
        with pytest.raises(ChildnetError, match=r"the port should be 1 … 65535 \(got 99999\)"):
            run(TINY, tmp_path / "a", executor="ray", address="127.0.0.1:99999", **quiet)
    pytest.importorskip("mlflow")
    out = tmp_path / "b"
    run(dict(TINY, seeds=1, methods=["scratch"]), out, **quiet)
    kept = (out / "results.jsonl").read_text()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "file:///proc/childnet-cannot-write-here")
    with pytest.raises(ChildnetError, match="cannot write to the MLflow tracking URI"):
        run(dict(TINY, seeds=2, methods=["scratch"]), out, track="mlflow", **quiet)
    assert (out / "results.jsonl").read_text() == kept  # no unit ran, nothing lost


def test_cli_names_valid_values_and_exits_2(tmp_path, run_cli):
    exp = tmp_path / "exp.yaml"
    exp.write_text(yaml.safe_dump(TINY))
    proc = run_cli("run", exp, "--out", tmp_path / "r", "--executor", "spark", "--track", "mlflow")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "unknown --executor value 'spark'; valid executors: process, ray" in proc.stderr
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
def test_sigterm_stops_a_ray_run_cleanly_and_it_resumes(tmp_path):
    """ray.init replaced the command's SIGTERM handler with Ray's, which aborted with a C++ stack dump
    (exit 134); the command's own shutdown now runs: exit 143, its sentence, finished units kept."""
    pytest.importorskip("ray")
    cmd, env, out = _ray_scratch_run(tmp_path, 12)
    proc = subprocess.Popen(cmd, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    try:
        _wait_for_rows(out, time.time() + 180)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=90)
    finally:
        _stop(proc)
    assert proc.returncode == 143 and "terminated (SIGTERM)" in err and "SIGTERM received" not in err, err
    before = rows(out)
    assert before and all(r["status"] == "ok" for r in before)
    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert rows(out)[: len(before)] == before
