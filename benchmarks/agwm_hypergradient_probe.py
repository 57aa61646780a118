"""How large is AGWM's implicit hypergradient term against the direct one? A short probe on MiniLM.

    python benchmarks/agwm_hypergradient_probe.py    # -> benchmarks/results/agwm_hypergradient_probe.json

A probe for the reproduction's settings, not a result: the real all-MiniLM-L6-v2 on Rotten Tomatoes with
300 training examples (experiments/tune-minilm-rt-agwm.yaml's subset), ONE re-split, half a bi-level epoch
(8 lower steps), seed 0, for three hypergradients: direct only; direct + implicit finite-difference term
with Betty 0.2.0's Adam preconditioning of v (the official configuration, our default); and the implicit
term without preconditioning. Records the mean ratio ‖implicit‖ / ‖direct‖ over α's steps, where α ends
(mean, min) and the CPU time of each variant (one thread).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from _common import RESULTS, command  # noqa: E402

from childnet import derive, get_parent, load_task  # noqa: E402

VARIANTS = {"direct": {"hypergradient": "direct"},
            "implicit_preconditioned": {"hypergradient": "implicit", "darts_precondition": True},
            "implicit_plain": {"hypergradient": "implicit", "darts_precondition": False}}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--blo-epochs", type=float, default=0.5, help="bi-level epochs of the one re-split")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    exp = yaml.safe_load((ROOT / "experiments" / "tune-minilm-rt-agwm.yaml").read_text())
    task = load_task(exp["task"])
    parent = get_parent(exp["parent"], task)
    paper = next(m for m in exp["methods"] if isinstance(m, dict) and m.get("label") == "weight_mixup-paper")
    base = {k: v for k, v in paper.items() if k not in ("name", "label")}
    base.update(n_resplits=1, blo={**base["blo"], "epochs": args.blo_epochs}, train={**base["train"], "epochs": 0})
    out = {}
    for name, opts in VARIANTS.items():
        start = time.process_time()
        child = derive("weight_mixup", parent, task, {**base, **opts}, seed=0)
        r = child.lineage.extra["resplits"][0]
        out[name] = {"implicit_to_direct_norm": r["history"][-1].get("implicit_to_direct_norm"),
                     "alpha_mean": r["alpha_mean"], "alpha_min": r["alpha_min"], "alpha_steps": r["alpha_steps"],
                     "alpha_lr_sum": r["alpha_lr_sum"], "cpu_seconds": time.process_time() - start}
        print(name, out[name], flush=True)
    data = {"name": "agwm_hypergradient_probe", "command": command(), "config": base, "variants": out}
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / "agwm_hypergradient_probe.json"
    path.write_text(json.dumps(data, indent=2) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
