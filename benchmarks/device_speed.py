"""Device-evaluation speed: costing a ResNet-20 child on the simulated intermittent device vs training it.

    python benchmarks/device_speed.py [--repeats 3] [--train-repeats 1]

In one process, with one thread: the wall time of :func:`childnet.evaluate.device.device_cost` on a
ResNet-20 built for mnist5k (1 x 28 x 28), the per-layer execution-design search included (its cache is
cleared before every repeat), against one training epoch of that ResNet-20 on mnist5k's training split
(the default TrainConfig: AdamW, batch 64). Medians of ``--repeats`` device evaluations and
``--train-repeats`` epochs. Target (issue 12): ratio
<= 0.05. Writes ``benchmarks/results/device_speed.json``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--train-repeats", type=int, default=1)
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    from _common import write_result

    from childnet import build_model, load_task
    from childnet.evaluate._device_designs import search_layer
    from childnet.evaluate.device import DeviceConfig, device_cost
    from childnet.train import TrainConfig, fit

    task = load_task({"name": "mnist5k"})
    model = build_model({"name": "resnet", "depth": 20}, task.input_shape, task.num_classes)
    device_times, cost = [], None
    for _ in range(args.repeats):
        search_layer.cache_clear()
        t0 = time.perf_counter()
        cost = device_cost(model, task.input_shape, DeviceConfig())
        device_times.append(time.perf_counter() - t0)
    train_times = []
    for r in range(args.train_repeats):
        torch.manual_seed(r)
        fresh = build_model({"name": "resnet", "depth": 20}, task.input_shape, task.num_classes)
        t0 = time.perf_counter()
        fit(fresh, (task.x_train, task.y_train), TrainConfig(epochs=1, eval_every=0), seed=r)
        train_times.append(time.perf_counter() - t0)
    dev, train = statistics.median(device_times), statistics.median(train_times)
    ratio = dev / train
    raw = {"device_cost_seconds": device_times, "train_epoch_seconds": train_times,
           "device_cost_median_s": dev, "train_epoch_median_s": train, "train_examples": len(task.y_train),
           "layers_costed": len(cost.layers), "designs_searched": sum(lay["designs_searched"] for lay in cost.layers),
           "status": cost.status, "intermittent_latency_s": cost.latency_s,
           "continuous_latency_s": cost.continuous_latency_s, "power_cycles": cost.power_cycles,
           "threads": torch.get_num_threads()}
    write_result("device_speed", "device_cost time / one training epoch (ResNet-20, mnist5k)", ratio, "<= 0.05",
                 ratio <= 0.05, raw)
    return 0


if __name__ == "__main__":
    sys.exit(main())
