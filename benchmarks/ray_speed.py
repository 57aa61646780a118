"""Ray executor overhead: 8 units on a private 2-CPU local Ray cluster vs the process pool with 2 workers.

    python benchmarks/ray_speed.py [--pairs 3]

Both go through ``childnet.runner.run`` with fresh run folders and the same cached parent (trained
once before timing). The Ray time includes starting and stopping the local cluster (``ray.init`` /
``ray.shutdown``), shipping the parent through the object store and the child files back; the pool
time includes spawning its worker processes. The pair is repeated ``--pairs`` times with alternating
order (the machine may be shared: the load average is recorded). Target: median of the per-pair
ratios ray / pool ≤ 1.15.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_result  # noqa: E402

from childnet.runner import run  # noqa: E402

EXPERIMENT = {
    "name": "ray-bench",
    "task": {"name": "digits"},
    "parent": {"model": {"name": "cnn", "width": 16}, "train": {"epochs": 2}},
    "methods": [{"name": "scratch", "child": {"name": "cnn", "width": 32, "depth": 3},
                 "train": {"epochs": 40, "eval_every": 0}}],
    "seeds": 8,
    "evaluate": {"latency": False},
}


def _timed(out: Path, executor: str) -> float:
    t0 = time.perf_counter()
    res = run(EXPERIMENT, out, workers=2, executor=executor, report=False, log=lambda s: None)
    elapsed = time.perf_counter() - t0
    assert res.finished == 8 and not res.failed, res.failed
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(1)
    times: dict[str, list[float]] = {"process": [], "ray": []}
    ratios, loads = [], []
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("CHILDNET_CACHE", str(Path(tmp) / "cache"))
        run(EXPERIMENT, Path(tmp) / "warm", workers=0, seeds=1, report=False, log=lambda s: None)
        for i in range(args.pairs):
            order = ("process", "ray") if i % 2 == 0 else ("ray", "process")
            pair = {}
            for executor in order:
                loads.append(os.getloadavg()[0])
                pair[executor] = _timed(Path(tmp) / f"{executor}{i}", executor)
                times[executor].append(pair[executor])
                print(f"pair {i}: {executor} {pair[executor]:.2f} s (load {loads[-1]:.2f})", flush=True)
            ratios.append(pair["ray"] / pair["process"])
    value = statistics.median(ratios)
    write_result("ray_speed", "wall time ray / process pool, 8 units, 2 CPUs (median of interleaved pairs)", value,
                 "<= 1.15", value <= 1.15,
                 {"seconds": times, "pair_ratios": ratios, "total_ratio": sum(times["ray"]) / sum(times["process"]),
                  "units": 8, "pairs": args.pairs, "cpu_count": os.cpu_count(), "load_avg_1min_before_each_run": loads,
                  "load_avg_at_end": os.getloadavg(), "ray_version": __import__("ray").__version__})


if __name__ == "__main__":
    main()
