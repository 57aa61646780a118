"""Render a run folder into ``report.md`` and a self-contained ``report.html``.

The report is a pure function of the run folder (``experiment.json`` + ``results.jsonl``):
re-running it after more units finish (resume) simply rewrites both files.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..runfolder import PLOT_DIR, REPORT_HTML, REPORT_MD, disk_error, write_atomic
from ._document import Block, Bullets, Heading, Image, Link, Paragraph, to_html, to_markdown
from ._runfolder import load_run_folder
from .generations import report_generation_blocks
from .plots import seed_points_png, sweep_band_png, training_curves_png
from .stats import MIN_WILCOXON_PAIRS
from .summary import format_picks, summarize_run
from .tables import extra_metrics_table, failures_table, format_count, format_value, setting_table

__all__ = ["ReportPaths", "build_report"]



@dataclass(frozen=True)
class ReportPaths:
    """Where :func:`build_report` wrote the report."""

    markdown: Path
    html: Path
    plots: list[Path] = field(default_factory=list)


def _spec_text(spec: Any) -> str:
    """``{name: cnn, width: 32}`` → ``cnn(width=32)``; anything else as compact JSON."""
    if isinstance(spec, dict) and "name" in spec:
        opts = ", ".join(f"{k}={json.dumps(v, default=str)}" for k, v in spec.items() if k != "name")
        return f"{spec['name']}({opts})" if opts else str(spec["name"])
    return json.dumps(spec, default=str) if spec is not None else "—"


def _parent_text(parent: dict | None, spec: dict | None) -> str:
    if parent is None:
        model = spec.get("model") if isinstance(spec, dict) else None
        return f"{_spec_text(model)} (no unit has finished yet: parent metrics unknown)"
    metrics = parent.get("metrics") or {}
    parts = [_spec_text(parent.get("architecture"))]
    if "accuracy" in metrics:
        parts.append(f"test accuracy {format_value(metrics['accuracy'])}")
    if "params" in metrics:
        parts.append(f"{format_count(metrics['params'])} params")
    if "macs" in metrics:
        parts.append(f"{format_count(metrics['macs'])} MACs")
    extra = ", ".join(f"{k} {parent[k]}" for k in ("source", "fingerprint") if parent.get(k))
    return "; ".join(parts) + (f" ({extra})" if extra else "")


def _overview(summary: dict) -> list[Block]:
    better = "higher" if summary["higher_is_better"] else "lower"
    items = [
        ("task", _spec_text(summary["task"])),
        ("parent", _parent_text(summary["parent"], summary["parent_spec"])),
        ("primary metric", f"{summary['metric']} ({better} is better), on the test split"),
        ("baseline", summary["baseline"] or "none named: each method against its family's baseline (the 'vs' "
         "column) when that method ran"),
        ("seeds per method", str(summary["seeds"])),
        ("units read", str(summary["n_units"])),
    ]
    if summary["sweep"]:
        items.append(("sweep", ", ".join(f"{k} ∈ {v}" for k, v in summary["sweep"].items())))
    selected = summary.get("select") or {}
    if selected:
        labels = list(next(iter(summary["settings"].values()))["methods"]) if summary["settings"] else list(selected)
        items.append(("candidates per seed", ", ".join(
            f"{label} {selected[label]['candidates'] if label in selected else 1}" for label in labels)))
    for label, sel in selected.items():
        fields = "; ".join(f"{k} ∈ {v}" for k, v in sel["fields"].items())
        items.append((f"selection of {label}", f"{sel['candidates']} candidates per seed ({sel['strategy']}: "
                      f"{fields}), picked by validation {summary['metric']}; the test metric is the pick's"))
        for sid, setting in summary["settings"].items():
            picks = (setting["methods"].get(label) or {}).get("picks")
            if picks:
                where = f" ({sid})" if len(summary["settings"]) > 1 else ""
                items.append((f"picks of {label}{where}", format_picks(picks) + " (seeds per value)"))
    blocks: list[Block] = [Heading(summary["name"], 1), Paragraph(f"Run folder: {summary['run_dir']}"),
                           Heading("Task and parent"), Bullets(items)]
    if summary["skipped_lines"]:
        blocks.append(Paragraph(f"{summary['skipped_lines']} unreadable line(s) in results.jsonl were skipped "
                                "(e.g. a run killed mid-write).", note=True))
    return blocks


def _setting_blocks(summary: dict, units: list[dict], sid: str, index: int) -> list[Block]:
    setting = summary["settings"][sid]
    title = "Results" if sid == "default" else f"Setting: {sid}"
    blocks: list[Block] = [Heading(title), setting_table(summary, sid)]
    if setting["parent"] is not None and setting["parent"] != summary["parent"]:
        blocks.insert(1, Paragraph(f"Parent in this setting: {_parent_text(setting['parent'], None)}"))
    if setting["baseline_note"]:
        blocks.append(Paragraph(setting["baseline_note"], note=True))
    for warning in setting.get("warnings", []):
        blocks.append(Paragraph(f"Warning: {warning}", note=True))
    extras = extra_metrics_table(summary, sid)
    if extras is not None:
        blocks.append(extras)
    blocks.append(Image(seed_points_png(summary, sid), f"seeds_{index}.png", f"{summary['metric']} per seed, {sid}"))
    curves = training_curves_png(summary, units, sid)
    if curves is not None:
        blocks.append(Image(curves, f"curves_{index}.png", f"training curves, {sid}"))
    return blocks


def _how_to_read(summary: dict) -> list[Block]:
    against = (f"Δ is the mean over seeds of (method − {summary['baseline']}) on the same seed; " if summary["baseline"]
               else "Δ is the mean over seeds of (method − its baseline) on the same seed, the baseline being the one of "
               "its family (inherit: scratch, prune: oneshot, ensemble: independent, search: random_search, tune: "
               "vanilla; the 'vs' column; in a pipeline, of the same stage) since the experiment names none; ")
    text = (
        "The parent's row is its single trained network (no seeds). ★ marks the best mean of the primary metric "
        "within each family. Mean ± std over the seeds that finished (sample std, ddof=1). " + against +
        "p is the two-sided paired t-test (scipy.stats.ttest_rel) over the seeds present for both, "
        "'—' for the baseline itself or with fewer than 2 paired seeds; p = 1.0 when every difference is zero "
        "and 0 when every seed differs by the same non-zero amount (the limit of the t statistic). "
        f"The Wilcoxon signed-rank p is in the summary JSON from {MIN_WILCOXON_PAIRS} paired seeds on. "
        "Cost columns are means over successful seeds; MACs are per example; train compute is forward MACs × "
        "training examples seen, summed over everything trained for the child (search trials and scoring, "
        "retraining, ensemble members; the parent's own training is in its row; a teacher's forward passes — kd, "
        "hkt, fitnets — are not counted); latency is the median CPU time of one forward pass at batch size 1 and "
        "64. Wall time is the unit's own; a worker's one-off loading of the task and parent is setup_s in "
        "results.jsonl."
    )
    return [Heading("How to read this"), Paragraph(text)]


def _diversity_blocks(run_dir: Path) -> list[Block]:
    """Links to ``childnet diversity``'s output when it was run into the default folder."""
    index = run_dir / "diversity" / "diversity.json"
    if not index.exists():
        return []
    blocks: list[Block] = [Heading("Ensemble diversity"),
                           Link("Disagreement, KL, CKA and activation maximisation per ensemble child "
                                "(`childnet diversity`):", "diversity/diversity.json")]
    for png in sorted((run_dir / "diversity").rglob("*.png"))[:60]:
        rel = png.relative_to(run_dir).as_posix()
        blocks.append(Link(f"{png.parent.relative_to(run_dir / 'diversity').as_posix()}:", rel))
    return blocks


def report_blocks(summary: dict, units: list[dict], experiment: dict | None = None) -> list[Block]:
    """Every block of the report, in order (``experiment``: a pipeline's stages get a table each)."""
    blocks = _overview(summary)
    band = sweep_band_png(summary)
    if band is not None:
        blocks += [Heading(f"{summary['metric']} vs {summary['sweep_field']}"),
                   Image(band, "sweep.png", f"{summary['metric']} vs {summary['sweep_field']}")]
    for index, sid in enumerate(summary["settings"]):
        blocks += _setting_blocks(summary, units, sid, index)
        blocks += report_generation_blocks(summary, units, experiment or {}, sid, index)
    blocks += _diversity_blocks(Path(summary["run_dir"]))
    failures = failures_table(summary)
    blocks.append(Heading("Failed units"))
    blocks.append(failures if failures is not None else Paragraph("None: every finished unit succeeded."))
    return blocks + _how_to_read(summary)


def _write_bytes(path: Path, data: bytes) -> None:
    """Write via a temporary file and rename, so a reader never sees half a file (nor a temporary left)."""
    write_atomic(path, data)


def build_report(run_dir: str | Path) -> ReportPaths:
    """Write ``report.md`` (+ its PNGs in ``report_files/``) and a self-contained ``report.html``.

    Args:
        run_dir: a run folder written by ``childnet run``.

    Returns:
        The paths written.

    Raises:
        ChildnetError: ``run_dir`` is not a run folder or cannot be written to.
    """
    run = load_run_folder(run_dir)
    summary = summarize_run(run)
    blocks = report_blocks(summary, run.units, run.experiment)
    images = [b for b in blocks if isinstance(b, Image)]
    paths = ReportPaths(run.path / REPORT_MD, run.path / REPORT_HTML,
                        [run.path / PLOT_DIR / img.file for img in images])
    try:
        (run.path / PLOT_DIR).mkdir(exist_ok=True)
        for img, path in zip(images, paths.plots):
            _write_bytes(path, img.png)
        _write_bytes(paths.markdown, to_markdown(blocks, PLOT_DIR).encode("utf-8"))
        _write_bytes(paths.html, to_html(blocks, f"childnet report: {summary['name']}").encode("utf-8"))
    except OSError as err:
        raise disk_error(err, f"the report into {run.path}") from None
    return paths
