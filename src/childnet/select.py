"""Per-method hyper-parameter selection on validation: the ``select:`` block of an experiment's method entry.

::

    methods:
      - {name: child_tuning_f, select: {lr: [1.0e-4, 2.0e-4, 4.0e-4]}}            # a grid (the default)
      - {name: ssa, select: {t0: [0.25, 0.5, 1.0], anneal_frac: [0.25, 0.5]}}       # 6 candidates
      - {name: vanilla, select: {strategy: optuna, trials: 8, sampler: tpe,
                                 lr: {low: 1.0e-5, high: 1.0e-3, log: true}}}         # Optuna (extra: optuna)

For each seed, the unit trains every candidate with that seed, scores each on the task's **validation**
split with the experiment's metric (:func:`validation_score`), keeps the best (ties: the first candidate)
and only that child is evaluated on test and saved — the test split never takes part in the choice. This
is the protocol of the papers the tune reproductions compare (each method at its own tuned learning rate;
Xu et al. 2021, Child-Tuning, §4; Somayajula et al. 2024), and it gives every method the same budget: the
same candidates and seeds.

Choices made here (documented, not from a paper):

- **Field names.** A key is a field of the method's config (``t0``), a dotted path into a nested block
  (``train.lr``), or a bare name, looked up in the method's main run (``train``, or ``tune`` in the prune
  family: ``lr`` → ``train.lr``), else in the one nested block that has it (two or more: the error lists
  them). Several comma-separated paths (``"train.lr,blo.lr"``: AGWM's final and bi-level runs) take the
  same value together. A candidate for a whole block (``train: [{lr: 1.0e-4, epochs: 3}, ...]``) changes
  only the options it names. ``params:`` holds
  fields whose name is one of the block's own keys (``strategy``, ``trials``, ``sampler``, ``params``).
- **Not hyper-parameters.** A field holding a model spec (``child``, ``member``) is refused: picking an
  architecture is the search family's job, and the report compares children of a fixed cost.
- **Divergence.** A candidate whose loss diverges (a learning rate too high) loses and is listed with
  its error; the unit fails only when every candidate diverges.
- **Resume grain.** Selection happens inside one unit, so resume, worker processes and Ray work unchanged;
  a unit killed half-way retrains all its candidates (nothing is cached between candidates).
- **Validation.** Every task has a validation split (carved deterministically from train by
  ``task.split_seed`` and ``task.val_fraction`` where the data have none; the ranking tasks hold out each
  user's second-to-last item). A method that uses the validation split itself (the search family's
  rewards) is scored on that same split.

The lineage card of the pick records ``extra.select``: the strategy, metric, every candidate's values and
validation score, and the pick; its ``metrics`` gain ``select_candidates``, ``select_val_<metric>`` and
each numeric picked value as ``select_<field>``.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
from typing import Any

from pydantic import BaseModel

from ._base import _config_classes
from .errors import ChildnetError, MissingDependencyError, TrainingDiverged
from .registry import METHODS
from .runfolder import DiskFullError

__all__ = ["MAX_CANDIDATES", "STRATEGIES", "SAMPLERS", "check_select", "candidate_count", "candidate_configs",
           "derive_selected", "validation_score", "higher_is_better", "values_text"]

STRATEGIES = ("grid", "optuna")
#: Optuna samplers a ``select`` block may name (``sampler:``); tpe is Optuna's default.
SAMPLERS = ("tpe", "random", "qmc")
#: Blocks holding a method's main training run, where a bare name (``lr``) is looked up first.
MAIN_RUNS = ("train", "tune")
#: Most candidates (grid points or trials) one unit may train.
MAX_CANDIDATES = 256
_KEYS = ("strategy", "trials", "sampler", "params")
_RANGE_KEYS = ("low", "high", "log", "step")
#: Metrics where lower is better (every other metric — accuracy, hr@k, ndcg@k — is higher-is-better).
_LOWER_IS_BETTER = ("nll", "ece")


def higher_is_better(metric: str) -> bool:
    """Direction of a selection metric: accuracy, hr@k and ndcg@k up; nll and ece down."""
    return metric not in _LOWER_IS_BETTER


# ------------------------------------------------------------------ validation of the block


def _fields_text(cls) -> str:
    """The fields of ``cls`` a select block can name (model specs are not hyper-parameters)."""
    names = []
    for name, info in cls.model_fields.items():
        if _is_model_spec(info):
            continue
        nested = _config_classes(info.annotation)
        names.append(name)
        names += [f"{name}.{sub}" for c in nested for sub in c.model_fields]
    return ", ".join(names)


def _is_model_spec(info) -> bool:
    import typing

    from ._base import ModelSpec

    check = typing.get_args(ModelSpec)[1]  # the registry validator pydantic moves into the field's metadata
    return any(m is check for m in info.metadata) or ModelSpec in typing.get_args(info.annotation)


def _resolve(cls, key: str, method: str) -> tuple[list[str] | None, str | None]:
    """``key`` → canonical dotted paths, or an error message."""
    paths = []
    for part in key.split(","):
        part = part.strip()
        names = part.split(".")
        if len(names) == 1 and names[0] not in cls.model_fields:
            hits = [f"{f}.{names[0]}" for f, info in cls.model_fields.items()
                    for c in _config_classes(info.annotation) if names[0] in c.model_fields]
            hits = sorted(set(hits))
            main = [h for run in MAIN_RUNS for h in hits if h == f"{run}.{names[0]}"]
            hits = main[:1] or hits
            if len(hits) > 1:
                return None, (f"'{part}' is ambiguous for {method}: write one of {', '.join(hits)} (or several "
                              f"joined by commas, \"{','.join(hits)}\", to tie them)")
            if hits:
                names = hits[0].split(".")
        current, walked = cls, []
        for name in names:
            fields = current.model_fields if current is not None else {}
            if name not in fields:
                return None, (f"{method} has no field '{'.'.join(walked + [name])}' to select over "
                              f"(fields: {_fields_text(cls)})")
            info = fields[name]
            if _is_model_spec(info):
                return None, (f"'{'.'.join(walked + [name])}' is a model spec, not a hyper-parameter: select "
                              "picks training settings; use a search method to pick architectures")
            walked.append(name)
            nested = _config_classes(info.annotation)
            current = nested[0] if nested else None
        paths.append(".".join(walked))
    return paths, None


def _set_path(options: dict, path: str, value: Any) -> dict:
    out = dict(options)
    head, _, rest = path.partition(".")
    if rest:
        inner = out.get(head)
        if isinstance(inner, BaseModel):  # a block given as a config object (the Python API): the fields it was given
            inner = inner.model_dump(exclude_unset=True)
        out[head] = _set_path(inner if isinstance(inner, dict) else {}, rest, value)
    elif isinstance(value, dict) and isinstance(out.get(head), dict):
        out[head] = {**out[head], **value}  # a partial block changes only the options it names
    else:
        out[head] = value
    return out


def _is_range(v: Any) -> bool:
    return isinstance(v, dict) and "low" in v and "high" in v and set(v) <= set(_RANGE_KEYS)


_NONE = object()


def _value_problem(values: Any, strategy: str) -> str | None:
    if isinstance(values, list):
        if not values:
            return "an empty list has no candidate; give at least one value"
        twice = next((b for i, a in enumerate(values) for b in values[i + 1:] if a == b), _NONE)
        if twice is not _NONE:
            return f"the value {twice!r} is listed twice (as {values!r}): each candidate would be trained twice"
        return None
    if _is_range(values):
        if strategy != "optuna":
            return "a range {low, high} needs strategy: optuna (a grid takes a list of values)"
        lo, hi = values["low"], values["high"]
        numbers = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in (lo, hi))
        if not numbers or lo >= hi:
            return "a range needs numbers low < high (a fixed value is a one-value list)"
        log, step = values.get("log", False), values.get("step")
        if not isinstance(log, bool):
            return f"log must be true or false (got {log!r})"
        if log and lo <= 0:
            return "a log range needs low > 0"
        if step is not None:
            if not isinstance(step, (int, float)) or isinstance(step, bool) or step <= 0:
                return f"step must be a number > 0 (got {step!r})"
            if log:
                return "a range takes log or step, not both (Optuna samples a log range continuously)"
        return None
    return ("expected a non-empty list of values" + (" or a range {low, high[, log, step]}"
                                                    if strategy == "optuna" else ""))


def candidate_count(select: dict) -> int:
    """How many candidates a validated block trains per seed (grid points, or Optuna trials)."""
    if select.get("strategy") == "optuna":
        return int(select["trials"])
    return math.prod(len(v) for v in select["params"].values())


def check_select(raw: Any, method: str, base: dict, where: str, problems: list[str],
                 sweeps: list[dict] | None = None) -> dict | None:
    """Validate a ``select`` block of method ``method`` (options ``base``); append one sentence per problem.

    ``sweeps``: the sweep values each setting lays on ``base`` (``[{"sparsity": 0.9}, …]``); every candidate
    must make a valid config under each of them.

    Returns the canonical block ``{strategy, trials?, sampler?, params: {"train.lr": [...], ...}}`` or None.
    """
    from ._base import entry_problems

    if not isinstance(raw, dict) or not raw:
        problems.append(f"{where}: expected a mapping {{field: [values], ...}} of {method}'s hyper-parameters "
                        f"(got {raw!r})")
        return None
    strategy = raw.get("strategy", "grid")
    if strategy not in STRATEGIES:
        problems.append(f"{where}.strategy: '{strategy}' is not a strategy (accepted: {', '.join(STRATEGIES)})")
        return None
    out: dict[str, Any] = {"strategy": strategy}
    n0 = len(problems)
    if strategy == "optuna":
        trials, sampler = raw.get("trials"), raw.get("sampler", "tpe")
        if not isinstance(trials, int) or isinstance(trials, bool) or not 1 <= trials <= MAX_CANDIDATES:
            problems.append(f"{where}.trials: expected an integer 1 … {MAX_CANDIDATES} for strategy optuna "
                            f"(got {trials!r})")
        if sampler not in SAMPLERS:
            problems.append(f"{where}.sampler: '{sampler}' is not a sampler (accepted: {', '.join(SAMPLERS)})")
        out.update(trials=trials, sampler=sampler)
        try:
            import optuna  # noqa: F401
        except ImportError:
            problems.append(f"{where}.strategy: optuna needs the optional package 'optuna', which is not installed "
                            "(install it with: pip install 'childnet[optuna]')")
    else:
        for k in ("trials", "sampler"):
            if k in raw:
                problems.append(f"{where}.{k}: only strategy optuna takes '{k}' (a grid trains every combination)")
    params = {k: v for k, v in raw.items() if k not in _KEYS}
    extra = raw.get("params", {})
    if not isinstance(extra, dict):
        problems.append(f"{where}.params: expected a mapping {{field: [values]}} (got {extra!r})")
        extra = {}
    for key in sorted(set(params) & set(extra), key=str):
        problems.append(f"{where}: '{key}' is given both beside params and inside params; give it once")
    params.update(extra)
    cls = METHODS.get(method).config
    if not params or cls is None:
        problems.append(f"{where}: names no field to select over; {method} has the fields "
                        f"{_fields_text(cls) if cls else '(none)'}")
        return None
    canonical: dict[str, Any] = {}
    claimed: dict[str, str] = {}  # field path -> the key that selects over it
    for key, values in params.items():
        paths, err = _resolve(cls, str(key), method)
        if err is None:
            clash = [claimed[p] for p in paths if p in claimed]
            if clash:
                err = (f"selects over {', '.join(paths)}, which '{clash[0]}' already selects over; "
                       "give each field once")
            claimed.update((p, str(key)) for p in paths)
        if err is None:
            err = _value_problem(values, strategy)
        if err is not None:
            problems.append(f"{where}.{key}: {err} (got {values!r})")
            continue
        checks = values if isinstance(values, list) else [values["low"], values["high"]]
        for value in checks:  # every value must make a valid config of this method
            opts = base
            for p in paths:
                opts = _set_path(opts, p, value)
            _, found = entry_problems(METHODS, {"name": method, **opts})
            if found:  # (the field's path too when the key ties several: 'lr,alpha' names which one refused)
                problems.extend(f"{where}.{key}: " + (f"{at}: " if at and at != key else "") + msg
                                + ("" if "(got " in msg else f" (got {value!r})") for at, msg in found)
                break
        if _is_range(values):
            if any(not _numeric(cls, p) for p in paths):
                problems.append(f"{where}.{key}: a range {{low, high}} samples numbers, and "
                                f"{next(p for p in paths if not _numeric(cls, p))} is not a number field; give a "
                                f"list of values (got {values!r})")
                continue
            ints = [p for p in paths if _whole_numbers(cls, p)]
            loose = [k for k in ("low", "high", "step") if isinstance(values.get(k), float)]
            if ints and loose:
                problems.append(f"{where}.{key}: {ints[0]} takes whole numbers: give {' and '.join(loose)} as "
                                f"integers (got {values!r})")
                continue
        canonical[",".join(paths)] = values
    out["params"] = canonical
    lists = math.prod(len(v) for v in canonical.values()) if all(isinstance(v, list) for v in canonical.values()) else 0
    if len(problems) == n0 and strategy == "optuna" and isinstance(out.get("trials"), int) and 0 < lists < out["trials"]:
        problems.append(f"{where}.trials: {out['trials']} trials over {lists} distinct candidates would train some "
                        f"twice; use strategy: grid (it trains each once) or trials <= {lists}")
    if len(problems) == n0 and strategy == "grid" and candidate_count(out) > MAX_CANDIDATES:
        problems.append(f"{where}: the grid has {candidate_count(out)} candidates, more than {MAX_CANDIDATES}; "
                        "use strategy: optuna with trials, or fewer values")
    if len(problems) == n0:
        problems.extend(_combination_problems(method, base, canonical, sweeps or [{}], where))
    return out if len(problems) == n0 else None


def replaced_values(methods) -> list[str]:
    """One sentence per option a method writes (itself or through ``defaults``) that its ``select`` block also
    selects over and that no candidate trains: each candidate replaces it (``childnet validate`` and ``childnet
    run`` print these as notes; a sweep over a written field is refused instead, but refusing here would change
    the identity of experiments that write a value beside the candidates). A written value that is one of the
    candidates (or inside an Optuna range) is trained as that candidate: no note. A candidate block
    (``train: [{lr: 0.1}, ...]``) replaces only the options it names."""
    notes = []
    for spec in methods:
        for key, values in ((spec.select or {}).get("params") or {}).items():
            for path in key.split(","):
                written = _get_path(spec.options, path)
                if written is _MISSING:
                    continue
                for sub, value, tried in _replaced(path, written, values):
                    notes.append(f"methods[{spec.label}].{sub}: the value {value!r} written for it (on the method "
                                 f"or under defaults) is replaced by each select candidate ({tried}) and never "
                                 "trained")
    return notes


def _get_path(options: Any, path: str) -> Any:
    for part in path.split("."):
        options = options.get(part, _MISSING) if isinstance(options, dict) else _MISSING
    return options


def _replaced(path: str, written: Any, values: Any) -> list[tuple[str, Any, Any]]:
    """``(path, written value, candidates)`` for each written value at ``path`` that no candidate trains."""
    if not isinstance(values, list):  # an Optuna range {low, high, ...}
        low, high = values.get("low"), values.get("high")
        numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (written, low, high))
        inside = numbers and low <= written <= high
        return [] if inside else [(path, written, f"{low} … {high}")]
    if isinstance(written, dict) and values and all(isinstance(v, dict) for v in values):
        named = sorted({k for v in values for k in v}, key=str)  # a partial block keeps what it does not name
        return [out for k in named if k in written
                for out in _replaced(f"{path}.{k}", written[k], [v[k] for v in values if k in v])]
    return [] if written in values else [(path, written, values)]


_MISSING = object()


def _allowed(cls, path: str) -> list:
    """The plain types the field at dotted ``path`` of config class ``cls`` accepts."""
    from ._base import _strip

    info = None
    for name in path.split("."):
        info = cls.model_fields[name]
        nested = _config_classes(info.annotation)
        cls = nested[0] if nested else None
    return _strip(info.annotation)


def _numeric(cls, path: str) -> bool:
    """Whether an Optuna range fits the field: it takes numbers and is no switch (``include_head: {low: 0, high:
    1}`` passed pydantic as booleans, and a float sample failed at run time)."""
    allowed = _allowed(cls, path)
    return bool not in allowed and (int in allowed or float in allowed)


def _whole_numbers(cls, path: str) -> bool:
    """Whether the field at ``path`` of config class ``cls`` takes integers and no floats (``epochs``, ``members``):
    an Optuna range over it samples integers; over any other number field it samples floats."""
    allowed = _allowed(cls, path)
    return int in allowed and float not in allowed


#: Most (sweep setting × candidate) configs ``validate`` builds to check a select block's combinations (about
#: 0.1 ms each); past it, a combination that fails is reported by the unit that meets it, naming the candidate.
MAX_COMBINATION_CHECKS = 32768


def _combination_problems(method: str, base: dict, params: dict, sweeps: list[dict], where: str) -> list[str]:
    """Every combination of the candidates' values (a range: its ends) under every sweep setting must make a valid
    config: each value alone can be valid while two together are refused (``include_head: true`` needs
    ``structure: weights``). Two grid candidates must not make the same config (``'0.001'`` and ``1.0e-3``).
    One sentence for the first combination that fails, naming it."""
    from ._base import entry_problems, put_path

    axes = {k: v if isinstance(v, list) else [v["low"], v["high"]] for k, v in params.items()}
    grid = all(isinstance(v, list) for v in params.values())  # (a range's two ends are not two candidates)
    seen: dict[int, dict[str, dict]] = {}
    settings: dict[int, dict | None] = {}
    for n, (i, assignment) in enumerate(itertools.product(range(len(sweeps)), _grid(axes))):
        if n >= MAX_COMBINATION_CHECKS:
            break
        overrides = sweeps[i]
        if i not in settings:  # a setting that fails without any candidate is reported by the sweep's own check
            laid = base
            for k, v in overrides.items():
                laid = put_path(laid, k, v)
            settings[i] = None if entry_problems(METHODS, {"name": method, **laid})[1] else laid
        opts = settings[i]
        if opts is None:
            continue
        for key, value in assignment.items():
            for path in key.split(","):
                opts = _set_path(opts, path, value)
        built, found = entry_problems(METHODS, {"name": method, **opts})
        swept = f" under the sweep setting {values_text(overrides)}" if overrides else ""
        if found:
            return [f"{where}: the candidate {values_text(assignment)}{swept} is not a valid {method} config: "
                    + "; ".join(f"{path}: {msg}" if path else msg for path, msg in found)]
        same = json.dumps(built[1].model_dump(mode="json"), sort_keys=True, default=str)
        if grid and same in seen.setdefault(i, {}):  # '0.001' and 1.0e-3, or a field tied to itself
            return [f"{where}: the candidates {values_text(seen[i][same])} and {values_text(assignment)}{swept} "
                    f"make the same {method} config, which would be trained twice; give each value once"]
        seen.setdefault(i, {})[same] = assignment
    return []


# ------------------------------------------------------------------ selection inside a unit


def validation_score(child, task, metric: str, *, device: str = "cpu") -> float:
    """The ``metric`` of ``child`` (a Child or a model) on ``task``'s validation split — the one number
    a choice between children may use (also for pipelines that pick across units)."""
    from .evaluate import classification_metrics, predict_proba, predict_scores, ranking_metrics
    from .evaluate.ranking import RANKING_KS
    from .tasks.base import num_examples

    model = getattr(child, "model", child)
    x, y = task.split("val")
    if num_examples(x) == 0:
        raise ChildnetError(f"task '{task.name}' has no validation examples to select on; raise task.val_fraction")
    if task.kind == "ranking":
        ks = tuple(k for k in RANKING_KS if k <= task.num_classes)
        metrics = ranking_metrics(predict_scores(model, x, device=device), y, ks=ks)
    else:
        metrics = classification_metrics(predict_proba(model, x, device=device), y)
    if metric not in metrics:
        raise ChildnetError(f"the validation metric '{metric}' is not available for task '{task.name}' "
                            f"(available: {', '.join(sorted(metrics))})")
    return float(metrics[metric])


def _apply(cfg, assignment: dict[str, Any], options: dict | None = None):
    """The method config ``cfg`` with ``{"train.lr,blo.lr": value, ...}`` set (validated again).

    ``options`` are the method's options as written, which ``cfg`` was validated from; the candidate is laid
    onto them, so what a config derives from a field (an inherit method's partial ``pretrain`` block takes
    ``train``'s other options) follows the candidate as it would follow the same value written in the file.
    Without them the candidate is laid onto ``cfg``'s full dump, where a derived value is already fixed.
    """
    from pydantic import ValidationError

    from ._base import format_validation_error

    options = cfg.model_dump() if options is None else options
    for key, value in assignment.items():
        for path in key.split(","):
            options = _set_path(options, path, value)
    try:
        return type(cfg).model_validate(options)
    except ValidationError as err:  # a combination validate could not check (past MAX_COMBINATION_CHECKS)
        raise ChildnetError(f"the candidate {values_text(assignment)} is not a valid config: "
                            + "; ".join(line.removeprefix("<root>: ")
                                        for line in format_validation_error(err, cls=type(cfg)))) from None


def values_text(assignment: dict[str, Any]) -> str:
    """``{"train.lr": 0.001, "init": "scratch"}`` → ``train.lr 0.001, init "scratch"`` (a candidate in a sentence)."""
    return ", ".join(f"{k} {json.dumps(v, default=str)}" for k, v in assignment.items())


def _grid(params: dict) -> list[dict]:
    keys = list(params)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(params[k] for k in keys))]


def candidate_configs(select: dict, cfg, options: dict | None = None, limit: int = MAX_CANDIDATES):
    """``(values, config)`` of each candidate a block can train (an Optuna range: its two ends), at most ``limit``
    distinct configs: what ``childnet validate`` checks against the parent before any candidate trains."""
    axes = {k: v if isinstance(v, list) else [v["low"], v["high"]] for k, v in select["params"].items()}
    seen: set[str] = set()
    for assignment in _grid(axes):
        config = _apply(cfg, assignment, options)
        key = json.dumps(config.model_dump(mode="json"), sort_keys=True, default=str)
        if key not in seen:
            seen.add(key)
            yield assignment, config
            if len(seen) >= limit:
                return


def _optuna_suggest(trial, key: str, space: Any, whole: bool = False) -> Any:
    """One trial's value of ``key``: a list is categorical; a range samples integers where the field takes whole
    numbers only (``whole``), else floats (``temperature: {low: 1, high: 8}`` is not only 1 … 8)."""
    if isinstance(space, list):
        plain = all(v is None or isinstance(v, (bool, int, float, str)) for v in space)
        return trial.suggest_categorical(key, space) if plain else space[trial.suggest_categorical(
            key, list(range(len(space))))]
    lo, hi = space["low"], space["high"]
    if whole:  # (check_select refused float bounds on such a field)
        return trial.suggest_int(key, int(lo), int(hi), step=int(space.get("step") or 1), log=bool(space.get("log")))
    return trial.suggest_float(key, float(lo), float(hi), log=bool(space.get("log")), step=space.get("step"))


def _sampler(name: str, seed: int):
    import optuna

    return {"tpe": optuna.samplers.TPESampler, "random": optuna.samplers.RandomSampler,
            "qmc": optuna.samplers.QMCSampler}[name](seed=seed)


def _candidate_ctx(ctx, i: int, n: int):
    """``ctx`` for candidate ``i`` of ``n``: its epoch progress says which candidate it belongs to."""
    if ctx.progress is None:
        return ctx
    outer = ctx.progress

    def progress(done: int, total: int, record: dict) -> None:
        outer(done, total, {**record, "candidate": i, "candidates": n})

    return dataclasses.replace(ctx, progress=progress)


def derive_selected(method: str, select: dict | None, parent, task, cfg, ctx, *, metric: str = "accuracy",
                    options: dict | None = None):
    """Derive one child of ``method``: directly without ``select``; else train every candidate with the
    unit's seed and return the one with the best validation ``metric`` (its lineage lists them all).

    ``options``: the options as written that ``cfg`` was validated from (see :func:`_apply`).
    """
    fn = METHODS.get(method).fn
    if not select:
        return fn(parent, task, cfg, ctx)
    higher = higher_is_better(metric)
    total = candidate_count(select)
    tried: list[dict] = []
    best, best_score, diverged = None, None, None

    def train(assignment: dict) -> float:
        nonlocal best, best_score, diverged
        try:
            child = fn(parent, task, _apply(cfg, assignment, options), _candidate_ctx(ctx, len(tried) + 1, total))
        except TrainingDiverged as err:  # e.g. a learning rate too high: that candidate loses, the unit goes on
            diverged = err
            tried.append({"values": assignment, "val": None, "error": f"diverged: {err}"})
            ctx.log(f"select {method}: candidate {len(tried)} {assignment} diverged")
            return math.nan
        except (MissingDependencyError, DiskFullError):  # about the machine, not the candidate (a full disk stops
            raise                                          # the run: it keeps its type)
        except ChildnetError as err:  # any other refusal ends the unit: say which candidate met it
            message = f"select {method}: candidate {len(tried) + 1} of {total} " \
                      f"({values_text(assignment)}): {err}"
            try:
                named = type(err)(message)
            except TypeError:
                named = ChildnetError(message)
            raise named from None
        score = validation_score(child, task, metric, device=ctx.device)
        samples = [r.get("samples") for r in child.lineage.history if isinstance(r, dict)]
        tried.append({"values": assignment, "val": score,
                      "train_samples": sum(samples) if samples and all(isinstance(x, int) for x in samples) else None})
        ok = math.isfinite(score)
        if ok and (best_score is None or (score > best_score if higher else score < best_score)):
            best, best_score = child, score
        ctx.log(f"select {method}: candidate {len(tried)} {assignment} → validation {metric} {score:.4f}")
        return score

    if select["strategy"] == "optuna":
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.create_study(direction="maximize" if higher else "minimize",
                                    sampler=_sampler(select.get("sampler", "tpe"), ctx.seed))
        for _ in range(select["trials"]):
            trial = study.ask()
            values = {k: _optuna_suggest(trial, k, space, any(_whole_numbers(type(cfg), p) for p in k.split(",")))
                      for k, space in select["params"].items()}
            score = train(values)
            study.tell(trial, score if math.isfinite(score) else None,
                       state=None if math.isfinite(score) else optuna.trial.TrialState.FAIL)
    else:
        for values in _grid(select["params"]):
            train(values)
    if best is None and diverged is not None and all(t["val"] is None for t in tried):
        raise diverged
    if best is None:
        raise ChildnetError(f"select {method}: no candidate has a finite validation {metric} "
                            f"({len(tried)} tried)")
    pick = next(i for i, t in enumerate(tried) if t["val"] == best_score)
    best.lineage.extra["select"] = {"strategy": select["strategy"], "metric": metric, "split": "val",
                                    "candidates": tried, "pick": pick, "picked": tried[pick]["values"]}
    best.lineage.metrics["select_candidates"] = len(tried)
    best.lineage.metrics[f"select_val_{metric}"] = best_score
    for key, value in tried[pick]["values"].items():  # numeric picks, so the report can average them
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            best.lineage.metrics[f"select_{key}"] = value
    return best
