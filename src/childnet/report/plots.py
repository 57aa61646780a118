"""Report plots as PNG bytes (matplotlib's Agg canvas; pyplot and global state are not touched).

- :func:`seed_points_png` — every seed's value per method, on a bar at the mean (± std).
- :func:`training_curves_png` — validation accuracy vs epoch, mean over seeds (± std band).
- :func:`sweep_band_png` — the primary metric vs the value of a single numeric sweep field,
  mean with a ± std band over seeds per method (e.g. accuracy vs sparsity).

A method with no successful seed still gets its place (an empty slot or a legend entry
marked "no results"): the plots hide nothing.
"""

from __future__ import annotations

import io
import math
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

__all__ = ["curve_key", "seed_points_png", "sweep_band_png", "training_curves_png"]

_COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
           "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]


#: Markers cycle at a different period from the colours, so (colour, marker) pairs stay distinct for 70 methods.
_MARKERS = ["o", "s", "^", "D", "v", "P", "X"]


def _color(i: int) -> str:
    if i < len(_COLORS):
        return _COLORS[i]
    from matplotlib import colormaps  # beyond 10 methods: evenly spaced hues, never a repeated colour

    r, g, b, _ = colormaps["hsv"](((i - len(_COLORS)) * 0.618034) % 1.0)
    return f"#{int(r * 200):02x}{int(g * 200):02x}{int(b * 200):02x}"


def _marker(i: int) -> str:
    return _MARKERS[i % len(_MARKERS)]


def _png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight", metadata={"Software": None})
    return buf.getvalue()


def seed_points_png(summary: dict[str, Any], setting_id: str) -> bytes:
    """Per-seed values of the primary metric, one column per method, over a bar at the mean."""
    methods = summary["settings"][setting_id]["methods"]
    metric = summary["metric"]
    fig = Figure(figsize=(max(4.0, 1.1 * len(methods) + 1.5), 3.6))
    ax = fig.add_subplot()
    for i, entry in enumerate(methods.values()):
        if entry["mean"] is None:
            ax.text(i, 0.5, "no results", rotation=90, ha="center", va="center",
                    transform=ax.get_xaxis_transform(), color="#888888", fontsize=8)
            continue
        ax.bar(i, entry["mean"], width=0.7, color=_color(i), alpha=0.25, edgecolor=_color(i))
        if entry["std"] is not None:  # mean ± std on the left of the bar, the seeds on its right
            ax.errorbar(i - 0.2, entry["mean"], yerr=entry["std"], color=_color(i), capsize=4, marker="_")
        n = len(entry["values"])
        offsets = np.linspace(-0.05, 0.25, n) if n > 1 else np.full(n, 0.1)
        ax.scatter(i + offsets, entry["values"], color=_color(i), s=18, zorder=3, marker=_marker(i))
    values = [v for e in methods.values() for v in e["values"]]
    if values:
        low, high = min(values), max(values)
        pad = max(1e-3, 0.15 * (high - low))
        ax.set_ylim(low - pad - max(e["std"] or 0 for e in methods.values()),
                    high + pad + max(e["std"] or 0 for e in methods.values()))
    ax.set_xlim(-0.6, len(methods) - 0.4)
    ax.set_xticks(range(len(methods)), list(methods), rotation=20, ha="right")
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} per seed ({setting_id})", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    return _png(fig)


def curve_key(units: list[dict]) -> str | None:
    """The history field to plot: ``val_accuracy`` if any epoch has it, else the first ``train_*`` term."""
    keys = [k for u in units for rec in (u.get("history") or []) if isinstance(rec, dict) for k in rec]
    if "val_accuracy" in keys:
        return "val_accuracy"
    return next((k for k in keys if k.startswith("train_")), None)


def _members(units: list[dict]) -> list:
    """Ensemble members in the units' histories (records tagged ``member``), in order; ``[None]`` when none."""
    found = []
    for unit in units:
        for rec in unit.get("history") or []:
            if isinstance(rec, dict) and "member" in rec and rec["member"] not in found:
                found.append(rec["member"])
    return found or [None]


def _mean_curve(units: list[dict], key: str, member=None) -> tuple[list[float], list[float], list[float]]:
    """Mean ± std over seeds per epoch; for an ensemble member, its own epochs (``member_epoch``)."""
    by_epoch: dict[float, list[float]] = {}
    for unit in units:
        for rec in unit.get("history") or []:
            if not isinstance(rec, dict) or (member is not None and rec.get("member") != member):
                continue
            value = rec.get(key)
            epoch = rec.get("member_epoch", rec.get("epoch")) if member is not None else rec.get("epoch")
            if isinstance(value, (int, float)) and math.isfinite(value) and isinstance(epoch, (int, float)):
                by_epoch.setdefault(float(epoch), []).append(float(value))
    epochs = sorted(by_epoch)
    means = [float(np.mean(by_epoch[e])) for e in epochs]
    stds = [float(np.std(by_epoch[e], ddof=1)) if len(by_epoch[e]) > 1 else 0.0 for e in epochs]
    return epochs, means, stds


def training_curves_png(summary: dict[str, Any], units: list[dict], setting_id: str) -> bytes | None:
    """Mean over successful seeds of the training curve per method; ``None`` when no history exists.

    Args:
        summary: the output of :func:`childnet.report.summarize`.
        units: the run's unit records (``results.jsonl``, last line per unit).
        setting_id: the setting to plot.
    """
    mine = [u for u in units if str(u.get("setting", "default")) == setting_id and u.get("status") == "ok"]
    key = curve_key(mine)
    if key is None:
        return None
    fig = Figure(figsize=(6.0, 3.6))
    ax = fig.add_subplot()
    styles = ["-", "--", ":", "-."]
    for i, label in enumerate(summary["settings"][setting_id]["methods"]):
        own = [u for u in mine if str(u.get("label", u.get("method"))) == label]
        members = _members(own)
        for j, member in enumerate(members):  # an ensemble: one curve per member, over its own epochs
            epochs, means, stds = _mean_curve(own, key, member)
            name = label if member is None else f"{label} member {member}"
            if not epochs:
                ax.plot([], [], color=_color(i), label=f"{name} (no curve)")
                continue
            ax.plot(epochs, means, color=_color(i), marker=_marker(i), markersize=3, linestyle=styles[j % 4],
                    label=name if j < 3 or j == len(members) - 1 else None)
            low, high = np.subtract(means, stds), np.add(means, stds)
            ax.fill_between(epochs, low, high, color=_color(i), alpha=0.15, linewidth=0)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel(key)
    ax.set_title(f"{key} vs epoch, mean ± std over seeds ({setting_id})", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=2 if len(ax.get_legend_handles_labels()[1]) > 10 else 1)
    return _png(fig)


def sweep_band_png(summary: dict[str, Any]) -> bytes | None:
    """Primary metric vs the single numeric sweep field, mean ± std band per method.

    Returns:
        PNG bytes, or ``None`` when the sweep does not have exactly one numeric field.
    """
    field = summary.get("sweep_field")
    if field is None:
        return None
    settings = [s for s in summary["settings"].values() if field in s["overrides"]]
    settings.sort(key=lambda s: s["overrides"][field])
    xs = [float(s["overrides"][field]) for s in settings]
    labels = list(settings[0]["methods"]) if settings else []
    fig = Figure(figsize=(6.0, 3.8))
    ax = fig.add_subplot()
    for i, label in enumerate(labels):
        entries = [s["methods"].get(label) for s in settings]
        mean = np.array([e["mean"] if e and e["mean"] is not None else np.nan for e in entries])
        std = np.array([e["std"] if e and e["std"] is not None else 0.0 for e in entries])
        name = label if np.isfinite(mean).any() else f"{label} (no results)"
        ax.plot(xs, mean, color=_color(i), marker=_marker(i), markersize=4, label=name)
        ax.fill_between(xs, mean - std, mean + std, color=_color(i), alpha=0.18, linewidth=0)
    if xs and min(xs) > 0 and max(xs) / min(xs) >= 20:
        ax.set_xscale("log")
    ax.set_xlabel(field)
    ax.set_ylabel(summary["metric"])
    ax.set_title(f"{summary['metric']} vs {field} (mean ± std over seeds)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=2 if len(ax.get_legend_handles_labels()[1]) > 10 else 1)
    return _png(fig)
