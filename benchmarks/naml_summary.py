"""Convergence of transfer vs single-task search (Wong et al. 2018) from a finished naml-text run folder.

    python benchmarks/reproduce.py experiments/naml-text.yaml --workers 1   # writes runs/naml-text
    python benchmarks/naml_summary.py runs/naml-text   # adds "convergence" to benchmarks/results/naml-text.json
                                                       # and plots docs/results/naml/<task>.png

Per held-out task (a setting of the sweep) and seed, from each child's ``child.json``
(``extra.search.curve``: the best validation accuracy so far after each child of the search):

- **children to converge**: (``--eps``, default 0.005; ``--also-eps`` adds looser tolerances as a sensitivity
  check) the first child at which the best-so-far validation accuracy is within
  ``eps`` (0.5 points) of the best any method found on that task, over all seeds; a search that never
  gets there counts as budget + 1 (censored; the count of such searches is reported);
- **area under the best-so-far curve**: its mean over the budget (higher: good children sooner);
- **test accuracy** of the final pick (retrained, on the fixed test split; from results.jsonl).

Paired t-tests (same seeds, same children's seeds) of transfer against scratch and random, and of scratch
against random. The paper's claim: the transferred controller converges over an order of magnitude faster
than single-task training on many tasks.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from _common import RESULTS, command  # noqa: E402

from childnet.report.stats import mean_std, paired_t_test  # noqa: E402
from childnet.runner import read_results  # noqa: E402

PAIRS = (("transfer", "scratch"), ("transfer", "random"), ("scratch", "random"))


def unit_facts(run: Path, row: dict) -> dict:
    card = json.loads((run / row["child_dir"] / "child.json").read_text())
    search = card["extra"]["search"]
    return {"label": row["label"], "setting": row["setting"], "seed": row["seed"], "curve": search["curve"],
            "test_accuracy": row["metrics"]["accuracy"], "spec": card["extra"]["spec"],
            "controller_seconds": search["controller_seconds"], "child_seconds": search["child_seconds"],
            "pretrained_on": (card["extra"].get("naml") or {}).get("pretrained_on"),
            "first_children": [{"lr": r["spec"]["lr"], "epochs": r["spec"]["epochs"], "layers": r["spec"]["layers"],
                                "val_accuracy": r["val_accuracy"]} for r in search["trace"] if r["phase"] == "search"][:3]}


def converge_at(curve: list[float], target: float) -> int | None:
    return next((i + 1 for i, v in enumerate(curve) if v >= target), None)


def _stats(values: dict[int, float]) -> dict:
    m, s = mean_std(list(values.values()))
    return {"values": [values[k] for k in sorted(values)], "mean": m, "std": s}


def summarise_setting(units: list[dict], eps: float) -> dict:
    best = max(max(u["curve"]) for u in units)
    budget = max(len(u["curve"]) for u in units)
    out: dict = {"best_val_accuracy_any_method": best, "eps": eps, "target": best - eps, "budget": budget,
                 "methods": {}, "paired": {}}
    per: dict[str, dict[str, dict[int, float]]] = {}
    for u in units:
        c = converge_at(u["curve"], best - eps)
        m = per.setdefault(u["label"], {"children_to_converge": {}, "auc": {}, "test_accuracy": {},
                                        "censored": {}})
        m["children_to_converge"][u["seed"]] = float(c if c is not None else budget + 1)
        m["censored"][u["seed"]] = float(c is None)
        m["auc"][u["seed"]] = sum(u["curve"]) / len(u["curve"])
        m["test_accuracy"][u["seed"]] = u["test_accuracy"]
    for label, m in per.items():
        out["methods"][label] = {k: _stats(v) for k, v in m.items() if k != "censored"}
        out["methods"][label]["not_converged"] = int(sum(m["censored"].values()))
        out["methods"][label]["mean_curve"] = [sum(col) / len(col) for col in zip(
            *[u["curve"] for u in units if u["label"] == label])]
    for a, b in PAIRS:
        if a in per and b in per:
            rec = {}
            for metric in ("children_to_converge", "auc", "test_accuracy"):
                seeds = sorted(set(per[a][metric]) & set(per[b][metric]))
                diffs = [per[a][metric][s] - per[b][metric][s] for s in seeds]
                rec[metric] = {"mean_difference": sum(diffs) / len(diffs) if diffs else None,
                               "p_value": paired_t_test(diffs)}
            c_a, c_b = out["methods"][a]["children_to_converge"]["mean"], out["methods"][b]["children_to_converge"]["mean"]
            rec["convergence_speedup"] = c_b / c_a if c_a else None
            out["paired"][f"{a}_vs_{b}"] = rec
    return out


def plot(setting: str, units: list[dict], summary: dict, dest: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for i, label in enumerate(sorted({u["label"] for u in units})):
        curves = [u["curve"] for u in units if u["label"] == label]
        n = min(map(len, curves))
        mean = [sum(c[j] for c in curves) / len(curves) for j in range(n)]
        lo = [min(c[j] for c in curves) for j in range(n)]
        hi = [max(c[j] for c in curves) for j in range(n)]
        xs = list(range(1, n + 1))
        ax.plot(xs, mean, label=f"{label} (mean of {len(curves)} seeds)", color=f"C{i}")
        ax.fill_between(xs, lo, hi, color=f"C{i}", alpha=0.15)
    ax.axhline(summary["target"], color="grey", ls="--", lw=0.8, label=f"best any method - {summary['eps'] * 100:.1f} pt")
    ax.set_xlabel("children trained on the held-out task")
    ax.set_ylabel("best validation accuracy so far")
    ax.set_title(setting)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    dest.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(dest, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--eps", type=float, default=0.005, help="convergence tolerance (accuracy, 0.005 = 0.5 points)")
    ap.add_argument("--also-eps", type=float, nargs="*", default=[0.02],
                    help="further tolerances reported as a sensitivity check (children to converge only)")
    ap.add_argument("--name", default="naml-text")
    args = ap.parse_args(argv)
    rows = [r for r in read_results(args.run) if r.get("status") == "ok"]
    units = [unit_facts(args.run, r) for r in rows]
    settings = sorted({u["setting"] for u in units})
    conv = {"command": command(), "metric": "children to converge (within eps of the best any method found), "
            "area under the best-so-far validation curve, test accuracy of the final pick", "settings": {}}
    for s in settings:
        su = [u for u in units if u["setting"] == s]
        conv["settings"][s] = summarise_setting(su, args.eps)
        conv["settings"][s]["sensitivity"] = {}
        for e in args.also_eps:
            alt = summarise_setting(su, e)
            conv["settings"][s]["sensitivity"][str(e)] = {
                "methods": {k: {"children_to_converge": m["children_to_converge"], "not_converged": m["not_converged"]}
                            for k, m in alt["methods"].items()},
                "paired": {k: {"children_to_converge": p["children_to_converge"],
                               "convergence_speedup": p["convergence_speedup"]} for k, p in alt["paired"].items()}}
        task = s.split("=", 1)[-1]
        png = ROOT / "docs" / "results" / "naml" / f"{task}.png"
        plot(s, su, conv["settings"][s], png)
        conv["settings"][s]["plot"] = str(png.relative_to(ROOT))
        conv["settings"][s]["controller_seconds"] = sum(u["controller_seconds"] for u in su)
        conv["settings"][s]["child_seconds"] = sum(u["child_seconds"] for u in su)
        conv["settings"][s]["first_children"] = {f"{u['label']}/seed{u['seed']}": u["first_children"] for u in su}
    conv["pretrained_on"] = next((u["pretrained_on"] for u in units if u["label"] == "transfer"), None)
    dest = RESULTS / f"{args.name}.json"
    data = json.loads(dest.read_text()) if dest.exists() else {"name": args.name}
    data["convergence"] = conv
    dest.write_text(json.dumps(data, indent=2) + "\n")
    for s, v in conv["settings"].items():
        print(s, {k: (m["children_to_converge"]["mean"], m["auc"]["mean"], m["test_accuracy"]["mean"],
                      m["not_converged"]) for k, m in v["methods"].items()})
        print("  ", {k: {m: round(x["p_value"], 4) if x.get("p_value") is not None else None
                         for m, x in p.items() if isinstance(x, dict)} for k, p in v["paired"].items()})
    print(f"wrote {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
