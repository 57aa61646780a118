"""Paired statistics of a MANAS run folder on each ranking metric (the reproduction JSON has only the primary).

    python benchmarks/manas_metrics.py runs/manas-amazon [--name manas-amazon-metrics]

Writes benchmarks/results/<name>.json: per metric (hr@10, ndcg@10, hr@5, ndcg@5), per setting and method,
the per-seed values, mean, std and the paired t-test p-value against the experiment's baseline, computed
by childnet.report exactly as for the primary metric.
"""

from __future__ import annotations

import argparse
import copy
import json
import shlex
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
METRICS = ("hr@10", "ndcg@10", "hr@5", "ndcg@5")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--name", default=None)
    args = ap.parse_args(argv)
    from childnet.report._runfolder import load_run_folder
    from childnet.report.summary import summarize_run

    run = load_run_folder(args.run)
    out = {"command": "python benchmarks/manas_metrics.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:])),
           "run": str(args.run), "baseline": run.experiment.get("baseline"), "metrics": {}}
    for metric in METRICS:
        view = copy.copy(run)
        view.experiment = {**run.experiment, "metric": metric}
        summary = summarize_run(view)
        out["metrics"][metric] = {
            sid: {label: {k: e.get(k) for k in ("values", "mean", "std", "delta", "p_value", "n_ok")}
                  for label, e in s["methods"].items()}
            for sid, s in summary["settings"].items()}
    name = args.name or f"{run.experiment.get('name', args.run.name)}-metrics"
    dest = ROOT / "benchmarks" / "results" / f"{name}.json"
    dest.write_text(json.dumps(out, indent=2) + "\n")
    for metric in ("hr@10", "ndcg@10"):
        for sid, methods in out["metrics"][metric].items():
            cells = ", ".join(f"{lab} {e['mean']:.4f}±{e['std']:.4f} (p={e['p_value']})" for lab, e in methods.items()
                              if e["mean"] is not None)
            print(f"{metric} {sid}: {cells}")
    print(f"wrote {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
