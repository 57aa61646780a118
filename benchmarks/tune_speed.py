"""Speed of the tune methods against vanilla fine-tuning, on the real MiniLM parent.

    python benchmarks/tune_speed.py [--n-train 320] [--rounds 3]

Measured in one run, on all-MiniLM-L6-v2 (6 layers, 22.6 M parameters) fine-tuned on Rotten Tomatoes
snippets (max_length 64, batch 16), each method through its real ``derive`` with a timing hook:

- training-step time of child_tuning_f and child_tuning_d over vanilla (target ≤ 1.10 each);
- weight_mixup's bi-level step (lower step on W + upper step on α) over vanilla (target ≤ 3.0;
  the paper reports 1.8-4× for its whole procedure);
- the Fisher pass of child_tuning_d over one vanilla training epoch (reported);
- peak memory (RSS) of each method over vanilla, each method in a fresh process (reported).

Step times are CPU seconds of the thread that ran the step (``time.thread_time``, one torch thread): on
a shared machine they do not count the time other processes hold the core, unlike wall time (also
recorded). The four methods run in four threads that take turns step by step (only one runs at a time),
so load from other processes hits them alike; ``--rounds`` rounds with seeds 0, 1, …; the first two steps
of every run are warm-up and dropped. vanilla and Child-Tuning train on identical batches (same seed):
their ratio is of total CPU time; weight_mixup's is of mean step time. Writes ``benchmarks/results/tune_speed_child_tuning.json`` and
``benchmarks/results/tune_speed_weight_mixup.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from childnet.train import Hook  # noqa: E402

METHODS = ("vanilla", "child_tuning_f", "child_tuning_d", "weight_mixup")
WARMUP_STEPS = 2


def _options(method: str) -> dict:
    one_epoch = {"train": {"epochs": 1}}
    if method == "weight_mixup":  # one re-split, one BLO epoch, then the final epoch with α frozen
        return {**one_epoch, "n_resplits": 1, "blo": {"epochs": 1}}
    return one_epoch


def _setup(n_train: int):
    """The task and the pretrained parent (built directly: ``get_parent`` would also score it on the test set)."""
    import torch

    torch.set_num_threads(1)
    from childnet import build_model, load_task
    from childnet.parent import Parent

    task = load_task({"name": "rotten-tomatoes", "n_train": n_train, "max_length": 64})
    model = build_model({"name": "minilm"}, task.input_shape, task.num_classes).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return task, Parent(model, task, {"name": "minilm"}, "all-MiniLM-L6-v2", "pretrained")


class Turnstile:
    """Lets one method's thread run at a time, round-robin, handing over after every training step.

    The four methods then alternate step by step, so a burst of load from other processes on the
    machine hits all of them alike instead of whichever method happened to be running.
    """

    def __init__(self, names):
        self.order, self.current = list(names), 0
        self.cond = threading.Condition()

    def wait(self, name: str) -> None:
        with self.cond:
            self.cond.wait_for(lambda: self.order[self.current] == name)

    def hand_over(self, name: str, finished: bool = False) -> None:
        with self.cond:
            i = self.order.index(name)
            if finished:
                self.order.pop(i)
                self.current = i % len(self.order) if self.order else 0
            else:
                self.current = (i + 1) % len(self.order)
            self.cond.notify_all()


class StepTimer(Hook):
    """A trainer hook timing every step in thread CPU time (and wall time), one list per ``fit`` call."""

    def __init__(self, name: str, turnstile: Turnstile):
        self.name, self.turnstile = name, turnstile
        self.runs: list[dict] = []

    def on_fit_start(self, state):
        self.runs.append({"cpu": [], "wall": []})

    def before_step(self, state):
        self._cpu, self._wall = time.thread_time(), time.perf_counter()

    def after_step(self, state):  # runs after the method's own after_step hooks (AGWM's α step)
        self.runs[-1]["cpu"].append(time.thread_time() - self._cpu)
        self.runs[-1]["wall"].append(time.perf_counter() - self._wall)
        self.turnstile.hand_over(self.name)
        self.turnstile.wait(self.name)


def _lockstep_round(task, parent, seed: int) -> dict:
    """Run the four derives in four threads that take turns step by step; return their timers and children."""
    from childnet.api import method_config
    from childnet.methods.base import Context
    from childnet.registry import METHODS as REGISTRY

    turnstile = Turnstile(METHODS)
    timers = {m: StepTimer(m, turnstile) for m in METHODS}
    children, errors = {}, {}

    def work(method):
        turnstile.wait(method)
        try:
            ctx = Context(seed=seed, extra={"hooks": [timers[method]]})
            children[method] = REGISTRY.get(method).fn(parent, task, method_config(method, _options(method)), ctx)
        except BaseException as err:  # noqa: BLE001 - reported below, never deadlocks the others
            errors[method] = err
        finally:
            turnstile.hand_over(method, finished=True)

    threads = [threading.Thread(target=work, args=(m,)) for m in METHODS]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError(f"benchmark runs failed: {errors}")
    return {"timers": timers, "children": children}


def time_steps(n_train: int, rounds: int) -> dict:
    """Per method: step CPU times (warm-up dropped) and the Fisher pass time, ``rounds`` lockstep rounds."""
    task, parent = _setup(n_train)
    raw: dict = {m: {"steps_cpu": [], "steps_wall": [], "final_steps_cpu": [], "fisher_cpu": []} for m in METHODS}
    for r in range(rounds):
        res = _lockstep_round(task, parent, seed=r)
        for method, timer in res["timers"].items():
            first, last = timer.runs[0], timer.runs[-1]
            raw[method]["steps_cpu"] += first["cpu"][WARMUP_STEPS:]
            raw[method]["steps_wall"] += first["wall"][WARMUP_STEPS:]
            if method == "weight_mixup":
                raw[method]["final_steps_cpu"] += last["cpu"][WARMUP_STEPS:]
            if method == "child_tuning_d":
                raw[method]["fisher_cpu"].append(res["children"][method].lineage.extra["fisher_cpu_seconds"])
            print(f"round {r} {method}: median step {statistics.median(first['cpu'][WARMUP_STEPS:]):.3f} s CPU",
                  flush=True)
    return raw


def probe_memory(method: str, n_train: int) -> dict:
    """RSS before ``derive`` and its peak during ``derive`` (sampled every 5 ms), in MB."""
    from childnet import derive

    task, parent = _setup(n_train)
    page = os.sysconf("SC_PAGE_SIZE")

    def rss() -> float:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * page / 2**20

    peak, stop = [rss()], threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], rss())
            time.sleep(0.005)

    before = rss()
    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    derive(method, parent, task, _options(method))
    stop.set()
    thread.join()
    return {"rss_before_mb": round(before, 1), "peak_rss_mb": round(max(peak[0], rss()), 1)}


def memory_ratios(n_train: int) -> dict:
    out = {}
    for method in METHODS:
        cmd = [sys.executable, __file__, "--memory-probe", method, "--n-train", str(n_train)]
        res = subprocess.run(cmd, capture_output=True, text=True, check=True)
        out[method] = json.loads(res.stdout.strip().splitlines()[-1])
    base = out["vanilla"]
    for m in out.values():
        m["peak_ratio"] = round(m["peak_rss_mb"] / base["peak_rss_mb"], 3)
        m["training_increment_mb"] = round(m["peak_rss_mb"] - m["rss_before_mb"], 1)
        m["increment_ratio"] = round(m["training_increment_mb"] / max(1e-9, base["peak_rss_mb"] - base["rss_before_mb"]), 3)
    return out


def summarise(raw: dict, memory: dict, n_train: int, rounds: int) -> dict:
    """Ratios. vanilla and Child-Tuning see the same batches step for step (same seed), so their ratio
    is of total CPU time over identical batches; weight_mixup's bi-level steps train on its 80 % split,
    so its ratio is of mean step times."""
    med = {m: statistics.median(raw[m]["steps_cpu"]) for m in METHODS}
    total = {m: sum(raw[m]["steps_cpu"]) for m in METHODS}
    mean = {m: statistics.mean(raw[m]["steps_cpu"]) for m in METHODS}
    ratio = {m: total[m] / total["vanilla"] for m in ("vanilla", "child_tuning_f", "child_tuning_d")}
    ratio["weight_mixup"] = mean["weight_mixup"] / mean["vanilla"]
    paired = {m: statistics.median(a / b for a, b in zip(raw[m]["steps_cpu"], raw["vanilla"]["steps_cpu"]))
              for m in ("child_tuning_f", "child_tuning_d")}
    steps_per_epoch = -(-n_train // 16)
    vanilla_epoch = mean["vanilla"] * steps_per_epoch
    return {
        "setup": {"parent": "minilm (all-MiniLM-L6-v2, 6 layers)", "task": "rotten-tomatoes", "n_train": n_train,
                  "max_length": 64, "batch_size": 16, "rounds": rounds, "clock": "thread CPU time, 1 torch thread, methods in lockstep"},
        "median_step_cpu_s": {m: round(v, 4) for m, v in med.items()},
        "step_ratio": {m: round(v, 4) for m, v in ratio.items()},
        "median_paired_step_ratio": {m: round(v, 4) for m, v in paired.items()},
        "weight_mixup_final_step_ratio": round(statistics.mean(raw["weight_mixup"]["final_steps_cpu"]) / mean["vanilla"], 4),
        "fisher_pass_cpu_s": [round(v, 3) for v in raw["child_tuning_d"]["fisher_cpu"]],
        "vanilla_epoch_cpu_s": round(vanilla_epoch, 3),
        "fisher_over_epoch": round(statistics.median(raw["child_tuning_d"]["fisher_cpu"]) / vanilla_epoch, 4),
        "peak_memory": memory,
        "steps": raw,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-train", type=int, default=320, help="training examples (steps per epoch = n/16)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--memory-probe", choices=METHODS, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.memory_probe:
        print(json.dumps(probe_memory(args.memory_probe, args.n_train)))
        return 0
    from _common import write_result

    raw = time_steps(args.n_train, args.rounds)
    summary = summarise(raw, memory_ratios(args.n_train), args.n_train, args.rounds)
    ratios = summary["step_ratio"]
    worst_ct = max(ratios["child_tuning_f"], ratios["child_tuning_d"])
    write_result("tune_speed_child_tuning", "training-step time over vanilla, max of child_tuning_f and child_tuning_d",
                 worst_ct, "<= 1.10", worst_ct <= 1.10, summary)
    write_result("tune_speed_weight_mixup", "bi-level training-step time of weight_mixup over vanilla",
                 ratios["weight_mixup"], "<= 3.0", ratios["weight_mixup"] <= 3.0, summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
