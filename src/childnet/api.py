"""The Python API: ``derive`` one child, or ``run_experiment`` for methods × seeds."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

from .config import validate_entry
from .errors import ChildnetError, ConfigError
from .methods.base import Context
from .registry import METHODS

__all__ = ["derive", "run_experiment", "method_config", "predict"]


def method_config(method: str, cfg=None):
    """Validate ``cfg`` (a dict, a config object or None for defaults) for ``method``."""
    entry = METHODS.get(method)
    if cfg is not None and not isinstance(cfg, dict):
        return cfg
    problems: list[str] = []
    res = validate_entry(METHODS, {"name": method, **(cfg or {})}, method, problems)
    if problems:
        raise ConfigError(problems)
    return res[1] if entry.config else None


def derive(method: str, parent, task, cfg=None, *, seed: int = 0, device: str = "cpu", progress=None,
           select: dict | None = None, metric: str = "accuracy", **options):
    """Derive one child of ``parent`` on ``task`` with a registered method.

    Args:
        method: registry name (``childnet list methods``).
        parent: a :class:`~childnet.parent.Parent`.
        task: a :class:`~childnet.tasks.Task`.
        cfg: the method's config object or a dict of options. ``options`` are merged in, block by block
            (``train={"batch_size": 32}`` changes only the batch size of ``cfg``'s ``train`` block), as an
            experiment's ``defaults`` merge.
        seed: the child's seed.
        device: torch device.
        select: choose hyper-parameters on validation, as an experiment's ``select:`` block
            (``{"lr": [1e-3, 3e-3]}``, or ``{"strategy": "optuna", "trials": 8, ...}``): every candidate is
            trained with ``seed`` and the one with the best validation ``metric`` is returned; its lineage
            (``extra["select"]``) lists every candidate's score. A candidate is laid onto the options as
            given; give them as a dict (not a config object) when a field derives from another (an inherit
            method's partial ``pretrain`` block, PAT's ``preset``), since a config object has fixed those.
        metric: the validation metric ``select`` ranks by (``accuracy``, ``nll``, ``hr@10``, …).
    """
    import numbers

    from .config import merge_blocks
    from .train import check_device

    device = check_device(device)
    if not isinstance(seed, numbers.Integral) or isinstance(seed, bool) or seed < 0:
        raise ChildnetError(f"seed: expected an integer >= 0 (got {seed!r})")
    seed = int(seed)  # numpy integers too
    if options:
        base = cfg.model_dump(exclude_unset=True) if hasattr(cfg, "model_dump") else dict(cfg or {})
        cfg = merge_blocks(base, options)
    # what a select candidate is laid onto: the options as given (a config object: the fields it was given)
    written = _as_given(cfg) if isinstance(cfg, dict) else None
    cfg = method_config(method, cfg)
    _check_derive_inputs(method, parent, task)
    ctx = Context(seed=seed, device=device, progress=progress)
    if select is None:
        return METHODS.get(method).fn(parent, task, cfg, ctx)
    from .select import check_select, derive_selected

    problems: list[str] = []
    if written is None:
        written = cfg.model_dump(exclude_unset=True) if cfg is not None else {}
    block = check_select(select, method, written, f"{method}.select", problems)
    if problems:
        raise ConfigError(problems)
    return derive_selected(method, block, parent, task, cfg, ctx, metric=metric, options=written)


def _as_given(options):
    """Options with every config object inside replaced by the fields it was given (``train=TrainConfig(epochs=1)``
    → ``{"epochs": 1}``): a ``select`` candidate is laid onto them as onto an experiment's options."""
    if hasattr(options, "model_dump"):
        return options.model_dump(exclude_unset=True)
    if isinstance(options, dict):
        return {k: _as_given(v) for k, v in options.items()}
    return options


def _check_derive_inputs(method: str, parent, task) -> None:
    """``derive``'s parent and task are what the methods expect (a wrong type failed deep inside a method
    with an AttributeError), and the parent fits the task (:func:`~childnet.methods.base.check_parent_fits`)."""
    from torch import nn

    from .methods.base import check_parent_fits
    from .parent import Parent
    from .tasks.base import Task

    if not isinstance(task, Task):
        hint = f"; for a registered task, load_task({task!r})" if isinstance(task, (str, dict)) else ""
        raise ChildnetError(f"derive: task must be a childnet Task (childnet.load_task(spec)), got "
                            f"{type(task).__name__}{hint}")
    if METHODS.get(method).meta.get("parent_use") is None and parent is None:
        return  # a method that never reads the parent (scratch, independent, the search family)
    if not isinstance(parent, Parent):
        hint = (" — the network itself; wrap it with childnet.get_parent (see docs/own-model.md)"
                if isinstance(parent, nn.Module) else "")
        raise ChildnetError(f"derive: parent must be a childnet Parent (childnet.get_parent(...)), got "
                            f"{type(parent).__name__}{hint}")
    check_parent_fits(method, parent.task, task, parent.model)


def _spec_of(model) -> dict:
    """The architecture record of a child not saved yet (its card is filled in by ``save``)."""
    from .models.base import model_spec

    try:
        return model_spec(model) or {}
    except Exception:  # a model childnet did not build: no recorded input shape to check against
        return {}


GUARD_HINT = ('put the call under `if __name__ == "__main__":` (worker processes re-import your script), or '
              'pass workers=0 to run every unit in this process')


def _caller_can_spawn() -> str | None:
    """Why worker processes cannot be started for the current ``__main__`` (``None`` when they can).

    Worker processes are started with ``spawn``: each re-imports the main script. That fails when the
    script was read from stdin or ``-c`` (there is no file to re-import: Python would look for a file
    named ``<stdin>``), and it re-runs the experiment in every worker when the script calls
    ``run_experiment`` at top level, outside an ``if __name__ == "__main__":`` block.
    """
    import multiprocessing

    if multiprocessing.parent_process() is not None:
        return None
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if main is None or path is None or getattr(main, "__spec__", None) is not None:
        return None  # interactive session, or run with -m: spawn imports it by name, which is safe
    if not Path(path).is_file():
        return f"the main script is {path!r}, which worker processes cannot re-import"
    frame = sys._getframe(1)
    while frame is not None and frame.f_globals is not vars(main):
        frame = frame.f_back
    if frame is None or frame.f_code.co_name != "<module>":
        return None  # called from inside a function: the function may or may not be guarded; trust it
    try:
        tree = ast.parse(Path(path).read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError):
        return None
    line = frame.f_lineno
    for node in tree.body:
        if isinstance(node, ast.If) and node.lineno <= line <= (node.end_lineno or node.lineno) \
                and "__main__" in ast.unparse(node.test) and "__name__" in ast.unparse(node.test):
            return None
    return f"{path} calls run_experiment at top level, without an `if __name__ == \"__main__\":` guard"


def run_experiment(experiment, out: str | Path | None = None, *, quiet: bool = False, **kwargs):
    """Run an experiment (a YAML path, a dict or an ExperimentConfig); see :func:`childnet.runner.run`.

    ``quiet=True`` prints nothing (the CLI's ``--quiet``); ``log=`` takes the messages instead.

    Works in a plain script: when worker processes could not re-import the calling script (no
    ``if __name__ == "__main__":`` guard, or a script read from stdin / ``-c``) and ``workers`` is not
    given, every unit runs in this process (and says so through ``log``); an explicit ``workers > 0``
    is refused with the guard to add.
    """
    from .runner import run

    if quiet and kwargs.get("log") is None:
        kwargs["log"] = lambda s: None
    why = _caller_can_spawn()
    if why is not None and kwargs.get("workers") != 0:
        if kwargs.get("workers"):
            raise ChildnetError(f"run_experiment(workers={kwargs['workers']}): {why}; {GUARD_HINT}")
        kwargs["workers"] = 0
        (kwargs.get("log") or print)(f"running every unit in this process: {why} ({GUARD_HINT.split(', or')[0]} "
                                     "to use worker processes)")
    return run(experiment, out, **kwargs)


def predict(child, x, *, batch_size: int = 256, device: str = "cpu", labels: bool = True):
    """Class predictions of ``child`` for new inputs ``x``, prepared as the task prepared its data.

    Applies the standardisation fitted on the training split (``lineage.extra["standardize"]``) and maps
    class indices back to the original labels (``lineage.extra["classes"]``) when the task mapped them.

    Args:
        child: a :class:`~childnet.child.Child` (e.g. ``Child.load(folder)``).
        x: an array or tensor of examples in the layout the task read (e.g. ``(N, F)`` or ``(N, C, L)``);
            for a child of a text task, a list of strings, tokenised as its task tokenised them (the
            MiniLM tokenizer, the task's ``max_length`` and, for the bundled corpora, ``max_chars``).
        labels: return the original labels (default) rather than class indices.
    """
    import numpy as np
    import torch

    from .tasks.arrays import apply_standardize

    if not hasattr(child, "lineage") or not hasattr(child, "model"):
        raise ChildnetError(f"predict: expected a Child (Child.load(folder), or what derive returns), got "
                            f"{type(child).__name__}; a parent's model predicts with parent.model(x)")
    extra = child.lineage.extra or {}
    arch = child.lineage.architecture or _spec_of(child.model)
    if _ranking_child(child):
        raise ChildnetError(f"predict: this child ranks candidate items (task '{child.lineage.task.get('name')}'); "
                            "score a ranking task's inputs with childnet.evaluate.predict_scores(child.model, x), "
                            "x = task.split('test')[0] (a dict of user, history and candidates)")
    texts = _texts(x)
    if texts is not None or _text_child(child):
        return _predict_texts(child, texts, x, batch_size, device, labels)
    if not isinstance(x, torch.Tensor):
        try:
            x = torch.as_tensor(np.asarray(x, dtype=np.float32))
        except (TypeError, ValueError) as err:
            raise ChildnetError(f"predict: expected an array or tensor of examples (N, ...), got {type(x).__name__} "
                                f"({str(err)[:120]})") from None
    x = x.float()
    if x.dim() == 0:
        raise ChildnetError("predict: expected a batch of examples (N, ...), got a single number; wrap one example "
                            "as a batch of one, e.g. x[None]")
    shape = tuple(arch.get("input_shape") or ())
    if shape and len(x) and x[0].numel() != int(np.prod(shape)):
        raise ChildnetError(f"predict: each example should have the child's input shape {shape} "
                            f"({int(np.prod(shape))} values); got examples of shape {tuple(x.shape[1:])}")
    bad = ~torch.isfinite(x)
    if bad.any():
        rows = bad.reshape(len(x), -1).any(1).nonzero().flatten().tolist()
        raise ChildnetError(f"predict: {int(bad.sum())} input value(s) are NaN or infinite (in example(s) "
                            f"{', '.join(map(str, rows[:5]))}{' …' if len(rows) > 5 else ''}); the child was "
                            "trained on finite inputs, so fill or drop them first")
    if shape and tuple(x.shape[1:]) != shape and len(x) and x[0].numel() == int(np.prod(shape)):
        got = tuple(x.shape[1:])
        if x.dim() > 2 and extra.get("layout") != "tabular" and [d for d in got if d != 1] != [d for d in shape if d != 1]:
            hint = (f"; channels-last images? x.transpose(0, {x.dim() - 1}, {', '.join(map(str, range(1, x.dim() - 1)))})"
                    if got[-1] == shape[0] and got[:-1] == shape[1:] else "")
            raise ChildnetError(f"predict: each example should have the child's input shape {shape}; got {got}, "
                                f"the same number of values in another order, which would be read wrongly{hint}")
        x = x.reshape(len(x), *shape)  # the same reshape the task did, e.g. (N, L, 1) -> (N, 1, L), or flat
    if extra.get("standardize"):
        x = apply_standardize(x, _checked_standardize(extra["standardize"], x.shape[1] if x.dim() > 1 else 0))
    model = child.model.to(device).eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            out.append(model(x[i:i + batch_size].to(device)).argmax(1).cpu())
    idx = torch.cat(out).numpy() if out else np.zeros(0, dtype=np.int64)
    return _as_labels(idx, extra.get("classes"), labels)


def _checked_standardize(stats, features: int) -> dict:
    """The card's standardisation, refused with a sentence when a hand edit broke it (predictions would be
    silently wrong: a NaN mean or a zero std answers one class for every input)."""
    import math

    def numbers(v):
        return isinstance(v, list) and len(v) == features and all(
            isinstance(a, (int, float)) and not isinstance(a, bool) and math.isfinite(a) for a in v)

    if not isinstance(stats, dict) or not numbers(stats.get("mean")) or not numbers(stats.get("std")) \
            or not all(a > 0 for a in stats["std"]):
        raise ChildnetError(f"predict: the child's card has a damaged extra.standardize (it needs 'mean' and 'std': "
                            f"{features} finite numbers each, std > 0); the card was changed after saving")
    return stats


def _as_labels(idx, classes, labels: bool):
    import numpy as np

    if not labels or not classes:
        return idx
    if not isinstance(classes, list) or (len(idx) and int(idx.max()) >= len(classes)) \
            or not all(isinstance(c, (str, int)) and not isinstance(c, bool) for c in classes):
        raise ChildnetError(f"predict: the child's card has a damaged extra.classes ({str(classes)[:60]}): it "
                            "should list one name per output of the model; pass labels=False for class indices")
    return np.asarray(classes)[idx]


def _texts(x) -> list[str] | None:
    """``x`` as a list of strings when it is texts (a list, tuple or array of str), else None."""
    import numpy as np

    if isinstance(x, str):
        raise ChildnetError("predict: expected a batch of texts, got one string; wrap it in a list: [text]")
    if isinstance(x, (list, tuple)) and x and all(isinstance(t, str) for t in x):
        return list(x)
    if isinstance(x, np.ndarray) and x.dtype.kind in "US":
        return [str(t) for t in x.ravel()] if x.ndim == 1 else None
    return None


def _ranking_child(child) -> bool:
    task = child.lineage.task or {}
    try:
        from .registry import TASKS
        from .tasks.logic import LogicSyntheticConfig
        from .tasks.sequences import RankingTaskConfig

        return task.get("name") in TASKS and issubclass(TASKS.get(task["name"]).config,
                                                        (RankingTaskConfig, LogicSyntheticConfig))
    except Exception:  # a card's task that this version does not know
        return False


def _text_child(child) -> bool:
    task = child.lineage.task or {}
    try:
        from .registry import TASKS

        return task.get("name") in TASKS and "max_length" in (TASKS.get(task["name"]).config.model_fields or {})
    except Exception:  # a card's task that this version does not know: not a text task it can tokenise
        return False


def _predict_texts(child, texts, x, batch_size: int, device: str, labels: bool):
    """Tokenise ``texts`` as the child's task did and predict (:func:`predict` for text children)."""
    from .evaluate.metrics import predict_proba
    from .registry import TASKS
    from .tasks.text import tokenize

    task = dict(child.lineage.task or {})
    if texts is None:
        raise ChildnetError(f"predict: this child was trained on the text task '{task.get('name')}'; give it a list "
                            f"of strings (got {type(x).__name__})")
    if not _text_child(child):
        raise ChildnetError(f"predict: got texts, but this child was trained on task '{task.get('name')}', whose "
                            "inputs are numbers")
    fields = TASKS.get(task["name"]).config.model_fields
    max_length = int(task.get("max_length", fields["max_length"].default))
    if "max_chars" in fields:  # the bundled corpora cut each text before tokenising
        cut = int(task.get("max_chars", fields["max_chars"].default))
        texts = [t[:cut] for t in texts]
    probs = predict_proba(child.model.to(device), tokenize(texts, max_length), batch_size=batch_size, device=device)
    return _as_labels(probs.argmax(1).numpy(), (child.lineage.extra or {}).get("classes"), labels)
