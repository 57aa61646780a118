"""text_search: the single-task baselines of the Neural AutoML comparison on the text space — random search
(every decision uniform; Li & Talwalkar 2019, arXiv 1902.07638, a strong NAS baseline) or the ENAS LSTM
controller (Pham et al. 2018) unconditioned, both on exactly the space and child training of ``naml``.

Also what ``naml`` shares: :class:`SearchLoop` (sample a batch from any
:class:`~childnet.methods.search.controller.Controller`, train each child on the task's cached
representation, reward = validation accuracy, update the controller; times the controller and the
children apart) and :func:`finish_text_search` (retrain the best child of the experiment's task with the
unit's seed, wrap it with its representation, and record the search).
"""

from __future__ import annotations

import time
from typing import Literal

from pydantic import Field

from ...registry import METHODS
from ...tasks.base import Task
from ..base import make_child
from .controller import ControllerConfig, LSTMController, UniformController
from .text_space import TextSpace, TextSpaceConfig, build_text_child, train_text_child

__all__ = ["TextSearchBase", "TextSearchConfig", "SearchLoop", "finish_text_search", "derive"]


class TextSearchBase(TextSpaceConfig):
    """The budget every text search shares: ``steps`` x ``children_per_step`` children on the experiment's task."""

    steps: int = Field(10, ge=1, description="controller steps on the experiment's task")
    children_per_step: int = Field(4, ge=1, description="children sampled, trained and rewarded per step")


class TextSearchConfig(TextSearchBase):
    """Single-task search on the text space: random search, or the ENAS LSTM controller."""

    controller: Literal["random", "lstm"] = Field("random", description="random (uniform, learns nothing) or lstm "
                                                  "(ENAS LSTM controller, REINFORCE)")
    lstm: dict = Field(default_factory=dict, description="ControllerConfig options of the lstm controller")


class SearchLoop:
    """Sample → train → reward → update, one step at a time; a trace record per child.

    Args:
        space: the text space.
        controller: any Controller (``condition`` is passed through: a task key for the task controller).
        seed: base of the children's seeds (child ``i`` of the loop trains with ``seed + i``).
        device: where children train.
    """

    def __init__(self, space: TextSpace, controller, seed: int, device: str = "cpu"):
        self.space, self.controller, self.seed, self.device = space, controller, seed, device
        self.trace: list[dict] = []
        self.steps: list[dict] = []
        self.controller_seconds = self.child_seconds = self.feature_seconds = 0.0

    def step(self, task: Task, key, n: int, phase: str = "search") -> list[dict]:
        t0 = time.perf_counter()
        samples = self.controller.sample(n, key)
        self.controller_seconds += time.perf_counter() - t0
        records = []
        for choices in samples:
            spec = self.space.decode(choices)
            t1 = time.perf_counter()
            _, rec = train_text_child(self.space, spec, task, self.seed + len(self.trace), self.device)
            took = time.perf_counter() - t1
            self.child_seconds += rec["seconds"]
            self.feature_seconds += max(0.0, took - rec["seconds"])
            rec.pop("history")
            rec.update(task=key if isinstance(key, str) else task.name, step=len(self.steps), phase=phase,
                       child=len(self.trace), spec=spec)
            self.trace.append(rec)
            records.append(rec)
        t0 = time.perf_counter()
        stats = self.controller.update(samples, [r["val_accuracy"] for r in records], key)
        self.controller_seconds += time.perf_counter() - t0
        self.steps.append({"task": records[0]["task"], "phase": phase, **{k: v for k, v in stats.items()
                                                                         if isinstance(v, (int, float))}})
        return records

    def curve(self, phase: str = "search") -> list[float]:
        """Best-so-far validation accuracy after each child of ``phase``."""
        best, out = float("-inf"), []
        for r in self.trace:
            if r["phase"] == phase:
                best = max(best, r["val_accuracy"])
                out.append(best)
        return out


def finish_text_search(space: TextSpace, loop: SearchLoop, task: Task, ctx, method: str):
    """Retrain the best child of the search phase (validation accuracy) with the unit's seed; its record."""
    found = [r for r in loop.trace if r["phase"] == "search"]
    best = max(found, key=lambda r: r["val_accuracy"])
    ctx.log(f"{method}: best of {len(found)} children has val accuracy {best['val_accuracy']:.4f} ({best['spec']})")
    start = time.perf_counter()
    mlp, rec = train_text_child(space, best["spec"], task, ctx.seed, ctx.device, with_val=True)
    model = build_text_child(space, best["spec"], task, mlp)
    extra = {
        "spec": best["spec"],
        "search": {
            "space": "text", "children": len(found), "best_child": best["child"], "best_val_accuracy": best["val_accuracy"],
            "curve": loop.curve(), "trace": [{k: v for k, v in r.items()} for r in loop.trace], "steps": loop.steps,
            "controller_seconds": loop.controller_seconds, "child_seconds": loop.child_seconds,
            "feature_seconds": loop.feature_seconds, "retrain_seconds": time.perf_counter() - start,
            "retrain_val_accuracy": rec["val_accuracy"], "representation": rec["representation"],
        },
    }
    return model, rec["history"], extra


@METHODS.register("text_search", config=TextSearchConfig, family="search", baseline=True, child_model="text_child",
                  tiny={"representations": ["raw"], "max_layers": 1, "widths": [16], "epoch_choices": [1],
                        "steps": 2, "children_per_step": 2})
def derive(parent, task, cfg: TextSearchConfig, ctx):
    """Random search or the ENAS LSTM controller on the Neural AutoML text space (single-task baselines)."""
    space = TextSpace(cfg)
    space.check_task(task)
    if cfg.controller == "random":
        controller = UniformController(space.decisions, seed=ctx.seed)
    else:
        controller = LSTMController(space.decisions, ControllerConfig(**cfg.lstm), seed=ctx.seed)
    loop = SearchLoop(space, controller, ctx.seed * 100_003, ctx.device)
    for _ in range(cfg.steps):
        loop.step(task, None, cfg.children_per_step)
    model, history, extra = finish_text_search(space, loop, task, ctx, f"text_search ({cfg.controller})")
    return make_child(model, "text_search", cfg, ctx, parent, task, history=history, extra=extra)
