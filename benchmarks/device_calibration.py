"""Device-model calibration: L_req percentiles of random iNAS CIFAR children against the paper's.

    python benchmarks/device_calibration.py [--samples 200]

iNAS (Mendis, Kang, Hsiu, ACM TECS 2021) sets L_req for CIFAR-10 at 5 mF at the 25th / 50th / 75th
percentile of random children's intermittent latency: 194.9 / 302.4 / 477.5 s. This samples children of
the same space (5 conv layers, valid padding, filters {4, 8, 16, 24}, kernels {1, 3, 5, 7}, 32 x 32 x 3
input, GAP, linear) uniformly, costs them with :func:`childnet.evaluate.device.device_cost` and reports
our percentiles and their ratio to the paper's. Writes ``benchmarks/results/device_calibration.json``;
"passed" means every ratio lies in [0.5, 2] (our tolerance: a re-derived model, see evaluate/device.py).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

PAPER = {25: 194.9, 50: 302.4, 75: 477.5}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    import numpy as np
    import torch

    torch.set_num_threads(1)
    from _common import write_result

    from childnet import build_model
    from childnet.evaluate.device import DeviceConfig, device_cost
    from childnet.methods.search.controller import UniformController
    from childnet.methods.search.device_spaces import DeviceSpaceConfig, make_device_space

    shape = (3, 32, 32)
    space = make_device_space(DeviceSpaceConfig(batchnorm=False))
    specs = [space.decode(c) for c in UniformController(space.decisions, seed=args.seed).sample(args.samples)]
    latencies, infeasible, illegal = [], 0, 0
    for spec in specs:
        if not space.legal(spec, shape):
            illegal += 1
            continue
        cost = device_cost(build_model(space.model_spec(spec), shape, 10), shape, DeviceConfig(capacitance_f=5e-3))
        if cost.feasible:
            latencies.append(cost.latency_s)
        else:
            infeasible += 1
    ours = {p: float(np.percentile(latencies, p)) for p in PAPER}
    ratios = {p: ours[p] / PAPER[p] for p in PAPER}
    raw = {"samples": args.samples, "seed": args.seed, "illegal": illegal, "infeasible": infeasible,
           "feasible": len(latencies), "percentiles_s": ours, "paper_percentiles_s": PAPER, "ratio_to_paper": ratios}
    write_result("device_calibration", "median latency / paper's median (iNAS CIFAR space, 5 mF)", ratios[50],
                 "each of the 25/50/75th percentile ratios in [0.5, 2]",
                 all(0.5 <= r <= 2 for r in ratios.values()), raw)
    return 0


if __name__ == "__main__":
    sys.exit(main())
