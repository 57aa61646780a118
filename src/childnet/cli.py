"""The command line: a thin layer over the Python API.

    childnet run EXP.yaml [--out DIR] [--workers N] [--seeds N] [--quiet]
                 [--executor process|ray] [--address auto|HOST:PORT] [--retries N] [--track tensorboard,mlflow]
    childnet report RUN_DIR
    childnet list [methods|models|tasks]
    childnet validate EXP.yaml
    childnet show CHILD_DIR
    childnet diversity RUN_DIR [--layers a,b] [--out DIR] [--actmax-layer L] [--units N]

User errors print one message and exit with code 2 — never a traceback.
"""

from __future__ import annotations

import json
import signal
import sys
from enum import Enum
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from .errors import ChildnetError

__all__ = ["app", "main"]

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="childnet: child networks derived from a parent — inherit, tune, prune, ensemble, search.")
out_console = Console()
err_console = Console(stderr=True)


class Kind(str, Enum):
    methods = "methods"
    models = "models"
    tasks = "tasks"
    scorers = "scorers"
    all = "all"


@app.command()
def run(
    experiment: Path = typer.Argument(..., help="experiment YAML file"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="run folder (default runs/<name>); reuse to resume"),
    workers: Optional[int] = typer.Option(None, "--workers", "-w", help="worker processes (default: CPU cores; 0: in-process)"),
    seeds: Optional[int] = typer.Option(None, "--seeds", "-s", min=1, max=1000,
                                        help="override the number of seeds (1 … 1000)"),
    device: str = typer.Option("cpu", help="torch device"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bars, only the final table"),
    executor: str = typer.Option("process", "--executor", "-e", help="process (local pool) | ray (Ray tasks)"),
    address: Optional[str] = typer.Option(None, "--address", help="ray: 'auto' or HOST:PORT of a running cluster "
                                          "(default: a private local cluster with --workers CPUs)"),
    retries: int = typer.Option(3, "--retries", help="ray: retries of a unit whose worker process dies"),
    track: Optional[list[str]] = typer.Option(None, "--track", "-t", help="log units to tensorboard | mlflow "
                                              "(repeat or comma-separate)"),
) -> None:
    """Derive children by every method × seed of EXPERIMENT, evaluate them and write the report."""
    from ._progress import NullProgress, RichProgress
    from .runner import run as run_experiment
    from .train import check_device

    check_device(device)

    log = (lambda s: None) if quiet else (lambda s: err_console.print(s, style="dim", markup=False, highlight=False))
    previous = signal.signal(signal.SIGTERM, _on_sigterm)  # SIGTERM: the same shutdown as Ctrl-C
    try:
        result = run_experiment(experiment, out, workers=workers, seeds=seeds, device=device, log=log,
                                progress=NullProgress() if quiet else RichProgress(err_console),
                                executor=executor, address=address, retries=retries, track=track)
    finally:
        signal.signal(signal.SIGTERM, previous)
    _print_summary(result.out)
    if result.report is not None:
        out_console.print(f"report: {result.report.html}")
    if result.failed:
        err_console.print(f"[red]{len(result.failed)} unit(s) failed[/red] (see {result.out}/results.jsonl); "
                          "the others finished. Fix the cause and run the same command again to retry them"
                          + (" (a changed experiment file, such as a wider select grid, is a new experiment: "
                             "give it another --out folder)." if any(r.get("error_kind") == "diverged"
                                                                     for r in result.failed) else "."))
        user = any(r.get("error_kind") == "user" for r in result.failed)
        raise typer.Exit(2 if user else 1)


class Terminated(BaseException):
    """SIGTERM arrived: unwind like Ctrl-C (workers stopped, lock released), then exit 143."""


def _on_sigterm(signum, frame) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM ends the process at once
    raise Terminated()


def _print_summary(run_dir: Path) -> None:
    try:
        from .report import print_table, summarize
    except ImportError:  # pragma: no cover
        return
    print_table(summarize(run_dir), out_console)


@app.command()
def report(run_dir: Path = typer.Argument(..., help="a run folder written by `childnet run`")) -> None:
    """(Re)write report.md and report.html of RUN_DIR and print its table."""
    from .report import build_report

    from .runfolder import EXPERIMENT_FILE

    if not (run_dir / EXPERIMENT_FILE).exists():
        raise ChildnetError(f"{run_dir} is not a run folder (no {EXPERIMENT_FILE}); run `childnet run` first")
    paths = build_report(run_dir)
    _print_summary(run_dir)
    out_console.print(f"report: {paths.html}")


@app.command("list")
def list_(
    kind: Kind = typer.Argument(Kind.all, help="methods | models | tasks | scorers | all"),
    fields: bool = typer.Option(False, "--fields", help="every config field: type, default, description"),
    markdown: bool = typer.Option(False, "--markdown", help="the --fields listing as Markdown "
                                  "(docs/methods-reference.md); implies --fields"),
) -> None:
    """List registered methods, models, tasks and mask scorers (with --fields: every option of each)."""
    from .registry import METHODS, MODELS, SCORERS, TASKS

    regs = {"methods": METHODS, "models": MODELS, "tasks": TASKS, "scorers": SCORERS}
    if fields or markdown:
        from .reference import methods_reference, registry_reference

        if markdown and kind.value == "methods":
            sys.stdout.write(methods_reference())
            return
        for name, reg in regs.items():
            if kind.value in ("all", name):
                if not markdown:
                    sys.stdout.write(f"== {name} ==\n")
                sys.stdout.write(registry_reference(reg, markdown=markdown) + "\n")
        return
    for name, reg in regs.items():
        if kind.value not in ("all", name):
            continue
        table = Table(title=name, show_lines=False)
        table.add_column("name", style="bold")
        if name == "methods":
            table.add_column("family")
        table.add_column("description")
        for e in reg.entries():
            row = [e.name] + ([e.family or ""] if name == "methods" else []) + [e.summary]
            table.add_row(*row)
        out_console.print(table)


@app.command()
def validate(experiment: Path = typer.Argument(..., help="experiment YAML file")) -> None:
    """Check an experiment file, load its task and build every network on a dummy batch (no training)."""
    from .config import load_experiment
    from .dryrun import dry_run

    cfg = load_experiment(experiment)
    for line in dry_run(cfg):
        out_console.print(f"checked {line}", markup=False, highlight=False)
    from .select import candidate_count, replaced_values

    for note in replaced_values(cfg.methods):
        out_console.print(f"note: {note}", markup=False, highlight=False)
    n_set = len(cfg.settings())
    units = n_set * len(cfg.methods) * cfg.seeds
    trainings = n_set * cfg.seeds * sum(candidate_count(m.select) if m.select else 1 for m in cfg.methods)
    out_console.print(f"[green]ok[/green]: {experiment} — task {cfg.task.get('name')}, parent "
                      f"{cfg.parent.model.get('name')}, {len(cfg.methods)} methods × {cfg.seeds} seeds"
                      f"{f' × {n_set} settings' if n_set > 1 else ''} = {units} units"
                      f"{f' ({trainings} child trainings with the select candidates)' if trainings > units else ''}")


@app.command()
def show(child_dir: Path = typer.Argument(..., help="a child folder (child.json + model.safetensors)")) -> None:
    """Print the lineage card of a saved child."""
    from .child import read_card
    from .pipeline import shrunk_text

    card = read_card(child_dir)
    table = Table(title=f"child {child_dir}", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")

    def row(key: str, value) -> None:
        table.add_row(key, _plain_text(value))  # a card is a file: its text is not markup

    for key in ("method", "seed", "library_version", "created"):
        row(key, str(card.get(key)))
    parent = card.get("parent") or {}
    row("parent", f"{parent.get('architecture')} fingerprint {parent.get('fingerprint')} ({parent.get('source')})")
    row("architecture", json.dumps(card.get("architecture"))
                  + (f"\n{shrunk_text(card.get('extra') or {})}" if shrunk_text(card.get("extra") or {}) else ""))
    row("task", json.dumps(card.get("task")))
    row("config", json.dumps(card.get("config"), indent=1))
    metrics = card.get("metrics") or {}
    row("metrics", "\n".join(f"{k}: {v:.4g}" if isinstance(v, float) else f"{k}: {v}" for k, v in metrics.items()))
    masks = (child_dir / "masks.safetensors").exists()
    row("masks", "masks.safetensors" if masks else "none")
    extra = card.get("extra") or {}
    if isinstance(extra.get("classes"), list):
        row("classes", ", ".join(f"{i} → {c}" for i, c in enumerate(extra["classes"][:50])))
    if isinstance(extra.get("standardize"), dict):
        row("standardize", f"per {extra['standardize'].get('per')}, fitted on the training split "
                      "(applied by childnet.predict)")
    if _select_text(extra.get("select")):
        row("select", _select_text(extra["select"]))
    if extra:
        row("extra", ", ".join(sorted(extra)))
    out_console.print(table)
    _print_family_tree(card)


def _select_text(sel) -> str:
    """A card's ``extra.select`` as lines: each candidate's values and validation score, the pick marked."""
    if not isinstance(sel, dict) or not isinstance(sel.get("candidates"), list):
        return ""
    lines = [f"{len(sel['candidates'])} candidates, picked by validation {sel.get('metric')} ({sel.get('strategy')})"]
    for i, cand in enumerate(sel["candidates"][:MAX_SHOWN_CANDIDATES]):
        cand = cand if isinstance(cand, dict) else {}
        values = cand.get("values")
        score = cand.get("val")
        text = (f"{score:.4f}" if isinstance(score, (int, float)) and not isinstance(score, bool)
                else str(cand.get("error") or "no score"))
        lines.append(f"{'→' if i == sel.get('pick') else ' '} {json.dumps(values, default=str)}: {text}")
    if len(sel["candidates"]) > MAX_SHOWN_CANDIDATES:
        lines.append(f"  … {len(sel['candidates']) - MAX_SHOWN_CANDIDATES} more in child.json")
    return "\n".join(lines)


#: Candidates ``childnet show`` lists of a selected child (all of them are on its card).
MAX_SHOWN_CANDIDATES = 32


def _plain_text(value) -> str:
    """Text from a file, safe to print: rich markup escaped, control characters (terminal escapes) replaced."""
    from rich.markup import escape

    return escape("".join(c if c.isprintable() or c == "\n" else "�" for c in str(value)))


def _print_family_tree(card: dict) -> None:
    """The child's ancestors, root parent first (a pipeline's card lists them all; otherwise its parent)."""
    from rich.tree import Tree

    from .pipeline import family_lines

    lines = family_lines(card)
    tree = node = Tree("[bold]family tree[/bold] (root parent first; metrics at that point)")
    for line in lines:
        node = node.add(_plain_text(line))
    out_console.print(tree)


@app.command()
def diversity(
    run_dir: Path = typer.Argument(..., help="a run folder with ensemble children"),
    layers: Optional[str] = typer.Option(None, help="comma-separated layer names for CKA (default: a few per model)"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="output folder (default RUN_DIR/diversity)"),
    actmax_layer: Optional[str] = typer.Option(
        None, "--actmax-layer", help="layer whose units activation maximisation shows (default: features, the "
        "head's input; without a head: the last CKA layer)"),
    units: int = typer.Option(4, "--units", min=0, help="units of that layer to show (0: no activation maximisation)"),
) -> None:
    """Diversity of ensemble members: disagreement, KL, linear CKA heat-maps, activation maximisation."""
    from .evaluate.diversity import diversity_for_run

    from ._progress import interactive

    names = [n.strip() for n in layers.split(",") if n.strip()] if layers else None
    if interactive():
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        with Progress(TextColumn("diversity"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      TextColumn("{task.fields[info]}"), console=err_console) as bar:
            task = bar.add_task("diversity", total=None, info="")
            summary = diversity_for_run(run_dir, layers=names, out=out, actmax_layer=actmax_layer, units=units,
                                        progress=lambda d, t, name: bar.update(task, completed=d, total=t, info=name))
    else:
        summary = diversity_for_run(run_dir, layers=names, out=out, actmax_layer=actmax_layer, units=units,
                                    progress=lambda d, t, name: err_console.print(f"diversity: {d}/{t} {name}",
                                                                                  highlight=False))
    if out is None and (run_dir / "experiment.json").exists():  # link the analysis from report.html
        from .report import build_report

        build_report(run_dir)
    table = Table(title="diversity (mean over seeds)")
    by_method = {}
    for group, vals in summary.get("by_method", {}).items():
        flat = {k: v for k, v in vals.items() if isinstance(v, (int, float))}
        flat.update({f"CKA {layer}" + (f" ({c['seeds']} of {vals.get('seeds')} seeds)" if "seeds" in c else ""):
                     c.get("member_pairs_mean") for layer, c in vals.get("cka", {}).items()})
        by_method[group] = flat
    keys = sorted({k for v in by_method.values() for k in v})
    table.add_column("measure", style="bold")
    for group in by_method:
        table.add_column(group)
    for k in keys:
        vals = [by_method[g].get(k) for g in by_method]
        table.add_row(k, *[f"{v:.4g}" if isinstance(v, (int, float)) else "" for v in vals])
    out_console.print(table)
    out_console.print(f"figures and diversity.json: {out or run_dir / 'diversity'}"
                      + (" (the earlier analysis there was replaced)" if summary.get("replaced_earlier") else ""))


def _click_errors() -> tuple[type, ...]:
    """ClickException classes of click and of typer's vendored copy (whichever exist)."""
    classes = []
    for mod in ("click.exceptions", "typer._click.exceptions"):
        try:
            classes.append(__import__(mod, fromlist=["ClickException"]).ClickException)
        except (ImportError, AttributeError):
            pass
    return tuple(classes)


def main(argv: list[str] | None = None) -> None:
    """Entry point: user errors → message + exit 2; Ctrl-C → exit 130, SIGTERM → 143 (finished units are kept)."""
    click_errors = _click_errors()
    try:
        from .plugins import load_plugins

        load_plugins()  # CHILDNET_PLUGINS: the user's registered models, tasks, methods (docs/own-model.md)
        code = app(args=argv, standalone_mode=False)
        if code == 130:  # typer's answer to Ctrl-C outside standalone mode
            _interrupted()
        sys.exit(code if isinstance(code, int) else 0)
    except ChildnetError as err:
        err_console.print("error: ", style="bold red", end="")
        err_console.print(str(err), markup=False, highlight=False, soft_wrap=True)
        sys.exit(err.exit_code)
    except typer.Exit as err:
        sys.exit(err.exit_code)
    except click_errors as err:
        err.show()
        sys.exit(getattr(err, "exit_code", 2))
    except KeyboardInterrupt:
        _interrupted()
    except Terminated:
        err_console.print("terminated (SIGTERM): the workers were stopped and finished units are saved; run the "
                          "same command again to resume.", markup=False, highlight=False, soft_wrap=True)
        sys.exit(143)
    except Exception as err:  # click turns Ctrl-C into Abort when it is not in standalone mode
        if type(err).__name__ == "Abort":
            _interrupted()
        raise


def _interrupted() -> None:
    err_console.print("interrupted: finished units are saved; run the same command again to resume.",
                      markup=False, highlight=False, soft_wrap=True)
    sys.exit(130)


if __name__ == "__main__":  # pragma: no cover
    main()
