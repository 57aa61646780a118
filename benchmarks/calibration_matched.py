"""Calibration (NLL, ECE) of every method against the baseline at matched accuracy, from a run folder.

    python benchmarks/reproduce.py experiments/tune-minilm-rt.yaml --workers 2   # writes runs/tune-minilm-rt
    python benchmarks/calibration_matched.py runs/tune-minilm-rt   # -> benchmarks/results/tune-minilm-rt-calibration.json

Per setting and method: the raw and the accuracy-adjusted paired difference (method − baseline) of NLL
and ECE, with p-values (:func:`childnet.report.calibration.matched_accuracy_difference`: pooled
within-method slope of the metric on accuracy, ANCOVA-style). Rows are the run folder's
``results.jsonl`` test metrics, one per method, setting and seed.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from _common import RESULTS, command, write_json  # noqa: E402

from childnet.report.calibration import matched_accuracy_difference  # noqa: E402
from childnet.runfolder import read_experiment  # noqa: E402
from childnet.runner import read_results  # noqa: E402


def _natural(text: str) -> list:
    """Sort key that orders ``task.n_train=300`` before ``task.n_train=1000``."""
    return [(0, float(part), "") if re.fullmatch(r"\d+(\.\d+)?", part) else (1, 0.0, part)
            for part in re.split(r"(\d+(?:\.\d+)?)", text) if part]


def summarise(rows: list[dict], baseline: str, metrics=("nll", "ece"), order: list[str] | None = None) -> dict:
    """Per setting (in natural order) and method (in ``order``, the experiment's, else by name)."""
    rank = {label: i for i, label in enumerate(order or [])}
    out: dict = {}
    for setting in sorted({r["setting"] for r in rows}, key=_natural):
        by_label: dict[str, dict[int, dict]] = {}
        for r in rows:
            if r["setting"] == setting:
                by_label.setdefault(r["label"], {})[r["seed"]] = r["metrics"]
        base = by_label.get(baseline)
        if not base:
            continue
        out[setting] = {}
        for label, runs in sorted(by_label.items(), key=lambda kv: (rank.get(kv[0], len(rank)), kv[0])):
            if label == baseline or len(set(runs) & set(base)) < 2:  # a comparison needs 2 seeds run by both
                continue
            out[setting][label] = {m: matched_accuracy_difference(runs, base, m) for m in metrics
                                   if all(m in v for v in list(runs.values()) + list(base.values()))}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path, help="run folder of a finished experiment")
    ap.add_argument("--baseline", help="label to compare against (default: the experiment's baseline)")
    ap.add_argument("--results-dir", type=Path, default=RESULTS, help="where to write the JSON")
    args = ap.parse_args(argv)
    exp = read_experiment(args.run) or {}
    baseline = args.baseline or exp.get("baseline")
    rows = [r for r in read_results(args.run) if r.get("status") == "ok"]
    if not rows or not baseline:
        print(f"no finished units or no baseline in {args.run}", file=sys.stderr)
        return 1
    data = {"name": f"{exp.get('name', args.run.name)}-calibration", "command": command(), "baseline": baseline,
            "method": "accuracy-adjusted paired difference (method - baseline), pooled within-method slope",
            "settings": summarise(rows, baseline, order=[m.get("label") or m.get("name") for m in exp.get("methods", [])])}
    write_json(data, args.results_dir, len(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
