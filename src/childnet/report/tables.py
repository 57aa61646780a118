"""Tables of a summary (:func:`childnet.report.summarize`): one model, three renderings.

A :class:`TextTable` holds formatted cells; it renders to Markdown, to HTML and to a rich
``Table`` (what the CLI prints after a run), so the three always show the same numbers.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "TextTable",
    "failures_table",
    "extra_metrics_table",
    "format_count",
    "format_p",
    "format_value",
    "print_table",
    "setting_table",
]

DASH = "—"

#: Quality metrics shown beside the primary one (the primary is left out of this list).
QUALITY_COLUMNS = {"accuracy": "accuracy", "nll": "NLL", "ece": "ECE"}

#: Cost columns: (metric key, header, formatter name).
COST_COLUMNS = [
    ("params", "params", "count"),
    ("nonzero_params", "non-zero params", "count"),
    ("macs", "MACs", "count"),
    ("train_compute", "train compute (MAC×ex)", "count"),
    ("latency_ms_b1", "latency b1 (ms)", "ms"),
    ("latency_ms_b64", "latency b64 (ms)", "ms"),
]

#: Simulated intermittent device (evaluate/device.py): shown when a method has them; feasible is a
#: fraction over seeds (each child 1 or 0).
DEVICE_COLUMNS = [
    ("device_feasible", "device feasible", "fraction"),
    ("device_latency_s", "device latency (s)", "seconds"),
    ("device_continuous_latency_s", "device cont. latency (s)", "seconds"),
    ("device_energy_j", "device energy (mJ)", "mj"),
]

#: Cost columns kept in the compact (terminal) table.
COMPACT_COSTS = ("nonzero_params", "macs", "train_compute")

#: Metrics used for warnings, not shown as columns.
HIDDEN_KEYS = {"predicted_classes", "majority_accuracy"}

#: Metric keys that have a column of their own; any other numeric key goes to the extras table.
STANDARD_KEYS = (set(QUALITY_COLUMNS) | {key for key, _, _ in COST_COLUMNS + DEVICE_COLUMNS} | {"sparse_bytes"}
                 | HIDDEN_KEYS)

#: Marks the best mean of the primary metric within each family.
BEST = "★"


@dataclass
class TextTable:
    """A titled table of already formatted cells."""

    title: str
    headers: list[str]
    rows: list[list[str]] = field(default_factory=list)
    show_title: bool = True

    def to_markdown(self) -> str:
        """GitHub-flavoured Markdown (pipes in cells escaped)."""
        def cells(values):
            return "| " + " | ".join(str(v).replace("|", "\\|") for v in values) + " |"

        lines = [cells(self.headers), "|" + "|".join("---" for _ in self.headers) + "|"]
        lines += [cells(row) for row in self.rows]
        return "\n".join(lines)

    def to_html(self) -> str:
        """An HTML ``<table>`` with escaped cells."""
        head = "".join(f"<th>{html.escape(h)}</th>" for h in self.headers)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in self.rows
        )
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"

    def to_rich(self):
        """A ``rich.table.Table`` (numbers never wrap: every column but the first is at least its widest cell)."""
        from rich import box
        from rich.table import Table
        from rich.text import Text

        table = Table(title=Text(self.title), box=box.SIMPLE_HEAD)
        for i, header in enumerate(self.headers):
            widest = max((len(str(row[i])) for row in self.rows), default=0)
            table.add_column(header, justify="left" if i == 0 else "right", overflow="fold",
                             min_width=widest if i else min(widest, 12), no_wrap=bool(i))
        for row in self.rows:
            table.add_row(*[Text(str(c)) for c in row])
        return table


def format_value(value: float | None, digits: int = 4, signed: bool = False) -> str:
    """A metric value with ``digits`` decimals; ``—`` for ``None``."""
    if value is None:
        return DASH
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def format_p(p: float | None) -> str:
    """A p-value: 3 decimals, scientific below 0.001; ``—`` when there is no test."""
    if p is None:
        return DASH
    if p == 0.0:
        return "0"
    return f"{p:.3f}" if p >= 1e-3 else f"{p:.1e}"


def format_count(value: float | None) -> str:
    """A count (parameters, MACs): exact with separators below a million, else with a k/M/G suffix."""
    if value is None:
        return DASH
    if abs(value) < 1e6:
        return f"{value:,.0f}"
    for scale, suffix in ((1e9, "G"), (1e6, "M")):
        if abs(value) >= scale:
            return f"{value / scale:.2f}{suffix}"
    return f"{value:,.0f}"  # pragma: no cover


def _format_ms(value: float | None) -> str:
    return DASH if value is None else f"{value:.3f}"


def _seeds_cell(entry: dict) -> str:
    parts = [str(entry["n_ok"])]
    if entry["n_failed"]:
        parts.append(f"{entry['n_failed']} failed")
    if entry["n_missing"]:
        parts.append(f"{entry['n_missing']} not run")
    return parts[0] if len(parts) == 1 else f"{parts[0]} ({', '.join(parts[1:])})"


def _mean_std_cell(entry: dict) -> str:
    if entry["mean"] is None:
        return DASH
    if entry["std"] is None:
        return format_value(entry["mean"])
    return f"{format_value(entry['mean'])} ± {format_value(entry['std'])}"


def _present(key: str, setting: dict) -> bool:
    parent = (setting.get("parent") or {}).get("metrics") or {}
    return key in parent or any(key in e["metrics"] for e in setting["methods"].values())


def setting_table(summary: dict[str, Any], setting_id: str, compact: bool = False) -> TextTable:
    """The main table of one setting: the parent, then each method's seeds, primary metric, Δ and p vs its
    baseline, quality and cost (only the columns some row has).

    The best mean of the primary metric in each family is marked ★. Δ and p compare each method with the
    experiment's baseline, or — when it names none — with its family's (scratch, oneshot, independent,
    random_search, vanilla); the ``vs`` column says which.

    Args:
        summary: the output of :func:`childnet.report.summarize`.
        setting_id: the setting to tabulate.
        compact: fewer columns (for a terminal): primary metric, Δ, p, non-zero params, MACs, train compute.
    """
    setting = summary["settings"][setting_id]
    metric, baseline = summary["metric"], summary["baseline"]
    others = [] if compact else [(k, h) for k, h in QUALITY_COLUMNS.items() if k != metric and _present(k, setting)]
    costs = [c for c in COST_COLUMNS if (not compact or c[0] in COMPACT_COSTS) and _present(c[0], setting)]
    costs += [c for c in DEVICE_COLUMNS
              if _present(c[0], setting) and (not compact or c[0] in ("device_feasible", "device_latency_s"))]
    refs = {e.get("baseline") for e in setting["methods"].values() if e.get("baseline")}
    per_row = len(refs) > 1 or (baseline is None and refs)
    headers = ["method", "seeds ok", f"{metric} mean ± std",
               "Δ" if per_row or compact else f"Δ vs {baseline or 'baseline'}", "p" if compact else "p (paired t)"]
    if per_row:
        headers.insert(3, "vs")
    headers += [h for _, h in others] + [h for _, h, _ in costs]
    fmt = {"count": format_count, "ms": _format_ms, "fraction": lambda v: DASH if v is None else f"{v:.2f}",
           "seconds": lambda v: DASH if v is None else f"{v:.4g}",
           "mj": lambda v: DASH if v is None else f"{v * 1e3:.4g}"}
    title = summary["name"] if setting_id == "default" else f"{summary['name']}: {setting_id}"
    table = TextTable(title=title, headers=headers, show_title=False)
    parent = setting.get("parent") or summary.get("parent")
    if parent:
        pm = parent.get("metrics") or {}
        arch = parent.get("architecture") or {}
        row = [f"parent ({arch.get('name', '?')})", DASH, format_value(pm.get(metric)), DASH, DASH]
        row[3:3] = [DASH] if per_row else []
        row += [format_value(pm.get(k)) for k, _ in others]
        row += [fmt[kind](pm.get("params") if key == "nonzero_params" and key not in pm else pm.get(key))
                for key, _, kind in costs]
        table.rows.append(row)
    for label, entry in setting["methods"].items():
        means = entry["metrics"]
        name = label + (f" {BEST}" if entry.get("best_in_family") else "") + (" (baseline)" if entry["is_baseline"] else "")
        row = [name, _seeds_cell(entry), _mean_std_cell(entry), format_value(entry["delta"], signed=True),
               format_p(entry["p_value"])]
        if per_row:
            row.insert(3, entry.get("baseline") if entry.get("baseline") and not entry["is_baseline"] else DASH)
        row += [format_value(means.get(k)) for k, _ in others]
        row += [fmt[kind](means.get(key)) for key, _, kind in costs]
        table.rows.append(row)
    return table


def extra_metrics_table(summary: dict[str, Any], setting_id: str) -> TextTable | None:
    """Method-specific numeric metrics (``train_macs``, ``ensemble_members``…), means over seeds."""
    methods = summary["settings"][setting_id]["methods"]
    if not any(e["metrics"] for e in methods.values()):
        return None
    extras = sorted({k for e in methods.values() for k in e["metrics"] if k not in STANDARD_KEYS
                     and not (k.startswith("select_") and k[len("select_"):] in (e.get("picks") or {}))})  # picks:
    # per seed, in the notes (a mean of picks is no candidate)
    extras = (["sparse_bytes"] if any("sparse_bytes" in e["metrics"] for e in methods.values()) else []) + extras
    table = TextTable(title=f"other metrics ({setting_id}), means over successful seeds",
                      headers=["method"] + extras + ["wall time (s)"])
    for label, entry in methods.items():
        row = [label] + [_format_extra(entry["metrics"].get(k)) for k in extras]
        wall = entry["wall_time_s"]
        table.rows.append(row + [DASH if wall is None else f"{wall:.1f}"])
    return table


def _format_extra(value: float | None) -> str:
    if value is None:
        return DASH
    if float(value).is_integer() or abs(value) >= 1e4:
        return format_count(value)
    return f"{value:.4g}"


def failures_table(summary: dict[str, Any]) -> TextTable | None:
    """Every unit that did not succeed, with its error message; ``None`` when all succeeded."""
    if not summary["failures"]:
        return None
    table = TextTable(title="failed units", headers=["setting", "method", "seed", "error"])
    for f in summary["failures"]:
        table.rows.append([f["setting"], f["label"], str(f["seed"]), f["error"]])
    return table


def _fits(table: TextTable, width: int) -> bool:
    """Whether ``table`` fits ``width`` columns with every number whole (names may wrap to 12 characters)."""
    need = [max([len(table.headers[i])] + [len(str(r[i])) for r in table.rows]) for i in range(len(table.headers))]
    need[0] = min(need[0], 12)
    return sum(need) + 2 * len(need) + 2 <= width


def _stacked(table: TextTable, console) -> None:
    """A layout for narrow terminals and pipes: one block per row, ``header: value`` lines — nothing cut."""
    from rich.text import Text

    console.print(Text(table.title, style="bold"))
    for row in table.rows:
        console.print(Text(str(row[0]), style="bold"), soft_wrap=True)
        for header, cell in zip(table.headers[1:], row[1:]):
            console.print(Text(f"  {header}: {cell}"), soft_wrap=True)


def print_table(summary: dict[str, Any], console=None) -> None:
    """Print the results of a run with rich: one table per setting, then warnings, failures and notes.

    A table wider than the terminal (or than 80 columns when the output is not a terminal) is printed
    as one block per method instead, so that no number is ever cut; failed units' messages are printed
    whole.

    Args:
        summary: the output of :func:`childnet.report.summarize`.
        console: a ``rich.console.Console`` (a new one on stdout by default).
    """
    if console is None:
        from rich.console import Console

        console = Console()
    for setting_id, setting in summary["settings"].items():
        table = setting_table(summary, setting_id, compact=True)
        if _fits(table, console.width):
            console.print(table.to_rich())
        else:
            _stacked(table, console)
        if any(e.get("best_in_family") for e in setting["methods"].values()):
            console.print(_note(f"{BEST} best mean {summary['metric']} in its family; train compute is forward MACs "
                                "× training examples (search included; the parent's in its own row)"))
        if setting["baseline_note"]:
            console.print(_note(setting["baseline_note"]))
    for warning in summary.get("warnings", []):
        console.print(_note(warning, "warning: ", "bold red"), soft_wrap=True)
    for f in summary["failures"]:
        where = f"{f['label']} seed {f['seed']}" + ("" if f["setting"] == "default" else f" ({f['setting']})")
        console.print(_note(f"{where}: {f['error']}", "failed: ", "red"), soft_wrap=True)
    if summary["skipped_lines"]:
        console.print(_note(f"{summary['skipped_lines']} unreadable line(s) in results.jsonl were skipped "
                            "(e.g. a run killed mid-write)"))


def _note(message: str, prefix: str = "note: ", style: str = "yellow"):
    from rich.text import Text

    return Text.assemble((prefix, style), message)
