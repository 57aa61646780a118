"""inas: intermittent-aware neural architecture search (Mendis, Kang, Hsiu, "Intermittent-Aware Neural
Architecture Search", ACM TECS 2021; public code EMCLab-Sinica/Intermittent-aware-NAS), with its baselines.

A controller samples a child of a device-sized space (:mod:`.device_spaces`); the simulated device
(:mod:`childnet.evaluate.device`) finds the child's fastest feasible execution design. The reward
(iNAS ``NASBase/manager.py`` ``get_rewards``):

- no feasible design (or an illegal architecture): -0.1, no training;
- latency L over the requirement L_req: -0.1, no training (iNAS computes
  ``clip((L_req - L) / (10 L_req) - 1, ±0.1)``, which is always -0.1);
- else the child is trained briefly and rewarded ``clip(acc - EWA + L / (10 L_req), ±0.1)``, EWA the
  exponentially weighted mean of earlier accuracies (beta 0.8, bias-corrected on the first update,
  starting at 0). Its latency term *grows* with L, rewarding slower children: ``reward: inas`` keeps it
  (faithful, the default); ``reward: corrected`` uses ``- L / (10 L_req)``.

Methods (one config, :class:`InasConfig`):

- ``inas``: L is the intermittent latency; feasible = a design fits SRAM and one power cycle.
- ``hw_nas``: the same search with the continuous-power latency (feasible = fits SRAM; L_req the same
  percentile of the random children's continuous latency). Its children may not finish on harvested power.
- ``accuracy_nas``: no hardware term: every legal child is trained, reward ``clip(acc - EWA, ±0.1)``.
- ``inas_random``: random search with the same budget and iNAS's rules (children that are infeasible
  or over L_req are not trained).

L_req defaults to the ``l_req_percentile`` of the intermittent latency of ``l_req_samples`` uniformly
sampled children (iNAS sets it at the 25th / 50th / 75th percentile), recorded in the lineage. The
final child is the most accurate (validation) trained child meeting the method's constraints, retrained
from scratch with ``retrain``.

Differences from the public code: the controller is the ENAS LSTM of :mod:`.controller`, whose REINFORCE
subtracts a moving baseline (iNAS's multiplies the log-likelihood gradient by the raw reward, with
epsilon-greedy exploration 0.1 and an L2 penalty); a child sampled twice is trained once (its accuracy is
reused); iNAS's occasional ``update_moving_acc`` (EWA x 1.2) is left out; children train on
``child_examples`` training examples for ``child_train.epochs`` (iNAS: 25 epochs on all of CIFAR-10).
"""

from __future__ import annotations

import json
import time
from typing import Literal

import numpy as np
import torch
from pydantic import Field, ValidationError, field_validator, model_validator

from ...config import format_validation_error
from ...evaluate.device import DeviceConfig, device_config_from, device_cost
from ...models.base import build_model
from ...registry import METHODS
from ...tasks.base import take
from ...train import TrainConfig, evaluate_accuracy, fit
from ..base import make_child
from .controller import ControllerConfig, LSTMController, UniformController
from .device_spaces import DeviceSpaceConfig, make_device_space

__all__ = ["InasConfig", "MovingAccuracy", "inas_reward", "latency_requirement", "run_search"]

TRAIN_DEFAULTS = {"optimizer": "adam", "lr": 1e-3, "batch_size": 64, "schedule": "constant"}
MODES = {"inas": "intermittent", "inas_random": "intermittent", "hw_nas": "continuous", "accuracy_nas": "none"}


class InasConfig(DeviceSpaceConfig):
    """iNAS and its baselines: the space, the device, the reward and the budget."""

    device: dict = Field(default_factory=dict, description="DeviceConfig fields of the target device (default: "
                         "MSP430FR5994, 5 mF)")
    trials: int = Field(20, ge=1, le=100000, description="controller updates (iNAS: 250 trials)")
    controller_batch: int = Field(1, ge=1, le=1000, description="children sampled per update (iNAS: 1)")
    child_train: TrainConfig = Field(default_factory=lambda: TrainConfig(**TRAIN_DEFAULTS, epochs=1),
                                     description="the short training of each child (iNAS: Adam, 25 epochs)")
    child_examples: int | None = Field(None, ge=1, description="training examples children see in the search "
                                       "(default: all)")
    retrain: TrainConfig = Field(default_factory=lambda: TrainConfig(**TRAIN_DEFAULTS, epochs=3),
                                 description="training of the final child from scratch")
    beta: float = Field(0.8, gt=0, lt=1, description="EWA weight of the accuracy baseline (iNAS: 0.8)")
    reward: Literal["inas", "corrected"] = Field("inas", description="inas: + L/(10 L_req) as the public code; "
                                                  "corrected: - L/(10 L_req)")
    l_req: float | None = Field(None, gt=0, description="latency requirement, s (default: a percentile of random "
                                "children's latency)")
    l_req_percentile: float = Field(50, gt=0, lt=100, description="percentile of random children's latency that "
                                    "sets L_req (iNAS: 25 / 50 / 75)")
    l_req_samples: int = Field(100, ge=2, le=100000, description="random children sampled to set L_req")
    controller: dict = Field(default_factory=dict, description="LSTM controller options (ControllerConfig fields)")

    @field_validator("child_train", "retrain", mode="before")
    @classmethod
    def _train_defaults(cls, v, info):
        return {**TRAIN_DEFAULTS, "epochs": 1 if info.field_name == "child_train" else 3, **v} if isinstance(v, dict) else v

    @model_validator(mode="after")
    def _check(self):
        self.device_config()
        try:
            ControllerConfig(**self.controller)
        except ValidationError as err:
            raise ValueError("; ".join(format_validation_error(err, "controller"))) from None
        return self

    def device_config(self) -> DeviceConfig:
        """The target device (raises a ValueError naming the bad ``device`` field)."""
        from ...errors import ConfigError

        try:
            return device_config_from({"device": self.device}, where="device")
        except ConfigError as err:
            raise ValueError("; ".join(err.problems)) from None


def inas_reward(acc: float, ewa: float, latency: float | None, l_req: float | None, variant: str = "inas") -> float:
    """Reward of a trained child (iNAS ``get_rewards``); ``latency`` None = no hardware term."""
    perf = 0.0
    if latency is not None:
        perf = latency / l_req / 10 if variant == "inas" else -latency / l_req / 10
    return float(np.clip(acc - ewa + perf, -0.1, 0.1))


class MovingAccuracy:
    """iNAS's EWA of accuracies: starts at 0; the first update is bias-corrected (it becomes that accuracy)."""

    def __init__(self, beta: float):
        self.beta, self.value, self._first = beta, 0.0, True

    def update(self, acc: float) -> None:
        self.value = self.beta * self.value + (1 - self.beta) * acc
        if self._first:
            self.value /= 1 - self.beta
            self._first = False


def _key(spec: dict) -> str:
    return json.dumps(spec, sort_keys=True)


def latency_requirement(space, task, dev: DeviceConfig, percentile: float, samples: int, seed: int) -> dict:
    """L_req as iNAS sets it: a percentile of the latency of uniformly sampled (legal, feasible) children."""
    specs = [space.decode(c) for c in UniformController(space.decisions, seed=seed + 7919).sample(samples)]
    inter, cont, legal = [], [], 0
    for spec in specs:
        if not space.legal(spec, task.input_shape):
            continue
        legal += 1
        cost = device_cost(build_model(space.model_spec(spec), task.input_shape, task.num_classes),
                           task.input_shape, dev)
        if cost.feasible:
            inter.append(cost.latency_s)
        if cost.continuous_latency_s is not None:
            cont.append(cost.continuous_latency_s)
    pct = lambda xs: float(np.percentile(xs, percentile)) if xs else None  # noqa: E731
    return {"percentile": percentile, "samples": samples, "legal": legal, "feasible": len(inter),
            "intermittent_s": pct(inter), "continuous_s": pct(cont)}


def _train_child(model_spec: dict, task, cfg: InasConfig, seed: int, device) -> float:
    torch.manual_seed(seed)
    model = build_model(model_spec, task.input_shape, task.num_classes).to(device)
    n = len(task.y_train) if cfg.child_examples is None else min(cfg.child_examples, len(task.y_train))
    fit(model, (take(task.x_train, slice(0, n)), task.y_train[:n]), cfg.child_train, seed=seed, device=device)
    return evaluate_accuracy(model, task.x_val, task.y_val, device=device)


def _score(spec: dict, space, task, cfg: InasConfig, mode: str, lreq: dict, state: dict, ctx) -> dict:
    """Judge one sampled child: device cost, constraint checks, training when they pass, reward."""
    rec: dict = {"spec": spec, "legal": space.legal(spec, task.input_shape)}
    if not rec["legal"]:
        return rec | {"status": "illegal", "device_feasible": False, "reward": -0.1}
    model_spec = space.model_spec(spec)
    key = _key(spec)
    if key not in state["costs"]:
        cost = device_cost(build_model(model_spec, task.input_shape, task.num_classes), task.input_shape, state["dev"])
        state["costs"][key] = cost
    cost = state["costs"][key]
    rec.update(device_feasible=cost.feasible, latency_s=cost.latency_s, continuous_latency_s=cost.continuous_latency_s,
               meets_l_req=cost.feasible and lreq["intermittent_s"] is not None
               and cost.latency_s <= lreq["intermittent_s"])
    latency, limit = {"intermittent": (cost.latency_s, lreq["intermittent_s"]),
                      "continuous": (cost.continuous_latency_s, lreq["continuous_s"]),
                      "none": (None, None)}[mode]
    if mode != "none" and latency is None:
        return rec | {"status": "infeasible", "reward": -0.1}
    if mode != "none" and limit is not None and latency > limit:
        return rec | {"status": "over_l_req", "reward": -0.1}
    if key not in state["accuracy"]:
        t0 = time.perf_counter()
        state["accuracy"][key] = _train_child(model_spec, task, cfg, ctx.seed * 100003 + len(state["accuracy"]), ctx.device)
        state["train_seconds"] += time.perf_counter() - t0
    acc = state["accuracy"][key]
    reward = inas_reward(acc, state["ewa"].value, latency if mode != "none" else None, limit, cfg.reward)
    state["ewa"].update(acc)
    return rec | {"status": "trained", "val_accuracy": acc, "reward": reward}


def run_search(space, task, cfg: InasConfig, ctx, mode: str, controller) -> dict:
    """The search loop: sample, judge, update; returns the trace, L_req and the chosen spec."""
    dev = cfg.device_config()
    t0 = time.perf_counter()
    lreq = latency_requirement(space, task, dev, cfg.l_req_percentile, cfg.l_req_samples, ctx.seed)
    if cfg.l_req is not None:
        lreq |= {"intermittent_s": cfg.l_req, "continuous_s": cfg.l_req, "set_by": "config"}
    l_req_seconds = time.perf_counter() - t0
    state = {"dev": dev, "costs": {}, "accuracy": {}, "ewa": MovingAccuracy(cfg.beta), "train_seconds": 0.0}
    trace: list[dict] = []
    start = time.perf_counter()
    for step in range(cfg.trials):
        samples = controller.sample(cfg.controller_batch)
        recs = [_score(space.decode(c), space, task, cfg, mode, lreq, state, ctx) | {"step": step} for c in samples]
        with torch.enable_grad():
            controller.update(samples, [r["reward"] for r in recs])
        trace += recs
    wall = time.perf_counter() - start
    trained = [r for r in trace if r["status"] == "trained"]
    if trained:
        best, why = max(trained, key=lambda r: r["val_accuracy"]), "most accurate child meeting the constraints"
    else:
        feasible = [r for r in trace if r.get("device_feasible")]
        legal = [r for r in trace if r["legal"]] or trace
        best, why = ((min(feasible, key=lambda r: r["latency_s"]), "no child met the constraints: fastest feasible")
                     if feasible else (legal[0], "no feasible child was sampled: first legal child"))
    return {"spec": best["spec"], "choice": why, "l_req": lreq, "trace": trace, "wall_time_s": wall,
            "l_req_wall_time_s": l_req_seconds, "train_wall_time_s": state["train_seconds"],
            "fraction_feasible": sum(bool(r.get("device_feasible")) for r in trace) / len(trace),
            "fraction_trained": len(trained) / len(trace), "distinct_children": len(state["costs"]),
            "best": {k: best.get(k) for k in ("val_accuracy", "latency_s", "continuous_latency_s", "meets_l_req",
                                                "device_feasible", "status")}}


def _derive(method: str, parent, task, cfg: InasConfig, ctx):
    space = make_device_space(cfg)
    mode = MODES[method]
    if method == "inas_random":
        controller = UniformController(space.decisions, seed=ctx.seed)
    else:
        controller = LSTMController(space.decisions, ControllerConfig(**cfg.controller), seed=ctx.seed)
    search = run_search(space, task, cfg, ctx, mode, controller)
    ctx.log(f"{method}: chose {search['spec']} ({search['choice']}); fraction feasible {search['fraction_feasible']:.2f}")
    start = time.perf_counter()
    torch.manual_seed(ctx.seed)
    model = build_model(space.model_spec(search["spec"]), task.input_shape, task.num_classes).to(ctx.device)
    history = fit(model, (task.x_train, task.y_train), cfg.retrain, val=(task.x_val, task.y_val), seed=ctx.seed,
                  device=ctx.device, progress=ctx.progress)
    search["retrain_wall_time_s"] = time.perf_counter() - start
    search |= {"method": method, "objective": mode, "space": space.name}
    return make_child(model, method, cfg, ctx, parent, task, history=history,
                      extra={"spec": search["spec"], "search": search})


_TINY = {"space": "conv", "layers": 2, "kernels": [1, 3], "filters": [2, 4], "padding": "same", "trials": 3,
         "child_train": {"epochs": 0.2, "batch_size": 128}, "retrain": {"epochs": 0.2, "batch_size": 128},
         "l_req_samples": 8}


def _child_model(options: dict) -> str:
    """The registered model of the searched child, from the method's options (for the pipeline's checks)."""
    return "inas_conv" if options.get("space", "conv") == "conv" else "mlp"


@METHODS.register("inas", config=InasConfig, family="search", child_model=_child_model, tiny=_TINY)
def derive(parent, task, cfg: InasConfig, ctx):
    """iNAS: intermittent-aware search (infeasible / too slow children get -0.1 untrained); best child retrained."""
    return _derive("inas", parent, task, cfg, ctx)


@METHODS.register("hw_nas", config=InasConfig, family="search", child_model=_child_model, tiny=_TINY)
def derive_hw_nas(parent, task, cfg: InasConfig, ctx):
    """HW-NAS baseline of iNAS: the same search with continuous-power latency (may not finish intermittently)."""
    return _derive("hw_nas", parent, task, cfg, ctx)


@METHODS.register("accuracy_nas", config=InasConfig, family="search", child_model=_child_model, tiny=_TINY)
def derive_accuracy_nas(parent, task, cfg: InasConfig, ctx):
    """Accuracy-only NAS baseline of iNAS: every child trained, reward accuracy minus its moving average."""
    return _derive("accuracy_nas", parent, task, cfg, ctx)


@METHODS.register("inas_random", config=InasConfig, family="search", child_model=_child_model, baseline=True, tiny=_TINY)
def derive_inas_random(parent, task, cfg: InasConfig, ctx):
    """Random search with iNAS's budget and rules: uniform children, only feasible ones within L_req trained."""
    return _derive("inas_random", parent, task, cfg, ctx)
