"""The tables of docs/results.md that summarise a benchmark or a summary script's JSON (used by results_doc.py).

Each renderer takes the loaded result JSON(s) and returns Markdown; it computes no statistic. The numbers
were computed by the scripts that wrote the JSON (tune_speed.py, prune_speed.py, ensemble_speed.py,
ensemble_diversity.py, manas_speed.py, inas_summary.py, naml_summary.py) and are only formatted here.
:data:`TABLES` maps a generated section's key to its renderer and the JSON it reads; :func:`section` renders
one, or says which JSON is missing and what writes it (a fresh reproduction may not have them all yet).
"""

from __future__ import annotations

import re
import statistics
from typing import Callable, NamedTuple

NOTE = "_Generated from {src} by `python benchmarks/results_doc.py`; do not edit by hand._"


class Source(NamedTuple):
    """A result JSON a table reads: ``benchmarks/results/<name>.json``, what writes it, and the part of it
    the table needs when a summary script adds that part after the run (``key``)."""

    name: str
    writer: str
    key: str | None = None


def fmt_p(p: float | None) -> str:
    if p is None:
        return "—"
    return f"{p:.2g}" if p >= 0.001 else f"{p:.1e}"


def _sig2(x: float) -> str:
    """A spread to about two significant figures (21.5 → 22, 6.93 → 6.9, 0.169 → 0.17)."""
    return f"{x:.0f}" if abs(x) >= 10 else f"{x:.1f}" if abs(x) >= 1 else f"{x:.2f}"


def _fix(x: float) -> str:
    return f"{x:.1f}" if abs(x) >= 10 else f"{x:.2f}"


def _target(text: str) -> str:
    return str(text).replace("<=", "≤").replace(">=", "≥")


def _meets(value: float, target: str) -> bool | None:
    """Whether ``value`` meets a target written ``<= X`` or ``>= X`` (None for any other wording)."""
    m = re.match(r"\s*(<=|>=)\s*([0-9.]+)", str(target))
    if not m:
        return None
    return value <= float(m.group(2)) if m.group(1) == "<=" else value >= float(m.group(2))


def _table(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def _model(spec: dict) -> str:
    """``{"name": "cnn", "channels": [8, 16]}`` → ``cnn 8/16``; other size fields follow as ``width 32``."""
    head = spec["name"] + (" " + "/".join(map(str, spec["channels"])) if "channels" in spec else "")
    extra = [f"{k} {spec[k]}" for k in ("width", "depth") if k in spec]
    if "inner_widths" in spec:
        extra.append("inner widths " + "/".join(map(str, spec["inner_widths"])))
    return ", ".join([head] + extra)


def _benchmark_rows(items: list[tuple[str, dict, str, str]]) -> str:
    """One row per speed benchmark JSON: (file name, its data, details of the setting, the value's text)."""
    rows = [[f"{d['metric']}{f'; {details}' if details else ''}", value, _target(d["target"]),
             "yes" if d["passed"] else "no", f"`{name}.json`"] for name, d, details, value in items]
    return _table(["benchmark", "value", "target", "passed", "result file"], rows)


# ------------------------------------------------------------------ speed benchmarks per family


def tune_speed(ct: dict, wm: dict) -> str:
    """Step time and memory of Child-Tuning and AGWM over vanilla (tune_speed.py writes both JSONs in one run)."""
    raw, methods = ct["raw"], list(ct["raw"]["median_step_cpu_s"])
    base, mem = methods[0], ct["raw"]["peak_memory"]
    targets = {m: wm["target"] if m == "weight_mixup" else ct["target"] for m in methods[1:]}

    def ratio_cell(m: str) -> str:
        r = raw["step_ratio"][m]
        if m == base:
            return f"{r:.2f}"
        ok = _meets(r, targets[m])
        return f"**{r:.2f}** (target {_target(targets[m])}{'' if ok is None else ', passed' if ok else ', failed'})"

    def mem_ratio(m: str, field: str) -> str:  # from the megabytes, not the rounded ratio in the JSON
        return f"{mem[m][field] / mem[base][field]:.2f}"

    rows = [["median step time (s)"] + [f"{raw['median_step_cpu_s'][m]:.3f}" + (" (bi-level step)" if m ==
                                                                                 "weight_mixup" else "")
                                        for m in methods],
            [f"step time / {base}"] + [ratio_cell(m) for m in methods],
            [f"peak RSS / {base}"] + [mem_ratio(m, "peak_rss_mb") for m in methods],
            [f"training memory increment / {base}"] + [mem_ratio(m, "training_increment_mb") for m in methods]]
    return _table([""] + methods, rows)


def prune_speed(ssa: dict, structured: dict) -> str:
    """The two prune speed targets (prune_speed.py)."""
    r = ssa["raw"]
    ssa_details = (f"{_model(r['model'])}, {r['sparsity'] * 100:.0f} % sparsity, batch {r['batch_size']}, median of "
                   f"{len(r['seconds_per_step']['fixed'])} × {r['steps_per_run']} steps")
    return _benchmark_rows([("prune_speed_ssa", ssa, ssa_details, f"**{ssa['value']:.2f}**"),
                            ("prune_speed_structured", structured, _model(structured["raw"]["cnn"]["spec"]),
                             f"**{structured['value']:.2f}**")])


#: What each model of prune_speed.py's structured comparison is (a label; the numbers come from the JSON).
STRUCTURED_LABELS = {"cnn": "the default CNN", "cnn_ssa_mnist_parent": "the ssa-mnist parent",
                     "resnet20": "inner block channels only"}


def prune_structured(structured: dict) -> str:
    """Parent and 50 %-channel child per model: parameters, MACs per image, median batch-64 latency."""
    rows = []
    for key, r in structured["raw"].items():
        lat = {k: statistics.median(v) for k, v in r["latency_ms_b64"].items()}
        rows.append([f"{_model(r['spec'])} ({STRUCTURED_LABELS.get(key, key)})", f"{r['params']['parent']:,}",
                     f"{r['macs']['parent']:,}", f"{lat['parent']:.1f}", _model(r["child_spec"]),
                     f"{r['params']['child']:,}", f"{r['macs']['child']:,}", f"{lat['child']:.1f}", f"{r['ratio']:.2f}"])
    return _table(["parent", "parameters", "MACs", "latency b64 (ms)", "child at 50 % channels", "parameters", "MACs",
                   "latency b64 (ms)", "latency ratio"], rows)


def ensemble_speed(cost: dict, diversity: dict) -> str:
    """PAT's training compute and the diversity analysis's time (ensemble_speed.py)."""
    d = diversity["raw"]
    am = d["activation_maximisation"]
    details = (f"CKA at {len(d['layers'])} layers, activation maximisation of {len(am['units'])} units × "
               f"{len(am['activations'])} models, {d['examples']:,} test examples")
    evaluate = statistics.median(d["evaluate_seconds"])
    return _benchmark_rows([
        ("ensemble_speed", cost, f"{cost['raw']['members']} members", f"**{cost['value']:.3f}**"),
        ("ensemble_diversity_speed", diversity, details,
         f"**{diversity['value']:.1f}** ({d['diversity_seconds']:.1f} s / {evaluate:.2f} s)")])


#: manas_speed.py's groupings, in the table's order.
MANAS_GROUPINGS = {"static": "static expression",
                   "per_input_operation": "per-input expressions, rows grouped by operation (childnet's default)",
                   "per_input_expression": "per-input, rows grouped by whole expression (the paper's batching)",
                   "per_input_example": "per-input, one row at a time (naive; {n} batches timed, scaled to the epoch)"}


def manas_speed(d: dict) -> str:
    """One training epoch per grouping of the per-input expressions (manas_speed.py)."""
    rows = []
    for key, label in MANAS_GROUPINGS.items():
        ratio = "1" if key == "static" else f"{d[f'ratio_{key}_vs_static']:.3g}"
        rows.append([label.format(n=d["naive_timed_batches"]), f"{d['epoch_seconds'][key]:.3g}",
                     f"**{ratio}**" if key == "per_input_operation" else ratio])
    return _table(["one training epoch", "seconds", "/ static"], rows) + (
        f"\n\nTarget: {_target(d['claim'])}: {'holds' if d['claim_holds'] else 'does not hold'}.")


# ------------------------------------------------------------------ ensembles, iNAS, T-NAML


def diversity(d: dict) -> str:
    """How the members differ: disagreement, KL and linear CKA per layer (ensemble_diversity.py's by_method)."""
    by = d["by_method"]
    layers = list(next(iter(by.values()))["cka"])
    settings = {k.split("/")[0] for k in by}
    rows = []
    for key, m in by.items():
        cka = m["cka"]
        rows.append([key if len(settings) > 1 else key.split("/", 1)[-1], str(m["seeds"]), f"{m['disagreement_mean']:.3f}",
                     f"{m['kl_mean']:.3f}", " / ".join(f"{cka[la]['member_pairs_mean']:.3f}" for la in layers),
                     " / ".join(f"{cka[la]['member_parent_mean']:.3f}" if "member_parent_mean" in cka[la] else "—"
                                for la in layers)])
    names = " / ".join(layers)
    return _table(["ensemble", "seeds", "disagreement", "KL (nats)", f"CKA members, {names}",
                   f"CKA member–parent, {names}"], rows)


def calibration(d: dict) -> str:
    """NLL and ECE of each method minus the baseline's, raw and at matched accuracy (calibration_matched.py):
    mean paired difference over seeds and its p; "overlap" says whether the two accuracy ranges overlap (without
    it the adjustment extrapolates)."""
    rows = []
    for sid, methods in d["settings"].items():
        for label, m in methods.items():
            cells = [sid, label]
            for metric in ("nll", "ece"):
                e = m.get(metric)
                if e is None:
                    cells += ["—", "—"]
                    continue
                cells += [f"{e['raw_difference']['mean']:+.3f} (p {fmt_p(e['raw_p_value'])})",
                          f"{e['adjusted_difference']['mean']:+.3f} (p {fmt_p(e['p_value'])})"]
            overlaps = [m[k]["overlap"] for k in ("nll", "ece") if isinstance(m.get(k), dict) and "overlap" in m[k]]
            cells.append("—" if not overlaps else "yes" if all(overlaps) else "no")
            rows.append(cells)
    base = d["baseline"]
    return _table(["setting", "method", f"NLL − {base}", "at matched accuracy", f"ECE − {base}", "at matched accuracy",
                   "accuracy ranges overlap"], rows)


def inas_table(d: dict) -> str:
    """Per L_req percentile and method (inas_summary.py's ``inas.summary``): accuracy, intermittent latency,
    seeds meeting L_req, search wall time; mean ± std over seeds."""
    rows = []
    for sid, s in d["inas"]["summary"].items():
        order = list(d.get("settings", {}).get(sid, {}).get("methods", {})) or list(s["methods"])
        l_req = next(iter(s["methods"].values()))["l_req_s"]["mean"]
        for i, label in enumerate(m for m in order if m in s["methods"]):
            m = s["methods"][label]
            acc, lat, search = m["test_accuracy"], m["latency_s"], m["search_wall_time_s"]
            rows.append([f"{sid.split('=')[-1]}th ({_fix(l_req)} s)" if i == 0 else "", label,
                         f"{acc['mean']:.3f} ± {acc['std']:.2f}", f"{_fix(lat['mean'])} ± {_sig2(lat['std'])}",
                         f"{m['meets_l_req']}/{len(m['seeds'])}", f"{_fix(search['mean'])} ± {_sig2(search['std'])}"])
    return _table(["L_req pct (mean L_req)", "method", "test accuracy", "intermittent latency (s)", "meets L_req",
                   "search (s)"], rows)


def _pt(eps: float | str) -> str:
    return f"{float(eps) * 100:g} pt"


def _naml_rows(d: dict, part: str, cells: Callable[[str, dict, list[dict]], list[str]]) -> tuple[list, list[str]]:
    """Rows over naml_summary.py's ``convergence`` settings and their ``part`` ("methods" or "paired"): the task
    (first row only), the row's name, then ``cells(name, record, [the record at each tolerance])``; and the
    tolerances (the main ``eps``, then each of ``sensitivity``)."""
    conv = d["convergence"]["settings"]
    first = next(iter(conv.values()))
    tolerances = [first["eps"]] + list(first.get("sensitivity", {}))
    rows = []
    for sid, s in conv.items():
        task = sid.split("=")[-1]
        if part == "methods":
            task += f" (best {s['best_val_accuracy_any_method']:.3f})"
        for i, (name, rec) in enumerate(s[part].items()):
            at = [rec if eps == s["eps"] else s["sensitivity"][eps][part][name] for eps in tolerances]
            rows.append([task if i == 0 else "", name.replace("_vs_", " − ")] + cells(name, rec, at))
    return rows, [_pt(e) for e in tolerances]


def naml_convergence(d: dict) -> str:
    """Per held-out task and method (naml_summary.py's ``convergence``): children until the best-so-far
    validation accuracy is within each tolerance of the best any method found, AUC, test accuracy."""

    def cells(label: str, m: dict, at: list[dict]) -> list[str]:
        return [f"{a['children_to_converge']['mean']:.1f} ({a['not_converged']} of "
                f"{len(a['children_to_converge']['values'])})" for a in at] + [
            f"{m[k]['mean']:.3f} ± {m[k]['std']:.3f}" for k in ("auc", "test_accuracy")]

    rows, tolerances = _naml_rows(d, "methods", cells)
    return _table(["held-out task", "method"] + [f"within {t}: children (not reached)" for t in tolerances]
                  + ["AUC of best-so-far val", "test accuracy of the pick"], rows)


def naml_paired(d: dict) -> str:
    """Paired differences over seeds (naml_summary.py's ``paired``): AUC, children to converge (speed-up), test
    accuracy, each with its paired t-test p."""

    def diff(rec: dict, digits: int, extra: str = "") -> str:
        return f"{rec['mean_difference']:+.{digits}f}{extra}, p {fmt_p(rec['p_value'])}"

    def speedup(r: dict) -> str:
        up = r["convergence_speedup"]
        return " (—)" if up is None else f" ({up:.2f}×)"

    def cells(pair: str, rec: dict, at: list[dict]) -> list[str]:
        return [diff(rec["auc"], 3)] + [diff(r["children_to_converge"], 1, speedup(r)) for r in at] + [
            diff(rec["test_accuracy"], 3)]

    rows, tolerances = _naml_rows(d, "paired", cells)
    return _table(["held-out task", "comparison", "AUC"] + [f"children within {t} (speed-up)" for t in tolerances]
                  + ["test accuracy"], rows)


# ------------------------------------------------------------------ the sections


def reproduction(name: str, then: str = "") -> str:
    """The command that writes reproduction ``name``'s JSON (and, ``then``, its summary)."""
    return f"python benchmarks/reproduce.py experiments/{name}.yaml" + (f", then {then}" if then else "")


#: Generated section key → (renderer, the JSON it reads in argument order).
TABLES: dict[str, tuple[Callable[..., str], tuple[Source, ...]]] = {
    "tune-speed": (tune_speed, (Source("tune_speed_child_tuning", "python benchmarks/tune_speed.py"),
                                Source("tune_speed_weight_mixup", "python benchmarks/tune_speed.py"))),
    "calibration:tune-minilm-rt": (calibration, (Source("tune-minilm-rt-calibration", reproduction(
        "tune-minilm-rt", "python benchmarks/calibration_matched.py runs/tune-minilm-rt")),)),
    "prune-speed": (prune_speed, (Source("prune_speed_ssa", "python benchmarks/prune_speed.py"),
                                  Source("prune_speed_structured", "python benchmarks/prune_speed.py"))),
    "prune-structured": (prune_structured, (Source("prune_speed_structured", "python benchmarks/prune_speed.py"),)),
    "diversity": (diversity, (Source("ensembles-mnist-diversity", reproduction(
        "ensembles-mnist", "python benchmarks/ensemble_diversity.py runs/ensembles-mnist")),)),
    "ensemble-speed": (ensemble_speed, (Source("ensemble_speed", "python benchmarks/ensemble_speed.py"),
                                        Source("ensemble_diversity_speed", "python benchmarks/ensemble_speed.py"))),
    "manas-speed": (manas_speed, (Source("manas_speed", "python benchmarks/manas_speed.py --rows 2560 --rounds 3 "
                                                        "--naive-batches 2"),)),
    **{f"inas:{n}": (inas_table, (Source(n, reproduction(n, f"python benchmarks/inas_summary.py runs/{n} --name {n}"),
                                         "inas"),)) for n in ("inas-mnist", "inas-mlp")},
    **{key: (fn, (Source("naml-text", reproduction("naml-text", "python benchmarks/naml_summary.py runs/naml-text"),
                         "convergence"),)) for key, fn in (("naml-convergence", naml_convergence),
                                                           ("naml-paired", naml_paired))},
}


def missing(sources: tuple[Source, ...], datas: list[dict | None]) -> str | None:
    """A line naming the first JSON (or part of one) that is not there yet and what writes it; None if all are."""
    for s, data in zip(sources, datas):
        if data is None or (s.key is not None and s.key not in data):
            what = "is missing" if data is None else f"has no `{s.key}` part yet"
            return (f"_`benchmarks/results/{s.name}.json` {what}: run `{s.writer}` (`make reproduce` runs every "
                    "reproduction and its summary), then `python benchmarks/results_doc.py`._")
    return None


def note(sources: tuple[Source, ...], datas: list[dict]) -> str:
    """The "Generated from" line, with the command(s) that wrote the part of each JSON the table reads."""
    names = list(dict.fromkeys(f"`benchmarks/results/{s.name}.json`" for s in sources))
    commands = list(dict.fromkeys(c for s, d in zip(sources, datas)
                                  if (c := (d[s.key] if s.key else d).get("command"))))
    return NOTE.format(src=" and ".join(names)) + "".join(f" Command: `{c}`." for c in commands)


def section(key: str, load: Callable[[str], dict | None]) -> str:
    """The generated section ``key`` of :data:`TABLES`: the table and its note, or what is missing."""
    render, sources = TABLES[key]
    datas = [load(s.name) for s in sources]
    return missing(sources, datas) or render(*datas) + "\n\n" + note(sources, datas)
