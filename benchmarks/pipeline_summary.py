"""The docs/results.md section of a pipeline reproduction, generated from its result JSON.

    python benchmarks/pipeline_summary.py benchmarks/results/pipeline-mnist.json [--final ensemble.pat]
        [--against distil.scratch_same_size distil.kd_alone]

Prints Markdown: each generation's accuracy (mean ± std over seeds), MACs and latency, then the chain's
final child against the named labels, paired by seed (two-sided paired t-test, scipy.stats.ttest_rel).
Nothing is hard-coded: every number comes from the JSON.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from scipy import stats


def _paired(a: dict, b: dict) -> tuple[float, float | None, int]:
    pa, pb = dict(zip(a["seeds"], a["values"])), dict(zip(b["seeds"], b["values"]))
    seeds = sorted(set(pa) & set(pb))
    d = np.array([pa[s] - pb[s] for s in seeds])
    if len(d) < 2:
        return float(d.mean()) if len(d) else float("nan"), None, len(d)
    p = 1.0 if np.allclose(d, d[0]) and d[0] == 0 else float(stats.ttest_rel([pa[s] for s in seeds],
                                                                                [pb[s] for s in seeds]).pvalue)
    return float(d.mean()), p, len(d)


def section(data: dict, final: str, against: list[str]) -> str:
    methods = data["settings"]["default"]["methods"]
    metric, parent = data["metric"], data["parent"] or {}
    pm = parent.get("metrics") or {}
    lines = [f"Command: `{data['command']}`; JSON: benchmarks/results/{data['name']}.json.", "",
             f"| generation | {metric} (mean ± std) | seeds | MACs | latency b1 (ms) | params |",
             "|---|---|---|---|---|---|",
             f"| parent ({(parent.get('architecture') or {}).get('name')}) | {pm.get(metric, float('nan')):.4f} | — | "
             f"{pm.get('macs', 0):,.0f} | — | {pm.get('params', 0):,.0f} |"]
    for label, e in methods.items():
        lat = e.get("latency_ms_b1")
        lines.append(f"| {label} | {e['mean']:.4f} ± {e['std'] or 0:.4f} | {len(e['values'])} | "
                     f"{e.get('macs', 0):,.0f} | {'—' if lat is None else f'{lat:.3f}'} | {e.get('params', 0):,.0f} |")
    lines.append("")
    for other in against:
        if final in methods and other in methods:
            delta, p, n = _paired(methods[final], methods[other])
            lines.append(f"- {final} − {other}: Δ {metric} {delta:+.4f} over {n} paired seeds, "
                         f"p = {'—' if p is None else f'{p:.3g}'} (paired t)")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("result", type=Path)
    ap.add_argument("--final", default="ensemble.pat")
    ap.add_argument("--against", nargs="*", default=["distil.scratch_same_size", "distil.kd_alone", "distil.kd"])
    args = ap.parse_args()
    print(section(json.loads(args.result.read_text()), args.final, args.against))


if __name__ == "__main__":
    main()
