"""What each generation bought: per-stage tables, the Pareto view over every child, one seed's family tree.

- :func:`stage_blocks` — a pipeline's table per stage (each with the root parent's row) and the choices
  made on validation (``stages.json``).
- :func:`pareto_png` — the primary metric against MACs, CPU latency and (when the device model ran) the
  intermittent device's latency, one point per child of the run (every seed) plus the parent; the Pareto
  front (no other point is at least as good on both axes and better on one) is drawn and ringed. For
  ordinary and pipeline experiments alike.
- :func:`family_tree_png` — one seed's chain: the root parent, every stage's children, the chosen one in
  bold with the arrow to the next stage.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from ._document import Block, Heading, Image, Paragraph
from .plots import _color, _marker, _png
from .tables import setting_table

__all__ = ["COST_AXES", "pareto_front", "pareto_points", "pareto_png", "family_tree_png", "stage_blocks",
           "report_generation_blocks"]

#: The cost axes of the Pareto plot: record key → axis title (an axis is drawn when some point has it).
COST_AXES = {"macs": "MACs per example", "latency_ms_b1": "CPU latency, batch 1 (ms)",
             "device_latency_s": "intermittent device latency (s)"}


def pareto_points(summary: dict, units: list[dict], setting: str) -> list[dict]:
    """The parent and every successful child of ``setting``: label, seed, metric and cost values."""
    metric = summary["metric"]
    points = []
    parent = summary["settings"][setting].get("parent") or summary.get("parent")
    if parent:
        pm = parent.get("metrics") or {}
        points.append({"label": "parent", "seed": None, "y": pm.get(metric), **{k: pm.get(k) for k in COST_AXES}})
    for u in units:
        if u.get("status") != "ok" or str(u.get("setting", "default")) != setting:
            continue
        m = u.get("metrics") or {}
        points.append({"label": u.get("label"), "seed": u.get("seed"), "y": m.get(metric),
                       **{k: m.get(k) for k in COST_AXES}})
    return points


def _number(v: Any) -> bool:
    from .summary import _finite_number

    return _finite_number(v)  # NaN, ±inf and integers past float range (hand-edited lines) are not drawn


def pareto_front(points: list[dict], cost: str, higher: bool = True) -> list[dict]:
    """The points no other point dominates (cost no higher, metric no worse, one of them strictly)."""
    usable = [p for p in points if _number(p.get(cost)) and _number(p.get("y"))]
    sign = 1 if higher else -1

    def dominated(p):
        return any(q[cost] <= p[cost] and sign * q["y"] >= sign * p["y"]
                   and (q[cost] < p[cost] or sign * q["y"] > sign * p["y"]) for q in usable)

    return sorted((p for p in usable if not dominated(p)), key=lambda p: p[cost])


def pareto_png(summary: dict, units: list[dict], setting: str) -> bytes | None:
    """One panel per cost axis present: the metric vs that cost over the parent and every child, front marked."""
    points = pareto_points(summary, units, setting)
    axes = [k for k in COST_AXES if any(_number(p.get(k)) and _number(p.get("y")) for p in points)]
    if not axes or len(points) < 2:
        return None
    labels = list(dict.fromkeys(p["label"] for p in points if p["label"] != "parent"))
    fig = Figure(figsize=(4.6 * len(axes), 4.0))
    for i, cost in enumerate(axes):
        ax = fig.add_subplot(1, len(axes), i + 1)
        for j, label in enumerate(labels):
            mine = [p for p in points if p["label"] == label and _number(p.get(cost)) and _number(p["y"])]
            ax.scatter([p[cost] for p in mine], [p["y"] for p in mine], color=_color(j), marker=_marker(j),
                       s=28, alpha=0.8, label=label if i == 0 else None)
        par = [p for p in points if p["label"] == "parent" and _number(p.get(cost)) and _number(p["y"])]
        ax.scatter([p[cost] for p in par], [p["y"] for p in par], color="black", marker="*", s=160,
                   label="parent" if i == 0 else None, zorder=3)
        front = pareto_front(points, cost, summary["higher_is_better"])
        if front:
            ax.step([p[cost] for p in front], [p["y"] for p in front], where="post", color="#d62728", lw=1.2,
                    label="Pareto front" if i == 0 else None, zorder=1)
            ax.scatter([p[cost] for p in front], [p["y"] for p in front], facecolors="none",
                       edgecolors="#d62728", s=110, lw=1.4, zorder=4)
        if cost != "latency_ms_b1":
            ax.set_xscale("log")
        ax.set_xlabel(COST_AXES[cost])
        ax.set_ylabel(f"{summary['metric']} (test)")
        ax.grid(alpha=0.3)
    fig.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8)
    fig.suptitle(f"{summary['name']}: {summary['metric']} vs cost (every seed; front ringed in red)", fontsize=10)
    return _png(fig)


def _stages(run_dir: Path, experiment: dict) -> list[dict]:
    return [s for s in experiment.get("stages") or [] if isinstance(s, dict)]


def _choices(run_dir: Path) -> dict:
    try:
        return json.loads((run_dir / "stages.json").read_text()).get("choices") or {}
    except (OSError, ValueError, AttributeError):
        return {}


def family_tree_png(summary: dict, units: list[dict], stages: list[dict], choices: dict, setting: str,
                    seed: int) -> bytes | None:
    """One seed's chain: a column per generation, the chosen child of each stage in bold."""
    by_label = {u.get("label"): u for u in units if u.get("seed") == seed and u.get("status") == "ok"
                and str(u.get("setting", "default")) == setting}
    if not by_label:
        return None
    metric = summary["metric"]
    chosen = {name: c.get("chosen") for name, c in ((choices.get(setting) or {}).get(f"seed{seed}") or {}).items()}
    parent = summary["settings"][setting].get("parent") or {}
    columns = [[("parent", parent.get("metrics") or {}, True)]]
    for st in stages:
        col = [(m["label"], (by_label.get(m["label"]) or {}).get("metrics") or {}, chosen.get(st["name"]) == m["label"])
               for m in st["methods"]]
        columns.append(col)
    height = max(len(c) for c in columns)
    fig = Figure(figsize=(2.6 * len(columns) + 0.5, 1.3 * height + 1.0))
    ax = fig.add_subplot()
    ax.set_xlim(-0.6, len(columns) - 0.4)
    ax.set_ylim(-height + 0.4, 0.7)
    ax.axis("off")
    where = {}
    for x, col in enumerate(columns):
        for y, (label, m, picked) in enumerate(col):
            acc = m.get(metric)
            text = f"{label}\n{metric} {acc:.3f}" if _number(acc) else f"{label}\n(no result)"
            if _number(m.get("macs")):
                text += f"\n{int(m['macs']):,} MACs"
            ax.text(x, -y, text, ha="center", va="center", fontsize=8, fontweight="bold" if picked else "normal",
                    bbox={"boxstyle": "round", "fc": "#fde9c9" if picked else "#eeeeee",
                          "ec": "#d62728" if picked else "#999999"})
            where[(x, label)] = -y
    names = ["root"] + [st["name"] for st in stages]
    for x, st in enumerate(stages, start=1):
        src = names.index(st.get("source", names[x - 1])) if st.get("source") in names else x - 1
        from_label = "parent" if src == 0 else chosen.get(names[src])
        if (src, from_label) not in where:
            continue
        for label, _, _ in columns[x]:
            ax.annotate("", xy=(x - 0.42, where[(x, label)]), xytext=(src + 0.42, where[(src, from_label)]),
                        arrowprops={"arrowstyle": "->", "color": "#555555", "lw": 1})
    for x, name in enumerate(names):
        ax.text(x, 0.55, name, ha="center", fontsize=9, style="italic")
    fig.suptitle(f"family tree of seed {seed} (chosen on validation in bold)", fontsize=10)
    return _png(fig)


def stage_blocks(summary: dict, units: list[dict], stages: list[dict], choices: dict, setting: str,
                 index: int) -> list[Block]:
    """A table per stage, each with the root parent's row, and the seeds' choices."""
    blocks: list[Block] = []
    for st in stages:
        labels = [m["label"] for m in st["methods"]]
        sub = copy.copy(summary)
        sub["settings"] = {setting: dict(summary["settings"][setting], methods={
            k: v for k, v in summary["settings"][setting]["methods"].items() if k in labels})}
        source = "the parent" if st.get("source") == "root" else f"the chosen child of stage {st.get('source')}"
        blocks += [Heading(f"Stage {st['name']} (from {source})", 3), setting_table(sub, setting)]
        picks = {seed: (c.get(st["name"]) or {}).get("chosen")
                 for seed, c in sorted((choices.get(setting) or {}).items())}
        if len(labels) > 1 and picks:
            blocks.append(Paragraph("Chosen on validation " + ", ".join(f"{s}: {p}" for s, p in picks.items())))
    tree = family_tree_png(summary, units, stages, choices, setting, 0)
    if tree is not None:
        blocks.append(Image(tree, f"family_tree_{index}.png", "family tree of seed 0"))
    return blocks


def report_generation_blocks(summary: dict, units: list[dict], experiment: dict, setting: str,
                             index: int) -> list[Block]:
    """The per-stage blocks of a pipeline (none otherwise) and the Pareto plot of any run."""
    run_dir = Path(summary["run_dir"])
    stages = _stages(run_dir, experiment)
    blocks: list[Block] = []
    if stages:
        blocks += [Heading("Generations", 2)] + stage_blocks(summary, units, stages, _choices(run_dir), setting, index)
    png = pareto_png(summary, units, setting)
    if png is not None:
        blocks.append(Image(png, f"pareto_{index}.png", f"{summary['metric']} vs cost, Pareto front ({setting})"))
    return blocks
