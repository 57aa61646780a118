"""Loading and drawing for :mod:`childnet.evaluate.diversity`: the ensemble child, its parent, the figures.

Figures are drawn on matplotlib's Agg canvas (no pyplot, no global state), one PNG per figure.
"""

from __future__ import annotations

import statistics
from pathlib import Path

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from torch import nn

from ..errors import ChildnetError

__all__ = ["load_ensemble_child", "load_parent_model", "plot_heatmap", "plot_activation_maximisation",
           "summarise_by_method"]


def _parent_folders(card: dict) -> list[Path]:
    """Candidate folders of the parent's weights: the card's path if it has one, then every parent cache
    folder whose ``parent.json`` records the card's fingerprint."""
    import json

    from ..checkpoint import cache_dir

    folders = [Path(card["path"])] if card.get("path") else []
    for meta in sorted((cache_dir() / "parents").glob("*/parent.json")):
        try:
            if json.loads(meta.read_text()).get("fingerprint") == card.get("fingerprint"):
                folders.append(meta.parent)
        except (OSError, ValueError):
            continue
    return [f for f in folders if (f / "model.safetensors").is_file()]


def load_parent_model(card: dict, input_shape: tuple, num_classes: int) -> nn.Module | None:
    """The parent network named by a lineage's ``parent`` card, found in the parent cache by its fingerprint.

    Returns ``None`` (the analysis goes on without the parent) when no cached weights carry the card's
    fingerprint any more (the cache was cleared, or the parent was loaded from elsewhere).
    """
    from ..checkpoint import load_tensors
    from ..child import state_fingerprint
    from ..models.base import build_model

    if not card.get("architecture") or not card.get("fingerprint"):
        return None
    for folder in _parent_folders(card):
        try:
            model = build_model(card["architecture"], input_shape, num_classes)
            model.load_state_dict(load_tensors(folder / "model.safetensors"))
        except (ChildnetError, RuntimeError):
            continue
        if state_fingerprint(model) == card["fingerprint"]:
            return model.eval()
    return None


def load_ensemble_child(source, task, parent):
    """Resolve ``(child or model, task, parent model or None)`` for a diversity report."""
    from ..child import Child

    if isinstance(source, (str, Path)):
        source = Child.load(source)
    lineage = getattr(source, "lineage", None)
    if task is None:
        if lineage is None or not lineage.task:
            raise ChildnetError("diversity_report needs a task for a bare ensemble model (pass task=...)")
        from ..tasks.base import load_task

        task = load_task(lineage.task)
    if parent is not None:
        parent = getattr(parent, "model", parent).eval()
    elif lineage is not None and lineage.parent:
        arch = lineage.architecture
        parent = load_parent_model(lineage.parent, tuple(arch.get("input_shape", task.input_shape)),
                                   arch.get("num_classes", task.num_classes))
    return source, task, parent


def _save(fig: Figure, path: Path) -> Path:
    FigureCanvasAgg(fig)
    fig.savefig(path, format="png", dpi=100, bbox_inches="tight", metadata={"Software": None})
    return path


def plot_heatmap(matrix, labels: list[str], title: str, path: Path, vmin=None, vmax=None) -> Path:
    """A square matrix as an annotated heat-map (rows and columns labelled)."""
    m = np.asarray(matrix, dtype=float)
    fig = Figure(figsize=(1.0 + 0.55 * len(labels), 0.8 + 0.5 * len(labels)))
    ax = fig.add_subplot()
    im = ax.imshow(m, cmap="viridis", vmin=vmin, vmax=vmax)
    ax.set_xticks(range(len(labels)), labels, fontsize=8)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    if len(labels) <= 12:
        mid = (np.nanmin(m) + np.nanmax(m)) / 2 if vmin is None else (vmin + vmax) / 2
        for i in range(m.shape[0]):
            for j in range(m.shape[1]):
                ax.text(j, i, f"{m[i, j]:.2f}", ha="center", va="center", fontsize=6,
                        color="white" if m[i, j] < mid else "black")
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    return _save(fig, path)


def _as_image(x: torch.Tensor) -> tuple[np.ndarray, str | None]:
    """One input as an image array: grey for 1 channel, RGB for 3, the first channel otherwise."""
    a = x.numpy()
    if a.ndim == 3 and a.shape[0] == 3:
        a = a.transpose(1, 2, 0)
        return (a - a.min()) / max(1e-8, float(a.max() - a.min())), None
    if a.ndim == 3:
        a = a[0]
    if a.ndim == 1:
        side = int(np.ceil(np.sqrt(a.size)))
        a = np.pad(a, (0, side * side - a.size)).reshape(side, side)
    return a, "gray"


def plot_activation_maximisation(images: list[torch.Tensor], labels: list[str], units: list[int], title: str,
                                 path: Path, activations: list[list[float]] | None = None) -> Path:
    """A grid: one row per model (parent first), one column per unit; a unit that never fired says so."""
    rows, cols = len(images), len(units)
    fig = Figure(figsize=(1.3 * cols + 0.6, 1.3 * rows + 0.4))
    for r, (label, batch) in enumerate(zip(labels, images)):
        for c, unit in enumerate(units):
            ax = fig.add_subplot(rows, cols, r * cols + c + 1)
            if batch[c].dim() <= 2:  # a 1-D input (features, or C channels of a sequence): one line per channel
                for channel in batch[c].reshape(-1, batch[c].shape[-1]).numpy():
                    ax.plot(channel, linewidth=0.8)
            else:
                img, cmap = _as_image(batch[c])
                ax.imshow(img, cmap=cmap)
            if activations is not None:
                act = activations[r][c]
                ax.set_xlabel("inactive" if act <= 1e-8 else f"a = {act:.3g}", fontsize=7,
                              color="#c0392b" if act <= 1e-8 else "black")
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(label, fontsize=8)
            if r == 0:
                ax.set_title(f"unit {unit}", fontsize=8)
    fig.suptitle(title, fontsize=9)
    return _save(fig, path)


def summarise_by_method(reports: dict[str, dict]) -> dict:
    """Means over seeds of the diversity numbers, grouped by ``<setting>/<label>`` (the folder above ``seedK``)."""
    groups: dict[str, list[dict]] = {}
    for rel, rep in reports.items():
        groups.setdefault(str(Path(rel).parent), []).append(rep)
    out = {}
    for group, reps in groups.items():
        entry = {"method": reps[0].get("method"), "seeds": len(reps)}
        for key in ("ensemble_accuracy", "disagreement_mean", "kl_mean"):
            entry[key] = statistics.fmean(r[key] for r in reps)
        entry["member_accuracy_mean"] = statistics.fmean(statistics.fmean(r["member_accuracy"]) for r in reps)
        entry["cka"] = {}
        # seeds of a pipeline may ensemble different architectures (the stage before picked per seed): the CKA
        # means are over the seeds holding that layer, and say how many they are when not all do
        layers = list(dict.fromkeys(layer for r in reps for layer in r["cka"]))
        for layer in layers:
            holding = [r["cka"][layer] for r in reps if layer in r["cka"]]
            cka = {"member_pairs_mean": statistics.fmean(c["member_pairs_mean"] for c in holding)}
            parents = [c["member_parent_mean"] for c in holding if "member_parent_mean" in c]
            if parents:
                cka["member_parent_mean"] = statistics.fmean(parents)
            if len(holding) < len(reps):
                cka["seeds"] = len(holding)
            entry["cka"][layer] = cka
        out[group] = entry
    return out
