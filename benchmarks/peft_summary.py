"""LoRA and IA3 beside vanilla fine-tuning of MiniLM: accuracy (paired by seed) and training cost, one file.

    python benchmarks/peft_summary.py [--steps 12] [--rounds 2]

Accuracy: the five seeds of ``lora`` and ``ia3`` from ``benchmarks/results/tune-minilm-rt-peft.json``
(``experiments/tune-minilm-rt-peft.yaml``) against ``vanilla``'s five seeds at the same setting (n_train
300, same parent, test split, recipe and seeds) from ``benchmarks/results/tune-minilm-rt.json``; mean ± std
and a paired t-test by seed.

Training cost, measured here in one run (ratios within the run): each method's real ``derive`` on the
same task for ``--steps`` training steps, the methods alternating round by round (``--rounds``), with
the tune family's :class:`~childnet.methods.tune._common.TrainCostMeter`: trainable parameters, CPU time
per step (thread time, one torch thread; the first step of each fit dropped), optimizer-state size; and
the peak resident memory of a fresh process per method during ``derive`` over its RSS before (sampled
every 5 ms). Writes ``benchmarks/results/tune-minilm-rt-peft-summary.json``.
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
from _common import RESULTS, command  # noqa: E402

METHODS = ("vanilla", "lora", "ia3")
LR = {"vanilla": 1e-4, "lora": 5e-4, "ia3": 3e-3}


def _setup():
    import torch

    torch.set_num_threads(1)
    from childnet import build_model, load_task
    from childnet.child import state_fingerprint
    from childnet.parent import Parent

    task = load_task({"name": "rotten-tomatoes", "n_train": 300, "max_length": 64, "test_size": 2000})
    model = build_model({"name": "minilm"}, task.input_shape, task.num_classes).eval()
    return task, Parent(model, task, {"name": "minilm"}, state_fingerprint(model), "pretrained")


def _options(method: str, steps: int) -> dict:
    return {"train": {"epochs": steps * 16 / 300, "lr": LR[method], "batch_size": 16}}


def cost(steps: int, rounds: int) -> dict:
    from childnet.api import method_config
    from childnet.methods.base import Context
    from childnet.registry import METHODS as REGISTRY

    task, parent = _setup()
    out: dict = {m: {"step_ms": [], "trainable_params": None, "optimizer_state_mb": None} for m in METHODS}
    for r in range(rounds):
        for m in METHODS:
            ctx = Context(seed=r)
            child = REGISTRY.get(m).fn(parent, task, method_config(m, _options(m, steps)), ctx)
            got = child.lineage.metrics
            out[m]["step_ms"].append(got["step_ms"])
            out[m]["trainable_params"] = got["trainable_params"]
            out[m]["optimizer_state_mb"] = got["optimizer_state_mb"]
            print(f"round {r} {m}: {got['step_ms']:.0f} ms/step", flush=True)
    for m in METHODS:
        out[m]["median_step_ms"] = statistics.median(out[m]["step_ms"])
        out[m]["step_ratio_over_vanilla"] = out[m]["median_step_ms"] / out["vanilla"]["median_step_ms"] \
            if m != "vanilla" else 1.0
    return out


def probe_memory(method: str, steps: int) -> dict:
    from childnet import derive

    task, parent = _setup()
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
    derive(method, parent, task, _options(method, steps))
    stop.set()
    thread.join()
    return {"rss_before_mb": round(before, 1), "peak_rss_mb": round(max(peak[0], rss()), 1),
            "training_increment_mb": round(max(peak[0], rss()) - before, 1)}


def accuracy() -> dict:
    from scipy.stats import ttest_rel

    peft = json.loads((RESULTS / "tune-minilm-rt-peft.json").read_text())
    base = json.loads((RESULTS / "tune-minilm-rt.json").read_text())
    setting = next(iter(peft["settings"].values()))["methods"]
    vanilla = base["settings"]["task.n_train=300"]["methods"]["vanilla"]
    van = dict(zip(vanilla["seeds"], vanilla["values"]))
    out = {"vanilla": {"values": vanilla["values"], "seeds": vanilla["seeds"], "mean": vanilla["mean"],
                       "std": vanilla["std"], "source": base["command"]}}
    for m in ("lora", "ia3"):
        rec = setting[m]
        pairs = [(v, van[s]) for s, v in zip(rec["seeds"], rec["values"]) if s in van]
        p = ttest_rel([a for a, _ in pairs], [b for _, b in pairs]).pvalue if len(pairs) > 1 else None
        out[m] = {"values": rec["values"], "seeds": rec["seeds"], "mean": rec["mean"], "std": rec["std"],
                  "delta_vs_vanilla": statistics.mean(a - b for a, b in pairs), "paired_p_vs_vanilla": p,
                  "source": peft["command"],
                  "run_metrics": {k: rec.get(k) for k in ("trainable_params", "step_ms", "optimizer_state_mb",
                                                          "train_rss_peak_mb") if k in rec}}
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--memory-probe", choices=METHODS)
    args = ap.parse_args(argv)
    if args.memory_probe:
        print(json.dumps(probe_memory(args.memory_probe, args.steps)))
        return
    acc = accuracy()
    costs = cost(args.steps, args.rounds)
    for m in METHODS:
        cmd = [sys.executable, __file__, "--memory-probe", m, "--steps", str(args.steps)]
        res = subprocess.run(cmd, capture_output=True, text=True, check=True)
        costs[m]["memory"] = json.loads(res.stdout.strip().splitlines()[-1])
    for m in METHODS:
        costs[m]["peak_memory_ratio_over_vanilla"] = round(
            costs[m]["memory"]["training_increment_mb"] / max(1e-9, costs["vanilla"]["memory"]["training_increment_mb"]), 3)
    data = {"name": "tune-minilm-rt-peft-summary", "command": command(), "accuracy": acc, "cost": costs,
            "setup": {"task": "rotten-tomatoes n_train 300, max_length 64, test 2000", "parent": "all-MiniLM-L6-v2",
                      "lr": LR, "cost_steps": args.steps, "cost_rounds": args.rounds}}
    path = RESULTS / "tune-minilm-rt-peft-summary.json"
    path.write_text(json.dumps(data, indent=2) + "\n")
    print(json.dumps({m: {"mean": acc[m]["mean"], "std": acc[m]["std"]} for m in acc}))


if __name__ == "__main__":
    main()
