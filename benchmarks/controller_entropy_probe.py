"""Does the ENAS controller's entropy move with the poison-enas.yaml schedule? One unit, one seed.

    python benchmarks/controller_entropy_probe.py --k 36   # -> benchmarks/results/controller_entropy_probe_k36.json
    python benchmarks/controller_entropy_probe.py --k 36 --epochs 3 --controller-lr 0.01
                                                   # -> ..._k36_ep3.0_clr0.01.json

A probe for the experiment file's settings (issue 18: "enough controller updates that its entropy visibly
moves"), not a reproduction: the search of experiments/poison-enas.yaml at k = 36 (paper preset, 8 macro
layers, 10 shared-weight epochs, 50 controller updates per epoch) on one seed, with a 1-epoch retrain
(the retrained accuracy is not the point here). Records the controller's entropy after every epoch against
its maximum (uniform choices), the poison fraction sampled per epoch and the CPU time.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from _common import RESULTS, command  # noqa: E402

from childnet import derive, get_parent, load_task  # noqa: E402
from childnet.methods.search.spaces import make_space  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--k", type=int, default=36, help="poison branches (total)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=float, help="shared-weight epochs (default: the experiment file's)")
    ap.add_argument("--controller-lr", type=float, help="controller learning rate (default: ENAS's for the space)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    exp = yaml.safe_load((ROOT / "experiments" / "poison-enas.yaml").read_text())
    cfg = {k: v for k, v in exp["methods"][0].items() if k not in ("name", "label")}
    cfg.update(poison_copies=args.k, retrain={**cfg["retrain"], "epochs": 1})
    if args.epochs is not None:
        cfg["shared_train"] = {**cfg["shared_train"], "epochs": args.epochs}
    if args.controller_lr is not None:
        cfg["controller"] = {**cfg.get("controller", {}), "lr": args.controller_lr}
    task = load_task(exp["task"])
    parent = get_parent(exp["parent"], task)
    space = make_space({k: v for k, v in cfg.items() if k in ("space", "layers", "channels", "poison",
                                                               "poison_copies", "poison_preset")})
    max_entropy = sum(math.log(d.num_choices) for d in space.decisions)
    start = time.process_time()
    child = derive("enas", parent, task, cfg, seed=args.seed)
    search = child.lineage.extra["search"]
    data = {"name": "controller_entropy_probe", "command": command(), "config": cfg, "seed": args.seed,
            "max_entropy": max_entropy, "entropy_by_epoch": [e["entropy"] for e in search["epochs"]],
            "poison_fraction_by_epoch": [e["poison_fraction"] for e in search["epochs"]],
            "reward_mean_by_epoch": [e["reward_mean"] for e in search["epochs"]],
            "shared_weights_test_accuracy": search["shared_weights_test_accuracy"],
            "random_children": search["random_children"], "final_poison_fraction": search["final_poison_fraction"],
            "cpu_seconds": time.process_time() - start}
    RESULTS.mkdir(parents=True, exist_ok=True)
    suffix = "".join(f"_{k}{v}" for k, v in (("ep", args.epochs), ("clr", args.controller_lr)) if v is not None)
    path = RESULTS / f"controller_entropy_probe_k{args.k}{suffix}.json"
    path.write_text(json.dumps(data, indent=2) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
