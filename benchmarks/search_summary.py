"""Search-family numbers from a finished run folder: compute-to-target (enas-mnist) or poisoning (poison-enas).

    python benchmarks/reproduce.py experiments/enas-mnist.yaml --workers 2   # writes runs/enas-mnist
    python benchmarks/search_summary.py runs/enas-mnist    # -> benchmarks/results/search_enas_mnist.json
    python benchmarks/search_summary.py runs/poison-enas   # -> benchmarks/results/search_poison_enas.json

Everything is read from the run folder: ``results.jsonl`` (test metrics) and each child's
``child.json`` (spec, search trace and compute accounting in ``lineage.extra``).

enas-mnist — the claim "ENAS reaches random search's best validation accuracy with at most 1/5 of its
child-training compute" (ENAS paper: ~1000x cheaper than search without sharing) read two ways, per seed:

- *retrained*: both searches' derived children are retrained from scratch identically; ENAS passes on
  a seed when its child's validation accuracy >= random search's child's, and its search spent
  <= 1/5 of random search's child-training MACs (forward MACs x training examples).
- *search-time*: the validation accuracy each search itself observes as it goes (ENAS: its best
  sampled child with the shared weights, per epoch; random search: each briefly trained child).
  Compute-to-target = child-training MACs until a search first reaches random search's best.

poison-enas — child error (1 - test accuracy) after retraining the derived child from scratch AND with
the shared weights (the derived child scored in the supernet, ``shared_weights_error``), the poison
fraction of the ops sampled during the search and of the derived child, and the controller's entropy
(first, last and every epoch), per k, with paired t-tests against k = 0.

Both: when the search recorded it (``random_children``), the spread (std, max − min) of uniformly random
children's validation accuracies with the shared weights — whether architectures of the space differ.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from _common import RESULTS, command, write_json  # noqa: E402

from childnet.report.stats import mean_std, paired_t_test  # noqa: E402
from childnet.runfolder import read_experiment  # noqa: E402
from childnet.runner import read_results  # noqa: E402


def unit_facts(run: Path, row: dict) -> dict:
    """What one derived child tells about its search."""
    card = json.loads((run / row["child_dir"] / "child.json").read_text())
    extra, metrics = card["extra"], row["metrics"]
    search, compute = extra["search"], extra["compute"]
    curve = compute["search_curve"]
    epochs = search.get("epochs") or []
    return {
        "label": row["label"], "setting": row["setting"], "seed": row["seed"],
        "test_accuracy": metrics["accuracy"], "params": metrics["params"], "macs": metrics["macs"],
        "retrained_val_accuracy": card["history"][-1].get("val_accuracy"),
        "search_wall_time_s": search["wall_time_s"], "unit_wall_time_s": row.get("wall_time_s"),
        "search_train_macs": compute["search_train_macs"], "search_eval_macs": compute["search_eval_macs"],
        "curve": [(p["train_macs"], p["best_val_accuracy"]) for p in curve],
        "poison_fraction": search["poison_fraction"], "final_poison_fraction": search["final_poison_fraction"],
        "entropy_first": epochs[0]["entropy"] if epochs else None,
        "entropy_last": epochs[-1]["entropy"] if epochs else None,
        "poison_fraction_by_epoch": [e["poison_fraction"] for e in epochs],
        "op_frequencies_first_epoch": epochs[0]["op_frequencies"] if epochs else None,
        "op_frequencies_last_epoch": epochs[-1]["op_frequencies"] if epochs else None,
        "spec": extra["spec"],
        "shared_weights_test_accuracy": search.get("shared_weights_test_accuracy"),
        "random_children_std": (search.get("random_children") or {}).get("std"),
        "random_children_range": ((search["random_children"]["max"] - search["random_children"]["min"])
                                  if search.get("random_children") else None),
        "entropy_by_epoch": [e["entropy"] for e in epochs],
    }


def compute_to(curve: list, target: float) -> int | None:
    """Child-training MACs at the first point of ``curve`` whose best-so-far accuracy reaches ``target``."""
    return next((macs for macs, best in curve if best >= target - 1e-12), None)


def _stat(values: list) -> dict:
    vals = [v for v in values if v is not None]
    mean, std = mean_std(vals)
    return {"values": values, "mean": mean, "std": std}


def compare_to_random(facts: list[dict], baseline: str) -> dict:
    """Per ENAS label and seed: the retrained and the search-time reading of compute-to-target."""
    rs = {f["seed"]: f for f in facts if f["label"] == baseline}
    out = {}
    for label in sorted({f["label"] for f in facts} - {baseline}):
        rows = []
        for f in sorted((f for f in facts if f["label"] == label), key=lambda f: f["seed"]):
            r = rs.get(f["seed"])
            if r is None:
                continue
            target = r["curve"][-1][1]
            enas_ctt, rs_ctt = compute_to(f["curve"], target), compute_to(r["curve"], target)
            ratio = f["search_train_macs"] / r["search_train_macs"]
            reached = f["retrained_val_accuracy"] >= r["retrained_val_accuracy"]
            rows.append({
                "seed": f["seed"], "compute_ratio": ratio,
                "retrained_val_accuracy": f["retrained_val_accuracy"],
                "random_retrained_val_accuracy": r["retrained_val_accuracy"],
                "retrained_passed": bool(reached and ratio <= 0.2),
                "random_best_search_val_accuracy": target,
                "best_search_val_accuracy": f["curve"][-1][1],
                "search_time_compute_to_target": enas_ctt, "random_compute_to_its_best": rs_ctt,
                "search_time_ratio": enas_ctt / rs_ctt if enas_ctt is not None else None,
            })
        out[label] = {"per_seed": rows,
                      "compute_ratio": _stat([r["compute_ratio"] for r in rows]),
                      "retrained_passed_seeds": sum(r["retrained_passed"] for r in rows),
                      "search_time_reached_seeds": sum(r["search_time_ratio"] is not None for r in rows)}
    return out


def per_label(facts: list[dict], keys: tuple[str, ...]) -> dict:
    labels = sorted({f["label"] for f in facts})
    return {lab: {k: _stat([f[k] for f in sorted(facts, key=lambda f: f["seed"]) if f["label"] == lab])
                  for k in keys} for lab in labels}


def enas_mnist(run: Path, exp: dict, facts: list[dict]) -> dict:
    baseline = exp["baseline"]
    comparison = compare_to_random(facts, baseline)
    macro = comparison.get("enas-macro", next(iter(comparison.values())))
    value = macro["compute_ratio"]["mean"]
    seeds = len(macro["per_seed"])
    passed = seeds > 0 and macro["retrained_passed_seeds"] == seeds
    keys = ("test_accuracy", "params", "macs", "retrained_val_accuracy", "search_wall_time_s",
            "unit_wall_time_s", "search_train_macs", "search_eval_macs", "shared_weights_test_accuracy",
            "random_children_std", "random_children_range")
    return {
        "name": "search_enas_mnist", "command": command(),
        "metric": "enas-macro search child-training MACs / random search's, passing a seed when the retrained "
                  "ENAS child's val accuracy >= random search's retrained child's (mean ratio over seeds)",
        "value": value, "target": "<= 0.2 with val accuracy reached on every seed", "passed": bool(passed),
        "raw": {"run": str(run), "baseline": baseline, "per_method": per_label(facts, keys),
                "compute_to_target": comparison,
                "specs": {f"{f['label']}/seed{f['seed']}": f["spec"] for f in facts},
                "op_frequencies": {f"{f['label']}/seed{f['seed']}": {"first_epoch": f["op_frequencies_first_epoch"],
                                                                      "last_epoch": f["op_frequencies_last_epoch"]}
                                   for f in facts if f["op_frequencies_first_epoch"]},
                "entropy": {f"{f['label']}/seed{f['seed']}": f["entropy_by_epoch"]
                            for f in facts if f["entropy_first"] is not None}},
    }


def poison_enas(run: Path, exp: dict, facts: list[dict]) -> dict:
    ref_setting = next(s for s in sorted({f["setting"] for f in facts}) if s.endswith("=0"))
    label = facts[0]["label"]
    ref = {f["seed"]: 1 - f["test_accuracy"] for f in facts if f["setting"] == ref_setting}
    ref_shared = {f["seed"]: 1 - f["shared_weights_test_accuracy"] for f in facts
                  if f["setting"] == ref_setting and f["shared_weights_test_accuracy"] is not None}
    settings = {}
    for sid in sorted({f["setting"] for f in facts}, key=lambda s: int(s.split("=")[1])):
        rows = sorted((f for f in facts if f["setting"] == sid), key=lambda f: f["seed"])
        errors = {f["seed"]: 1 - f["test_accuracy"] for f in rows}
        seeds = sorted(set(errors) & set(ref))
        entry = _stat([errors[s] for s in sorted(errors)])
        entry["p_value"] = None if sid == ref_setting else paired_t_test([errors[s] - ref[s] for s in seeds])
        shared = {f["seed"]: 1 - f["shared_weights_test_accuracy"] for f in rows
                  if f["shared_weights_test_accuracy"] is not None}
        shared_seeds = sorted(set(shared) & set(ref_shared))
        shared_entry = _stat([shared[s] for s in sorted(shared)])
        shared_entry["p_value"] = (None if sid == ref_setting or not shared_seeds else
                                   paired_t_test([shared[s] - ref_shared[s] for s in shared_seeds]))
        settings[sid] = {
            "methods": {label: entry},
            "shared_weights_error": shared_entry,
            "random_children_std": _stat([f["random_children_std"] for f in rows]),
            "random_children_range": _stat([f["random_children_range"] for f in rows]),
            "entropy_by_epoch": [f["entropy_by_epoch"] for f in rows],
            "poison_fraction": _stat([f["poison_fraction"] for f in rows]),
            "final_poison_fraction": _stat([f["final_poison_fraction"] for f in rows]),
            "entropy_first_epoch": _stat([f["entropy_first"] for f in rows]),
            "entropy_last_epoch": _stat([f["entropy_last"] for f in rows]),
            "poison_fraction_by_epoch": [f["poison_fraction_by_epoch"] for f in rows],
            "params": _stat([f["params"] for f in rows]),
            "search_wall_time_s": _stat([f["search_wall_time_s"] for f in rows]),
        }
    return {"name": "search_poison_enas", "command": command(), "task": exp["task"],
            "metric": "error (retrained from scratch; shared_weights_error: the derived child in the supernet)",
            "baseline": ref_setting, "p_value_note": "paired t-test of the error against k = 0, by seed",
            "settings": settings, "specs": {f"{f['setting']}/seed{f['seed']}": f["spec"] for f in facts}}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path, help="run folder of experiments/enas-mnist.yaml or poison-enas.yaml")
    ap.add_argument("--results-dir", type=Path, default=RESULTS, help="where to write the JSON")
    args = ap.parse_args(argv)
    exp = read_experiment(args.run) or {}
    rows = [r for r in read_results(args.run) if r.get("status") == "ok"]
    if not rows:
        print(f"no finished units in {args.run}", file=sys.stderr)
        return 1
    facts = [unit_facts(args.run, r) for r in rows]
    poisoned = "poison_copies" in (exp.get("sweep") or {})
    data = poison_enas(args.run, exp, facts) if poisoned else enas_mnist(args.run, exp, facts)
    write_json(data, args.results_dir, len(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
