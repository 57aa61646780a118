"""Pipelines of generations: a stage's chosen child becomes the parent of the next stage.

An experiment with ``stages:`` (parsed in :mod:`childnet.config`) runs units ``(stage, method, seed)``; a
unit's label is ``<stage>.<label>``. Per seed, each stage derives from the *chosen* child of the stage it
comes ``from`` (default: the stage before; ``root``: the parent). When a stage has several methods, the one
with the best **validation** value of the experiment's metric goes on (never test: choosing on test would
leak it into every later generation); the choice is written to ``stages.json`` in the run folder and to the
next child's lineage card.

Wiring of a stage method (our choices, made so the usual chains read naturally):

- Inherit methods (kd, fitnets, hkt, scratch) in a later stage have ``child: same`` by default: the
  child is the incoming child's architecture, starting from its weights (``start: incoming``) or from new
  random weights (``start: fresh`` — the "same-size child trained alone" a chain is compared with).
- ``teacher: root`` distils from the original parent, ``teacher: parent`` (default) from the incoming child.
- Every other method (prune, ensemble, tune, search) takes the incoming child as its parent.

A unit waits only for its own seed's source stage: :class:`StageScheduler` hands the executors new units as
soon as every method of that stage finished for that seed (:func:`childnet._pool.run_processes`'s
``follow``). The unit side (:func:`stage_inputs`) loads the incoming child with :meth:`Child.load` — from the
run folder, or from the files the Ray head shipped with the payload — and wraps it as a
:class:`~childnet.parent.Parent`.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from . import runfolder as rf
from .config import ExperimentConfig, StageMethod, StageSpec
from .errors import ConfigError

__all__ = ["STAGES_FILE", "StageScheduler", "StageInputs", "check_stages", "stage_inputs", "stage_order",
           "val_key", "higher_is_better", "ancestor_entry", "stage_of", "family_lines"]

#: The run folder's record of each seed's choice per stage.
STAGES_FILE = "stages.json"

#: Metrics copied into an ancestor's entry on a lineage card.
ANCESTOR_METRICS = ("accuracy", "nll", "ece", "params", "nonzero_params", "macs", "latency_ms_b1",
                    "device_latency_s", "device_feasible")


def val_key(metric: str) -> str:
    """The record key of the validation value a stage's choice is made on."""
    return f"val_{metric}"


def higher_is_better(metric: str) -> bool:
    return metric not in ("nll", "ece")


def stage_of(cfg: ExperimentConfig, label: str) -> tuple[StageSpec, StageMethod] | None:
    """The stage and wiring of a method label (``None`` for a label outside every stage)."""
    for st in cfg.stages:
        for m in st.methods:
            if m.label == label:
                return st, m
    return None


def stage_order(cfg: ExperimentConfig) -> list[StageSpec]:
    """The stages with every stage after the one it comes from (config validation refused cycles)."""
    done, out = {"root"}, []
    todo = list(cfg.stages)
    while todo:
        st = next(s for s in todo if s.source in done)
        todo.remove(st)
        out.append(st)
        done.add(st.name)
    return out


# ---------------------------------------------------------------- static checks (before any training)


def _produced_models(cfg: ExperimentConfig) -> dict[str, set]:
    """Per stage, the model names its chosen child may have (``None`` in the set: not known before running)."""
    from .registry import METHODS, MODELS

    made: dict[str, set] = {"root": {cfg.parent.model.get("name")}}
    specs = {m.label: m for m in cfg.methods}
    for st in stage_order(cfg):
        names: set = set()
        for wired in st.methods:
            spec = specs[wired.label]
            family = METHODS.get(spec.name).family
            child = spec.options.get("child")
            if wired.same_child or family in ("prune", "tune"):
                names |= made[st.source]
            elif family == "inherit":
                names.add((child or {}).get("name") if isinstance(child, dict) else child)
            elif family == "ensemble":
                names.add("ensemble")
            else:  # a search: the child model it registered (``child_model``), else its ENAS space's
                model = METHODS.get(spec.name).meta.get("child_model")
                if callable(model):
                    model = model(spec.options)
                if model is None:
                    space = spec.options.get("space", "macro")
                    model = f"enas_{space}" if f"enas_{space}" in MODELS else None
                names.add(model)
        made[st.name] = names
    return made


def _takes_no_ensemble(method: str, family: str | None) -> str | None:
    """Why ``method`` cannot derive from an ensemble child (None: it can — kd, scratch, the prune family)."""
    if family == "tune":
        return "tune methods replace the incoming network's classifier `head`, which an ensemble does not have"
    if family == "ensemble":
        return "an ensemble cannot be a member of an ensemble"
    if method in ("hkt", "fitnets"):
        return f"{method} reads the incoming network's own features and head, which an ensemble does not have"
    return None


def _first_layer(cfg: ExperimentConfig, model_name: str) -> str:
    """`` (its first layer 'x' is a Conv2d)`` for the root parent's network, to name it in a message; else ''."""
    if cfg.parent.model.get("name") != model_name:
        return ""
    try:
        import torch

        from .models.base import build_model
        from .tasks.base import load_task

        task = load_task(cfg.task)
        with torch.device("meta"):
            model = build_model(cfg.parent.model, task.input_shape, task.num_classes)
        for name, mod in model.named_modules():
            if isinstance(mod, (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Linear)):
                return f" (its first layer '{name}' is a {type(mod).__name__})"
    except Exception:  # naming the layer is a courtesy; the sentence stands without it
        return ""
    return ""


def check_stages(cfg: ExperimentConfig) -> None:
    """Refuse, before any training, a stage method that cannot take the child coming into it.

    Structured pruning (``structure: neurons|channels``) needs a model that declares prunable units; the
    incoming child's model is known from the stages before (an ENAS child, an ensemble: not shrinkable).

    Raises:
        ConfigError: one sentence per problem, naming the stage, the field and the incoming model's layer.
    """
    if not cfg.stages:
        return
    from .models.base import shrinkable_models

    from .registry import METHODS

    known = shrinkable_models()
    made = _produced_models(cfg)
    specs = {m.label: m for m in cfg.methods}
    problems = []
    for st in cfg.stages:
        for i, wired in enumerate(st.methods):
            spec = specs[wired.label]
            why = _takes_no_ensemble(spec.name, METHODS.get(spec.name).family)
            if why and wired.teacher == "root" and spec.options.get("child") and not wired.same_child:
                why = None  # hkt/fitnets taught by the root parent into a child of their own: no ensemble involved
            if made[st.source] == {"ensemble"} and why:  # every method of the source stage makes an ensemble
                problems.append(f"stages[{st.name}].methods[{i}]({spec.name}): the child of stage {st.source} is an "
                                f"ensemble, and {why}; put {spec.name} in a stage before the ensemble, or derive "
                                f"from another stage (from: <stage>)")
            structure = spec.options.get("structure")
            if structure in (None, "weights"):
                continue
            for name in sorted(n for n in made[st.source] if n is not None):
                where = f"stages[{st.name}].methods[{i}]({spec.name}).structure"
                came = "the parent" if st.source == "root" else f"the child of stage {st.source}"
                if name not in known:
                    problems.append(
                        f"{where}: {structure} cannot be removed from {came}, a '{name}' model"
                        f"{_first_layer(cfg, name)}, whose layers declare no prunable units; childnet shrinks "
                        f"{', '.join(f'{k} ({v})' for k, v in known.items())} — use structure: weights here")
                elif known[name] != structure:
                    problems.append(f"{where}: {came} is a '{name}' model, whose layers have {known[name]}, not "
                                    f"{structure}; use structure: {known[name]} or weights")
    if problems:
        raise ConfigError(problems, cfg.source)


# ---------------------------------------------------------------- main process: choices and scheduling


def choose(cfg: ExperimentConfig, stage: StageSpec, records: dict[str, dict], setting: str, seed: int) -> dict:
    """The choice of ``stage`` for one seed from the records of its methods: the best validation value.

    Returns ``{"chosen": label | None, "by": key, "values": {label: value}, "failed": [labels]}``.
    """
    key, higher = val_key(cfg.metric), higher_is_better(cfg.metric)
    values, failed = {}, []
    for label in stage.labels():
        rec = records.get(f"{setting}/{label}/seed{seed}")
        if rec is None or rec.get("status") != "ok":
            failed.append(label)
            continue
        v = (rec.get("metrics") or {}).get(key)
        values[label] = v if isinstance(v, (int, float)) else float("nan")
    ranked = [lab for lab in stage.labels() if lab in values and values[lab] == values[lab]]
    if not ranked:
        ranked = [lab for lab in stage.labels() if lab in values]
    best = None
    for lab in ranked:
        if best is None or (values[lab] > values[best] if higher else values[lab] < values[best]):
            best = lab
    return {"chosen": best, "by": key, "values": values, "failed": failed}


@dataclass
class StageScheduler:
    """Which units of a pipeline may start: each waits only for its own seed's source stage.

    Args:
        cfg: the experiment (with ``stages``).
        out: the run folder (``stages.json`` is written there).
        finished: the records of units finished before this run (resume).
    """

    cfg: ExperimentConfig
    out: Path
    finished: list[dict]
    records: dict[str, dict] = field(default_factory=dict)
    waiting: list = field(default_factory=list)
    choices: dict = field(default_factory=dict)

    def __post_init__(self):
        self.records = {r["unit"]: r for r in self.finished}
        self.stages = {st.name: st for st in self.cfg.stages}

    def _stage(self, label: str) -> StageSpec:
        return stage_of(self.cfg, label)[0]

    def _settled(self, setting: str, stage: str, seed: int) -> dict | None:
        """The choice of ``stage`` for this seed once each of its methods has a record, else None."""
        st = self.stages[stage]
        if any(f"{setting}/{lab}/seed{seed}" not in self.records for lab in st.labels()):
            return None
        choice = choose(self.cfg, st, self.records, setting, seed)
        self.choices.setdefault(setting, {}).setdefault(f"seed{seed}", {})[stage] = choice
        return choice

    def incoming(self, unit) -> dict | None:
        """What a unit derives from: ``None`` (the root parent) or the chosen child of its source stage."""
        st = self._stage(unit.label)
        if st.source == "root":
            return None
        choice = self._settled(unit.setting, st.source, unit.seed)
        if choice is None:
            return {"pending": True}
        if choice["chosen"] is None:
            return {"blocked": f"no method of stage {st.source} succeeded for seed {unit.seed} "
                               f"({', '.join(choice['failed'])} failed); fix it and run the same command again"}
        rec = self.records[f"{unit.setting}/{choice['chosen']}/seed{unit.seed}"]
        folder = rf.child_dir(".", rec["setting"], rec["label"], rec["seed"])  # the unit's own folder, never a
        return {"stage": st.source, "label": choice["chosen"], "child_dir": str(folder),  # path read from a line
                "choice": {k: choice[k] for k in ("by", "values", "failed")}}

    def split(self, units: list) -> tuple[list, list]:
        """``(ready, blocked)`` among ``units`` and the units kept waiting; ready ones carry their incoming."""
        ready, blocked, wait = [], [], []
        for u in units + self.waiting:
            inc = self.incoming(u)
            if inc is not None and inc.get("pending"):
                wait.append(u)
            elif inc is not None and inc.get("blocked"):
                blocked.append((u, inc["blocked"]))
            else:
                ready.append((u, inc))
        self.waiting = wait
        self.write()
        return ready, blocked

    def after(self, rec: dict) -> tuple[list, list]:
        """Note a finished unit; return the units it releases: ``(ready, blocked)``."""
        self.records[rec["unit"]] = rec
        return self.split([])

    def write(self) -> None:
        """``stages.json``: the stages and each seed's choice (rewritten as choices are made)."""
        for setting in {r.get("setting") for r in self.records.values()}:
            for st in self.cfg.stages:
                for seed in range(self.cfg.seeds):
                    self._settled(setting, st.name, seed)
        doc = {"stages": [st.model_dump() for st in self.cfg.stages], "metric": val_key(self.cfg.metric),
               "higher_is_better": higher_is_better(self.cfg.metric), "choices": self.choices}
        try:
            rf.write_atomic(self.out / STAGES_FILE, json.dumps(doc, indent=2, default=str))
        except OSError as err:
            raise rf.disk_error(err, f"{self.out / STAGES_FILE}") from None


def blocked_record(unit, method: str, reason: str) -> dict:
    """The record of a unit that cannot run because its source stage has no child for its seed."""
    return {"unit": unit.key, "setting": unit.setting, "overrides": {}, "method": method, "label": unit.label,
            "seed": unit.seed, "status": "failed", "error": reason, "error_kind": "upstream", "wall_time_s": 0.0}


# ---------------------------------------------------------------- unit side


def ancestor_entry(generation: int, stage: str, label: str, method: str, fingerprint: str, architecture: dict,
                   metrics: dict, **more) -> dict:
    """One ancestor on a lineage card."""
    return {"generation": generation, "stage": stage, "label": label, "method": method,
            "fingerprint": fingerprint, "architecture": architecture,
            "metrics": {k: metrics[k] for k in (*ANCESTOR_METRICS, *[k for k in metrics if k.startswith("val_")])
                        if k in metrics}, **more}


def _root_entry(root) -> dict:
    return ancestor_entry(0, "root", "parent", "parent", root.fingerprint, root.spec, root.metrics,
                          source=root.source)


@dataclass
class StageInputs:
    """What a stage unit derives from, and how its child is finished (see :func:`stage_inputs`)."""

    parent: object
    config: object
    ancestors: list
    wiring: dict
    metric: str

    def finish(self, child, task, device: str) -> None:
        """Validation value of the metric (the stage's choice) and the ancestors, on the child's card."""
        from .evaluate import evaluate_model

        val = evaluate_model(child.model, task, split="val", latency=False, device=device)
        if self.metric in val:
            child.lineage.metrics[val_key(self.metric)] = val[self.metric]
        child.lineage.ancestors = self.ancestors
        child.lineage.extra["stage"] = self.wiring
        _record_layout(child)


def _record_layout(child) -> None:
    """A child built on a physically shrunk incoming child (depgraph) has shapes its architecture spec alone does
    not rebuild: record them (as depgraph does) so that ``Child.load`` of this generation works alone."""
    if "shrunk_layout" in child.lineage.extra:
        return
    from .child import layout_against_spec
    from .models.base import model_spec

    found = layout_against_spec(child.model, child.lineage.architecture or model_spec(child.model))
    if found is not None:
        child.lineage.extra["shrunk_layout"] = found


def _load_incoming(payload: dict, device: str):
    from .child import Child

    inc = payload["incoming"]
    files = payload.get("incoming_files")
    if not files:
        return Child.load(Path(payload["out"]) / inc["child_dir"], device=device)
    tmp = Path(tempfile.mkdtemp(prefix="childnet-incoming-"))
    try:
        for name, data in files.items():
            (tmp / name).write_bytes(data)
        return Child.load(tmp, device=device)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _as_parent(child, task, source: str):
    from .child import state_fingerprint
    from .parent import Parent

    model = child.model.eval()
    frozen = tuple(n for n, p in model.named_parameters() if not p.requires_grad)  # its builder's: kept frozen
    for p in model.parameters():
        p.requires_grad_(False)
    return Parent(model, task, dict(child.lineage.architecture), state_fingerprint(model), source,
                  dict(child.lineage.metrics), list(child.lineage.history), frozen=frozen)


def stage_inputs(payload: dict, task, root, mcfg, ctx) -> StageInputs:
    """The parent, config and ancestors of one stage unit (called by :func:`childnet._unit.run_unit`).

    The incoming child (the chosen child of the source stage for this seed) becomes the method's parent,
    or — for ``teacher: root`` — the child's starting point while the root parent teaches.
    """
    from .config import validate_entry
    from .registry import METHODS

    st, wired = StageSpec.model_validate(payload["stage"]["spec"]), StageMethod.model_validate(payload["stage"]["method"])
    name, label = payload["method"], payload["label"]
    wiring = {"name": st.name, "label": label, "from": st.source, "teacher": wired.teacher,
              "same_child": wired.same_child, "start": wired.start if wired.same_child else None}
    if st.source == "root":
        ancestors, incoming = [_root_entry(root)], root
        wiring["generation"] = 1
    else:
        child = _load_incoming(payload, ctx.device)
        inc = payload["incoming"]
        stage_card = child.lineage.extra.get("stage") or {}
        generation = int(stage_card.get("generation", 1))
        incoming = _as_parent(child, task, f"stage {inc['stage']} ({inc['label']})")
        ancestors = list(child.lineage.ancestors) + [ancestor_entry(
            generation, inc["stage"], inc["label"], child.lineage.method, incoming.fingerprint,
            child.lineage.architecture, child.lineage.metrics, seed=child.lineage.seed, chosen=inc.get("choice"))]
        wiring["generation"] = generation + 1
    if wired.same_child:
        arch = {k: v for k, v in incoming.spec.items() if k not in ("input_shape", "num_classes")}
        problems: list[str] = []
        opts = {**mcfg.model_dump(), "child": arch}
        res = validate_entry(METHODS, {"name": name, **opts}, f"stages[{st.name}]({label})", problems)
        if problems:
            raise ConfigError(problems)
        mcfg = res[1]
        ctx.extra["start_frozen"] = incoming.frozen
        if wired.start == "incoming":
            ctx.extra["start_model"] = incoming.model
        elif st.source != "root" and child.lineage.extra.get("shrunk_layout"):
            # A physically shrunk child (depgraph): its architecture spec alone rebuilds the unshrunk model, so
            # the fresh child is the incoming model with every layer re-initialised (the same shapes).
            ctx.extra["start_model"] = fresh_copy(incoming.model, ctx.seed)
    parent = root if wired.teacher == "root" else incoming
    return StageInputs(parent, mcfg, ancestors, wiring, payload["metric"])


def fresh_copy(model, seed: int):
    """``model``'s architecture (shapes included) with new random weights: every module's ``reset_parameters``
    under ``seed``. Refuses a model with parameters no ``reset_parameters`` covers (they would keep the
    incoming weights and the child would not be fresh)."""
    import copy

    import torch

    fresh = copy.deepcopy(model)
    covered = set()
    torch.manual_seed(seed)
    for module in fresh.modules():
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()
            covered.update(id(p) for p in module.parameters(recurse=False))
    left = [n for n, p in fresh.named_parameters() if id(p) not in covered]
    if left:
        raise ConfigError(f"start: fresh cannot re-initialise the parameter {left[0]} of the incoming child "
                          f"(its module has no reset_parameters); use start: incoming")
    return fresh


def incoming_files(out: Path, incoming: dict | None) -> dict[str, bytes]:
    """The files of an incoming child folder (the Ray head ships them: workers share no disk)."""
    if not incoming:
        return {}
    folder = Path(out) / incoming["child_dir"]
    return {f.name: f.read_bytes() for f in sorted(folder.iterdir()) if f.is_file()}


def _metric_text(metrics: dict) -> str:
    parts = []
    for key, fmt in (("accuracy", "acc {:.4f}"), ("val_accuracy", "val {:.4f}"), ("params", "{:,} params"),
                     ("macs", "{:,} MACs"), ("latency_ms_b1", "{:.3g} ms")):
        v = metrics.get(key)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and abs(v) < 1e300 and v == v:
            parts.append(fmt.format(int(v) if key in ("params", "macs") else v))
    return ", ".join(parts)


def shrunk_text(extra: dict) -> str:
    """``shrunk by depgraph: a 32→15, b 32→17`` for a child Torch-Pruning shrank (its architecture spec is still
    the parent's; the new widths are in ``extra.shrink``), else ``""``."""
    shrink = extra.get("shrink") if isinstance(extra.get("shrink"), dict) else {}
    groups = [g for g in (shrink.get("groups") if isinstance(shrink.get("groups"), list) else [])
              if isinstance(g, dict) and g.get("before") != g.get("after")]
    if not groups:
        return ""
    shown = ", ".join(f"{g.get('layer')} {g.get('before')}→{g.get('after')}" for g in groups[:8])
    return f"shrunk by depgraph: {shown}{', …' if len(groups) > 8 else ''}"


def family_lines(card: dict) -> list[str]:
    """One line per generation of a lineage card, root first and the child itself last (``childnet show``).

    A card is a file: a field of the wrong type (a hand edit) is shown as missing, never a traceback."""
    def obj(x) -> dict:
        return x if isinstance(x, dict) else {}

    ancestors = [a for a in card.get("ancestors") or [] if isinstance(a, dict)] \
        if isinstance(card.get("ancestors"), list) else []
    if not ancestors and card.get("parent"):
        p = obj(card["parent"])
        ancestors = [{"generation": 0, "stage": "root", "label": "parent", "method": "parent",
                      "fingerprint": p.get("fingerprint"), "architecture": p.get("architecture"),
                      "metrics": p.get("metrics")}]
    extra = obj(card.get("extra"))
    stage = obj(extra.get("stage"))
    me = {"generation": stage.get("generation", len(ancestors)), "stage": stage.get("name", "—"),
          "label": stage.get("label", card.get("method")), "method": card.get("method"),
          "architecture": card.get("architecture"), "metrics": card.get("metrics"), "fingerprint": "this child",
          "shrunk": shrunk_text(extra)}
    lines = []
    for a in [*ancestors, me]:
        arch = obj(a.get("architecture"))
        shape = ", ".join(f"{k}={v}" for k, v in arch.items() if k not in ("name", "input_shape", "num_classes"))
        chosen = obj(a.get("chosen"))
        values = chosen.get("values") if isinstance(chosen.get("values"), (dict, list)) else {}
        among = f"; chosen on {chosen.get('by')} among {len(values)}" if len(values) > 1 else ""
        shrunk = f" {a['shrunk']}" if a.get("shrunk") else ""
        lines.append(f"gen {a.get('generation')} [{a.get('stage')}] {a.get('label')} ({a.get('method')}) — "
                     f"{arch.get('name', '?')}({shape}){shrunk} — {_metric_text(obj(a.get('metrics')))} "
                     f"— {a.get('fingerprint')}{among}")
    return lines


Follow = Callable[[dict], list]
