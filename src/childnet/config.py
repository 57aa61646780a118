"""Experiment configuration: YAML → validated, frozen pydantic models, every problem at once.

An experiment is a task, a parent, a list of methods and a number of seeds::

    name: demo
    task: {name: digits}
    parent:
      model: {name: cnn, width: 32}
      train: {epochs: 15, lr: 0.003}
    defaults: {child: {name: cnn, width: 8}}   # applied to every method that has the field
    methods: [scratch, {name: kd, temperature: 4}, hkt]
    baseline: scratch
    seeds: 3
    sweep: {sparsity: [0.8, 0.9]}              # optional: one setting per value

A pipeline of generations replaces ``methods`` by ``stages`` (see :mod:`childnet.pipeline`)::

    stages:
      - {name: shrink, methods: [{name: iterative, structure: channels, sparsity: 0.5}]}
      - {name: distil, methods: [{name: kd, teacher: root}]}      # child: same (the incoming child)
      - {name: ensemble, methods: [pat]}

Names refer to registries (``childnet list``); there are no import paths and no code.
"""

from __future__ import annotations

import copy
import itertools
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, StrictInt, ValidationError, field_validator, model_serializer

from ._base import (
    SEED_MAX,
    Config,
    ModelSpec,
    Seed,
    TaskSpec,
    canonical_spec,
    entry_problems,
    format_validation_error,
    put_path,
    stable_hash,
    validate_entry,
)
from .errors import ChildnetError, ConfigError
from .registry import METHODS, TASKS
from .train import TrainConfig

__all__ = [
    "Config",
    "EvaluateConfig",
    "ExperimentConfig",
    "MethodSpec",
    "ModelSpec",
    "ParentConfig",
    "SEED_MAX",
    "Seed",
    "Setting",
    "StageMethod",
    "StageSpec",
    "TaskSpec",
    "canonical_spec",
    "entry_problems",
    "format_validation_error",
    "load_experiment",
    "parse_experiment",
    "stable_hash",
    "validate_entry",
]


class MethodSpec(Config):
    """One method of an experiment: its registry name, a label and its validated config."""

    name: str
    label: str
    options: dict = Field(default_factory=dict, description="options as written (after defaults)")
    select: dict | None = Field(None, description="hyper-parameters chosen per seed on validation "
                                "(childnet.select); None: the options as they are")

    @model_serializer(mode="wrap")
    def _drop_empty_select(self, handler):  # no select block: the same dump (and run-folder identity) as before
        out = handler(self)
        if isinstance(out, dict) and out.get("select") is None:
            out.pop("select", None)
        return out


class StageMethod(Config):
    """How one method of a stage is wired to the chain (the method's own options are in its MethodSpec)."""

    label: str = Field(description="the method's label in the run: <stage>.<label as written>")
    teacher: Literal["root", "parent"] | None = Field(
        None, description="inherit methods with a teacher: the original parent (root) or the stage's incoming child "
        "(parent, the default)")
    same_child: bool = Field(False, description="child: same — the child has the incoming child's architecture")
    start: Literal["incoming", "fresh"] = Field(
        "incoming", description="with child: same: start from the incoming child's weights, or from new random ones")


class StageSpec(Config):
    """One generation of a pipeline: its methods derive from the chosen child of stage ``source``."""

    name: str = Field(description="stage name (unique; a prefix of its methods' labels)")
    source: str = Field(description="where the incoming child comes from: 'root' (the parent) or a stage name")
    methods: list[StageMethod] = Field(min_length=1, description="the stage's methods")

    def labels(self) -> list[str]:
        return [m.label for m in self.methods]


class ParentConfig(Config):
    """Where the parent comes from: trained here (cached by hash) or loaded."""

    model: ModelSpec = Field(description="model spec: {name: <model>, ...options}")
    train: TrainConfig = Field(default_factory=TrainConfig, description="the parent's training run")
    checkpoint: str | None = Field(None, description="load weights from this .safetensors file instead of training")
    task: TaskSpec | None = Field(None, description="train the parent on another task (transfer); default: the experiment's")
    seed: Seed = Field(0, description=f"seed of the parent's training (0 … {SEED_MAX})")
    pretrained: bool = Field(False, description="use the model's own pretrained weights; no training")


class EvaluateConfig(Config):
    """How every child (and the parent) is evaluated."""

    latency: bool = Field(True, description="measure CPU latency at batch 1 and 64 (false: skip, faster runs)")
    repeats: int = Field(20, ge=1, le=10000, description="timed repetitions of the batch-1 latency measurement")
    device: bool | dict = Field(True, description="simulate every child on an intermittently powered device "
                                "(true: the default DeviceConfig, a mapping: its fields, false: off); see "
                                "childnet.evaluate.device")


class Setting(Config):
    """One point of a sweep: an id and the overrides it applies."""

    id: str
    overrides: dict


#: Most seeds an experiment (or ``childnet run --seeds``) may ask for.
MAX_SEEDS = 1000


class ExperimentConfig(Config):
    """A validated experiment: task × parent × methods × seeds (× sweep settings)."""

    name: str = Field("experiment", description="experiment name (report title)")
    task: dict = Field(description="task spec: {name: <task>, ...options}")
    parent: ParentConfig
    methods: list[MethodSpec] = Field(min_length=1, description="methods to derive children with")
    baseline: str | None = Field(None, description="label of the method other methods are tested against")
    seeds: StrictInt = Field(3, ge=1, le=MAX_SEEDS, description=f"seeds per method (0..seeds-1), at most {MAX_SEEDS}")
    metric: str = Field("accuracy", description="primary metric of the report")
    sweep: dict = Field(default_factory=dict, description="{field: [values]}: one setting per combination")
    evaluate: EvaluateConfig = Field(default_factory=EvaluateConfig, description="evaluation options")
    stages: list[StageSpec] = Field(default_factory=list, description="a pipeline of generations (empty: the "
                                    "methods all derive from the parent)")
    source: str | None = Field(None, description="YAML file this was loaded from")

    @field_validator("metric")
    @classmethod
    def _metric(cls, v):
        from .evaluate.ranking import RANKING_METRICS  # ranking tasks: hr@k / ndcg@k (manas branch)

        allowed = ("accuracy", "nll", "ece") + RANKING_METRICS
        if v not in allowed:
            raise ValueError(f"must be one of {allowed}")
        return v

    def settings(self) -> list[Setting]:
        """Every combination of sweep values (one default setting when there is no sweep)."""
        if not self.sweep:
            return [Setting(id="default", overrides={})]
        keys = list(self.sweep)
        out = []
        for combo in itertools.product(*(self.sweep[k] for k in keys)):
            ov = dict(zip(keys, combo))
            out.append(Setting(id=",".join(f"{k}={v}" for k, v in ov.items()), overrides=ov))
        return out

    def task_for(self, setting: Setting) -> dict:
        """The task spec with this setting's ``task.X`` overrides applied."""
        task = copy.deepcopy(self.task)
        for k, v in setting.overrides.items():
            if k.startswith("task."):
                task[k[5:]] = v
        return task

    def method_options(self, spec: MethodSpec, setting: Setting) -> dict:
        """``spec``'s options as written (after ``defaults``) with ``setting``'s sweep values laid on, not yet
        validated: what :meth:`method_config` validates, and what a ``select`` candidate is laid onto (so a
        selected ``train.lr`` reaches whatever the config derives from it, as the same value written would)."""
        cls = METHODS.get(spec.name).config
        fields = set(cls.model_fields) if cls else set()
        full = dict(spec.options)
        for k, v in setting.overrides.items():
            if _sets_method_field(k, fields):
                full = put_path(full, k, v)
        return full

    def method_config(self, spec: MethodSpec, setting: Setting):
        """The validated config object of ``spec`` under ``setting``."""
        problems: list[str] = []
        res = validate_entry(METHODS, {"name": spec.name, **self.method_options(spec, setting)},
                             f"methods[{spec.label}]", problems)
        if problems:
            raise ConfigError(problems, self.source)
        return res[1]


def _sets_method_field(key: str, fields: set[str]) -> bool:
    """Whether the sweep key sets a field of a method with ``fields``: a bare field name (``sparsity``) or a
    dotted path into one of its blocks (``train.lr``, ``child.width``); ``task.X`` keys set the task."""
    return not key.startswith("task.") and key.split(".")[0] in fields


def _has_path(options: dict, path: str) -> bool:
    head, _, rest = path.partition(".")
    if head not in options:
        return False
    return not rest or (isinstance(options[head], dict) and _has_path(options[head], rest))


def _with_overrides(name: str, opts: dict, overrides: dict, where: str, problems: list[str]):
    """:func:`validate_entry` of a method's options with a setting's sweep values laid on.

    A bare field replaces the option; a dotted path (``train.lr``) sets that one option as if the entry had
    written ``train: {lr: ...}``: the block's other options keep whatever the entry, ``defaults``, the
    block's defaults or a preset give them, and options the entry left unset stay unset (so a run that
    inherits unset options, such as ``independent``'s members from the parent, still does).
    """
    full = dict(opts)
    for k, v in overrides.items():
        full = put_path(full, k, v)
    return validate_entry(METHODS, {"name": name, **full}, where, problems)


def merge_blocks(base: dict, over: dict) -> dict:
    """``base`` with ``over`` laid on top; nested mappings merge key by key instead of replacing each other,
    except a spec that names another registry entry (``child: {name: mlp}`` over ``{name: cnn, width: 8}``),
    which replaces it whole: the other entry's options would not fit."""
    out = dict(base)
    for key, value in over.items():
        old = out.get(key)
        same = isinstance(value, dict) and isinstance(old, dict) and value.get("name", old.get("name")) == old.get("name")
        out[key] = merge_blocks(old, value) if same else value
    return out


def _label(label: Any, where: str, problems: list[str]) -> str:
    """A method entry's label as text; a boolean (YAML's on/off/yes/no) or a mapping is a problem."""
    if isinstance(label, bool) or not isinstance(label, (str, int, float)):
        yes_no = " (YAML reads on/off/yes/no as true/false: quote it)" if isinstance(label, bool) else ""
        problems.append(f"{where}: expected a text label (got {label!r}){yes_no}")
    return str(label)


def _method_specs(raw_methods, defaults, sweep, problems, unswept: list[set[str]] | None = None) -> list[dict]:
    """``methods:`` → validated method specs. ``unswept[i]``: fields entry ``i`` takes from elsewhere (a
    pipeline's ``child: same``), which a sweep therefore cannot set for it."""
    specs, labels = [], set()
    if not isinstance(raw_methods, list) or not raw_methods:
        problems.append(f"methods: expected a non-empty list of methods (got {raw_methods!r})")
        return specs
    used_defaults: set[str] = set()
    used_sweep: set[str] = set()
    for i, raw in enumerate(raw_methods):
        raw = {"name": raw} if isinstance(raw, str) else raw
        if not isinstance(raw, dict) or "name" not in raw:
            problems.append(f"methods[{i}]: expected a method name or a mapping with 'name' (got {raw!r})")
            continue
        raw = dict(raw)
        select = raw.pop("select", None)
        label = _label(raw.pop("label", raw["name"]), f"methods[{i}].label", problems)
        if label in labels:
            problems.append(f"methods[{i}].label: '{label}' is used twice; give each entry a unique label")
        labels.add(label)
        name = raw["name"]
        if name not in METHODS:
            problems.append(f"methods[{i}].name: {METHODS.unknown_message(name)}")
            continue
        cls = METHODS.get(name).config
        fields = set(cls.model_fields) if cls else set()
        opts = {k: copy.deepcopy(v) for k, v in (defaults or {}).items() if k in fields}
        used_defaults |= set(opts)
        # a block given in both merges key by key (defaults.train.epochs + train.lr)
        opts = merge_blocks(opts, {k: v for k, v in raw.items() if k != "name"})
        own = fields - (unswept[i] if unswept else set())
        swept = {k: vals for k, vals in sweep.items() if _sets_method_field(k, own) and isinstance(vals, list) and vals}
        used_defaults |= {k for k in swept if "." not in k}
        used_sweep |= set(swept)
        for k in sorted(k for k in swept if _has_path({x: v for x, v in raw.items() if x != "name"}, k)):
            problems.append(f"methods[{i}]({label}).{k}: set here and swept by sweep.{k}, which would override it; "
                            "drop one of the two")
        settings = _combinations(swept)
        for overrides in settings:  # every combination of swept values is checked: two can clash
            before = len(problems)
            _with_overrides(name, opts, overrides, f"methods[{i}]({label})", problems)
            if len(problems) > before and swept:
                at = ", ".join(f"{k}={v}" for k, v in overrides.items())
                problems[before:] = [f"{p} [sweep setting {at}]" for p in problems[before:]]
                break
        spec = {"name": name, "label": label, "options": opts}
        if select is not None:
            spec["select"] = _check_select(select, name, opts, swept, f"methods[{i}]({label}).select", problems,
                                           settings)
        specs.append(spec)
    for k in (defaults or {}):
        if k == "select":
            problems.append("defaults.select: select belongs on a method entry, as its own choice of "
                            "hyper-parameters (methods: [{name: kd, select: {lr: [0.001, 0.003]}}])")
        elif k not in used_defaults:
            problems.append(f"defaults.{k}: no method in this experiment has a field '{k}'")
    problems.extend(_folder_name_problems([s["label"] for s in specs], sweep))
    if len(specs) == len(raw_methods):  # (an unknown method hides its fields)
        for k, vals in (sweep or {}).items():  # (an empty or non-list sweep value is already reported)
            if not k.startswith("task.") and k not in used_sweep and isinstance(vals, list) and vals:
                head = k.split(".")[0]
                problems.append(f"sweep.{k}: no method in this experiment has a field '{head}' (task fields are "
                                f"swept as task.{head}; a method's block option as block.option, e.g. train.lr)")
    return specs


def _combinations(swept: dict[str, list]) -> list[dict]:
    """Every combination of a method's swept values (``[{}]`` without a sweep), as the settings will lay them on."""
    keys = list(swept)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(swept[k] for k in keys))]


def _check_select(select, name: str, opts: dict, swept: dict, where: str, problems: list[str],
                  settings: list[dict] | None = None) -> dict | None:
    """A method's ``select`` block (:mod:`childnet.select`), also refused where the sweep sets the same field;
    every candidate is checked under each of the method's sweep ``settings``."""
    from .select import check_select

    block = check_select(select, name, opts, where, problems, settings)
    for key in (block or {}).get("params", {}):
        for path in key.split(","):
            for k in swept:
                if k == path or path.startswith(k + ".") or k.startswith(path + "."):
                    problems.append(f"{where}.{path}: selected here and swept by sweep.{k}; drop one of the two")
    return block


#: Keys of a stage's method entry that wire it into the chain (not options of the method).
STAGE_KEYS = ("teacher", "start")


def _teacher_methods() -> list[str]:
    """Methods that learn from a teacher: the inherit family but its baseline (scratch)."""
    return [e.name for e in METHODS.entries() if e.family == "inherit" and not e.meta.get("baseline")]


def _stage_method(stage: str, i: int, raw, defaults: dict, problems: list[str],
                  default_same: bool) -> tuple[dict, dict] | None:
    """One method entry of a stage → (its method entry, its StageMethod fields), or None when unusable."""
    where = f"stages[{stage}].methods[{i}]"
    raw = {"name": raw} if isinstance(raw, str) else raw
    if not isinstance(raw, dict) or "name" not in raw:
        problems.append(f"{where}: expected a method name or a mapping with 'name' (got {raw!r})")
        return None
    raw = dict(raw)
    name = raw["name"]
    label = _label(raw.get("label", name), f"{where}.label", problems)
    wiring = {"label": f"{stage}.{label}"}
    cls = METHODS.get(name).config if name in METHODS else None
    fields = set(cls.model_fields) if cls else set()
    if "teacher" in raw:
        teacher = raw.pop("teacher")
        if name in METHODS and name not in _teacher_methods():
            problems.append(f"{where}({label}).teacher: method '{name}' has no teacher; teacher: root|parent is "
                            f"accepted by {', '.join(_teacher_methods())}")
        elif teacher not in ("root", "parent"):
            problems.append(f"{where}({label}).teacher: expected root (the original parent) or parent (the stage's "
                            f"incoming child), got {teacher!r}")
        else:
            wiring["teacher"] = teacher
    same = raw.get("child") == "same" or (default_same and "child" in fields and "child" not in raw
                                          and "child" not in defaults)
    if raw.get("child") == "same":
        raw.pop("child")
        if name in METHODS and "child" not in fields:
            problems.append(f"{where}({label}).child: method '{name}' has no child architecture to set; "
                            "child: same is accepted by methods with a 'child' field (inherit)")
            same = False
    wiring["same_child"] = bool(same)
    if "start" in raw:
        start = raw.pop("start")
        if not wiring["same_child"]:
            problems.append(f"{where}({label}).start: only a method whose child is the incoming one (child: same) "
                            f"can start from its weights; drop start or set child: same")
        elif start not in ("incoming", "fresh"):
            problems.append(f"{where}({label}).start: expected incoming (the incoming child's weights) or fresh "
                            f"(new random weights), got {start!r}")
        else:
            wiring["start"] = start
    raw["label"] = wiring["label"]
    return raw, wiring


def _stage_specs(raw: dict, defaults: dict, sweep: dict, problems: list[str]) -> tuple[list[dict], list[dict]]:
    """``stages:`` → the flat method list (labels ``<stage>.<label>``) and the stage specs, all problems at once.

    A stage's incoming child is the chosen child of the stage named by its ``from`` (default: the stage
    before it; ``root``: the parent). Unknown names and cycles are refused here, before any training.
    """
    stages = raw.pop("stages")
    if "methods" in raw:
        problems.append("methods: an experiment has either methods (every child from the parent) or stages "
                        "(a pipeline of generations), not both")
        raw.pop("methods")
    if not isinstance(stages, list) or not stages:
        problems.append(f"stages: expected a non-empty list of {{name, methods}} (got {stages!r})")
        return [], []
    entries, specs, names, where, unswept = [], [], [], [], []
    for i, st in enumerate(stages):
        if not isinstance(st, dict) or not isinstance(st.get("name"), str) or not st.get("name"):
            problems.append(f"stages[{i}]: expected a mapping with a name and methods (got {st!r:.80})")
            continue
        name = st["name"]
        unknown = sorted(set(st) - {"name", "methods", "from"})
        if unknown:
            problems.append(f"stages[{name}]: unknown field(s) {', '.join(unknown)}; a stage has name, methods, from")
        if name in names:
            problems.append(f"stages[{i}].name: the stage name '{name}' is used twice; give each stage its own name")
        if name == "root":
            problems.append(f"stages[{i}].name: 'root' names the original parent; choose another stage name")
        names.append(name)
        methods = st.get("methods")
        source = st.get("from", names[-2] if len(names) > 1 else "root")
        if not isinstance(methods, list) or not methods:
            problems.append(f"stages[{name}].methods: a stage needs at least one method (got {methods!r})")
            specs.append({"name": name, "source": source, "methods": []})  # still a stage the next one names
            continue
        wired = []
        for j, m in enumerate(methods):
            got = _stage_method(name, j, m, defaults, problems, default_same=source != "root")
            if got is not None:
                entries.append(got[0])
                unswept.append({"child"} if got[1].get("same_child") else set())
                where.append(f"stages[{name}].methods[{j}]")
                wired.append(got[1])
        specs.append({"name": name, "source": source, "methods": wired})
    problems.extend(_stage_graph_problems(specs))
    specs = [s for s in specs if s["methods"]]  # (a stage without methods is reported above)
    before = len(problems)
    flat = _method_specs(entries, defaults, sweep, problems, unswept) if entries else []
    for k in range(before, len(problems)):  # the flat index → the stage and the index within it
        problems[k] = re.sub(r"^methods\[(\d+)\]", lambda m: where[int(m.group(1))], problems[k])
    return flat, specs


def _validated_stages(stages: Any) -> bool:
    """Whether ``stages`` is the dump of validated :class:`StageSpec` (a run folder's experiment, a payload)."""
    return isinstance(stages, list) and bool(stages) and all(
        isinstance(st, dict) and "source" in st and isinstance(st.get("methods"), list)
        and all(isinstance(m, dict) and "same_child" in m for m in st["methods"]) for st in stages)


def _stage_graph_problems(specs: list[dict]) -> list[str]:
    """Unknown ``from`` references and cycles among stages."""
    known = {s["name"]: s["source"] for s in specs}
    problems = []
    for s in specs:
        if s["source"] != "root" and s["source"] not in known:
            problems.append(f"stages[{s['name']}].from: '{s['source']}' is no stage of this experiment "
                            f"(stages: {', '.join(known)}; or root for the parent)")
    names = [s["name"] for s in specs]
    if len(set(names)) < len(names) or "root" in names:
        return problems  # a name used twice (or 'root') is reported on its own; a cycle check would mislead
    for s in specs:
        seen, at = [s["name"]], s["source"]
        while at in known and at not in seen:
            seen.append(at)
            at = known[at]
        if at in seen and at == s["name"]:
            problems.append(f"stages[{s['name']}].from: the stages {' → '.join(seen + [at])} form a cycle; "
                            "each stage must derive from an earlier one or from root")
    return problems


def _folder_name_problems(labels: list[str], sweep: dict) -> list[str]:
    """Labels and sweep settings that would share a child folder, or are no folder name (see runfolder)."""
    from .runfolder import check_folder_names

    lists = {k: v for k, v in sweep.items() if isinstance(v, list) and v}
    ids = [",".join(f"{k}={v}" for k, v in zip(lists, combo)) for combo in itertools.product(*lists.values())]
    return check_folder_names(labels, ids if lists else [], lists)


def _check_sweep(sweep, problems):
    if not isinstance(sweep, dict):
        problems.append(f"sweep: expected a mapping {{field: [values]}} (got {sweep!r})")
        return {}
    for k, v in sweep.items():
        if not isinstance(v, list) or not v:
            problems.append(f"sweep.{k}: expected a non-empty list of values (got {v!r})")
    return sweep


def _check_device(evaluate: Any, problems: list[str]) -> None:
    """``evaluate.device`` is validated with the experiment (so a bad device stops before any training)."""
    if isinstance(evaluate, dict) and "device" in evaluate:
        from .evaluate.device import device_config_from

        try:
            device_config_from(evaluate)
        except ConfigError as err:
            problems.extend(err.problems)


def parse_experiment(raw: Any, source: str | None = None) -> ExperimentConfig:
    """Validate a raw mapping (from YAML) into an :class:`ExperimentConfig`, all problems at once."""
    if not isinstance(raw, dict):
        raise ConfigError(f"<root>: expected a mapping of experiment fields (got {type(raw).__name__})", source)
    raw = dict(raw)
    problems: list[str] = []
    defaults = raw.pop("defaults", {}) or {}
    if not isinstance(defaults, dict):
        problems.append(f"defaults: expected a mapping (got {defaults!r})")
        defaults = {}
    sweep = _check_sweep(raw.get("sweep", {}) or {}, problems)
    if raw.get("stages") == [] and "methods" in raw:  # the dump of an experiment without stages
        raw.pop("stages")
    if "stages" in raw and not _validated_stages(raw["stages"]):
        raw["methods"], raw["stages"] = _stage_specs(raw, defaults, sweep, problems)
    else:
        raw["methods"] = _method_specs(raw.get("methods"), defaults, sweep, problems)
    task = raw.get("task")
    if task is not None:
        task_check = dict(task) if isinstance(task, dict) else task
        for k, vals in sweep.items():
            if k.startswith("task.") and isinstance(vals, list) and vals and isinstance(task_check, dict):
                task_check[k[5:]] = vals[0]
        validate_entry(TASKS, task_check, "task", problems)
    _check_device(raw.get("evaluate"), problems)
    if isinstance(raw.get("task"), str):
        raw["task"] = {"name": raw["task"]}
    try:
        cfg = ExperimentConfig(**raw, source=source)
    except ValidationError as err:
        problems.extend(p for p in format_validation_error(err, cls=ExperimentConfig) if not p.startswith("methods"))
        cfg = None
    except TypeError:  # a key that is not a string
        problems.append(f"<root>: field names must be strings (got {sorted(map(repr, raw))})")
        cfg = None
    if cfg is not None and cfg.baseline is not None and cfg.baseline not in {m.label for m in cfg.methods}:
        problems.append(
            f"baseline: '{cfg.baseline}' is not a method label of this experiment "
            f"(labels: {', '.join(m.label for m in cfg.methods)})"
        )
    if problems:
        raise ConfigError(problems, source)
    return cfg


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, except that a key given twice in one mapping is an error (YAML keeps the last one,
    so a setting written twice would silently lose one of its values)."""

    def construct_mapping(self, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"the key {key!r} is given twice (first on line {seen[key]}); keep one",
                        key_node.start_mark)
                seen[key] = key_node.start_mark.line + 1
            except TypeError:  # an unhashable key: the base class says so
                break
        return super().construct_mapping(node, deep=deep)


def load_experiment(path: str | Path) -> ExperimentConfig:
    """Read and validate an experiment YAML file."""
    path = Path(path)
    if not path.exists():
        raise ChildnetError(f"experiment file not found: {path}")
    if path.is_dir():
        raise ChildnetError(f"expected an experiment YAML file, got a directory: {path}")
    try:
        with path.open(encoding="utf-8") as stream:  # a stream, so YAML's messages name the file
            raw = yaml.load(stream, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as err:
        raise ChildnetError(f"{path} is not valid YAML: {err}") from None
    except UnicodeDecodeError:
        raise ChildnetError(f"{path} is not a text file") from None
    if raw is None:
        raise ChildnetError(f"{path} is empty: an experiment needs at least a task, a parent and methods "
                            "(see experiments/demo.yaml)")
    return parse_experiment(raw, str(path))
