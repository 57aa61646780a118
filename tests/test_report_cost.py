"""The report answers "which child, at what cost" (issue 11 §2): parent row, family baselines, best per family,
training compute, warnings, layouts that never cut numbers, plots and links."""

from __future__ import annotations

import io
import json

import pytest
from rich.console import Console
from scipy import stats

from childnet.report import build_report, print_table, summarize
from childnet.report.plots import _color, _marker, _members, _mean_curve

PARENT = {"fingerprint": "abc", "architecture": {"name": "cnn", "width": 32}, "task": {"name": "digits"},
          "source": "trained", "metrics": {"accuracy": 0.981234, "params": 23456, "macs": 120000,
                                           "train_compute": 987654321, "predicted_classes": 10,
                                           "majority_accuracy": 0.1}}
ACC = {"scratch": [0.91, 0.92, 0.90], "kd": [0.93, 0.95, 0.94], "oneshot": [0.80, 0.82, 0.81],
       "iterative": [0.85, 0.86, 0.84]}


def _unit(label, seed, acc, error=None, **extra):
    metrics = None if error else {"accuracy": acc, "nll": 0.3, "ece": 0.05, "params": 1000, "nonzero_params": 400,
                                  "macs": 20000, "predicted_classes": 10, "majority_accuracy": 0.1, **extra}
    history = [{"epoch": e, "lr": 0.01, "samples": 100, "val_accuracy": (acc or 0) * e / 3} for e in (1, 2, 3)]
    return {"unit": f"default/{label}/seed{seed}", "setting": "default", "overrides": {}, "method": label,
            "label": label, "seed": seed, "status": "failed" if error else "ok", "error": error,
            "metrics": metrics, "history": [] if error else history, "child_dir": f"children/default/{label}/seed{seed}",
            "wall_time_s": 1.0, "parent": PARENT}


def _run(tmp_path, units, labels, baseline=None):
    exp = {"name": "cost", "task": {"name": "digits"}, "parent": {"model": {"name": "cnn"}, "train": {}},
           "methods": [{"name": m, "label": m, "options": {}} for m in labels], "baseline": baseline, "seeds": 3,
           "metric": "accuracy", "sweep": {}, "evaluate": {}, "source": None}
    run = tmp_path / "run"
    run.mkdir()
    (run / "experiment.json").write_text(json.dumps(exp))
    (run / "results.jsonl").write_text("".join(json.dumps(u) + "\n" for u in units))
    return run


@pytest.fixture
def run(tmp_path):
    units = [_unit(m, s, a) for m, accs in ACC.items() for s, a in enumerate(accs)]
    return _run(tmp_path, units, list(ACC))


def test_each_method_is_tested_against_its_familys_baseline(run):
    methods = summarize(run)["settings"]["default"]["methods"]
    assert methods["kd"]["baseline"] == "scratch" and methods["iterative"]["baseline"] == "oneshot"
    assert methods["iterative"]["p_value"] == pytest.approx(stats.ttest_rel(ACC["iterative"], ACC["oneshot"]).pvalue)
    assert methods["iterative"]["delta"] == pytest.approx(0.04)
    assert methods["scratch"]["is_baseline"] and methods["oneshot"]["is_baseline"]
    assert methods["kd"]["best_in_family"] and methods["iterative"]["best_in_family"]
    assert not methods["scratch"]["best_in_family"]
    assert methods["kd"]["metrics"]["train_compute"] == 20000 * 300  # MACs × examples seen in its history


def test_named_baseline_still_wins(tmp_path):
    units = [_unit(m, s, a) for m, accs in ACC.items() for s, a in enumerate(accs)]
    methods = summarize(_run(tmp_path, units, list(ACC), baseline="scratch"))["settings"]["default"]["methods"]
    assert methods["iterative"]["baseline"] == "scratch"


def test_table_has_the_parent_row_and_costs(run):
    md = build_report(run).markdown.read_text()
    parent = next(line for line in md.splitlines() if line.startswith("| parent (cnn) |"))
    assert "0.9812" in parent and "23,456" in parent and "987.65M" in parent
    kd = next(line for line in md.splitlines() if line.startswith("| kd ★ |"))
    assert "| scratch |" in kd and "400" in kd and "6,000,000" not in kd and "6.00M" in kd
    header = next(line for line in md.splitlines() if line.startswith("| method |"))
    assert "train compute" in header and "non-zero params" in header and "latency" not in header


@pytest.mark.parametrize("width", [40, 200])
def test_terminal_table_never_cuts_numbers_and_prints_failures_whole(tmp_path, width):
    long_error = "loss became non-finite at epoch 3 " + "x" * 300 + " END"
    units = [_unit(m, s, a) for m, accs in ACC.items() for s, a in enumerate(accs)]
    units.append(_unit("kd", 3, None, error=long_error))
    out = io.StringIO()
    print_table(summarize(_run(tmp_path, units, list(ACC))), Console(file=out, width=width))
    text = out.getvalue()
    for cell in ("0.9400 ± 0.0100", "0.9812", "6.00M", "987.65M",
                 f"{stats.ttest_rel(ACC['iterative'], ACC['oneshot']).pvalue:.3f}"):
        assert cell in text, (cell, text)
    assert long_error in text  # soft-wrapped by the terminal, never cut


def test_degenerate_children_and_parents_are_warned_about(tmp_path):
    units = [_unit("scratch", s, 0.1, predicted_classes=1) for s in range(3)]
    units += [_unit("kd", s, 0.5) for s in range(3)]
    run = _run(tmp_path, units, ["scratch", "kd"])
    summary = summarize(run)
    assert any("scratch" in w and "single class" in w for w in summary["warnings"])
    out = io.StringIO()
    print_table(summary, Console(file=out, width=120))
    assert "warning" in out.getvalue() and "single class" in out.getvalue()
    assert "single class" in build_report(run).markdown.read_text()


def test_wide_tables_scroll_and_diversity_is_linked(run):
    (run / "diversity" / "default" / "independent" / "seed0").mkdir(parents=True)
    (run / "diversity" / "diversity.json").write_text("{}")
    (run / "diversity" / "default" / "independent" / "seed0" / "kl.png").write_bytes(b"\x89PNG")
    page = build_report(run).html.read_text()
    assert '<div class="scroll"><table>' in page and "overflow-x:auto" in page
    assert 'href="diversity/diversity.json"' in page and 'href="diversity/default/independent/seed0/kl.png"' in page


def test_plots_keep_methods_apart_and_ensembles_per_member():
    styles = {(_color(i), _marker(i)) for i in range(40)}
    assert len(styles) == 40 and len({_color(i) for i in range(40)}) == 40
    unit = {"history": [{"epoch": 1, "member": 0, "member_epoch": 1, "val_accuracy": 0.5},
                        {"epoch": 2, "member": 0, "member_epoch": 2, "val_accuracy": 0.6},
                        {"epoch": 3, "member": 1, "member_epoch": 1, "val_accuracy": 0.4},
                        {"epoch": 4, "member": 1, "member_epoch": 2, "val_accuracy": 0.7}]}
    assert _members([unit]) == [0, 1]
    assert _mean_curve([unit], "val_accuracy", 1)[:2] == ([1.0, 2.0], [0.4, 0.7])
