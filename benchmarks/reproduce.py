"""Run reproduction experiments and write ``benchmarks/results/<name>.json``; ``--all`` reruns every one.

    python benchmarks/reproduce.py experiments/hkt-mnist.yaml [--out runs/hkt-mnist] [--workers 2]
    python benchmarks/reproduce.py --all [--root runs/reproduce] [--cache DIR] [--only a,b] [--workers 1]
    make reproduce                                     # = --all, then docs/results.md's tables
    python benchmarks/reproduce.py --status [--root runs/reproduce]   # what is finished, which JSON is current

The run folder resumes: re-running after an interruption only computes missing units. The JSON is in
the "reproduction" format of DESIGN.md (per setting, per method: values per seed, mean, std, paired
p-value against the baseline) and records the exact command.

``--all``: a reproduction is an ``experiments/*.yaml`` whose opening ``# Run:`` line runs this script
(the demo's runs ``childnet run``, so it is not one). Each runs into ``ROOT/<name>`` with the parent cache
``--cache`` (default ``ROOT/parent-cache``), which must be empty or absent the first time: every parent is
trained again by this code, none comes from an older cache. Re-running the same command resumes: finished
units and the parents this invocation already trained are reused. For a second rerun from scratch, name a
new ``--root``. After each run (one experiment or --all) its summary scripts (:data:`FOLLOW_UPS`) rewrite their JSON; at the end
``benchmarks/results_doc.py`` rewrites docs/results.md's generated tables. A failed experiment does not
stop the others (exit code 1 at the end).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = ROOT / "experiments"
#: Marks a parent cache folder created by ``--all`` (a non-empty folder without it is refused).
CACHE_MARK = ".childnet-reproduce-cache"

#: Scripts that summarise a finished run folder into their own JSON, per reproduction ({run}: its folder).
FOLLOW_UPS = {
    "enas-mnist": [["benchmarks/search_summary.py", "{run}"]],
    "poison-enas": [["benchmarks/search_summary.py", "{run}"]],
    "inas-mnist": [["benchmarks/inas_summary.py", "{run}", "--name", "inas-mnist"]],
    "inas-mlp": [["benchmarks/inas_summary.py", "{run}", "--name", "inas-mlp"]],
    "manas-amazon": [["benchmarks/manas_metrics.py", "{run}"]],
    "naml-text": [["benchmarks/naml_summary.py", "{run}"]],
    "ensembles-mnist": [["benchmarks/ensemble_diversity.py", "{run}"]],
    "tune-minilm-rt": [["benchmarks/calibration_matched.py", "{run}"]],
}


def run_command(path: Path) -> str:
    """The command of an experiment file's opening ``# Run:`` line."""
    first = path.read_text(encoding="utf-8").splitlines()[0] if path.stat().st_size else ""
    return first.removeprefix("# Run:").strip() if first.startswith("# Run:") else ""


def reproductions() -> list[Path]:
    """Every experiment whose ``# Run:`` line runs this script, in file-name order."""
    return [p for p in sorted(EXPERIMENTS.glob("*.yaml"))
            if run_command(p).startswith("python benchmarks/reproduce.py")]


def follow_ups(name: str, out: Path) -> int:
    """Run the summary scripts of reproduction ``name`` on its finished run folder ``out`` (0 if all succeed)."""
    code = 0
    for script in FOLLOW_UPS.get(name, []):
        run = out.resolve().relative_to(ROOT) if out.resolve().is_relative_to(ROOT) else out.resolve()
        argv = [sys.executable, str(ROOT / script[0])] + [a.format(run=run) for a in script[1:]]
        code = subprocess.run(argv, cwd=ROOT).returncode or code
    return code


def status(root: Path) -> list[str]:
    """One line per reproduction: units finished in ``root/<name>`` of those planned, and whether its JSON in
    benchmarks/results/ comes from the experiment file as it is now (docs/results.md's freshness column)."""
    import results_doc

    from childnet import runfolder
    from childnet.config import load_experiment
    from childnet.errors import ChildnetError
    from childnet.runner import plan_units, read_results

    lines = []
    for path in reproductions():
        cfg = load_experiment(path)
        planned = {u.key for u in plan_units(cfg)}
        folder = root / path.stem
        done = {r.get("unit") for r in read_results(folder) if r.get("status") == "ok"} if folder.is_dir() else set()
        state = results_doc.freshness(path.stem).replace("`", "").replace("**", "")
        try:
            held = runfolder.read_experiment(folder) if folder.is_dir() else None
        except ChildnetError as err:
            lines.append(f"{path.stem}: {err}; JSON: {state}")
            continue
        if held is not None and runfolder.experiment_identity(held) != runfolder.experiment_identity(cfg.model_dump()):
            what = (f"holds another experiment's results ({len(done)} units), which a run of {path.name} refuses"
                    if read_results(folder) else "holds another experiment's file and no result (a run replaces it)")
            lines.append(f"{path.stem}: {folder} {what}: 0/{len(planned)} units; JSON: {state}")
            continue
        lines.append(f"{path.stem}: {len(done & planned)}/{len(planned)} units in {folder}; JSON: {state}")
    return lines


def run_one(experiment: Path, out: Path | None, workers: int | None, name: str | None, command: str) -> int:
    from childnet._progress import RichProgress
    from childnet.config import load_experiment
    from childnet.report import export_results
    from childnet.runner import run

    cfg = load_experiment(experiment)
    name = name or cfg.name
    out = out or ROOT / "runs" / name
    result = run(cfg, out, workers=workers, progress=RichProgress())
    data = export_results(out, name, command)
    dest = ROOT / "benchmarks" / "results" / f"{name}.json"
    dest.write_text(json.dumps(data, indent=2) + "\n")
    print(f"wrote {dest} ({result.finished} units run now, {result.skipped} reused, {len(result.failed)} failed)")
    if result.failed:
        return 1
    return follow_ups(experiment.stem, out) if experiment.stem == name else 0


def _fresh_cache(cache: Path) -> None:
    """Use ``cache`` only if it is empty, absent, or one this script created (then it resumes)."""
    if cache.exists() and any(cache.iterdir()) and not (cache / CACHE_MARK).exists():
        raise SystemExit(f"--cache {cache} is not empty and was not created by reproduce.py --all; the "
                         "reproductions start from an empty parent cache: name an empty or new folder")
    cache.mkdir(parents=True, exist_ok=True)
    (cache / CACHE_MARK).write_text("parent cache of benchmarks/reproduce.py --all\n")


def run_all(root: Path, cache: Path, workers: int | None, only: list[str] | None, invocation: str) -> int:
    _fresh_cache(cache)
    os.environ["CHILDNET_CACHE"] = str(cache)  # read by childnet when it looks a parent up
    todo = [p for p in reproductions() if not only or p.stem in only]
    unknown = sorted(set(only or ()) - {p.stem for p in reproductions()})
    if unknown:
        raise SystemExit(f"--only: {', '.join(unknown)} is not a reproduction (reproductions: "
                         f"{', '.join(p.stem for p in reproductions())})")
    failed = []
    for path in todo:
        out = root / path.stem
        cmd = f"{invocation}  (this part: {path.relative_to(ROOT)}, from an empty parent cache)"
        print(f"== {path.relative_to(ROOT)} -> {out}", flush=True)
        try:
            code = run_one(path, out, workers, None, cmd)
        except Exception as err:  # one experiment's failure (e.g. a missing data package) stops only it
            print(f"{path.name}: {type(err).__name__}: {err}", file=sys.stderr)
            code = 1
        if code:
            failed.append(path.stem)
    import results_doc  # benchmarks/ is on sys.path when this file runs as a script

    results_doc.main([])
    if failed:
        print(f"failed or incomplete: {', '.join(failed)} (run the same command again to resume)", file=sys.stderr)
    return 1 if failed else 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("experiment", type=Path, nargs="?")
    ap.add_argument("--out", type=Path, default=None, help="run folder (default runs/<name>)")
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--name", default=None, help="result name (default: the experiment's name)")
    ap.add_argument("--all", action="store_true", help="every reproduction (experiments whose # Run: line is this)")
    ap.add_argument("--root", type=Path, default=ROOT / "runs" / "reproduce", help="--all: folder of the run folders")
    ap.add_argument("--cache", type=Path, default=None, help="--all: parent cache, empty at first (default ROOT/parent-cache)")
    ap.add_argument("--only", default=None, help="--all: comma-separated experiment names")
    ap.add_argument("--status", action="store_true", help="list each reproduction's finished units under --root "
                    "and whether its JSON is current, then exit")
    args = ap.parse_args(argv)
    if args.status:
        print("\n".join(status(args.root)))
        return 0

    import torch

    torch.set_num_threads(1)
    command = "python benchmarks/reproduce.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    if args.all:
        only = [s for s in args.only.split(",") if s] if args.only else None
        return run_all(args.root, args.cache or args.root / "parent-cache", args.workers, only, command)
    if args.experiment is None:
        ap.error("name an experiment file, or --all")
    return run_one(args.experiment, args.out, args.workers, args.name, command)


if __name__ == "__main__":
    sys.exit(main())
