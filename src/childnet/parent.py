"""The parent: trained once by the one trainer and cached by the hash of its config, or loaded.

Cache folder: ``$CHILDNET_CACHE`` (default ``~/.cache/childnet``) ``/parents/<hash>/`` holding
``model.safetensors`` and ``parent.json``. A second run with the same task, model, training
config and seed reuses it (and says so).
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from torch import nn

from ._version import __version__
from .checkpoint import cache_dir, load_state_checked, load_tensors, save_tensors
from .child import state_fingerprint
from .config import ParentConfig, canonical_spec, stable_hash
from .errors import ChildnetError, ConfigError, TrainingDiverged
from .evaluate import RANKING_METRICS, evaluate_model
from .models.base import build_model, check_runs_on
from .registry import MODELS, TASKS
from .tasks.base import Task, data_fingerprint, load_task, test_fingerprint
from .train import RNG_LOCK, fit, seed_everything

__all__ = ["Parent", "get_parent", "load_handed_parent", "cache_dir", "TRAINER_VERSION"]

#: Bump when a change to the trainer would change trained weights, to invalidate caches.
TRAINER_VERSION = 1


#: Parent metrics copied into every child's card (the report's parent row and its degenerate-model warning).
#: (The latency and device columns are measured by the run's units, for the parent's row and the Pareto plot.)
CARD_METRICS = ("accuracy", "nll", "ece", "params", "macs", "predicted_classes", "majority_accuracy",
                "latency_ms_b1", "device_latency_s", "device_feasible", *RANKING_METRICS)


@dataclass
class Parent:
    """A trained network and the task it was trained on.

    Attributes:
        model: the parent network (do not modify; methods copy it with :meth:`copy_model`).
        task: the task the parent was trained on (may differ from the child's, for transfer).
        spec: its model spec.
        fingerprint: content hash of its weights.
        source: trained | cache | checkpoint | pretrained.
        frozen: names of the parameters the model's builder left frozen (``requires_grad=False``, e.g. an
            embedding you chose not to train). The parent's own training leaves them as they are, and so
            does every child: :meth:`trainable_copy` keeps them frozen.
    """

    model: nn.Module
    task: Task
    spec: dict
    fingerprint: str
    source: str
    metrics: dict = field(default_factory=dict)
    history: list = field(default_factory=list)
    path: str | None = None
    frozen: tuple[str, ...] = ()

    def copy_model(self) -> nn.Module:
        """A deep copy of the parent network, to derive a child from."""
        return copy.deepcopy(self.model)

    def trainable_copy(self) -> nn.Module:
        """A deep copy to train: every parameter trainable except those the builder left frozen."""
        return unfreeze(self.copy_model(), self.frozen)

    def card(self) -> dict:
        """The parent's entry in a child's lineage."""
        return {
            "fingerprint": self.fingerprint,
            "architecture": self.spec,
            "task": self.task.spec,
            "source": self.source,
            "metrics": {k: v for k, v in self.metrics.items() if k in CARD_METRICS} | self._train_compute(),
        }

    def _train_compute(self) -> dict:
        """Forward MACs × training examples seen (from the fit history), when both are known."""
        samples = [r.get("samples") for r in self.history]
        if not samples or not all(isinstance(s, int) for s in samples) or "macs" not in self.metrics:
            return {}
        return {"train_compute": int(self.metrics["macs"]) * sum(samples)}


def _key(cfg: ParentConfig, task: Task) -> str:
    """The cache key: task, data, model and training run with every default filled in, seed, trainer version.

    Writing a default out (``{name: cnn, width: 32, depth: 3}`` for ``{name: cnn, width: 32}``) gives the
    same key, so it never retrains the parent.
    """
    try:
        task_spec = canonical_spec(TASKS, task.spec)
    except ChildnetError:  # a task built by hand, not from the registry: its spec as it is
        task_spec = task.spec
    return stable_hash({"task": task_spec, "data": data_fingerprint(task), "model": canonical_spec(MODELS, cfg.model),
                        "train": cfg.train.model_dump(mode="json"), "seed": cfg.seed, "trainer": TRAINER_VERSION})


def _read_cache(folder: Path, model: nn.Module) -> dict:
    """Load a cache entry into ``model``; return its record. Raises ChildnetError if the entry is unusable."""
    try:
        meta = json.loads((folder / "parent.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ChildnetError("parent.json is missing") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ChildnetError(f"parent.json is unreadable ({err})") from None
    metrics = meta.get("metrics") if isinstance(meta, dict) else None
    if not isinstance(metrics, dict) or not isinstance(metrics.get("accuracy"), (int, float)):
        raise ChildnetError("parent.json has no metrics.accuracy")
    history = meta.get("history", [])
    load_state_checked(model, load_tensors(folder / "model.safetensors"), "its weights do not fit the model")
    return {"metrics": metrics, "history": history if isinstance(history, list) else [],
            "test_data": meta.get("test_data")}


def _discard(folder: Path, log: Callable[[str], None], reason: str) -> None:
    """Move an unusable cache entry out of the way (it is retrained and written again)."""
    log(f"parent cache entry {folder} is unusable ({reason}); training the parent again")
    trash = folder.with_name(f".corrupt-{folder.name}-{os.getpid()}")
    try:
        os.replace(folder, trash)
        shutil.rmtree(trash, ignore_errors=True)
    except OSError:
        pass


def _parent_config(cfg) -> ParentConfig:
    """``cfg`` as a ParentConfig, or a ConfigError naming the fields (the API's counterpart of ``parent:``)."""
    from pydantic import ValidationError

    from ._base import format_validation_error

    if isinstance(cfg, ParentConfig):
        return cfg
    if not isinstance(cfg, dict):
        raise ConfigError(f"parent: expected a mapping such as {{'model': {{'name': 'cnn'}}}} "
                          f"(got {type(cfg).__name__} {cfg!r:.60})")
    try:
        return ParentConfig(**cfg)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, "parent", ParentConfig)) from None


def get_parent(
    cfg: ParentConfig | dict,
    task: Task,
    *,
    device="cpu",
    progress: Callable[[int, int, dict], None] | str | None = "auto",
    log: Callable[[str], None] | None = None,
    use_cache: bool = True,
) -> Parent:
    """Build, load or train the parent described by ``cfg`` (cached by hash).

    Args:
        cfg: a :class:`ParentConfig` or its dict.
        task: the experiment's task (the parent trains on ``cfg.task`` when given).
        device: where to train / place the model.
        progress: per-epoch callback ``(done, total, record)`` while training; ``"auto"`` (default) shows a
            progress bar on stderr when it is a terminal (not in tests); ``None`` is quiet.
        log: receives one-line status messages ("reused cached parent …"); default: printed to stderr
            when ``progress`` is ``"auto"`` and the session is interactive.
        use_cache: read and write the parent cache.
    """
    from ._progress import auto_epochs, interactive

    if log is None:
        log = (lambda s: print(s, file=sys.stderr)) if progress == "auto" and interactive() else (lambda s: None)
    cfg = _parent_config(cfg)
    ptask = load_task(cfg.task) if cfg.task is not None else task
    if ptask.meta.get("classes") and ptask.name == "arrays":  # the label mapping the task made, said once
        shown = ", ".join(f"{c} → {i}" for i, c in enumerate(ptask.meta["classes"][:20]))
        log(f"labels mapped to classes: {shown}{' …' if len(ptask.meta['classes']) > 20 else ''}")
    with RNG_LOCK:  # the initial weights depend on the parent's seed only (and so does its cache key)
        seed_everything(cfg.seed)
        model = build_model(cfg.model, ptask.input_shape, ptask.num_classes)
    if cfg.checkpoint:
        load_state_checked(model, load_tensors(cfg.checkpoint),
                           f"parent.checkpoint {cfg.checkpoint} does not fit parent.model {cfg.model}")
        return _finish(model, ptask, cfg, "checkpoint", device, path=cfg.checkpoint)
    if cfg.pretrained:
        _check_pretrained(cfg)
        return _finish(model, ptask, cfg, "pretrained", device)
    check_runs_on(model, ptask, f"parent.model {cfg.model.get('name')}")  # before any training
    key = _key(cfg, ptask)
    folder = cache_dir() / "parents" / key
    if use_cache and folder.exists():
        try:
            meta = _read_cache(folder, model)
        except ChildnetError as err:
            _discard(folder, log, str(err))
            with RNG_LOCK:  # a failed load may have half-filled the model: start again from the seed
                seed_everything(cfg.seed)
                model = build_model(cfg.model, ptask.input_shape, ptask.num_classes)
        else:
            metrics = meta["metrics"]
            if meta["test_data"] is not None and meta["test_data"] != test_fingerprint(ptask):
                log(f"reused cached parent {key} ({cfg.model.get('name')}); the test split changed since it was "
                    "cached (the training and validation splits did not), so its metrics are measured again")
                metrics = None  # measured by _finish on this test split
            else:
                log(f"reused cached parent {key} ({cfg.model.get('name')}, test accuracy "
                    f"{metrics['accuracy']:.4f})")
            parent = _finish(model, ptask, cfg, "cache", device, path=str(folder), metrics=metrics,
                             history=meta["history"])
            if metrics is None:  # keep the new measurement: later runs and workers reuse it
                _remeasured(folder, parent)
            return parent
    log(f"training parent {cfg.model.get('name')} on {ptask.name} (cache key {key})")
    try:
        with auto_epochs(progress, f"parent {cfg.model.get('name')}") as cb:
            history = fit(model, (ptask.x_train, ptask.y_train), cfg.train,
                          val=(ptask.x_val, ptask.y_val), seed=cfg.seed, device=device, progress=cb)
    except TrainingDiverged as err:
        raise ChildnetError(f"the parent ({cfg.model.get('name')}) diverged while training: {err}".replace(
            "(train.lr", "(parent.train.lr")) from None
    parent = _finish(model, ptask, cfg, "trained", device, history=history)
    if use_cache and _write_cache(folder, model, cfg, parent):
        parent.path = str(folder)
    return parent


def load_handed_parent(cfg: ParentConfig | dict, task: Task, weights: str | Path, *, source: str, metrics: dict,
                       history: list, device="cpu") -> Parent:
    """The parent another process of this run trained, from the weights it saved (no training, no evaluation).

    The runner uses this when the parent cache could not keep the parent (read-only, full): every worker then
    derives from the very parent the main process trained and printed, never from one it trained itself.
    """
    cfg = _parent_config(cfg)
    ptask = load_task(cfg.task) if cfg.task is not None else task
    model = build_model(cfg.model, ptask.input_shape, ptask.num_classes)
    load_state_checked(model, load_tensors(weights), f"the handed-over parent {weights} does not fit parent.model")
    return _finish(model, ptask, cfg, source, device, metrics=metrics, history=history)


def _check_pretrained(cfg: ParentConfig) -> None:
    """``pretrained: true`` needs a model that ships weights (and does not switch them off)."""
    name = cfg.model.get("name")
    with_weights = [n for n in MODELS.names() if "pretrained" in getattr(MODELS.get(n).config, "model_fields", {})]
    if name not in with_weights:
        raise ConfigError(f"parent.pretrained: model '{name}' has no pretrained weights (models that do: "
                          f"{', '.join(with_weights) or 'none'}); train it (parent.train) or load parent.checkpoint")
    if cfg.model.get("pretrained") is False:
        raise ConfigError("parent.pretrained is true but parent.model.pretrained is false: a randomly initialised "
                          "model is not a pretrained parent; drop one of the two")


def unfreeze(model: nn.Module, frozen=()) -> nn.Module:
    """``model`` with every parameter trainable but those named in ``frozen``; returns it."""
    keep = set(frozen)
    for name, p in model.named_parameters():
        p.requires_grad_(name not in keep)
    return model


def _finish(model, task, cfg, source, device, path=None, metrics=None, history=None) -> Parent:
    model.to(device).eval()
    frozen = tuple(n for n, p in model.named_parameters() if not p.requires_grad)  # the builder's, kept
    for p in model.parameters():
        p.requires_grad_(False)
    metrics = metrics or evaluate_model(model, task, latency=False, device=device)
    return Parent(model, task, dict(cfg.model), state_fingerprint(model), source, metrics, history or [], path,
                  frozen)


def _remeasured(folder: Path, parent: Parent) -> None:
    """Rewrite a cache entry's metrics after its test split changed (atomically; a read-only cache is fine)."""
    from .runfolder import write_atomic

    try:
        meta = json.loads((folder / "parent.json").read_text(encoding="utf-8"))
        meta.update(metrics=parent.metrics, test_data=test_fingerprint(parent.task))
        write_atomic(folder / "parent.json", json.dumps(meta, indent=2, default=str))
    except (OSError, ValueError):
        pass


def _write_cache(folder: Path, model: nn.Module, cfg: ParentConfig, parent: Parent) -> bool:
    """Write the cache entry via a temporary folder renamed into place; False (and a warning) if it cannot."""
    from .runfolder import remove_dead_temporaries, temporary_prefix

    tmp = None
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        remove_dead_temporaries(folder.parent)  # left by a process killed while writing
        tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=temporary_prefix()))
        save_tensors(model.state_dict(), tmp / "model.safetensors")
        meta = {"config": cfg.model_dump(), "metrics": parent.metrics, "history": parent.history,
                "fingerprint": parent.fingerprint, "library_version": __version__,
                "test_data": test_fingerprint(parent.task)}  # what the metrics were measured on
        (tmp / "parent.json").write_text(json.dumps(meta, indent=2, default=str))
        if folder.exists():
            shutil.rmtree(tmp)  # another process finished first
        else:
            os.replace(tmp, folder)
        return True
    except OSError as err:  # a read-only cache is not fatal: the parent is in memory
        import warnings

        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        warnings.warn(f"could not write the parent cache at {folder}: {err}", stacklevel=2)
        return False
