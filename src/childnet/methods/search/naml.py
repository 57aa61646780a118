"""naml: multitask and transfer Neural AutoML (Wong, Houlsby, Lu, Gesmundo, NeurIPS 2018, arXiv 1803.02780;
precursor Wong & Gesmundo 2017, arXiv 1710.10776) on the text space of :mod:`.text_space`.

One :class:`~.task_controller.TaskController` designs children for several tasks. Three modes, by config:

- **multitask pre-training, then the experiment's task** (``pretrain_tasks``: two or more tasks): for
  ``pretrain_steps`` steps the tasks take turns; each step samples ``children_per_step`` children for one
  task, trains each on that task's cached representation, and updates the shared controller with that
  task's normalised advantages. The pre-trained controller is cached (by the tasks' contents, the space,
  the controller config, the budget and the seed) so every experiment task of a sweep reuses it. Then it
  is transferred to the experiment's task (a fresh embedding unless the task was among the pre-training
  tasks) and the search goes on for ``steps`` steps on it.
- **transfer** (``transfer_from``: a saved controller folder, a child folder of this method, or a run
  folder holding such children): the saved generic weights, a new random embedding for the experiment's
  task, REINFORCE continues. The child's lineage names the tasks the controller was pre-trained on.
- **single task** (neither): the same controller from scratch on the experiment's task only — the
  baseline the paper's transfer is measured against.

The derived child is the best child found on the experiment's task (validation accuracy), retrained with
the unit's seed and evaluated on the test split. The final controller is saved with the child
(``controller.safetensors`` + ``controller.json`` in its folder), so a later search can start from it.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from pydantic import Field, ValidationError, model_validator

from ...config import format_validation_error, stable_hash, validate_entry
from ...errors import ChildnetError
from ...registry import METHODS, TASKS
from ..base import make_child
from .task_controller import CONTROLLER_FILES, TaskController, TaskControllerConfig
from .text_features import content_hash
from .text_search import SearchLoop, TextSearchBase, finish_text_search
from .text_space import TextSpace

__all__ = ["NamlConfig", "derive", "resolve_controller", "controller_folders", "task_key"]


class NamlConfig(TextSearchBase):
    """Neural AutoML with a task-conditioned controller: multitask pre-training, transfer, or single task."""

    pretrain_tasks: list = Field(default_factory=list, description="tasks of the multitask pre-training ({name, "
                                 "...options} or a name); two or more, or none")
    pretrain_steps: int = Field(40, ge=1, description="controller steps of the pre-training (tasks take turns)")
    pretrain_seed: int | None = Field(None, description="seed of the pre-training (default: the unit's seed); set "
                                      "it to pre-train once and transfer the same controller in every seed")
    transfer_from: str | None = Field(None, description="start from a saved controller: its folder, a naml child "
                                      "folder, or a run folder holding naml children")
    controller: dict = Field(default_factory=dict, description="TaskControllerConfig options (hidden_size, "
                             "task_embedding_size, lr, baseline_decay, advantage: baseline|std, ...)")

    @model_validator(mode="after")
    def _check(self):
        # messages carry their own "(got ...)" so the whole config is not echoed after them
        if len(self.pretrain_tasks) == 1:
            raise ValueError(f"pretrain_tasks: multitask pre-training needs at least 2 tasks (got 1: "
                             f"{self.pretrain_tasks[0]!r}); list two or more, or none for a single-task search")
        problems: list[str] = []
        for i, t in enumerate(self.pretrain_tasks):
            validate_entry(TASKS, t, f"pretrain_tasks[{i}]", problems)
        if problems:
            raise ValueError("; ".join(problems) + f" (got {self.pretrain_tasks!r})")
        if self.pretrain_tasks and self.transfer_from:
            raise ValueError("set pretrain_tasks or transfer_from, not both: transfer_from already names a "
                             f"pre-trained controller (got transfer_from {self.transfer_from!r})")
        try:
            TaskControllerConfig(**self.controller)
        except ValidationError as err:
            msg = "; ".join(format_validation_error(err, "controller"))
            raise ValueError(msg if "(got " in msg else f"{msg} (got {self.controller!r})") from None
        if self.transfer_from:
            try:
                ctrl = TaskController.load(controller_folders(self.transfer_from)[0])
                ctrl.check_space(TextSpace(self).labels())
            except ChildnetError as err:
                msg = str(err).removeprefix("invalid configuration: ")
                raise ValueError(f"{msg} (got {self.transfer_from!r})") from None
        return self


def task_key(task) -> str:
    """The controller's name for a task: its registry name and a hash of its spec."""
    return f"{task.name}:{stable_hash(task.spec, 8)}"


def controller_folders(source: str) -> list[Path]:
    """Every saved controller ``source`` points to (a controller folder, a child folder or a run folder)."""
    path = Path(source).expanduser()
    if not path.exists():
        raise ChildnetError(f"transfer_from: {path} does not exist; give a saved controller folder (with "
                            f"{' and '.join(CONTROLLER_FILES)}), a naml child folder or a run folder")
    if (path / CONTROLLER_FILES[1]).exists():
        return [path]
    found = sorted(p.parent for p in path.glob("children/**/" + CONTROLLER_FILES[1]))
    if not found:
        raise ChildnetError(f"transfer_from: {path} is not a saved controller: it has no {CONTROLLER_FILES[1]} "
                            "(nor children/**/ with one); point it at a naml run, child or controller folder")
    return found


def resolve_controller(source: str, seed: int | None = None) -> Path:
    """The saved controller for ``seed``: the only one, or the one in a ``seed<k>`` folder of a run."""
    found = controller_folders(source)
    if len(found) == 1:
        return found[0]
    same = [p for p in found if seed is not None and p.name == f"seed{seed}"]
    if len(same) == 1:
        return same[0]
    raise ChildnetError(f"transfer_from: {source} holds {len(found)} saved controllers and not exactly one for "
                        f"seed {seed} ({', '.join(str(p) for p in found[:4])}); point at one of them")


@lru_cache(maxsize=8)
def _load_task(spec_json: str):
    from ...tasks.base import load_task

    return load_task(json.loads(spec_json))


def _pretrain(cfg: NamlConfig, space: TextSpace, seed: int, ctx) -> tuple[TaskController, dict]:
    """Multitask pre-training (cached); returns the saved-and-reloaded controller and its record."""
    from ...parent import cache_dir

    tasks = [_load_task(json.dumps({"name": t} if isinstance(t, str) else t, sort_keys=True))
             for t in cfg.pretrain_tasks]
    ident = {"tasks": [(t.spec, content_hash(t)) for t in tasks], "space": space.labels(),
             "batch": space.config.batch_size, "sizes": [space.config.svd_dim, space.config.hash_dim],
             "controller": TaskControllerConfig(**cfg.controller).model_dump(), "steps": cfg.pretrain_steps,
             "children": cfg.children_per_step, "seed": seed, "version": 1}
    folder = cache_dir() / "naml-controllers" / stable_hash(ident)
    if (folder / "pretrain.json").exists():
        ctx.log(f"naml: reused the pre-trained controller {folder}")
        record = json.loads((folder / "pretrain.json").read_text())
        return TaskController.load(folder, seed), record | {"from_cache": True, "folder": str(folder)}
    ctrl = TaskController(space.decisions, cfg.controller, seed, space.labels())
    keys = [task_key(t) for t in tasks]
    for k in keys:
        ctrl.add_task(k)
    loop = SearchLoop(space, ctrl, seed * 1_000_003 + 7, ctx.device)
    for step in range(cfg.pretrain_steps):
        i = step % len(tasks)  # the tasks take turns (round robin)
        loop.step(tasks[i], keys[i], cfg.children_per_step, phase="pretrain")
    ctrl.pretrained_on = keys
    record = {"tasks": keys, "steps": cfg.pretrain_steps, "children": len(loop.trace),
              "controller_seconds": loop.controller_seconds, "child_seconds": loop.child_seconds,
              "feature_seconds": loop.feature_seconds,
              "best": {k: max([r["val_accuracy"] for r in loop.trace if r["task"] == k], default=None) for k in keys},
              "trace": loop.trace}
    ctrl.save(folder)
    (folder / "pretrain.json").write_text(json.dumps(record, default=str))
    return TaskController.load(folder, seed), record | {"from_cache": False, "folder": str(folder)}


@METHODS.register("naml", config=NamlConfig, family="search", child_model="text_child",
                  tiny={"representations": ["raw"], "max_layers": 1, "widths": [16], "epoch_choices": [1],
                        "pretrain_tasks": [{"name": "digits", "split_seed": 1}, {"name": "digits", "split_seed": 2}],
                        "pretrain_steps": 2, "steps": 2, "children_per_step": 2})
def derive(parent, task, cfg: NamlConfig, ctx):
    """Neural AutoML: task-conditioned controller, multitask pre-training / transfer (Wong et al. 2018)."""
    space = TextSpace(cfg)
    space.check_task(task)
    pretrain = None
    if cfg.transfer_from:
        source = resolve_controller(cfg.transfer_from, ctx.seed)
        ctrl = TaskController.load(source, ctx.seed)
        ctrl.check_space(space.labels())
        ctrl = ctrl.transferred(ctx.seed)
        pretrain = {"transfer_from": str(source)}
    elif cfg.pretrain_tasks:
        seed = ctx.seed if cfg.pretrain_seed is None else cfg.pretrain_seed
        saved, pretrain = _pretrain(cfg, space, seed, ctx)
        ctrl = saved.transferred(ctx.seed)
    else:
        ctrl = TaskController(space.decisions, cfg.controller, ctx.seed, space.labels())
    key = task_key(task)
    new_embedding = key not in ctrl.tasks
    ctrl.add_task(key)
    loop = SearchLoop(space, ctrl, ctx.seed * 100_003, ctx.device)
    for _ in range(cfg.steps):
        loop.step(task, key, cfg.children_per_step)
    lineage = {"mode": "transfer" if cfg.transfer_from else "multitask" if cfg.pretrain_tasks else "single_task",
               "task_key": key, "new_task_embedding": new_embedding, "pretrained_on": list(ctrl.pretrained_on),
               "controller_tasks": list(ctrl.tasks),
               "pretrain": {k: v for k, v in (pretrain or {}).items() if k != "trace"} or None}
    if pretrain and "trace" in pretrain:
        lineage["pretrain_trace"] = [{k: r[k] for k in ("task", "step", "val_accuracy")} for r in pretrain["trace"]]
    model, history, extra = finish_text_search(space, loop, task, ctx, "naml")
    extra["naml"] = lineage
    child = make_child(model, "naml", cfg, ctx, parent, task, history=history, extra=extra)
    child.files = ctrl.files()
    return child

