"""enas: Efficient Neural Architecture Search via parameter sharing (Pham, Guan, Zoph, Le, Dean, ICML 2018,
arXiv 1802.03268).

One supernet holds the shared weights ω of every child of the space; an LSTM controller π_θ samples
children. The search alternates, per epoch (section 2.2):

1. train ω for one epoch with a freshly sampled child per minibatch — this is the one trainer,
   :func:`childnet.train.fit`, on the supernet with a ``before_step`` hook that samples the child;
2. train θ with REINFORCE (``on_epoch_end`` hook): ``controller_steps`` updates, each over
   ``controller_batch`` sampled children whose reward is their accuracy on a validation minibatch
   (ω fixed).

Derivation: sample ``derive_samples`` children, keep the best on the validation split (shared
weights), and retrain it from scratch. The lineage reports the derived child's test accuracy with the
shared weights (``search.shared_weights_test_accuracy``) next to the retrained child's own metrics,
the controller's entropy per epoch, and (``random_children``) the spread of uniformly random children's
validation accuracies with the shared weights. Search-space poisoning (Wu, Saxena, Jain, 2021, arXiv
2106.14406) is configuration of the space: ``poison`` and ``poison_copies``.

Choices: rewards are computed in eval mode (the P2/P3 poison ops act in training only, as the
poisoning paper defines them) with BatchNorm on batch statistics; the paper-scale budgets (150-310
epochs, 2,000 controller samples per epoch) are config fields, defaulting to CPU-sized values.
"""

from __future__ import annotations

import time

import torch
from pydantic import Field, ValidationError, field_validator, model_validator

from ...config import format_validation_error
from ...registry import METHODS
from ...tasks.base import take
from ...train import Hook, TrainConfig, TrainState, fit
from ..base import make_child
from ._common import (ComputeMeter, SearchConfig, accuracy_of, check_image_task, merge_sgd_defaults,
                      op_frequencies, retrain_from_scratch, sgd_train_field)
from .controller import ControllerConfig, LSTMController, paper_controller_defaults
from .spaces import SearchSpace, make_space

__all__ = ["EnasConfig", "EnasSearch", "derive"]


class EnasConfig(SearchConfig):
    """ENAS: shared-weight search with an LSTM controller, then the best child retrained from scratch."""

    shared_train: TrainConfig = sgd_train_field(10, "training of the shared weights; its epochs are the search epochs")
    controller: dict = Field(default_factory=dict, description="controller options (ControllerConfig fields); "
                             "unset ones take ENAS's values for the space (lr 0.001 macro / 0.0035 micro, ...)")
    controller_steps: int = Field(10, ge=0, description="controller updates after each epoch (ENAS: 50 macro, 30 micro)")
    controller_batch: int = Field(10, ge=1, description="children per controller update (ENAS: 20 macro, 10 micro)")
    reward_batch: int = Field(128, ge=1, description="validation examples that score one child (one minibatch)")
    derive_samples: int = Field(10, ge=1, description="children sampled at the end; the best on validation is retrained")
    random_children: int = Field(0, ge=0, description="after the search, score this many uniformly random children "
                                 "on the validation split with the shared weights (their spread: do architectures differ?)")

    @field_validator("shared_train", mode="before")
    @classmethod
    def _shared_defaults(cls, v):
        return merge_sgd_defaults(v, 10)

    @model_validator(mode="after")
    def _check_controller(self):
        self.controller_config()
        return self

    def controller_config(self) -> ControllerConfig:
        """ENAS's controller settings for this space, with ``controller`` overrides applied."""
        try:
            return ControllerConfig(**{**paper_controller_defaults(self.space), **self.controller})
        except ValidationError as err:
            raise ValueError("; ".join(format_validation_error(err, "controller"))) from None


class EnasSearch(Hook):
    """The ENAS alternation as trainer hooks: sample a child per step, train the controller per epoch.

    Args:
        space: the search space.
        supernet: its shared-weight network (trained by ``fit``).
        controller: any :class:`~childnet.methods.search.controller.Controller`.
        task: gives the validation split for rewards.
        cfg: the ENAS config.
        seed: seeds the choice of validation minibatches.
        device: where the supernet runs.
    """

    def __init__(self, space: SearchSpace, supernet, controller, task, cfg: EnasConfig, seed: int, device="cpu"):
        self.space, self.supernet, self.controller, self.cfg = space, supernet, controller, cfg
        self.x_val, self.y_val = task.x_val, task.y_val
        self.device = device
        self.val_generator = torch.Generator().manual_seed(int(seed) + 1)
        self.meter = ComputeMeter()
        self.trace: list[dict] = []
        self._epoch_specs: list[dict] = []

    def before_step(self, state: TrainState) -> None:
        spec = self.space.decode(self.controller.sample()[0])
        self.supernet.set_arch(spec)
        self.meter.train_macs += self.supernet.child_macs(spec) * len(state.batch[1])
        self._epoch_specs.append(spec)

    def score(self, spec: dict, n: int | None = None) -> float:
        """Accuracy of ``spec`` with the shared weights on ``n`` random validation examples (all if None)."""
        if n is None or n >= len(self.y_val):
            x, y = self.x_val, self.y_val
        else:
            idx = torch.randperm(len(self.y_val), generator=self.val_generator)[:n]
            x, y = take(self.x_val, idx), self.y_val[idx]
        self.supernet.set_arch(spec)
        self.meter.eval_macs += self.supernet.child_macs(spec) * len(y)
        return accuracy_of(self.supernet, x, y, batch_size=max(len(y), 1) if n else 256, device=self.device)

    @torch.no_grad()
    def _train_controller(self) -> tuple[list[dict], list[dict], list[float]]:
        stats, specs, rewards = [], [], []
        for _ in range(self.cfg.controller_steps):
            samples = self.controller.sample(self.cfg.controller_batch)
            batch = [self.space.decode(s) for s in samples]
            scores = [self.score(s, self.cfg.reward_batch) for s in batch]
            with torch.enable_grad():
                stats.append(self.controller.update(samples, scores))
            specs += batch
            rewards += scores
        return stats, specs, rewards

    def on_epoch_end(self, state: TrainState) -> None:
        self.supernet.eval()
        stats, specs, rewards = self._train_controller()
        if not specs:  # no controller training: score fresh samples for the curve
            specs = [self.space.decode(s) for s in self.controller.sample(self.cfg.controller_batch)]
            rewards = [self.score(s, self.cfg.reward_batch) for s in specs]
        best = specs[max(range(len(specs)), key=rewards.__getitem__)]
        val_accuracy = self.score(best)
        self.supernet.train()
        sampled = self._epoch_specs
        record = {
            "epoch": state.epoch + 1,
            "reward_mean": sum(rewards) / len(rewards),
            "reward_max": max(rewards),
            "baseline": stats[-1]["baseline"] if stats else None,
            "entropy": self.controller.entropy() if hasattr(self.controller, "entropy") else None,
            "skip_rate": sum(s["skip_rate"] for s in stats) / len(stats) if stats else None,
            "poison_fraction": sum(map(self.space.poison_fraction, sampled)) / max(1, len(sampled)),
            "op_frequencies": op_frequencies(self.space, sampled),
            "best_sampled_val_accuracy": val_accuracy,
            "train_macs": self.meter.train_macs,
        }
        self.meter.point(val_accuracy, epoch=state.epoch + 1)
        self.trace.append(record)
        self._epoch_specs = []
        log = {k: v for k, v in record.items() if isinstance(v, (int, float)) and k != "epoch"}
        state.extra.setdefault("log", {}).update({f"search_{k}": v for k, v in log.items()})

    def derive(self, n: int) -> tuple[dict, list[dict]]:
        """Sample ``n`` children; return the best on the validation split and every candidate's score."""
        self.supernet.eval()
        with torch.no_grad():
            specs = [self.space.decode(s) for s in self.controller.sample(n)]
            scored = [{"spec": s, "val_accuracy": self.score(s)} for s in specs]
        best = max(scored, key=lambda c: c["val_accuracy"])
        return best["spec"], scored


@METHODS.register("enas", config=EnasConfig, family="search",
                  tiny={"layers": 2, "channels": 4, "shared_train": {"epochs": 1}, "controller_steps": 1,
                        "controller_batch": 2, "reward_batch": 32, "derive_samples": 2, "retrain": {"epochs": 1}})
def derive(parent, task, cfg: EnasConfig, ctx):
    """ENAS: shared-weight supernet + LSTM controller (REINFORCE); the best sampled child retrained from scratch."""
    space = make_space(cfg)
    check_image_task(task, space)
    torch.manual_seed(ctx.seed)
    supernet = space.build_supernet(task.input_shape, task.num_classes).to(ctx.device)
    controller = LSTMController(space.decisions, cfg.controller_config(), seed=ctx.seed)
    search = EnasSearch(space, supernet, controller, task, cfg, ctx.seed, ctx.device)
    start = time.perf_counter()
    shared_history = fit(supernet, (task.x_train, task.y_train), cfg.shared_train, hooks=[search],
                         seed=ctx.seed, device=ctx.device, progress=ctx.progress)
    best, candidates = search.derive(cfg.derive_samples)
    random_children = _random_children(search, cfg.random_children, ctx.seed) if cfg.random_children else None
    supernet.set_arch(best)
    shared_test = accuracy_of(supernet.eval(), task.x_test, task.y_test, device=ctx.device)
    search_seconds = time.perf_counter() - start
    ctx.log(f"enas: derived {best} (val accuracy with shared weights {max(c['val_accuracy'] for c in candidates):.4f})")
    start = time.perf_counter()
    model, history, retrain_cost = retrain_from_scratch(space, best, task, cfg, ctx)
    extra = {
        "spec": best,
        "search": {
            "space": space.name, "op_choices": len(space.op_choices), "poison_ops": sorted(space.poison_ops),
            "epochs": search.trace, "candidates": candidates, "shared_history": shared_history,
            "poison_fraction": _mean([r["poison_fraction"] for r in search.trace]),
            "final_poison_fraction": space.poison_fraction(best),
            "final_entropy": search.trace[-1]["entropy"] if search.trace else None,
            "shared_weights_test_accuracy": shared_test, "random_children": random_children,
            "wall_time_s": search_seconds, "retrain_wall_time_s": time.perf_counter() - start,
        },
        "compute": {"search_" + k: v for k, v in search.meter.as_dict().items()} | retrain_cost,
    }
    return make_child(model, "enas", cfg, ctx, parent, task, history=history, extra=extra)


def _random_children(search: EnasSearch, n: int, seed: int) -> dict:
    """Validation accuracy (shared weights) of ``n`` children drawn uniformly from the space."""
    gen = torch.Generator().manual_seed(int(seed) + 17)
    space = search.space
    search.supernet.eval()
    specs = [space.decode([int(torch.randint(d.num_choices, (1,), generator=gen)) for d in space.decisions])
             for _ in range(n)]
    accs = [search.score(s) for s in specs]
    mean = sum(accs) / n
    std = (sum((a - mean) ** 2 for a in accs) / max(1, n - 1)) ** 0.5
    return {"n": n, "mean": mean, "std": std, "min": min(accs), "max": max(accs), "val_accuracies": accs,
            "poison_fraction": sum(map(space.poison_fraction, specs)) / n}


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None
