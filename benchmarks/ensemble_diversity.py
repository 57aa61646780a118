"""Quality, cost and diversity of every ensemble in a run folder → result JSON + figures for the docs.

    python benchmarks/ensemble_diversity.py runs/ensembles-mnist [--name ensembles-mnist-diversity]

Runs :func:`childnet.evaluate.diversity.diversity_for_run` on the run (figures per child under
``RUN/diversity/``) and writes ``benchmarks/results/<name>.json``: per method label and per seed, the
ensemble's accuracy / NLL / ECE, its members' mean accuracy, training compute (MACs, parent separate),
pairwise disagreement, KL and linear CKA per layer (between members, and members vs parent), each with
mean and std over seeds. Figures for the ensemble section of ``docs/results.md`` go to ``docs/results/ensemble/``:
accuracy and NLL against training compute, CKA per layer, and seed 0's CKA heat-maps and
activation-maximisation grids.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import statistics
import sys
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

ROOT = Path(__file__).resolve().parents[1]
QUALITY = ("accuracy", "nll", "ece", "member_accuracy_mean", "member_nll_mean", "train_macs",
           "parent_train_macs", "total_train_macs", "train_seconds", "nonzero_params")


def _stats(values: list[float]) -> dict:
    return {"values": values, "mean": statistics.fmean(values),
            "std": statistics.stdev(values) if len(values) > 1 else 0.0}


def collect(run_dir: Path, diversity: dict) -> dict:
    """Per label: per-seed quality/cost metrics (results.jsonl) and diversity numbers (the report)."""
    from childnet.runner import read_results

    methods: dict[str, dict] = {}
    for unit in sorted(read_results(run_dir), key=lambda u: (u["label"], u["seed"])):
        if unit.get("status") != "ok":
            continue
        entry = methods.setdefault(unit["label"], {"method": unit["method"], "seeds": [], "per_seed": {}})
        entry["seeds"].append(unit["seed"])
        rep = diversity["children"][unit["child_dir"].removeprefix("children/")]
        row = {k: unit["metrics"][k] for k in QUALITY if unit["metrics"].get(k) is not None}
        row.update(disagreement=rep["disagreement_mean"], kl=rep["kl_mean"])
        for layer, cka in rep["cka"].items():
            row[f"cka_members:{layer}"] = cka["member_pairs_mean"]
            if "member_parent_mean" in cka:
                row[f"cka_parent:{layer}"] = cka["member_parent_mean"]
        for k, v in row.items():
            entry["per_seed"].setdefault(k, []).append(v)
    for entry in methods.values():
        entry["metrics"] = {k: _stats(v) for k, v in entry.pop("per_seed").items()}
    return methods


def parent_point(run_dir: Path, methods: dict) -> dict:
    """The parent's test accuracy / NLL and training MACs (from the run's units), for the cost plot."""
    from childnet.runner import read_results

    card = next((u["parent"] for u in read_results(run_dir) if u.get("status") == "ok"), {})
    macs = next((e["metrics"]["parent_train_macs"]["mean"] for e in methods.values()
                 if "parent_train_macs" in e["metrics"]), None)
    return {**(card.get("metrics") or {}), "train_macs": macs}


def _save(fig: Figure, path: Path) -> None:
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=100, bbox_inches="tight", metadata={"Software": None})


def plot_cost(methods: dict, parent: dict, path: Path) -> None:
    """Ensemble accuracy and NLL (mean ± std over seeds) against total training compute; the parent as ★."""
    fig = Figure(figsize=(10, 3.6))
    for i, metric in enumerate(("accuracy", "nll")):
        ax = fig.add_subplot(1, 2, i + 1)
        for label, e in methods.items():
            m = e["metrics"]
            ax.errorbar(m["total_train_macs"]["mean"] / 1e9, m[metric]["mean"], yerr=m[metric]["std"], fmt="o",
                        capsize=3, label=label)
        if parent.get(metric) is not None and parent.get("train_macs"):
            ax.plot(parent["train_macs"] / 1e9, parent[metric], "k*", markersize=10, label="parent alone")
        ax.set_xlim(left=0)
        ax.set_xlabel("training GMACs (parent included where used)")
        ax.set_ylabel(f"ensemble test {metric}")
        ax.grid(alpha=0.3)
    fig.axes[0].legend(fontsize=7)
    _save(fig, path)


def plot_cka_layers(methods: dict, path: Path) -> None:
    """Mean linear CKA between members (solid) and members vs parent (dashed), per layer."""
    fig = Figure(figsize=(5.5, 3.4))
    ax = fig.add_subplot()
    for i, (label, e) in enumerate(methods.items()):
        layers = [k.split(":", 1)[1] for k in e["metrics"] if k.startswith("cka_members:")]
        color = f"C{i}"
        ax.plot(layers, [e["metrics"][f"cka_members:{n}"]["mean"] for n in layers], "-o", color=color, label=label)
        if all(f"cka_parent:{n}" in e["metrics"] for n in layers):
            ax.plot(layers, [e["metrics"][f"cka_parent:{n}"]["mean"] for n in layers], "--", color=color, alpha=0.6)
    ax.set_ylabel("linear CKA (solid: member–member, dashed: member–parent)", fontsize=8)
    ax.set_ylim(None, 1.0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    _save(fig, path)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--name", default="ensembles-mnist-diversity")
    ap.add_argument("--figures", type=Path, default=ROOT / "docs" / "results" / "ensemble")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    from childnet.evaluate.diversity import diversity_for_run

    summary = diversity_for_run(args.run_dir)
    methods = collect(args.run_dir, summary)
    args.figures.mkdir(parents=True, exist_ok=True)
    plot_cost(methods, parent_point(args.run_dir, methods), args.figures / "cost.png")
    plot_cka_layers(methods, args.figures / "cka_layers.png")
    for rel, rep in summary["children"].items():
        if rel.endswith("seed0"):
            label = Path(rel).parent.name
            for key in ("cka:features", "cka:blocks.0", "activation_maximisation"):
                src = args.run_dir / "diversity" / rel / rep["figures"][key]
                shutil.copy(src, args.figures / f"{label}_{src.name}")
    command = "python benchmarks/ensemble_diversity.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    data = {"name": args.name, "command": command, "run_dir": str(args.run_dir),
            "parent": parent_point(args.run_dir, methods), "methods": methods,
            "by_method": summary["by_method"]}
    dest = ROOT / "benchmarks" / "results" / f"{args.name}.json"
    dest.write_text(json.dumps(data, indent=2, default=float) + "\n")
    print(f"wrote {dest} and figures in {args.figures}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
