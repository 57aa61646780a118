"""random_search: the baseline of the search family — sample N architectures uniformly, train each
briefly on its own (no weight sharing), keep the best on validation, retrain it from scratch.

This is the comparison ENAS's compute claim is made against (Pham et al., 2018, arXiv 1802.03268:
"about 1000x" cheaper than search that trains every child on its own); Li & Talwalkar (2019,
arXiv 1902.07638) showed random search is a strong NAS baseline. The N trainings are independent, so
they run through the runner's executor (``ctx.executor``, any ``concurrent.futures``-like object) when
one is given, else one after another. Each trial has its own seed, so results do not depend on the
order they finish in.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
from pydantic import Field, field_validator

from ...models.base import build_model
from ...registry import METHODS
from ...train import RNG_LOCK, TrainConfig, evaluate_accuracy, fit
from ..base import make_child
from ._common import (ComputeMeter, SearchConfig, check_image_task, merge_sgd_defaults, op_frequencies,
                      retrain_from_scratch, sgd_train_field)
from .controller import UniformController
from .spaces import make_space

__all__ = ["RandomSearchConfig", "TrialData", "train_trial", "derive"]


class RandomSearchConfig(SearchConfig):
    """Random search: N uniformly sampled architectures, each trained briefly; the best retrained."""

    num_architectures: int = Field(16, ge=1, le=100000, description="architectures sampled and trained (N)")
    child_train: TrainConfig = sgd_train_field(1, "the brief training of each sampled architecture")

    @field_validator("child_train", mode="before")
    @classmethod
    def _child_defaults(cls, v):
        return merge_sgd_defaults(v, 1)


@dataclass(frozen=True)
class TrialData:
    """The splits a trial needs (the test split stays home), small enough to send to a worker."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    input_shape: tuple
    num_classes: int


def train_trial(model_spec: dict, data: TrialData, train: dict, seed: int, device: str = "cpu") -> dict:
    """Train one architecture from scratch briefly; return its validation accuracy and compute.

    A module-level function of plain arguments, so a process pool can run it. In a thread pool the
    initialisation is still exact (under a lock), but stochastic ops drawn from torch's global RNG
    during training (the P2 noise and P3 dropout poison ops) interleave between threads; use a
    process pool, or none, for bit-identical poisoned trials.
    """
    with RNG_LOCK:  # torch's global RNG is shared by threads: seed and initialise as one step
        torch.manual_seed(seed)
        model = build_model(model_spec, data.input_shape, data.num_classes).to(device)
    cfg = TrainConfig(**train)
    start = time.perf_counter()
    fit(model, (data.x_train, data.y_train), cfg, seed=seed, device=device)
    val = evaluate_accuracy(model, data.x_val, data.y_val, device=device)
    macs = model.child_macs(model.arch)
    examples = math.ceil(cfg.epochs * len(data.y_train))
    return {"val_accuracy": val, "macs_per_example": macs, "train_macs": macs * examples,
            "eval_macs": macs * len(data.y_val), "seconds": time.perf_counter() - start}


def _run_trials(jobs: list[tuple], executor) -> list[dict]:
    if executor is None:
        return [train_trial(*job) for job in jobs]
    futures = [executor.submit(train_trial, *job) for job in jobs]
    return [f.result() for f in futures]


@METHODS.register("random_search", config=RandomSearchConfig, family="search", baseline=True,
                  tiny={"layers": 2, "channels": 4, "num_architectures": 2, "child_train": {"epochs": 0.5},
                        "retrain": {"epochs": 1}})
def derive(parent, task, cfg: RandomSearchConfig, ctx):
    """Random search: N uniform architectures trained briefly and independently; the best retrained from scratch."""
    space = make_space(cfg)
    check_image_task(task, space)
    specs = [space.decode(s) for s in UniformController(space.decisions, seed=ctx.seed).sample(cfg.num_architectures)]
    data = TrialData(task.x_train, task.y_train, task.x_val, task.y_val, tuple(task.input_shape), task.num_classes)
    train = cfg.child_train.model_dump()
    jobs = [(space.model_spec(s), data, train, ctx.seed * 100003 + i, ctx.device) for i, s in enumerate(specs)]
    start = time.perf_counter()
    results = _run_trials(jobs, ctx.executor)
    search_seconds = time.perf_counter() - start
    meter = ComputeMeter()
    trials = []
    for i, (spec, res) in enumerate(zip(specs, results)):
        meter.train_macs += res["train_macs"]
        meter.eval_macs += res["eval_macs"]
        meter.point(res["val_accuracy"], trial=i + 1)
        trials.append({"spec": spec, **res})
    best = max(range(len(trials)), key=lambda i: trials[i]["val_accuracy"])
    ctx.log(f"random_search: best of {len(trials)} has val accuracy {trials[best]['val_accuracy']:.4f}")
    start = time.perf_counter()
    model, history, retrain_cost = retrain_from_scratch(space, specs[best], task, cfg, ctx)
    extra = {
        "spec": specs[best],
        "search": {
            "space": space.name, "op_choices": len(space.op_choices), "poison_ops": sorted(space.poison_ops),
            "trials": trials, "op_frequencies": op_frequencies(space, specs),
            "poison_fraction": sum(map(space.poison_fraction, specs)) / len(specs),
            "final_poison_fraction": space.poison_fraction(specs[best]),
            "wall_time_s": search_seconds, "retrain_wall_time_s": time.perf_counter() - start,
        },
        "compute": {"search_" + k: v for k, v in meter.as_dict().items()} | retrain_cost,
    }
    return make_child(model, "random_search", cfg, ctx, parent, task, history=history, extra=extra)
