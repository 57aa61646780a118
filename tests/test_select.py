"""Per-method ``select:`` blocks through the real CLI: candidates per seed, picked on validation, bad blocks refused."""

from __future__ import annotations

import json
import sys

import pytest
from test_cli import cli, ok_units, user_error, write

TINY = {
    "name": "tiny-select",
    "task": {"name": "digits", "n_train": 300},
    "parent": {"model": {"name": "cnn", "width": 8, "depth": 2}, "train": {"epochs": 1, "lr": 0.01}},
    "defaults": {"child": {"name": "cnn", "width": 4, "depth": 2}, "train": {"epochs": 1, "lr": 0.01}},
    "methods": ["scratch",
                {"name": "scratch", "label": "scratch-grid", "select": {"lr": [0.002, 0.05]}},
                {"name": "scratch", "label": "scratch-optuna",
                 "select": {"strategy": "optuna", "trials": 2, "sampler": "random", "params": {
                     "train.weight_decay": {"low": 0.0, "high": 0.01}}}}],
    "baseline": "scratch",
    "seeds": 1,
    "evaluate": {"latency": False, "device": False},
}


@pytest.mark.slow
def test_grid_and_optuna_pick_on_validation_and_report_the_pick(tmp_path):
    pytest.importorskip("optuna")
    from childnet import Child, load_task
    from childnet.select import validation_score

    exp, out = write(tmp_path, TINY), tmp_path / "run"
    assert "= 3 units (5 child trainings with the select candidates)" in cli("validate", exp, check=0).stdout
    cli("run", exp, "--out", out, "--workers", "0", "--quiet", check=0)
    rows = {r["label"]: r for r in ok_units(out)}
    assert all(r["status"] == "ok" for r in rows.values())
    task = load_task(TINY["task"])
    for label, field, n in (("scratch-grid", "train.lr", 2), ("scratch-optuna", "train.weight_decay", 2)):
        card = json.loads((out / rows[label]["child_dir"] / "child.json").read_text())
        sel = card["extra"]["select"]
        vals = [c["val"] for c in sel["candidates"]]
        assert len(vals) == n and sel["split"] == "val" and sel["metric"] == "accuracy"
        assert sel["pick"] == vals.index(max(vals))  # the best validation score; ties: the first
        picked = sel["candidates"][sel["pick"]]["values"][field]
        config = card["config"]
        for part in field.split("."):
            config = config[part]
        assert config == picked  # the card's config is the pick's
        assert rows[label]["metrics"]["select_candidates"] == n
        # the saved child is the pick: its validation score is the one the choice used
        child = Child.load(out / rows[label]["child_dir"])
        assert validation_score(child, task, "accuracy") == pytest.approx(max(vals), abs=1e-6)
    grid = json.loads((out / rows["scratch-grid"]["child_dir"] / "child.json").read_text())
    assert [c["values"]["train.lr"] for c in grid["extra"]["select"]["candidates"]] == [0.002, 0.05]
    # a method without select: no selection on its card, no select key in the run folder's experiment
    plain = json.loads((out / rows["scratch"]["child_dir"] / "child.json").read_text())
    assert "select" not in plain["extra"] and "select_candidates" not in rows["scratch"]["metrics"]
    experiment = json.loads((out / "experiment.json").read_text())
    assert "select" not in experiment["methods"][0] and experiment["methods"][1]["select"]["params"]
    # the export keeps every candidate's validation score per seed (what a reading of the result quotes)
    from childnet.report import export_results

    exported = export_results(out, "tiny-select", "test")["settings"]["default"]["methods"]
    cands = exported["scratch-grid"]["diagnostics"]["0"]["select_candidates"]
    assert [c["values"] for c in cands] == [{"train.lr": 0.002}, {"train.lr": 0.05}]
    assert [c["val"] for c in cands] == pytest.approx([c["val"] for c in grid["extra"]["select"]["candidates"]],
                                                      abs=1e-6)
    assert "diagnostics" not in exported["scratch"]
    report = (out / "report.md").read_text()
    assert "candidates per seed:** scratch 1, scratch-grid 2, scratch-optuna 2" in report
    assert f"picks of scratch-grid:** train.lr {grid['extra']['select']['picked']['train.lr']:g} ×1" in report
    # selection's training compute counts every candidate: twice one scratch child's here
    from childnet.report import summarize

    means = summarize(out)["settings"]["default"]["methods"]
    assert means["scratch-grid"]["metrics"]["train_compute"] == pytest.approx(
        2 * means["scratch"]["metrics"]["train_compute"])


#: Bad blocks, each with what its one sentence must name; one `childnet validate` reports them all at once.
BAD = [
    ({"lrr": [0.1]}, ["scratch has no field 'lrr'", "train.lr"]),
    ({"lr": []}, ["empty list"]),
    ({"lr": 0.1}, ["expected a non-empty list of values (got 0.1)"]),
    ({"lr": [-1.0]}, ["greater than 0", "-1.0"]),
    ({"epochs": [2, 2.0]}, ["the value 2.0 is listed twice (as [2, 2.0])"]),
    ({"child": [{"name": "cnn"}]}, ["model spec, not a hyper-parameter"]),
    ({"strategy": "bayes", "lr": [0.1]}, ["'bayes' is not a strategy (accepted: grid, optuna)"]),
    ({"lr": {"low": 0.001, "high": 0.1}}, ["needs strategy: optuna"]),
    ({"strategy": "optuna", "trials": 0, "lr": [0.1]}, ["trials: expected an integer", "(got 0)",
                                                        "pip install 'childnet[optuna]'"]),
    ({"lr": [0.1], "params": {"lr": [0.2]}}, ["'lr' is given both beside params and inside params"]),
    ({"lr": [0.1], "train.lr": [0.2]}, ["selects over train.lr, which 'lr' already selects over"]),
    ({"lr": ["0.001", 1.0e-3]}, ['the candidates train.lr "0.001" and train.lr 0.001 make the same scratch config']),
]


def test_bad_select_blocks_are_one_sentence_each_before_training(tmp_path, run_cli, monkeypatch):
    methods = [{"name": "scratch", "label": f"m{i}", "select": select} for i, (select, _) in enumerate(BAD)]
    raw = dict(TINY, methods=methods, baseline=None)
    monkeypatch.setitem(sys.modules, "optuna", None)  # as if the optuna extra were not installed
    proc = run_cli("validate", write(tmp_path, raw))
    user_error(proc, f"({len(BAD) + 1} problems)")
    lines = proc.stderr.splitlines()
    for i, (_, needles) in enumerate(BAD):
        mine = " ".join(line for line in lines if f"methods[{i}](m{i}).select" in line)
        for needle in needles:
            assert needle in mine, (i, needle, mine)


BAD_RANGES = [
    ({"low": 1e-4, "high": 1e-2, "log": True, "step": 0.001}, "a range takes log or step, not both"),
    ({"low": 1e-4, "high": 1e-2, "step": 0.0}, "step must be a number > 0 (got 0.0)"),
    ({"low": 1e-4, "high": 1e-2, "step": "abc"}, "step must be a number > 0 (got 'abc')"),
    ({"low": 1e-4, "high": 1e-2, "log": "no"}, "log must be true or false (got 'no')"),
    ({"low": 0.01, "high": 0.01}, "a range needs numbers low < high (a fixed value is a one-value list)"),
]


def test_select_messages_name_the_field_that_refused_and_where_select_belongs(tmp_path, run_cli):
    raw = dict(TINY, baseline=None, defaults=dict(TINY["defaults"], select={"lr": [0.1]}),
               methods=[{"name": "kd", "select": {"lr,alpha": [0.5, 2]}}, {"name": "kd", "label": "k2",
                                                                           "select": {"lrr": [0.1]}}])
    proc = run_cli("validate", write(tmp_path, raw))
    user_error(proc, "methods[0](kd).select.lr,alpha: alpha: Input should be less than or equal to 1 (got 2)",
               "defaults.select: select belongs on a method entry")
    fields = next(line for line in proc.stderr.splitlines() if "(k2).select.lrr" in line)
    assert "train.lr" in fields and "child" not in fields  # a model spec is not offered as a hyper-parameter


def test_a_unit_whose_candidates_all_diverge_says_a_new_grid_needs_another_folder(tmp_path, run_cli):
    """"Fix the cause and run the same command again" could not work when the grid was the cause: a changed grid
    is refused in the same folder as a different experiment."""
    m = {"name": "scratch", "train": {"optimizer": "sgd", "schedule": "constant"}, "select": {"lr": [1e29, 1e30]}}
    proc = run_cli("run", write(tmp_path, dict(TINY, methods=[m], baseline=None)), "--out", tmp_path / "r",
                   "--workers", "0", "--quiet")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "a wider select grid, is a new experiment: give it another --out folder" in " ".join(proc.stderr.split())


def test_a_range_over_a_switch_is_refused(tmp_path, run_cli):
    """``include_head: {low: 0, high: 1}`` passed pydantic as booleans, then a float sample failed at run time."""
    pytest.importorskip("optuna")
    m = {"name": "oneshot", "select": {"strategy": "optuna", "trials": 2, "include_head": {"low": 0, "high": 1}}}
    user_error(run_cli("validate", write(tmp_path, dict(TINY, methods=[m], baseline=None))),
               "select.include_head: a range {low, high} samples numbers, and include_head is not a number field")


def test_a_candidate_that_makes_no_valid_config_names_itself():
    """Past validate's combination checks, an invalid combination is a sentence naming the candidate, not a pydantic
    traceback recorded as an internal error."""
    from childnet.errors import ChildnetError
    from childnet.registry import METHODS
    from childnet.select import _apply

    cfg = METHODS.get("oneshot").config(structure="channels")
    with pytest.raises(ChildnetError, match="the candidate include_head true is not a valid config: include_head"):
        _apply(cfg, {"include_head": True}, {"structure": "channels"})


def test_the_api_lays_a_candidate_onto_a_block_given_as_a_config_object(tiny_parent, digits_task):
    """``derive(..., {"train": TrainConfig(epochs=0.1, batch_size=16)}, select=...)``: the block's given fields
    stay (they were dropped, and the candidates trained with the default 10 epochs and batch 64)."""
    from childnet import derive
    from childnet.train import TrainConfig

    child = derive("scratch", tiny_parent, digits_task, {"child": {"name": "mlp", "hidden": [4]},
                                                         "train": TrainConfig(epochs=0.1, batch_size=16)},
                   select={"lr": [1e-3, 1e-2]})
    assert child.lineage.config["train"]["epochs"] == 0.1 and child.lineage.config["train"]["batch_size"] == 16
    assert child.lineage.config["train"]["lr"] == child.lineage.extra["select"]["picked"]["train.lr"]


def test_bad_optuna_ranges_are_refused_by_validate(tmp_path, run_cli):
    pytest.importorskip("optuna")
    methods = [{"name": "scratch", "label": f"m{i}", "select": {"strategy": "optuna", "trials": 2, "lr": rng}}
               for i, (rng, _) in enumerate(BAD_RANGES)]
    proc = run_cli("validate", write(tmp_path, dict(TINY, methods=methods, baseline=None)))
    user_error(proc, f"({len(BAD_RANGES)} problems)")
    for i, (_, needle) in enumerate(BAD_RANGES):
        assert needle in " ".join(ln for ln in proc.stderr.splitlines() if f"methods[{i}](m{i}).select" in ln), i


def test_optuna_trials_beyond_the_distinct_candidates_are_refused(tmp_path, run_cli):
    """Optuna over lists only: 6 trials over 2 values retrained the same candidates (4, 2, 4, 4, 2, 2)."""
    pytest.importorskip("optuna")
    m = {"name": "scratch", "select": {"strategy": "optuna", "trials": 6, "lr": [0.01, 0.02]}}
    user_error(run_cli("validate", write(tmp_path, dict(TINY, methods=[m], baseline=None))),
               "select.trials: 6 trials over 2 distinct candidates would train some twice; use strategy: grid")


def test_show_lists_the_candidates_and_marks_the_pick(tmp_path, run_cli, tiny_parent, digits_task):
    """``childnet show`` printed only "extra: select"; the candidates and their scores were in child.json alone."""
    from childnet import derive

    derive("scratch", tiny_parent, digits_task, {"child": {"name": "mlp", "hidden": [4]}, "train": {"epochs": 0.1}}
           ).save(tmp_path / "c")
    card = json.loads((tmp_path / "c" / "child.json").read_text())
    card["extra"]["select"] = {
        "strategy": "grid", "metric": "accuracy", "pick": 1,
        "candidates": [{"values": {"train.lr": 0.002}, "val": 0.5}, {"values": {"train.lr": 0.05}, "val": 0.75},
                       {"values": {"train.lr": 9.0}, "val": None, "error": "diverged: loss is nan"}, "damaged"]}
    (tmp_path / "c" / "child.json").write_text(json.dumps(card))
    proc = run_cli("show", tmp_path / "c")
    assert proc.returncode == 0, proc.stderr
    assert "4 candidates, picked by validation accuracy (grid)" in proc.stdout
    assert '→ {"train.lr": 0.05}: 0.7500' in proc.stdout and '{"train.lr": 9.0}: diverged: loss is nan' in proc.stdout


def test_a_diverging_candidate_loses_and_only_all_diverging_fails_the_unit(digits_task, tiny_parent):
    from childnet.errors import TrainingDiverged
    from childnet.methods.base import Context
    from childnet.registry import METHODS
    from childnet.select import derive_selected

    cfg = METHODS.get("scratch").config(child={"name": "cnn", "width": 4, "depth": 2},
                                        train={"epochs": 1, "optimizer": "sgd", "schedule": "constant"})
    grid = {"strategy": "grid", "params": {"train.lr": [1e30, 0.01]}}
    child = derive_selected("scratch", grid, tiny_parent, digits_task, cfg, Context(seed=0))
    first, second = child.lineage.extra["select"]["candidates"]
    assert first["val"] is None and "diverged" in first["error"] and second["val"] is not None
    assert child.lineage.extra["select"]["pick"] == 1 and child.lineage.config["train"]["lr"] == 0.01
    with pytest.raises(TrainingDiverged):
        derive_selected("scratch", {"strategy": "grid", "params": {"train.lr": [1e30]}}, tiny_parent, digits_task,
                        cfg, Context(seed=0))


def test_a_candidate_is_laid_onto_the_options_as_written():
    """A selected value reaches what the config derives from it, as the same value written in the file would: an
    inherit method's partial ``pretrain`` block takes ``train``'s other options, and a selected PAT ``preset``
    brings its tuning run. (Laid onto the validated config, both were already fixed: pretrain.lr stayed the
    written train.lr, and preset: paper changed nothing.)"""
    from childnet.config import parse_experiment
    from childnet.select import _apply

    kd = {"name": "kd", "init": "pretrained", "pretrain": {"epochs": 1}, "select": {"lr": [1e-3, 0.05]}}
    pat = {"name": "pat", "tune": {"epochs": 1}, "select": {"preset": ["default", "paper"]}}
    cfg = parse_experiment(dict(TINY, methods=[kd, pat], baseline=None))
    setting = cfg.settings()[0]
    kd_spec, pat_spec = cfg.methods
    written = parse_experiment(dict(TINY, methods=[dict(kd, train={"epochs": 1, "lr": 0.05}, select=None),
                                                   dict(pat, preset="paper", select=None)], baseline=None))
    picked = _apply(cfg.method_config(kd_spec, setting), {"train.lr": 0.05}, cfg.method_options(kd_spec, setting))
    assert picked.pretrain.lr == picked.train.lr == 0.05
    assert picked == written.method_config(written.methods[0], setting)
    paper = _apply(cfg.method_config(pat_spec, setting), {"preset": "paper"}, cfg.method_options(pat_spec, setting))
    assert paper == written.method_config(written.methods[1], setting)
    assert paper.tune.nesterov and paper.tune.pct_start == 0.1 and paper.tune.epochs == 1
    # independent's members take the parent's training run for every option the entry does not set: a selected
    # lr must leave the others unset, as `train: {epochs: 1, lr: 0.05}` written would (the dump had set them all)
    ind = {"name": "independent", "train": {"epochs": 1}, "select": {"lr": [1e-3, 0.05]}}
    cfg = parse_experiment(dict(TINY, methods=[ind], baseline=None, defaults={}))
    spec = cfg.methods[0]
    picked = _apply(cfg.method_config(spec, setting), {"train.lr": 0.05}, cfg.method_options(spec, setting))
    assert picked.train.model_fields_set == {"epochs", "lr"}


@pytest.mark.slow
def test_a_run_lays_candidates_onto_the_written_options_and_reports_every_pick(tmp_path):
    """Through the real CLI: the picked kd child's pre-training used the picked learning rate, and the report names
    a pick that is not a number (a string option) next to the numeric one."""
    kd = {"name": "kd", "init": "pretrained", "pretrain": {"epochs": 1},
          "select": {"lr": [1e-3, 0.05], "train.optimizer": ["adam"]}}
    exp, out = write(tmp_path, dict(TINY, methods=["scratch", kd])), tmp_path / "run"
    cli("run", exp, "--out", out, "--workers", "0", "--quiet", check=0)
    row = next(r for r in ok_units(out) if r["label"] == "kd")
    card = json.loads((out / row["child_dir"] / "child.json").read_text())
    lr = card["extra"]["select"]["picked"]["train.lr"]
    assert card["config"]["pretrain"]["lr"] == card["config"]["train"]["lr"] == lr
    assert row["select_picked"] == {"train.lr": lr, "train.optimizer": "adam"}
    assert f"picks of kd:** train.lr {lr:g} ×1; train.optimizer adam ×1" in (out / "report.md").read_text()


CLASHES = [  # (select, sweep, what the one sentence names)
    ({"structure": ["weights", "channels"], "include_head": [False, True]}, None,
     'the candidate include_head true, structure "channels" is not a valid oneshot config'),  # (the file's order)
    ({"include_head": [False, True]}, {"structure": ["weights", "channels"]},
     'the candidate include_head true under the sweep setting structure "channels" is not a valid oneshot config'),
]


@pytest.mark.parametrize("select,sweep,needle", CLASHES)
def test_validate_checks_every_combination_of_candidates_and_sweep_values(tmp_path, run_cli, select, sweep, needle):
    """Each value alone is valid; two together are not. ``validate`` said ok, and the run failed after training
    the first candidates with a pydantic traceback text."""
    method = {"name": "oneshot", "sparsity": 0.5, "tune": {"epochs": 1}, "select": select}
    raw = dict(TINY, methods=["scratch", method], baseline=None, **({"sweep": sweep} if sweep else {}))
    user_error(run_cli("validate", write(tmp_path, raw)), "methods[1](oneshot).select: " + needle, "include_head: true")


def test_an_optuna_range_follows_its_field_type(tmp_path, run_cli):
    """Float bounds on an integer field are refused at validation (every unit failed with an int_from_float error);
    integer bounds on a float field sample floats, not only the integers between them."""
    optuna = pytest.importorskip("optuna")
    from childnet.select import _optuna_suggest

    bad = {"name": "pat", "tune": {"epochs": 1}, "select": {"strategy": "optuna", "trials": 2,
                                                            "members": {"low": 2.0, "high": 4.0}}}
    proc = run_cli("validate", write(tmp_path, dict(TINY, methods=["scratch", bad], baseline=None)))
    user_error(proc, "select.members: members takes whole numbers: give low and high as integers")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    values = [_optuna_suggest(study.ask(), "temperature", {"low": 1, "high": 8}) for _ in range(8)]
    assert any(v != int(v) for v in values)
    whole = [_optuna_suggest(study.ask(), "members", {"low": 2, "high": 4}, whole=True) for _ in range(8)]
    assert all(isinstance(v, int) and 2 <= v <= 4 for v in whole)


def test_validate_checks_each_candidate_against_the_parent(tmp_path, run_cli):
    """A candidate the parent refuses (a LoRA target that matches no layer) fails ``validate``, naming the candidate,
    instead of failing the unit after the candidates before it have trained."""
    pytest.importorskip("peft")
    lora = {"name": "lora", "train": {"epochs": 1}, "select": {"target_modules": [None, ["nonexistent_layer"]]}}
    proc = run_cli("validate", write(tmp_path, dict(TINY, methods=["scratch", lora], baseline=None)))
    user_error(proc, 'methods[lora].select candidate target_modules ["nonexistent_layer"]: target_modules: '
                     "'nonexistent_layer' matches no Linear")


def test_a_refused_candidate_names_itself(digits_task, tiny_parent):
    """Past validation (the Python API), a candidate that a method refuses ends the unit with a sentence naming it."""
    pytest.importorskip("peft")
    from childnet.errors import ChildnetError
    from childnet.methods.base import Context
    from childnet.registry import METHODS
    from childnet.select import derive_selected

    cfg = METHODS.get("lora").config(train={"epochs": 0.1})
    grid = {"strategy": "grid", "params": {"target_modules": [None, ["nonexistent_layer"]]}}
    with pytest.raises(ChildnetError, match=r'select lora: candidate 2 of 2 \(target_modules \["nonexistent_layer"\]\)'
                                            r": target_modules: 'nonexistent_layer' matches no"):
        derive_selected("lora", grid, tiny_parent, digits_task, cfg, Context(seed=0))


def test_a_written_value_that_select_replaces_is_a_note_of_validate(tmp_path, run_cli):
    """A value written beside a ``select`` over the same field is never trained; validate says so (a note, not a
    refusal: a sweep over a written field is refused, but refusing here would change committed experiments)."""
    written = {"name": "kd", "temperature": 4.0, "train": {"epochs": 1, "lr": 0.05},
               "select": {"temperature": [2.0, 8.0], "strategy": "grid"}}
    proc = run_cli("validate", write(tmp_path, dict(TINY, methods=["scratch", written], baseline=None)))
    assert proc.returncode == 0, proc.stderr
    out = " ".join(proc.stdout.split())
    assert "note: methods[kd].temperature: the value 4.0 written for it" in out and "[2.0, 8.0]" in out
    assert "train.lr" not in out.split("note:")[-1]  # (lr is written but not selected)
    from childnet.config import parse_experiment
    from childnet.select import replaced_values

    cfg = parse_experiment(dict(TINY, methods=["scratch", {"name": "kd", "select": {"temperature": [2.0, 8.0]}}]))
    assert replaced_values(cfg.methods) == []


    def notes(select: dict) -> list[str]:
        return replaced_values(parse_experiment(dict(TINY, methods=[dict(written, select=select)], baseline=None)).methods)

    assert notes({"temperature": [2.0, 4.0]}) == []  # the written value is trained, as one of the candidates
    assert notes({"strategy": "optuna", "trials": 2, "temperature": {"low": 2.0, "high": 8.0}}) == []  # in range
    outside = notes({"strategy": "optuna", "trials": 2, "temperature": {"low": 5.0, "high": 8.0}})
    assert len(outside) == 1 and "(5.0 … 8.0)" in outside[0]
    block = notes({"train": [{"lr": 0.1}, {"lr": 0.2}]})  # a candidate block replaces only what it names
    assert len(block) == 1 and block[0].startswith("methods[kd].train.lr: the value 0.05 written")


@pytest.mark.parametrize("workers", [0, 1])
def test_a_running_unit_reports_its_candidate_and_epoch(tmp_path, workers):
    """A long select unit showed 0/1 until it ended; now a worker (or the inline run) passes the running unit's
    candidate and epoch to the progress display, and its records are unchanged."""
    from contextlib import contextmanager

    from childnet.runner import run

    notes, records = [], []

    class Collect:
        @contextmanager
        def epochs(self, desc):
            yield None

        @contextmanager
        def units(self, total):
            def advance(rec):
                records.append(rec)

            advance.note = notes.append
            yield advance

    m = {"name": "scratch", "train": {"epochs": 2}, "select": {"lr": [0.002, 0.05]}}
    exp = write(tmp_path, dict(TINY, methods=[m], baseline=None))
    run(exp, tmp_path / "r", workers=workers, progress=Collect(), report=False)
    assert [r["status"] for r in records] == ["ok"]  # one record per unit: the notes are not records
    ends = [(n["candidate"], n["candidates"]) for n in notes if n["done"] == n["total"] == 2]
    assert ends == [(1, 2), (2, 2)] and all(n["unit"] == records[0]["unit"] for n in notes)
    assert all(json.loads(line)["status"] == "ok" for line in (tmp_path / "r" / "results.jsonl").read_text().splitlines())
