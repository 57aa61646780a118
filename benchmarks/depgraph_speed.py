"""Structured shrinking through the dependency graph (method ``depgraph``): cost and accuracy, in one run.

    python benchmarks/depgraph_speed.py resnet [--seeds 3] [--n-train 1000] [--parent-epochs 4] [--tune-epochs 2]
    python benchmarks/depgraph_speed.py minilm [--seeds 3] [--n-train 300] [--tune-epochs 3]
    python benchmarks/depgraph_speed.py rounding [--rounds 15]
    python benchmarks/depgraph_speed.py importance [--seeds 5] [--random-draws 8] [--parent-epochs 10] [--tune-epochs 1]

``resnet`` → ``benchmarks/results/depgraph_resnet20.json``: a ResNet-20 (16/32/64 channels, 1×1 projection
shortcuts — the zero-padding shortcut keeps its stream at full width, see :mod:`childnet.depgraph`) trained
on mnist5k (``--n-train`` images, ``--parent-epochs`` epochs), then shrunk at 50 % per layer (``scope:
layer``) two ways: residual stream pruned too, or block-inner channels only; plus the stream-pruned child
with widths rounded to multiples of 8. Reported: parameters, MACs and batch-64 latency (28×28 test images)
over the parent's, and test accuracy after the same tuning (``--tune-epochs`` of SGD 0.01, the prune
family's recipe) for ``--seeds`` seeds, stream vs inner-only paired by seed.

``rounding`` → ``benchmarks/results/depgraph_rounding.json``: an (untrained: widths and cost need no training)
ResNet-20 shrunk per layer at sparsities that leave widths no multiple of 8 (0.3, 0.45, 0.6), with ``round_to``
1, 8 and 16; MACs and batch-64 latency of each rounded child over the unrounded one at the same sparsity,
and latency per MAC (rounding moves the MACs too, since it rounds to the nearest multiple).

``importance`` → ``benchmarks/results/depgraph_importance.json``: a ResNet-20 (BatchNorm after every conv,
projection shortcuts) trained on all of mnist5k's training split (``--parent-epochs``, default 10), shrunk per
layer at 10 % and 30 %, residual stream pruned or block-inner channels only, with each channel ranking — ``producers`` (childnet's default:
the L1 norm of the producing filters), ``group`` (Torch-Pruning's group L2 magnitude, BatchNorm scales
included) and ``bn_scale`` (Network Slimming's ``|γ|``) — and ``--random-draws`` random rankings: test
accuracy untuned, then at 30 % after ``--tune-epochs`` (default 1) of the prune family's tuning for
``--seeds`` seeds, each ranking vs producers paired by seed.

``minilm`` → ``benchmarks/results/depgraph_minilm.json``: the pretrained all-MiniLM-L6-v2 shrunk at 50 % per
layer two ways — ``child``: half of its attention heads and feed-forward width, the hidden stream (384)
kept; ``child_stream``: the hidden stream halved too (``norm_stream: true``: through the LayerNorms,
embeddings included, guarded against the parent with LayerNorms restricted to the kept channels). Reported:
parameters (beside Torch-Pruning's ~8.6 M for the same cut), MACs and batch-64 latency over the parent's
(Rotten Tomatoes test snippets, max_length 64), and test accuracy after the same fine-tuning recipe (AdamW
1e-4, linear decay, warm-up 10 %, batch 16, ``--tune-epochs`` epochs, ``--n-train`` snippets) of each child
and of the full parent fine-tuned with it (vanilla), re-run here for seeds 0..``--seeds``-1; each child
vs vanilla paired by seed (two-sided paired t-test, :func:`childnet.report.stats.paired_t_test`).
``--seeds 0`` measures the cost only (the children shrunk once, untuned). ``--vanilla-from FILE`` reads the
vanilla accuracies from a tune reproduction JSON instead (setting ``task.n_train=<n>``) — only valid if
that file used this very recipe.

Scale (ours, to fit ≤ 30 minutes of one core each): small training subsets and few epochs; the numbers
compare methods at that budget, not at the papers' full training. Latency: runs alternate parent /
children (A, B, C, A, B, C …) so machine load hits all alike; the ratios are of medians.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_result  # noqa: E402

from childnet import build_model, load_task  # noqa: E402
from childnet.api import derive  # noqa: E402
from childnet.child import state_fingerprint  # noqa: E402
from childnet.evaluate import count_macs, count_params, evaluate_model  # noqa: E402
from childnet.parent import Parent  # noqa: E402
from childnet.report.stats import paired_differences, paired_t_test  # noqa: E402
from childnet.tasks.base import take  # noqa: E402
from childnet.train import TrainConfig, fit  # noqa: E402


def _latencies(models: dict, example, rounds: int) -> dict:
    """Median batch latency (ms) of each model, alternating models every call."""
    times = {k: [] for k in models}
    with torch.no_grad():
        for m in models.values():
            m.eval()
            for _ in range(2):
                m(example)
        for _ in range(rounds):
            for k, m in models.items():
                t = time.perf_counter()
                m(example)
                times[k].append(1000 * (time.perf_counter() - t))
    return {k: {"median_ms": statistics.median(v), "runs_ms": [round(x, 3) for x in v]} for k, v in times.items()}


def _paired_p(a: list[float], b: list[float]) -> float | None:
    """Two-sided paired t-test of ``a`` vs ``b`` paired by seed (the report module's, degenerate cases included)."""
    if len(a) != len(b):
        return None
    return paired_t_test(paired_differences(dict(enumerate(a)), dict(enumerate(b)))[1])


def _summary(values: list[float]) -> dict:
    return {"values": values, "mean": statistics.mean(values),
            "std": statistics.stdev(values) if len(values) > 1 else 0.0}


def _trained_resnet(args):
    """``(task, spec, parent, parent_accuracy, parent_train_s)``: the ResNet-20 parent of the resnet parts."""
    task = load_task({"name": "mnist5k", **({"n_train": args.n_train} if args.n_train else {})})
    spec = {"name": "resnet", "depth": 20, "shortcut": "conv"}
    torch.manual_seed(0)
    model = build_model(spec, task.input_shape, task.num_classes)
    t0 = time.perf_counter()
    fit(model, (task.x_train, task.y_train), TrainConfig(epochs=args.parent_epochs, optimizer="sgd", lr=0.05,
                                                         momentum=0.9, schedule="cosine", batch_size=64), seed=0)
    parent_train_s = time.perf_counter() - t0
    parent = Parent(model.eval(), task, spec, state_fingerprint(model), "trained")
    return task, spec, parent, evaluate_model(model, task, latency=False)["accuracy"], parent_train_s


#: The prune family's tuning recipe, used by every tuned child here.
def _tune(epochs: int) -> dict:
    return {"epochs": epochs, "optimizer": "sgd", "lr": 0.01, "momentum": 0.9, "schedule": "constant"}


def resnet(args) -> None:
    task, spec, parent, parent_acc, parent_train_s = _trained_resnet(args)
    tune = _tune(args.tune_epochs)
    variants = {"stream": {"prune_stream": True}, "inner_only": {"prune_stream": False}}
    acc: dict = {k: [] for k in variants}
    children: dict = {}
    for seed in range(args.seeds):
        for name, opts in variants.items():
            child = derive("depgraph", parent, task, {"sparsity": 0.5, "scope": "layer", "tune": tune, **opts},
                           seed=seed)
            acc[name].append(evaluate_model(child.model, task, latency=False)["accuracy"])
            children.setdefault(name, child)
            print(f"seed {seed} {name}: accuracy {acc[name][-1]:.4f}", flush=True)
    rounded = derive("depgraph", parent, task, {"sparsity": 0.5, "scope": "layer", "round_to": 8,
                                                "tune": {**tune, "epochs": 0}}, seed=0)
    models = {"parent": parent.model, "stream": children["stream"].model,
              "inner_only": children["inner_only"].model, "stream_round8": rounded.model}
    one = take(task.x_test, slice(0, 1))
    batch = take(task.x_test, slice(0, 64))
    cost = {k: {"params": count_params(m), "macs": count_macs(m, one)} for k, m in models.items()}
    lat = _latencies(models, batch, args.rounds)
    raw = {
        "task": task.spec, "parent_spec": spec, "parent_epochs": args.parent_epochs, "parent_train_s": parent_train_s,
        "parent_accuracy": parent_acc, "tune": tune, "sparsity": 0.5, "scope": "layer",
        "cost": cost, "latency_b64": lat,
        "macs_ratio": {k: cost[k]["macs"] / cost["parent"]["macs"] for k in models},
        "latency_ratio": {k: lat[k]["median_ms"] / lat["parent"]["median_ms"] for k in models},
        "accuracy": {k: _summary(v) for k, v in acc.items()},
        "accuracy_paired_p_stream_vs_inner": _paired_p(acc["stream"], acc["inner_only"]),
        "widths": {k: children[k].lineage.extra["shrink"]["groups"] for k in children},
        "widths_round8": rounded.lineage.extra["shrink"]["groups"],
    }
    ratio = raw["macs_ratio"]["stream"]
    write_result("depgraph_resnet20", "MACs of the stream-pruned 50 % child over the parent's", ratio,
                 "≤ 0.5 (half the inner-only child's MACs: reported)", ratio <= 0.5, raw)


#: Importance part: sparsities (per layer) measured untuned; the tuned comparison runs at the last one.
IMPORTANCE_SPARSITIES = (0.1, 0.3)
#: Importance part: the residual stream pruned too, or block-inner channels only.
IMPORTANCE_SETTINGS = {"stream": {"prune_stream": True}, "inner": {"prune_stream": False}}


def importance(args) -> None:
    """How channels are ranked on a BatchNorm ResNet: producers' L1 vs Torch-Pruning's group L2 vs BN scale."""
    task, spec, parent, parent_acc, parent_train_s = _trained_resnet(args)

    def accuracy(opts: dict, seed: int, epochs: int) -> float:
        child = derive("depgraph", parent, task, {"scope": "layer", "tune": _tune(epochs), **opts}, seed=seed)
        return evaluate_model(child.model, task, latency=False)["accuracy"]

    ranked = {"producers": {}, "group": {"importance": "group"}, "bn_scale": {"importance": "bn_scale"}}
    sparsity = IMPORTANCE_SPARSITIES[-1]
    settings = {}
    for setting, where in IMPORTANCE_SETTINGS.items():
        untuned: dict = {}
        for s in IMPORTANCE_SPARSITIES:
            row = {k: accuracy({"sparsity": s, **where, **o}, 0, 0) for k, o in ranked.items()}
            rand = [accuracy({"sparsity": s, "scorer": "random", **where}, seed, 0) for seed in range(args.random_draws)]
            row["random"] = {**_summary(rand), "min": min(rand), "max": max(rand)}
            for k in ranked:  # where the deterministic ranking falls among the random draws
                row[f"{k}_share_of_random_below"] = sum(r < row[k] for r in rand) / len(rand)
            untuned[str(s)] = row
            print(f"{setting} untuned at {s}: " + ", ".join(f"{k} {row[k]:.4f}" for k in ranked)
                  + f", random {row['random']['mean']:.4f} ({row['random']['min']:.4f}-{row['random']['max']:.4f})",
                  flush=True)
        tuned = {k: [] for k in [*ranked, "random"]}
        for seed in range(args.seeds):
            for k, o in [*ranked.items(), ("random", {"scorer": "random"})]:
                tuned[k].append(accuracy({"sparsity": sparsity, **where, **o}, seed, args.tune_epochs))
            print(f"{setting} seed {seed} tuned: " + ", ".join(f"{k} {v[-1]:.4f}" for k, v in tuned.items()),
                  flush=True)
        settings[setting] = {
            "options": where, "untuned_accuracy": untuned,
            "tuned_accuracy": {k: _summary(v) for k, v in tuned.items()},
            "tuned_paired_p_vs_producers": {k: _paired_p(tuned[k], tuned["producers"]) for k in tuned if k != "producers"}}
    raw = {"task": task.spec, "parent_spec": spec, "parent_epochs": args.parent_epochs,
           "parent_train_s": parent_train_s, "parent_accuracy": parent_acc, "scope": "layer",
           "random_draws": args.random_draws, "sparsities": list(IMPORTANCE_SPARSITIES),
           "tuned": {"sparsity": sparsity, "tune": _tune(args.tune_epochs), "seeds": args.seeds},
           "settings": settings}
    acc = settings["stream"]["tuned_accuracy"]
    value = acc["group"]["mean"] - acc["producers"]["mean"]
    write_result("depgraph_importance", f"tuned accuracy at {sparsity:g} per layer, stream pruned: Torch-Pruning's "
                 "group importance minus childnet's producers' L1 (mean over seeds)", value,
                 "reported (which ranking suits a BatchNorm network: no target)", True, raw)


#: Sparsities of the rounding part: each leaves some ResNet-20 widths (16/32/64) that are no multiple of 8.
ROUNDING_SPARSITIES = (0.3, 0.45, 0.6)


def rounding(args) -> None:
    """Odd widths against widths rounded to multiples of 8 and 16: MACs and batch-64 latency, in one run."""
    task = load_task({"name": "mnist5k", "n_train": args.n_train})
    spec = {"name": "resnet", "depth": 20, "shortcut": "conv"}
    torch.manual_seed(0)
    model = build_model(spec, task.input_shape, task.num_classes).eval()  # widths and cost need no training
    parent = Parent(model, task, spec, state_fingerprint(model), "initialised")
    models, widths = {"parent": model}, {}
    for sparsity in ROUNDING_SPARSITIES:
        for round_to in (1, 8, 16):
            child = derive("depgraph", parent, task, {"sparsity": sparsity, "scope": "layer", "round_to": round_to,
                                                      "tune": {"epochs": 0}}, seed=0)
            key = f"s{sparsity}_round{round_to}"
            models[key] = child.model.eval()
            widths[key] = {g["layer"]: g["after"] for g in child.lineage.extra["shrink"]["groups"]}  # every group
    one, batch = take(task.x_test, slice(0, 1)), take(task.x_test, slice(0, 64))
    macs = {k: count_macs(m, one) for k, m in models.items()}
    lat = _latencies(models, batch, args.rounds)
    per_sparsity = {}
    for sparsity in ROUNDING_SPARSITIES:
        base = f"s{sparsity}_round1"
        per_sparsity[str(sparsity)] = {
            f"round{r}": {"widths": widths[f"s{sparsity}_round{r}"],
                          "macs_over_unrounded": macs[f"s{sparsity}_round{r}"] / macs[base],
                          "latency_over_unrounded": lat[f"s{sparsity}_round{r}"]["median_ms"] / lat[base]["median_ms"],
                          "latency_per_mac_over_unrounded": (lat[f"s{sparsity}_round{r}"]["median_ms"] /
                                                             macs[f"s{sparsity}_round{r}"]) /
                                                            (lat[base]["median_ms"] / macs[base])}
            for r in (1, 8, 16)}
    raw = {"task": task.spec, "parent_spec": spec, "scope": "layer", "threads": torch.get_num_threads(),
           "macs": macs, "latency_b64": lat, "per_sparsity": per_sparsity}
    ratios = [per_sparsity[str(s)]["round8"]["latency_per_mac_over_unrounded"] for s in ROUNDING_SPARSITIES]
    value = statistics.mean(ratios)
    write_result("depgraph_rounding", "batch-64 latency per MAC of widths rounded to 8 over unrounded widths "
                 f"(mean over sparsities {', '.join(map(str, ROUNDING_SPARSITIES))})", value,
                 "< 1 (rounded widths run faster per MAC: reported, not required)", value < 1, raw)


#: Torch-Pruning's BERT pruning shrinks all-MiniLM-like models to about this many parameters (issue 17's figure,
#: heads, feed-forward width and hidden size at 50 %); reported beside ours, not measured here.
TP_CLAIM_PARAMS = 8.6e6

#: The MiniLM children: 50 % of the heads and feed-forward width per layer; ``child_stream`` also halves the
#: hidden stream through the LayerNorms (embeddings included).
MINILM_CHILDREN = {"child": {}, "child_stream": {"norm_stream": True}}


def minilm(args) -> None:
    task = load_task({"name": "rotten-tomatoes", "n_train": args.n_train, "max_length": 64, "test_size": 2000})
    model = build_model({"name": "minilm"}, task.input_shape, task.num_classes).eval()
    parent = Parent(model, task, {"name": "minilm"}, state_fingerprint(model), "pretrained")
    tune = {"epochs": args.tune_epochs, "optimizer": "adamw", "lr": 1e-4, "weight_decay": 0.01, "schedule": "linear",
            "warmup_frac": 0.1, "grad_clip": 1.0, "batch_size": 16}
    acc: dict = {"parent_vanilla": [], **{k: [] for k in MINILM_CHILDREN}}
    vanilla_source = "this run"
    if args.vanilla_from:
        import json

        data = json.loads(Path(args.vanilla_from).read_text())
        rec = data["settings"][f"task.n_train={args.n_train}"]["methods"]["vanilla"]
        acc["parent_vanilla"] = [rec["values"][rec["seeds"].index(s)] for s in range(args.seeds)]
        vanilla_source = f"{args.vanilla_from} ({data['command']})"
    children: dict = {}
    for seed in range(args.seeds):
        t0 = time.perf_counter()
        if not args.vanilla_from:
            v = derive("vanilla", parent, task, {"train": tune}, seed=seed)
            acc["parent_vanilla"].append(evaluate_model(v.model, task, latency=False)["accuracy"])
        for name, opts in MINILM_CHILDREN.items():
            c = derive("depgraph", parent, task, {"sparsity": 0.5, "scope": "layer", "tune": tune, **opts}, seed=seed)
            acc[name].append(evaluate_model(c.model, task, latency=False)["accuracy"])
            children.setdefault(name, c)
        print(f"seed {seed} ({time.perf_counter() - t0:.0f} s): " + ", ".join(f"{k} {v[seed]:.4f}" for k, v in
                                                                          acc.items()), flush=True)
    for name, opts in MINILM_CHILDREN.items():  # --seeds 0: cost only (the children shrunk once, not tuned)
        if name not in children:
            children[name] = derive("depgraph", parent, task, {"sparsity": 0.5, "scope": "layer",
                                                               "tune": {**tune, "epochs": 0}, **opts})
    models = {"parent": parent.model, **{k: c.model for k, c in children.items()}}
    batch = take(task.x_test, slice(0, 64))
    cost = {k: {"params": count_params(m), "macs": count_macs(m, take(task.x_test, slice(0, 1)))}
            for k, m in models.items()}
    lat = _latencies(models, batch, args.rounds)
    raw = {
        "task": task.spec, "tune": tune, "sparsity": 0.5, "scope": "layer",
        "children": {k: {"sparsity": 0.5, "scope": "layer", **o} for k, o in MINILM_CHILDREN.items()},
        "cost": cost, "latency_b64": lat,
        "latency_ratio": {k: lat[k]["median_ms"] / lat["parent"]["median_ms"] for k in children},
        "params_ratio": {k: cost[k]["params"] / cost["parent"]["params"] for k in children},
        "macs_ratio": {k: cost[k]["macs"] / cost["parent"]["macs"] for k in children},
        "torch_pruning_claim_params": TP_CLAIM_PARAMS,
        "seeds": list(range(args.seeds)),
        "accuracy": {k: _summary(v) for k, v in acc.items() if v}, "vanilla_source": vanilla_source,
        "accuracy_paired_p_vs_vanilla": {k: _paired_p(acc[k], acc["parent_vanilla"]) for k in children},
        "widths": {k: c.lineage.extra["shrink"]["groups"] for k, c in children.items()},
        "skipped": {k: c.lineage.extra["shrink"]["skipped"] for k, c in children.items()},
        "max_output_error": {k: c.lineage.extra["shrink"]["max_output_error"] for k, c in children.items()},
    }
    ratio = raw["latency_ratio"]["child"]
    write_result("depgraph_minilm", "batch-64 latency of the 50 % heads/width child over the parent's",
                 ratio, "≤ 0.8 (reported)", ratio <= 0.8, raw)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("part", choices=["resnet", "minilm", "rounding", "importance"])
    ap.add_argument("--seeds", type=int, default=None, help="default 5 (importance), 3 (resnet, minilm)")
    ap.add_argument("--n-train", type=int, default=None)
    ap.add_argument("--parent-epochs", type=int, default=None, help="default 10 (importance), 4 (others)")
    ap.add_argument("--tune-epochs", type=int, default=None)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--random-draws", type=int, default=8, help="importance: random rankings drawn (untuned)")
    ap.add_argument("--vanilla-from", default="",
                    help="minilm: vanilla accuracies per seed from this reproduction JSON (default '': run them here, "
                    "with the same recipe as the children)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    if args.seeds is None:
        args.seeds = 5 if args.part == "importance" else 3
    if args.parent_epochs is None and args.part != "importance":
        args.parent_epochs = 4
    if args.part == "rounding":
        args.n_train = args.n_train or 1000
        rounding(args)
    elif args.part == "importance":  # a well-trained parent: the full mnist5k training split
        args.parent_epochs = args.parent_epochs or 10
        args.tune_epochs = 1 if args.tune_epochs is None else args.tune_epochs
        importance(args)
    elif args.part == "resnet":
        args.n_train = args.n_train or 1000
        args.tune_epochs = 2 if args.tune_epochs is None else args.tune_epochs
        resnet(args)
    else:
        args.n_train = args.n_train or 300
        args.tune_epochs = 3 if args.tune_epochs is None else args.tune_epochs
        minilm(args)


if __name__ == "__main__":
    main()
