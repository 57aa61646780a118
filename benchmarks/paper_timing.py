"""1-epoch CPU timings (1 thread) behind the compute estimates of poison-enas.yaml, enas-mnist.yaml, hkt-mnist.yaml.

    python benchmarks/paper_timing.py      # -> benchmarks/results/paper_timing.json

Each entry: one unit with 1 shared-weight / training epoch (the experiment files run 10), seed 0;
process CPU seconds and wall seconds (the wall time depends on the machine's load). ENAS entries also
record the controller's entropy after the epoch, the derived child's shared-weight accuracy and the
spread of 20 random children.
"""
import json
import sys
import time
from pathlib import Path

import torch

from childnet import derive, get_parent, load_task

torch.set_num_threads(1)

task = load_task({"name": "mnist5k"})
cnn = get_parent({"model": {"name": "cnn", "width": 16, "depth": 3}, "train": {"epochs": 3, "lr": 0.003}}, task)
out = {}
def timed(name, method, cfg, parent=cnn, t=task):
    c0, w0 = time.process_time(), time.perf_counter()
    child = derive(method, parent, t, cfg, seed=0)
    out[name] = {"cpu_s": round(time.process_time() - c0, 1), "wall_s": round(time.perf_counter() - w0, 1)}
    s = child.lineage.extra.get("search")
    if s:
        out[name].update(entropy=[e["entropy"] for e in s["epochs"]], shared=s["shared_weights_test_accuracy"],
                         rc=s["random_children"] and {k: s["random_children"][k] for k in ("mean", "std", "min", "max")})
    print(name, out[name], flush=True)

base = {"space": "macro", "channels": 16, "reward_batch": 64, "derive_samples": 10,
        "retrain": {"epochs": 1, "lr": 0.2, "batch_size": 32}}
timed("poison_k36_L8_1ep_c50x20", "enas", {**base, "layers": 8, "poison": ["P6"], "poison_copies": 36,
      "poison_preset": "paper", "shared_train": {"epochs": 1, "lr": 0.2, "batch_size": 32},
      "controller_steps": 50, "controller_batch": 20, "random_children": 20})
timed("enas_macro_L6_1ep_c50x20", "enas", {**base, "layers": 6,
      "shared_train": {"epochs": 1, "lr": 0.2, "batch_size": 32},
      "controller_steps": 50, "controller_batch": 20, "random_children": 20})
sgd = {"optimizer": "sgd", "momentum": 0.9, "weight_decay": 0.0005, "batch_size": 64, "lr": 0.05}
res20 = get_parent({"model": {"name": "resnet", "depth": 20}, "train": {**sgd, "epochs": 1}}, task)
timed("hkt_r8_full_1ep", "hkt", {"child": {"name": "resnet", "depth": 8}, "train": {**sgd, "epochs": 1}}, res20)
timed("scratch_r8_full_1ep", "scratch", {"child": {"name": "resnet", "depth": 8}, "train": {**sgd, "epochs": 1}}, res20)
results = Path(__file__).resolve().parent / "results"
results.mkdir(parents=True, exist_ok=True)
out = {"name": "paper_timing", "command": "python benchmarks/paper_timing.py", "units": out}
(results / "paper_timing.json").write_text(json.dumps(out, indent=1) + "\n")
sys.exit(0)
