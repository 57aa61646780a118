"""iNAS reproduction numbers from a finished run folder (experiments/inas-mnist.yaml).

    python benchmarks/reproduce.py experiments/inas-mnist.yaml --workers 1   # writes runs/inas-mnist
    python benchmarks/inas_summary.py runs/inas-mnist    # adds "inas" to benchmarks/results/inas-mnist.json

Per setting (space x L_req percentile) and method, over seeds: the fraction of sampled children that
are feasible on the simulated device, the final child's test accuracy, its intermittent latency, whether
it finishes and meets L_req (the intermittent requirement of that seed), and the search wall time. Paired
t-tests (over seeds) of iNAS against each other method: accuracy, search wall time and — over the seeds
where the other method's child completes safely (feasible under intermittent power) — the relative
intermittent-latency reduction ``1 - L_inas / L_other``.

The claim checked (Mendis, Kang, Hsiu, ACM TECS 2021): iNAS cuts intermittent latency by ~60 % against
NAS solutions that complete safely, at comparable accuracy and +7 % search overhead.
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


def unit_facts(run: Path, row: dict) -> dict:
    """What one unit's child and search tell."""
    card = json.loads((run / row["child_dir"] / "child.json").read_text())
    search, m = card["extra"]["search"], row["metrics"]
    l_req = search["l_req"]["intermittent_s"]
    latency = m.get("device_latency_s")
    feasible = bool(m.get("device_feasible"))
    return {"label": row["label"], "setting": row["setting"], "seed": row["seed"], "test_accuracy": m["accuracy"],
            "feasible": feasible, "latency_s": latency, "continuous_latency_s": m.get("device_continuous_latency_s"),
            "l_req_s": l_req, "l_req_continuous_s": search["l_req"]["continuous_s"],
            "meets_l_req": feasible and l_req is not None and latency <= l_req,
            "fraction_feasible": search["fraction_feasible"], "fraction_trained": search["fraction_trained"],
            "search_wall_time_s": search["wall_time_s"], "l_req_wall_time_s": search["l_req_wall_time_s"],
            "non_training_share": 1 - search["train_wall_time_s"] / search["wall_time_s"],
            "choice": search["choice"], "spec": search["spec"]}


def _stat(values: list) -> dict:
    vals = [v for v in values if v is not None]
    mean, std = mean_std([float(v) for v in vals])
    return {"values": values, "mean": mean, "std": std}


def _paired(ours: dict, other: dict, key: str) -> dict:
    seeds = sorted(set(ours) & set(other))
    diffs = [ours[s][key] - other[s][key] for s in seeds]
    return {"seeds": seeds, "mean_diff": mean_std(diffs)[0], "p": paired_t_test(diffs) if len(diffs) > 1 else None}


def _latency_cut(ours: dict, other: dict) -> dict:
    """1 - L_inas / L_other over seeds where both children complete safely under intermittent power."""
    seeds = sorted(s for s in set(ours) & set(other) if ours[s]["feasible"] and other[s]["feasible"])
    cuts = [1 - ours[s]["latency_s"] / other[s]["latency_s"] for s in seeds]
    mean, std = mean_std(cuts)
    return {"seeds": seeds, "values": cuts, "mean": mean, "std": std,
            "p": paired_t_test([ours[s]["latency_s"] - other[s]["latency_s"] for s in seeds]) if len(seeds) > 1 else None,
            "other_feasible_seeds": sum(other[s]["feasible"] for s in other)}


def summarise(facts: list[dict], ours: str = "inas") -> dict:
    out: dict = {}
    for setting in sorted({f["setting"] for f in facts}):
        rows = [f for f in facts if f["setting"] == setting]
        by = {lab: {f["seed"]: f for f in rows if f["label"] == lab} for lab in sorted({f["label"] for f in rows})}
        methods = {}
        for lab, seeds in by.items():
            fs = [seeds[s] for s in sorted(seeds)]
            methods[lab] = {
                "seeds": sorted(seeds),
                "fraction_feasible_sampled": _stat([f["fraction_feasible"] for f in fs]),
                "fraction_trained_sampled": _stat([f["fraction_trained"] for f in fs]),
                "test_accuracy": _stat([f["test_accuracy"] for f in fs]),
                "latency_s": _stat([f["latency_s"] for f in fs]),
                "continuous_latency_s": _stat([f["continuous_latency_s"] for f in fs]),
                "child_feasible": sum(f["feasible"] for f in fs), "meets_l_req": sum(f["meets_l_req"] for f in fs),
                "search_wall_time_s": _stat([f["search_wall_time_s"] for f in fs]),
                "non_training_share_of_search": _stat([f["non_training_share"] for f in fs]),
                "l_req_s": _stat([f["l_req_s"] for f in fs]),
            }
        tests = {}
        for lab in by:
            if lab == ours or ours not in by:
                continue
            tests[f"{ours} vs {lab}"] = {
                "accuracy": _paired(by[ours], by[lab], "test_accuracy"),
                "search_wall_time_s": _paired(by[ours], by[lab], "search_wall_time_s"),
                "search_overhead": _overhead(by[ours], by[lab]),
                "latency_cut_vs_safe": _latency_cut(by[ours], by[lab]),
                "same_child_seeds": sum(by[ours][s]["spec"] == by[lab][s]["spec"] for s in set(by[ours]) & set(by[lab])),
            }
        out[setting] = {"methods": methods, "paired": tests}
    return out


def _overhead(ours: dict, other: dict) -> dict:
    seeds = sorted(set(ours) & set(other))
    vals = [ours[s]["search_wall_time_s"] / other[s]["search_wall_time_s"] - 1 for s in seeds]
    mean, std = mean_std(vals)
    return {"values": vals, "mean": mean, "std": std}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--name", default="inas-mnist")
    args = ap.parse_args(argv)
    rows = [r for r in read_results(args.run) if r.get("status") == "ok"]
    if not rows:
        print(f"no finished units in {args.run}", file=sys.stderr)
        return 2
    facts = [unit_facts(args.run, r) for r in rows]
    dest = RESULTS / f"{args.name}.json"
    data = json.loads(dest.read_text()) if dest.exists() else {}
    data["inas"] = {"command": command(), "units": len(facts), "summary": summarise(facts, "inas"),
                    "summary_corrected": summarise(facts, "inas-corrected"), "units_raw": facts}
    dest.write_text(json.dumps(data, indent=2, default=str) + "\n")
    for setting, s in data["inas"]["summary"].items():
        print(setting)
        for lab, m in s["methods"].items():
            print(f"  {lab:15s} acc {m['test_accuracy']['mean']:.3f}  latency {m['latency_s']['mean'] or float('nan'):8.1f} s"
                  f"  meets L_req {m['meets_l_req']}/{len(m['seeds'])}  feasible sampled "
                  f"{m['fraction_feasible_sampled']['mean']:.2f}  search {m['search_wall_time_s']['mean']:.1f} s")
        for k, t in s["paired"].items():
            cut = t["latency_cut_vs_safe"]
            print(f"  {k}: latency cut {cut['mean'] if cut['mean'] is not None else float('nan'):+.2f} "
                  f"(p {cut['p']}), Δacc {t['accuracy']['mean_diff']:+.3f} (p {t['accuracy']['p']}), "
                  f"overhead {t['search_overhead']['mean']:+.2f}")
    print(f"wrote {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
