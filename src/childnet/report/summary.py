"""The statistics of a run folder as plain data: :func:`summarize` and :func:`export_results`.

Everything the report shows is computed here, once, from the run folder alone; the tables,
plots, the CLI and the benchmarks only read the returned dictionaries.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from ..runfolder import experiment_identity, read_experiment
from ._runfolder import RunFolder, label_order, load_run_folder, settings_with_overrides
from .stats import MIN_WILCOXON_PAIRS, mean_std, paired_differences, paired_t_test, wilcoxon_signed_rank

__all__ = ["HIGHER_IS_BETTER", "FAMILY_BASELINES", "degenerate_reason", "summarize", "summarize_run",
           "export_results", "selection_summary", "train_compute"]

#: Direction of each primary metric (``ExperimentConfig.metric``).
HIGHER_IS_BETTER = {"accuracy": True, "nll": False, "ece": False}


def _finite_number(value: Any) -> bool:
    try:  # an integer too large for a float (10**400 in a hand-edited line) is not a number we can show
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(float(value))
    except OverflowError:
        return False


def _unit_failure(unit: dict, metric: str) -> str | None:
    """Why ``unit`` does not count as a successful seed, or ``None`` if it does."""
    if unit.get("status") != "ok":
        return str(unit.get("error") or f"status {unit.get('status')!r}")
    value = (unit.get("metrics") or {}).get(metric)
    if not _finite_number(value):
        return f"finished, but its {metric} is {value!r} (not a finite number)"
    return None


def _seed_of(unit: dict, fallback: int) -> int:
    seed = unit.get("seed")
    return seed if isinstance(seed, int) and not isinstance(seed, bool) else fallback


def _metric_means(units: list[dict]) -> dict[str, float]:
    """Mean over ``units`` of every finite numeric metric key (params, macs, latency, extras…)."""
    sums: dict[str, list[float]] = {}
    for unit in units:
        for key, value in (unit.get("metrics") or {}).items():
            if _finite_number(value):
                sums.setdefault(key, []).append(float(value))
    return {key: sum(vals) / len(vals) for key, vals in sums.items()}


def _picks(units: list[dict]) -> dict[str, list]:
    """Per ``select`` field, the value each unit picked on validation (units in seed order).

    Means of picks hide what was chosen (a mean lr of 1.6e-4 is no candidate), so the report keeps them per seed.
    A unit's record holds every pick (``select_picked``); a record written before it did holds the numeric picks
    only, as ``select_<field>`` metrics. A block or list value is kept as its JSON text.
    """
    def picked(unit: dict) -> dict:
        found = unit.get("select_picked")
        if isinstance(found, dict):
            return {k: v if v is None or isinstance(v, (bool, int, float, str)) else json.dumps(v, sort_keys=True)
                    for k, v in found.items()}
        return {key[len("select_"):]: v for key, v in (unit.get("metrics") or {}).items()
                if key.startswith("select_") and key != "select_candidates" and not key.startswith("select_val_")}

    per_unit = [picked(u) for u in units]
    fields = sorted({field for p in per_unit for field in p})
    return {field: [p.get(field) for p in per_unit] for field in fields}


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def format_picks(picks: dict[str, list]) -> str:
    """``{"train.lr": [2e-4, 1e-4, 2e-4]}`` → ``"train.lr 0.0001 ×1, 0.0002 ×2"``: how many seeds picked each value."""
    parts = []
    for field, values in picks.items():
        counts: dict = {}
        for value in values:
            counts[value] = counts.get(value, 0) + 1
        order = sorted(counts, key=lambda v: (not _number(v), v if _number(v) else str(v)))
        parts.append(f"{field} " + ", ".join(f"{v:g} ×{counts[v]}" if _number(v) else f"{v} ×{counts[v]}"
                                             for v in order))
    return "; ".join(parts)


def _method_entry(label: str, name: str, units: list[dict], metric: str, expected_seeds: int) -> dict:
    ok, failures = [], []
    for unit in sorted(units, key=lambda u: _seed_of(u, -1)):
        reason = _unit_failure(unit, metric)
        if reason is None:
            ok.append(unit)
        else:
            failures.append({"seed": unit.get("seed"), "unit": unit.get("unit"), "error": reason})
    by_seed = {_seed_of(u, i): float(u["metrics"][metric]) for i, u in enumerate(ok)}
    seeds = sorted(by_seed)
    mean, std = mean_std([by_seed[s] for s in seeds])
    seen = {u.get("seed") for u in units}
    walls = [u["wall_time_s"] for u in ok if _finite_number(u.get("wall_time_s"))]
    return {
        "label": label,
        "method": name,
        "n_ok": len(ok),
        "n_failed": len(failures),
        "n_missing": sum(1 for s in range(expected_seeds) if s not in seen),
        "seeds": seeds,
        "values": [by_seed[s] for s in seeds],
        "mean": mean,
        "std": std,
        "metrics": _metric_means(ok),
        "picks": _picks(ok),
        "wall_time_s": sum(walls) / len(walls) if walls else None,
        "failures": failures,
        "_by_seed": by_seed,
        "_units": {_seed_of(u, i): u for i, u in enumerate(ok)},
    }


#: The baseline of each family when the experiment names none: the method a family's claim is measured against.
FAMILY_BASELINES = {"inherit": "scratch", "prune": "oneshot", "ensemble": "independent", "search": "random_search",
                    "tune": "vanilla"}


def _family(method: str) -> str | None:
    try:
        from ..registry import METHODS

        return METHODS.get(method).family
    except Exception:  # an unknown or unloadable method: no family, no family baseline
        return None


def _baseline_for(entry: dict, methods: dict[str, dict], named: str | None,
                  stages: dict[str, str] | None = None) -> str | None:
    """The experiment's baseline when it names one, else the family's baseline method if it ran here — in a
    pipeline, in the same stage (a child of another generation starts from elsewhere: no fair pair)."""
    if named:
        return named
    want = FAMILY_BASELINES.get(entry.get("family") or "")
    stage = (stages or {}).get(entry["label"])
    return next((label for label, e in methods.items() if e["method"] == want
                 and (stages or {}).get(label) == stage), None)


def _compare_to_baseline(methods: dict[str, dict], baseline: str | None,
                         stages: dict[str, str] | None = None) -> str | None:
    """Fill ``baseline``/``delta``/``p_value`` (and ``wilcoxon_p`` from 6 pairs) in place; return a note on gaps.

    Each method is compared with ``baseline`` when the experiment names one, else with the baseline of
    its own family (:data:`FAMILY_BASELINES`) when that method is in the same setting (and, in a pipeline,
    the same stage: ``stages`` maps a label to its stage).
    """
    notes = []
    if baseline is not None and baseline not in methods:
        notes.append(f"baseline '{baseline}' has no results in this setting: no Δ and no significance test")
    for label, entry in methods.items():
        ref = _baseline_for(entry, methods, baseline, stages)
        entry["baseline"] = ref
        entry["is_baseline"] = ref == label or (baseline is None and any(
            _baseline_for(e, methods, None, stages) == label for e in methods.values()))
        entry.update(delta=None, n_pairs=0, p_value=None)
        base = methods.get(ref) if ref else None
        if base is None or ref == label:
            continue
        if base["n_ok"] == 0:
            notes.append(f"baseline '{ref}' has no successful seed in this setting: no Δ for {label}")
            continue
        seeds, diffs = paired_differences(entry["_by_seed"], base["_by_seed"])
        entry["n_pairs"] = len(seeds)
        entry["delta"] = float(diffs.mean()) if len(seeds) else None
        entry["p_value"] = paired_t_test(diffs)
        if len(seeds) >= MIN_WILCOXON_PAIRS:
            entry["wilcoxon_p"] = wilcoxon_signed_rank(diffs)
    if baseline is None and not any(e["baseline"] for e in methods.values()):
        notes.append("no baseline set in the experiment and no family baseline (scratch, oneshot, independent, "
                     "random_search, vanilla) ran: no Δ and no significance test")
    return "; ".join(dict.fromkeys(notes)) or None


def _mark_best(methods: dict[str, dict], higher: bool) -> None:
    """``best_in_family``: the method with the best mean of the primary metric within its family."""
    best: dict[str, str] = {}
    for label, e in methods.items():
        e["best_in_family"] = False
        if e["mean"] is None:
            continue
        fam = e.get("family") or "other"
        cur = methods.get(best.get(fam, ""))
        if cur is None or (e["mean"] > cur["mean"] if higher else e["mean"] < cur["mean"]):
            best[fam] = label
    for label in best.values():
        methods[label]["best_in_family"] = True


#: Accuracy within this margin of always predicting the most frequent class counts as "at chance".
CHANCE_MARGIN = 0.01


def degenerate_reason(metrics: dict) -> str | None:
    """Why a model's test metrics look degenerate (one predicted class, or no better than the majority class)."""
    if metrics.get("predicted_classes") == 1:
        return "predicts a single class for every test example"
    acc, majority = metrics.get("accuracy"), metrics.get("majority_accuracy")
    if _finite_number(acc) and _finite_number(majority) and acc <= majority + CHANCE_MARGIN:
        return (f"scores at chance (accuracy {acc:.4f}, always predicting the most frequent class gives "
                f"{majority:.4f})")
    return None


def _warnings(setting_id: str, parent: dict | None, methods: dict[str, dict], units: list[dict]) -> list[str]:
    hint = ("check the input scale (task.standardize for arrays), the labels and the learning rate")
    out = []
    # a pretrained parent with a fresh head (the tune family's MiniLM, the only model with pretrained weights here)
    # scores at chance by construction; a model that ships a trained head would need its own rule
    reason = None if (parent or {}).get("source") == "pretrained" else degenerate_reason((parent or {}).get("metrics") or {})
    # the search family builds its children from scratch (the parent only names the task): nothing to inherit
    if reason and methods and all(e.get("family") == "search" for e in methods.values()):
        reason = None
    if reason:
        out.append(f"the parent {reason}: its children inherit nothing useful — {hint}")
    for label in methods:
        bad = sorted({u.get("seed") for u in units if u.get("status") == "ok"
                      and str(u.get("label", u.get("method"))) == label and degenerate_reason(u.get("metrics") or {})})
        if bad:
            reason = next(degenerate_reason(u["metrics"]) for u in units if u.get("status") == "ok"
                          and str(u.get("label", u.get("method"))) == label and degenerate_reason(u["metrics"]))
            where = "" if setting_id == "default" else f" ({setting_id})"
            out.append(f"{label}{where} seed(s) {bad}: the child {reason} — {hint}")
    return out


#: Short of every seed, a warning needs this share of the picks on one edge, of at least EDGE_MIN_SEEDS seeds,
#: on a grid of at least EDGE_MIN_VALUES values: on two values, 4 of 5 seeds on one side is a coin flip's
#: outcome 37.5 % of the time, no hint at all.
EDGE_SHARE = 0.8
EDGE_MIN_SEEDS = 5
EDGE_MIN_VALUES = 3


def _edge_warnings(setting_id: str, methods: dict[str, dict], selected: dict[str, dict]) -> list[str]:
    """A grid whose edge every seed picked (or 80 % of 5+ seeds, on a grid of 3+ values): the best value may lie
    outside it.

    Only once every expected seed has finished (at least 2): a partial run's first picks are no pattern yet.
    """
    out = []
    for label, sel in selected.items():
        entry = methods.get(label) or {}
        picks = entry.get("picks") or {}
        if sel.get("strategy") != "grid" or entry.get("n_missing", 1) or entry.get("n_ok", 0) < 2:
            continue
        for field, grid in sel["fields"].items():
            values = picks.get(field)
            numbers = [v for v in grid if _finite_number(v)] if isinstance(grid, list) else []
            if len(numbers) < 2 or len(numbers) != len(grid) or not values:
                continue
            where = "" if setting_id == "default" else f" ({setting_id})"
            for edge, side in ((max(numbers), "top"), (min(numbers), "bottom")):
                n = sum(v == edge for v in values)
                if n == len(values):
                    out.append(f"{label}{where}: every seed ({n}) picked {field} = {edge:g}, the {side} of its grid "
                               f"{grid}: the best value may lie beyond it — extend the grid")
                elif len(values) >= EDGE_MIN_SEEDS and len(numbers) >= EDGE_MIN_VALUES and n >= EDGE_SHARE * len(values):
                    out.append(f"{label}{where}: {n} of {len(values)} seeds picked {field} = {edge:g}, the {side} of its "
                               f"grid {grid}: the best value may lie beyond it for most seeds — consider extending the grid")
    return out


def train_compute(unit: dict, run_path: Path | None = None) -> float | None:
    """Training compute of one child in forward MACs × training examples, search and selection included.

    From what the methods record: an ensemble's ledger (``train_macs`` counts 3 × forward MACs per
    example for the backward pass: divided by 3 here), a searched child's ``extra.compute`` in its
    child.json (search training and scoring forwards, plus retraining), else the child's MACs × the
    examples its fit history saw. ``None`` when none of these is recorded. A child picked among
    candidates (:mod:`childnet.select`) counts every candidate: the pick's compute × the candidates'
    training examples / the pick's (× their number when the examples are not recorded).
    """
    value = _one_child_compute(unit, run_path)
    n = (unit.get("metrics") or {}).get("select_candidates")
    if value is None or not _finite_number(n):
        return value
    return value * _selection_factor(unit, run_path, int(n))


def _card_extra(unit: dict, run_path: Path | None) -> dict:
    """``lineage.extra`` of a unit's child card, or ``{}`` when there is no readable card."""
    if run_path is None or not isinstance(unit.get("child_dir"), str):
        return {}
    folder = (run_path / unit["child_dir"]).resolve()
    if not folder.is_relative_to(run_path.resolve()):  # a line naming a folder outside the run: not read
        return {}
    from ..child import read_card
    from ..errors import ChildnetError

    try:
        card = read_card(folder)
    except ChildnetError:
        return {}
    extra = card.get("extra") if isinstance(card, dict) else None
    return extra if isinstance(extra, dict) else {}


def _selection_factor(unit: dict, run_path: Path | None, n: int) -> float:
    try:
        sel = _card_extra(unit, run_path)["select"]
        samples = [c["train_samples"] for c in sel["candidates"]]
        pick = samples[sel["pick"]]
        if all(isinstance(x, int) for x in samples) and pick > 0:
            return sum(samples) / pick
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        pass
    return float(n)


def _one_child_compute(unit: dict, run_path: Path | None) -> float | None:
    metrics = unit.get("metrics") or {}
    if _finite_number(metrics.get("train_macs")) and "train_samples" in metrics:
        return float(metrics["train_macs"]) / 3
    compute = _card_extra(unit, run_path).get("compute")
    if isinstance(compute, dict):
        parts = [v for k, v in compute.items() if k.endswith("_macs") and _finite_number(v)]
        if parts:
            return float(sum(parts))
    samples = [r.get("samples") for r in unit.get("history") or [] if isinstance(r, dict)]
    if samples and all(isinstance(x, int) for x in samples) and _finite_number(metrics.get("macs")):
        return float(metrics["macs"]) * sum(samples)
    return None


def _sweep_field(sweep: dict) -> str | None:
    """The sweep's field when there is exactly one and all its values are numbers, else ``None``."""
    if not isinstance(sweep, dict) or len(sweep) != 1:
        return None
    key, values = next(iter(sweep.items()))
    if isinstance(values, list) and values and all(_finite_number(v) for v in values):
        return key
    return None


def _with_compute(unit: dict, run_path: Path) -> dict:
    if unit.get("status") != "ok" or not isinstance(unit.get("metrics"), dict):
        return unit
    value = train_compute(unit, run_path)
    return unit if value is None else dict(unit, metrics={**unit["metrics"], "train_compute": value})


def _parent_info(units: list[dict]) -> dict | None:
    for unit in units:
        if isinstance(unit.get("parent"), dict):
            return {k: v for k, v in unit["parent"].items() if k != "path"}  # machine-specific cache path
    return None


def stage_labels(exp: dict) -> dict[str, str]:
    """``{method label: stage name}`` of a pipeline's experiment (empty without ``stages``)."""
    out = {}
    for st in exp.get("stages") or []:
        if isinstance(st, dict):
            out.update({str(m.get("label")): str(st.get("name")) for m in st.get("methods") or [] if isinstance(m, dict)})
    return out


def summarize_run(run: RunFolder) -> dict[str, Any]:
    """:func:`summarize` on an already loaded :class:`RunFolder`."""
    exp = run.experiment
    metric = str(exp.get("metric", "accuracy"))
    baseline = exp.get("baseline")
    expected_seeds = int(exp.get("seeds", 0) or 0)
    names = {str(m.get("label", m.get("name"))): str(m.get("name")) for m in exp.get("methods", [])}
    higher = HIGHER_IS_BETTER.get(metric, True)
    warnings: list[str] = []
    labels = label_order(run)
    settings: dict[str, dict] = {}
    failures: list[dict] = []
    for sid, overrides in settings_with_overrides(run).items():
        units = [_with_compute(u, run.path) for u in run.units if str(u.get("setting", "default")) == sid]
        methods = {}
        for label in labels:
            mine = [u for u in units if str(u.get("label", u.get("method"))) == label]
            name = names.get(label) or (str(mine[0].get("method")) if mine else label)
            methods[label] = _method_entry(label, name, mine, metric, expected_seeds)
            methods[label]["family"] = _family(name)
            failures += [dict(f, setting=sid, label=label) for f in methods[label]["failures"]]
        note = _compare_to_baseline(methods, baseline, stage_labels(exp))
        _mark_best(methods, higher)
        for entry in methods.values():
            del entry["_by_seed"]
            per_seed = {seed: card_diagnostics(_card_extra(unit, run.path)) for seed, unit in entry.pop("_units").items()}
            entry["diagnostics"] = {str(seed): d for seed, d in sorted(per_seed.items()) if d}
        parent = _parent_info(units)
        setting_warnings = _warnings(sid, parent, methods, units) + _edge_warnings(sid, methods, selection_summary(exp))
        warnings += [w for w in setting_warnings if w not in warnings]
        settings[sid] = {"id": sid, "overrides": overrides, "parent": parent,
                         "baseline_note": note, "methods": methods, "warnings": setting_warnings}
    return {
        "name": str(exp.get("name", run.path.name)),
        "run_dir": str(run.path),
        "task": exp.get("task"),
        "parent_spec": exp.get("parent"),
        "parent": _parent_info(run.units),
        "metric": metric,
        "higher_is_better": higher,
        "warnings": warnings,
        "baseline": baseline,
        "seeds": expected_seeds,
        "sweep": exp.get("sweep") or {},
        "sweep_field": _sweep_field(exp.get("sweep") or {}),
        "settings": settings,
        "failures": failures,
        "n_units": len(run.units),
        "skipped_lines": run.skipped_lines,
        "select": selection_summary(exp),
    }


def selection_summary(experiment: dict) -> dict[str, dict]:
    """Per method label with a ``select`` block: its strategy, fields and candidates per seed (childnet.select)."""
    out = {}
    for m in experiment.get("methods", []):
        block = m.get("select") if isinstance(m, dict) else None
        if not isinstance(block, dict) or not isinstance(block.get("params"), dict):
            continue
        params = block["params"]
        if block.get("strategy") == "optuna":
            n = block.get("trials")
        else:
            n = math.prod(len(v) if isinstance(v, list) else 1 for v in params.values())
        out[str(m.get("label", m.get("name")))] = {"strategy": block.get("strategy", "grid"), "candidates": n,
                                                   "fields": params}
    return out


def summarize(run_dir: str | Path) -> dict[str, Any]:
    """The statistics of a run folder as plain, JSON-serialisable data.

    Per setting and method label: seeds that finished (``n_ok``), failed (``n_failed``, with
    their errors) and not yet run (``n_missing``); the primary metric's per-seed ``values``,
    ``mean`` and ``std`` (ddof=1); ``delta`` (mean of paired differences vs the baseline),
    ``p_value`` (paired t-test, see :mod:`childnet.report.stats`), ``wilcoxon_p`` (only from
    6 pairs on); ``metrics``: the mean of every other numeric metric over successful seeds; and
    ``picks``: per ``select`` field, the value each successful seed picked (empty without ``select``); and
    ``diagnostics``: per seed, :func:`card_diagnostics` of its child card (only seeds that have some).

    Args:
        run_dir: a run folder written by ``childnet run`` (``experiment.json`` + ``results.jsonl``).

    Raises:
        ChildnetError: ``run_dir`` is not a run folder.
    """
    return summarize_run(load_run_folder(run_dir))


def _rounded(value: Any) -> Any:
    return round(value, 6) if _finite_number(value) else value


def card_diagnostics(extra: dict) -> dict:
    """The numbers of a child card (``lineage.extra``) that a reading of a result quotes but that are not metrics:
    every ``select`` candidate's validation score, HKT's Genetic Attention gate per epoch, AGWM's α per re-split."""
    out: dict[str, Any] = {}
    sel = extra.get("select")
    if isinstance(sel, dict) and isinstance(sel.get("candidates"), list):
        out["select_candidates"] = [{"values": c.get("values"), "val": _rounded(c.get("val")),
                                     **({"error": c["error"]} if c.get("error") else {})}
                                    for c in sel["candidates"] if isinstance(c, dict)]
    gates = extra.get("gate_by_epoch")
    if isinstance(gates, list) and gates:
        out["gate_mean_by_epoch"] = [_rounded(g.get("ga_gate_mean")) for g in gates if isinstance(g, dict)]
        out["gate_std_by_epoch"] = [_rounded(g.get("ga_gate_std")) for g in gates if isinstance(g, dict)]
    if _finite_number(extra.get("alpha_mean")):
        out["alpha_mean"] = _rounded(extra["alpha_mean"])
    if isinstance(extra.get("resplits"), list) and extra["resplits"]:
        out["alpha_by_resplit"] = [{k: _rounded(r.get(k)) for k in ("alpha_mean", "alpha_min", "alpha_steps",
                                                                     "alpha_lr_sum")}
                                   for r in extra["resplits"] if isinstance(r, dict)]
    return out


def _export_method(entry: dict, metric: str) -> dict:
    out = {key: entry[key] for key in ("values", "mean", "std", "p_value", "seeds")}
    out.update(delta=entry["delta"], n_failed=entry["n_failed"])
    if "wilcoxon_p" in entry:
        out["wilcoxon_p"] = entry["wilcoxon_p"]
    if entry.get("picks"):
        out["picks"] = entry["picks"]
    for key, value in entry["metrics"].items():
        if key != metric and key not in out:
            out[key] = value
    if entry["failures"]:
        out["errors"] = [f"seed {f['seed']}: {f['error']}" for f in entry["failures"]]
    if entry.get("diagnostics"):
        out["diagnostics"] = entry["diagnostics"]
    return out


def export_results(run_dir: str | Path, name: str, command: str) -> dict[str, Any]:
    """A run folder in the DESIGN.md reproduction format (``benchmarks/results/<name>.json``).

    Returns:
        ``{"name", "command", "task", "metric", "baseline", "parent", "sweep_field", "experiment_hash"
        (:func:`childnet.runfolder.experiment_identity` of the run's experiment), "settings": {SETTING:
        {"overrides", "methods": {LABEL: {"values" (ordered by seed), "mean", "std", "p_value", "seeds",
        "delta", "n_failed", "picks" (per select field, the value each seed picked; only with select), ...cost
        means, "diagnostics" ({SEED: :func:`card_diagnostics` of its child card}, when a card has any)}}}},
        "select" and "warnings" (the report's, e.g. a grid edge every seed picked) when there are any}``.
    """
    summary = summarize(run_dir)
    metric = summary["metric"]
    settings = {}
    for sid, setting in summary["settings"].items():
        settings[sid] = {"overrides": setting["overrides"],
                         "methods": {label: _export_method(e, metric) for label, e in setting["methods"].items()}}
        if setting["parent"] is not None and setting["parent"] != summary["parent"]:
            settings[sid]["parent"] = setting["parent"]
    return {
        "name": name,
        "command": command,
        "task": summary["task"],
        "metric": metric,
        "baseline": summary["baseline"],
        "parent": summary["parent"],
        "sweep_field": summary["sweep_field"],
        "experiment_hash": experiment_identity(read_experiment(run_dir) or {}),
        "settings": settings,
        **({"select": summary["select"]} if summary["select"] else {}),
        **({"warnings": summary["warnings"]} if summary["warnings"] else {}),
    }
