"""The report is a pure function of a run folder: build one by hand with known values and check it."""

from __future__ import annotations

import base64
import json
import re
import warnings

import pytest
from rich.console import Console
from scipy import stats

from childnet.errors import ChildnetError
from childnet.runfolder import experiment_identity
from childnet.report import build_report, export_results, paired_t_test, print_table, summarize
from childnet.report.stats import mean_std, wilcoxon_signed_rank

PARENT = {"fingerprint": "abc123", "architecture": {"name": "cnn", "width": 32},
          "metrics": {"accuracy": 0.981, "params": 23456}, "source": "trained"}

#: accuracy per (label, seed) of the default fixture
ACC = {
    "scratch": [0.90, 0.92, 0.91],
    "kd": [0.93, 0.94, 0.95],
    "hkt": [0.95, 0.92, 0.96],
}


def _experiment(labels, baseline="scratch", seeds=3, sweep=None, metric="accuracy"):
    return {
        "name": "report-test", "task": {"name": "digits"},
        "parent": {"model": {"name": "cnn", "width": 32}, "train": {"epochs": 2}, "checkpoint": None,
                   "task": None, "seed": 0, "pretrained": False},
        "methods": [{"name": label, "label": label, "options": {}} for label in labels],
        "baseline": baseline, "seeds": seeds, "metric": metric, "sweep": sweep or {},
        "evaluate": {}, "source": None,
    }


def _unit(label, seed, acc=None, setting="default", overrides=None, error=None, params=1000, **extra):
    metrics = None
    if error is None:
        metrics = {"accuracy": acc, "nll": 1.0 - acc, "ece": 0.05, "params": params, "nonzero_params": params,
                   "sparse_bytes": 4 * params, "macs": 20000, "latency_ms_b1": 0.1, "latency_ms_b64": 1.0, **extra}
    history = [{"epoch": e, "lr": 0.01, "train_ce": 1.0 / e, "val_accuracy": (acc or 0.5) * e / 3} for e in (1, 2, 3)]
    return {"unit": f"{setting}/{label}/seed{seed}", "setting": setting, "overrides": overrides or {},
            "method": label, "label": label, "seed": seed, "status": "failed" if error else "ok", "error": error,
            "metrics": metrics, "history": history if error is None else [],
            "child_dir": f"children/{setting}/{label}/seed{seed}", "wall_time_s": 2.0, "parent": PARENT}


def _write_run(path, experiment, units, tail=""):
    path.mkdir(parents=True, exist_ok=True)
    (path / "experiment.json").write_text(json.dumps(experiment))
    (path / "results.jsonl").write_text("".join(json.dumps(u) + "\n" for u in units) + tail)
    return path


@pytest.fixture
def default_run(tmp_path):
    units = [_unit(label, seed, acc) for label, accs in ACC.items() for seed, acc in enumerate(accs)]
    return _write_run(tmp_path / "run", _experiment(list(ACC)), units)


def test_summary_values_match_numpy_and_scipy(default_run):
    summary = summarize(default_run)
    methods = summary["settings"]["default"]["methods"]
    assert list(methods) == ["scratch", "kd", "hkt"]
    kd = methods["kd"]
    assert kd["n_ok"] == 3 and kd["n_failed"] == 0 and kd["n_missing"] == 0
    assert kd["mean"] == pytest.approx(0.94)
    assert kd["std"] == pytest.approx(0.01)  # ddof=1
    assert kd["delta"] == pytest.approx(0.94 - 0.91)
    assert kd["p_value"] == pytest.approx(stats.ttest_rel(ACC["kd"], ACC["scratch"]).pvalue)
    assert methods["hkt"]["p_value"] == pytest.approx(stats.ttest_rel(ACC["hkt"], ACC["scratch"]).pvalue)
    assert methods["scratch"]["p_value"] is None and methods["scratch"]["is_baseline"]
    assert "wilcoxon_p" not in kd  # only from 6 pairs on
    assert kd["metrics"]["params"] == 1000 and kd["metrics"]["nll"] == pytest.approx(0.06)
    assert summary["parent"]["metrics"]["accuracy"] == 0.981


def test_markdown_table_shows_the_numbers(default_run):
    paths = build_report(default_run)
    md = paths.markdown.read_text(encoding="utf-8")
    p_kd = stats.ttest_rel(ACC["kd"], ACC["scratch"]).pvalue
    row = next(line for line in md.splitlines() if line.startswith("| kd |"))
    assert "0.9400 ± 0.0100" in row and "+0.0300" in row and f"{p_kd:.3f}" in row and "1,000" in row
    base_row = next(line for line in md.splitlines() if line.startswith("| scratch (baseline) |"))
    assert "—" in base_row
    assert "test accuracy 0.9810" in md and "23,456 params" in md
    for plot in paths.plots:
        assert plot.read_bytes().startswith(b"\x89PNG") and f"report_files/{plot.name}" in md


def test_html_is_self_contained(default_run):
    paths = build_report(default_run)
    page = paths.html.read_text(encoding="utf-8")
    assert 'src="http' not in page and 'href="http' not in page and "<script" not in page
    assert "<link" not in page and "@import" not in page
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(images) == len(paths.plots) >= 2  # per-seed points + training curves
    assert all(base64.b64decode(img).startswith(b"\x89PNG") for img in images)
    assert "0.9400 ± 0.0100" in page


def test_last_line_wins_and_truncated_line_is_skipped(tmp_path):
    units = [_unit("scratch", s, a) for s, a in enumerate(ACC["scratch"])]
    units += [_unit("kd", 0, error="NaN loss at epoch 2"), _unit("kd", 0, 0.97), _unit("kd", 1, 0.95)]
    run = _write_run(tmp_path / "run", _experiment(["scratch", "kd"]), units, tail='{"unit": "default/kd/se')
    summary = summarize(run)
    kd = summary["settings"]["default"]["methods"]["kd"]
    assert kd["values"] == [0.97, 0.95] and kd["n_failed"] == 0 and kd["n_missing"] == 1
    assert summary["skipped_lines"] == 1
    md = build_report(run).markdown.read_text(encoding="utf-8")
    assert "2 (1 not run)" in md and "unreadable line" in md


def test_failed_method_is_shown_with_its_errors(tmp_path):
    units = [_unit("scratch", s, a) for s, a in enumerate(ACC["scratch"])]
    units += [_unit("hkt", s, error=f"boom on seed {s} [shape mismatch]") for s in range(3)]
    units += [_unit("kd", 0, 0.93), _unit("kd", 1, error="out of memory"), _unit("kd", 2, 0.95)]
    run = _write_run(tmp_path / "run", _experiment(["scratch", "kd", "hkt"]), units)
    summary = summarize(run)
    hkt = summary["settings"]["default"]["methods"]["hkt"]
    assert hkt["n_ok"] == 0 and hkt["n_failed"] == 3 and hkt["mean"] is None and hkt["p_value"] is None
    kd = summary["settings"]["default"]["methods"]["kd"]
    assert kd["n_pairs"] == 2 and kd["p_value"] == pytest.approx(stats.ttest_rel([0.93, 0.95], [0.90, 0.91]).pvalue)
    assert len(summary["failures"]) == 4
    paths = build_report(run)
    md, page = paths.markdown.read_text(encoding="utf-8"), paths.html.read_text(encoding="utf-8")
    assert "| hkt | 0 (3 failed) | — |" in md
    assert "boom on seed 2 [shape mismatch]" in md and "out of memory" in page and "2 (1 failed)" in page
    console = Console(record=True, width=250)
    print_table(summary, console)
    text = console.export_text()
    assert "boom on seed 1 [shape mismatch]" in text and "0 (3 failed)" in text


@pytest.mark.parametrize("baseline, expected_note", [(None, "no successful seed"), ("scratch", "no successful seed")])
def test_missing_baseline_gives_no_test_and_says_why(tmp_path, baseline, expected_note):
    units = [_unit("kd", s, a) for s, a in enumerate(ACC["kd"])]
    if baseline:
        units += [_unit("scratch", s, error="diverged") for s in range(3)]
    run = _write_run(tmp_path / "run", _experiment(["scratch", "kd"], baseline=baseline), units)
    summary = summarize(run)
    setting = summary["settings"]["default"]
    assert expected_note in setting["baseline_note"]
    assert setting["methods"]["kd"]["p_value"] is None and setting["methods"]["kd"]["delta"] is None
    assert setting["methods"]["kd"]["mean"] == pytest.approx(0.94)
    assert expected_note in build_report(run).markdown.read_text(encoding="utf-8")


def test_sweep_orders_settings_and_draws_the_band(tmp_path):
    sparsities = [0.5, 0.8, 0.9]
    units = []
    for sp in reversed(sparsities):  # written out of order: the experiment's order wins
        for label, drop in (("magnitude", 0.1), ("random", 0.3)):
            for seed in range(3):
                units.append(_unit(label, seed, 0.95 - drop * sp + 0.01 * seed, setting=f"sparsity={sp}",
                                   overrides={"sparsity": sp}))
    exp = _experiment(["magnitude", "random"], baseline="random", sweep={"sparsity": sparsities})
    run = _write_run(tmp_path / "run", exp, units)
    summary = summarize(run)
    assert list(summary["settings"]) == [f"sparsity={sp}" for sp in sparsities]
    assert summary["sweep_field"] == "sparsity"
    paths = build_report(run)
    band = run / "report_files" / "sweep.png"
    assert band in paths.plots and band.read_bytes().startswith(b"\x89PNG")
    assert "accuracy vs sparsity" in paths.html.read_text(encoding="utf-8")
    exported = export_results(run, "prune-test", "python benchmarks/reproduce.py x.yaml")
    assert exported["settings"]["sparsity=0.9"]["overrides"] == {"sparsity": 0.9}


def test_two_field_sweep_has_no_band(tmp_path):
    units = [_unit("kd", s, 0.9, setting="a=1,b=x", overrides={"a": 1, "b": "x"}) for s in range(2)]
    exp = _experiment(["kd"], baseline=None, seeds=2, sweep={"a": [1], "b": ["x"]})
    run = _write_run(tmp_path / "run", exp, units)
    assert summarize(run)["sweep_field"] is None
    assert (run / "report_files" / "sweep.png") not in build_report(run).plots


def test_export_results_format_orders_values_by_seed(tmp_path):
    accs = [0.90, 0.92, 0.91, 0.93, 0.89, 0.94]
    kd = [0.93, 0.94, 0.95, 0.92, 0.96, 0.95]
    order = [3, 0, 5, 1, 4, 2]
    units = [_unit("scratch", s, accs[s]) for s in order] + [_unit("kd", s, kd[s], train_macs=5e6) for s in order]
    run = _write_run(tmp_path / "run", _experiment(["scratch", "kd"], seeds=6), units)
    out = export_results(run, "inherit-test", "childnet run x.yaml")
    assert {"name", "command", "task", "metric", "baseline", "settings", "parent"} <= set(out)
    assert out["experiment_hash"] == experiment_identity(json.loads((run / "experiment.json").read_text()))
    entry = out["settings"]["default"]["methods"]["kd"]
    assert entry["values"] == kd and entry["seeds"] == list(range(6))
    assert entry["p_value"] == pytest.approx(stats.ttest_rel(kd, accs).pvalue)
    assert entry["wilcoxon_p"] == pytest.approx(stats.wilcoxon(kd, accs).pvalue)
    assert entry["params"] == 1000 and entry["macs"] == 20000 and entry["train_macs"] == 5e6
    json.dumps(out, allow_nan=False)
    assert "train_macs" in build_report(run).markdown.read_text(encoding="utf-8")


def test_select_picks_are_kept_per_seed_and_a_grid_edge_is_named(tmp_path):
    """Means of picks hide the choice: the summary, the export and the report keep them per seed, and a grid
    whose edge every seed picked gets a warning that names the method, the field and the grid."""
    exp = _experiment(["scratch", "kd"], seeds=3)
    exp["methods"][0]["select"] = {"strategy": "grid", "params": {"train.lr": [0.01, 0.1]}}
    exp["methods"][1]["select"] = {"strategy": "grid", "params": {"train.lr": [0.001, 0.01, 0.1]}}
    picks = {"scratch": [0.1, 0.01, 0.1], "kd": [0.1, 0.1, 0.1]}
    units = [_unit(label, s, ACC[label][s], select_candidates=len(exp["methods"][i]["select"]["params"]["train.lr"]),
                   **{"select_val_accuracy": 0.9, "select_train.lr": picks[label][s]})
             for i, label in enumerate(("scratch", "kd")) for s in range(3)]
    run = _write_run(tmp_path / "run", exp, units)
    methods = summarize(run)["settings"]["default"]["methods"]
    assert methods["scratch"]["picks"] == {"train.lr": picks["scratch"]}
    out = export_results(run, "select-test", "childnet run x.yaml")
    assert out["settings"]["default"]["methods"]["kd"]["picks"] == {"train.lr": [0.1, 0.1, 0.1]}
    assert out["warnings"] == ["kd: every seed (3) picked train.lr = 0.1, the top of its grid [0.001, 0.01, 0.1]: "
                               "the best value may lie beyond it — extend the grid"]  # scratch's picks differ
    report = build_report(run).markdown.read_text(encoding="utf-8")
    assert "picks of scratch:** train.lr 0.01 ×1, 0.1 ×2 (seeds per value)" in report
    assert "the top of its grid" in report
    # a run still under way: two of kd's three seeds at the edge are no pattern yet
    partial = _write_run(tmp_path / "partial", exp, units[:-1])
    assert summarize(partial)["warnings"] == []


def test_most_seeds_at_a_grid_edge_are_named_short_of_all(tmp_path):
    """4 of 5 seeds at one edge of a 3-value grid hint that the grid is too narrow (said as such); 3 of 5 do not,
    and neither do 4 of 5 on a 2-value grid (a coin flip gives that 37.5 % of the time)."""
    exp = _experiment(["scratch", "kd", "hkt"], seeds=5)
    grids = {"scratch": [0.001, 0.01, 0.1], "kd": [0.001, 0.01, 0.1], "hkt": [0.01, 0.1]}
    for m in exp["methods"]:
        m["select"] = {"strategy": "grid", "params": {"train.lr": grids[m["label"]]}}
    picks = {"scratch": [0.001, 0.001, 0.01, 0.001, 0.001], "kd": [0.1, 0.01, 0.1, 0.01, 0.1],
             "hkt": [0.1, 0.1, 0.01, 0.1, 0.1]}
    units = [_unit(label, s, 0.9 + 0.01 * s, select_candidates=len(grids[label]),
                   **{"select_train.lr": picks[label][s]}) for label in grids for s in range(5)]
    assert summarize(_write_run(tmp_path / "run", exp, units))["warnings"] == [
        "scratch: 4 of 5 seeds picked train.lr = 0.001, the bottom of its grid [0.001, 0.01, 0.1]: the best value "
        "may lie beyond it for most seeds — consider extending the grid"]


def test_a_pretrained_parent_with_a_fresh_head_is_not_called_degenerate(tmp_path):
    chance = {"accuracy": 0.5, "majority_accuracy": 0.58, "predicted_classes": 2}
    units = [dict(_unit("scratch", s, ACC["scratch"][s]), parent=dict(PARENT, metrics=chance, source="pretrained"))
             for s in range(3)]
    run = _write_run(tmp_path / "run", _experiment(["scratch"]), units)
    assert summarize(run)["warnings"] == []
    trained = [dict(u, parent=dict(u["parent"], source="trained")) for u in units]
    run = _write_run(tmp_path / "run2", _experiment(["scratch"]), trained)
    assert "inherit nothing useful" in summarize(run)["warnings"][0]
    # a search-only experiment builds its children from scratch: a placeholder parent at chance is no problem
    searched = [dict(u, label="enas", method="enas", unit=u["unit"].replace("scratch", "enas")) for u in trained]
    run = _write_run(tmp_path / "run3", _experiment(["enas"], baseline="enas"), searched)
    assert summarize(run)["warnings"] == []


def test_degenerate_statistics_give_no_nan_and_no_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert paired_t_test([0.0, 0.0, 0.0]) == 1.0
        assert paired_t_test([0.93 - 0.91, 0.95 - 0.93, 0.94 - 0.92]) == 0.0  # equal up to float noise
        assert paired_t_test([0.01]) is None
        assert wilcoxon_signed_rank([0.0] * 6) == 1.0
        assert wilcoxon_signed_rank([0.01] * 5) is None
        assert mean_std([0.5]) == (0.5, None) and mean_std([]) == (None, None)


def test_identical_methods_report_p_one(tmp_path):
    units = [_unit(label, s, a) for label in ("scratch", "copy") for s, a in enumerate(ACC["scratch"])]
    run = _write_run(tmp_path / "run", _experiment(["scratch", "copy"]), units)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        copy = summarize(run)["settings"]["default"]["methods"]["copy"]
    assert copy["p_value"] == 1.0 and copy["delta"] == 0.0


def test_not_a_run_folder_is_a_user_error(tmp_path):
    with pytest.raises(ChildnetError, match="experiment.json is missing"):
        build_report(tmp_path)
    with pytest.raises(ChildnetError, match="not found"):
        summarize(tmp_path / "nope")


def test_in_a_pipeline_the_family_baseline_is_taken_from_the_same_stage():
    """``b.kd`` was compared with ``a.scratch`` — a child of another generation, started from elsewhere — when
    the experiment named no baseline; its own stage's ``b.scratch`` is the fair pair."""
    from childnet.report.summary import _compare_to_baseline, stage_labels

    def entry(label, method):
        return {"label": label, "method": method, "family": "inherit", "n_ok": 2, "_by_seed": {0: 0.5, 1: 0.6}}

    exp = {"stages": [{"name": "a", "methods": [{"label": "a.scratch"}]},
                      {"name": "b", "methods": [{"label": "b.kd"}, {"label": "b.scratch"}]},
                      {"name": "c", "methods": [{"label": "c.kd"}]}]}
    methods = {lab: entry(lab, lab.split(".")[1]) for lab in ("a.scratch", "b.kd", "b.scratch", "c.kd")}
    _compare_to_baseline(methods, None, stage_labels(exp))
    assert methods["b.kd"]["baseline"] == "b.scratch" and methods["c.kd"]["baseline"] is None
    assert methods["a.scratch"]["is_baseline"] and methods["b.scratch"]["is_baseline"]
    flat = {lab: entry(lab, m) for lab, m in (("kd", "kd"), ("scratch", "scratch"))}  # no pipeline: as before
    _compare_to_baseline(flat, None, stage_labels({}))
    assert flat["kd"]["baseline"] == "scratch"
