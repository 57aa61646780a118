"""Configs: every problem reported at once, naming field, value and what is accepted."""

from pathlib import Path

import pytest
import torch
import yaml

from childnet.config import load_experiment, parse_experiment
from childnet.errors import ChildnetError, ConfigError

BASE = {
    "task": {"name": "digits"},
    "parent": {"model": {"name": "cnn", "width": 8}, "train": {"epochs": 1}},
    "methods": ["scratch"],
}


def test_valid_minimal():
    cfg = parse_experiment(BASE)
    assert cfg.methods[0].label == "scratch" and cfg.seeds == 3


def test_unknown_names_list_valid_ones():
    raw = dict(BASE, task={"name": "digitz"}, methods=["kdd"], parent={"model": {"name": "resnt"}})
    with pytest.raises(ConfigError) as err:
        parse_experiment(raw)
    msg = str(err.value)
    assert "unknown task 'digitz'" in msg and "Did you mean 'digits'" in msg and "mnist5k" in msg
    assert "unknown method 'kdd'" in msg and "scratch" in msg
    assert "unknown model 'resnt'" in msg and "resnet" in msg
    assert len(err.value.problems) == 3


def test_bad_types_and_ranges_all_at_once():
    raw = dict(BASE, seeds=0, methods=[{"name": "kd", "temperature": -1, "alpha": "high"}],
               parent={"model": {"name": "cnn", "width": 0}, "train": {"lr": -0.1, "optimizer": "rmsprop"}})
    with pytest.raises(ConfigError) as err:
        parse_experiment(raw)
    text = "\n".join(err.value.problems)
    for needle in ["methods[0](kd).temperature", "(got -1)", "methods[0](kd).alpha", "parent.model.width",
                   "parent.train.lr", "parent.train.optimizer", "'sgd', 'adamw' or 'adam'", "seeds"]:
        assert needle in text, needle
    assert len(err.value.problems) == 6


def test_unknown_field_and_unused_default():
    raw = dict(BASE, methods=[{"name": "kd", "temprature": 3}], defaults={"sparsity": 0.5})
    with pytest.raises(ConfigError) as err:
        parse_experiment(raw)
    text = str(err.value)
    assert "temprature: unknown field" in text
    assert "defaults.sparsity" in text


def test_duplicate_labels_and_bad_baseline():
    raw = dict(BASE, methods=["scratch", "scratch"], baseline="kd")
    with pytest.raises(ConfigError) as err:
        parse_experiment(raw)
    assert "used twice" in str(err.value)


def test_baseline_must_be_a_label():
    with pytest.raises(ConfigError, match="baseline: 'kd' is not a method label"):
        parse_experiment(dict(BASE, baseline="kd"))


def test_missing_and_malformed_yaml(tmp_path):
    with pytest.raises(ChildnetError, match="not found"):
        load_experiment(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("task: {name: digits\nmethods: [")
    with pytest.raises(ChildnetError, match="not valid YAML"):
        load_experiment(bad)
    listy = tmp_path / "list.yaml"
    listy.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_experiment(listy)


def test_sweep_settings_apply_to_methods_and_task():
    raw = dict(BASE, methods=[{"name": "kd"}], sweep={"temperature": [2, 8], "task.n_train": [100]})
    cfg = parse_experiment(raw)
    settings = cfg.settings()
    assert [s.id for s in settings] == ["temperature=2,task.n_train=100", "temperature=8,task.n_train=100"]
    assert cfg.method_config(cfg.methods[0], settings[1]).temperature == 8
    assert cfg.task_for(settings[0])["n_train"] == 100


EXPERIMENTS = sorted((Path(__file__).parents[1] / "experiments").glob("*.yaml"))


@pytest.mark.parametrize("path", EXPERIMENTS, ids=[p.name for p in EXPERIMENTS])
def test_every_experiment_validates_and_opens_with_its_command(path):
    cfg = load_experiment(path)
    assert cfg.methods
    first = path.read_text().splitlines()[0]
    assert first.startswith("# Run:"), f"{path.name} must open with the command that runs it"
    assert yaml.safe_load(path.read_text())


def test_sweep_of_a_field_no_method_has_or_that_a_method_sets_is_refused():
    with pytest.raises(ConfigError, match=r"sweep\.temperatur: no method in this experiment has a field"):
        parse_experiment(dict(BASE, methods=["kd"], sweep={"temperatur": [1, 2]}))
    with pytest.raises(ConfigError, match=r"methods\[0\]\(kd\)\.temperature: set here and swept"):
        parse_experiment(dict(BASE, methods=[{"name": "kd", "temperature": 3}], sweep={"temperature": [1, 2]}))
    with pytest.raises(ConfigError) as err:  # an empty list is one problem, not also "no method has it"
        parse_experiment(dict(BASE, methods=["kd"], sweep={"temperature": []}))
    assert err.value.problems == ["sweep.temperature: expected a non-empty list of values (got [])"]



def test_sweep_of_a_block_option_sets_it_on_top_of_the_block():
    """A sweep of ``train.lr`` was accepted and silently ignored (every setting trained at one learning
    rate); now a dotted key sets that one option of the block, keeping the block's other values (a
    preset's too), and a dotted key no method has, or a select over the same option, is refused."""
    cfg = parse_experiment(dict(BASE, methods=[{"name": "pat", "preset": "paper", "tune": {"epochs": 1}},
                                               {"name": "kd", "child": {"name": "cnn", "depth": 2}}],
                                sweep={"tune.lr": [0.05, 0.2], "child.width": [3]}))
    got = {(s.id, m.label): cfg.method_config(m, s) for s in cfg.settings() for m in cfg.methods}
    assert [c.tune.lr for (sid, label), c in got.items() if label == "pat"] == [0.05, 0.2]
    pat = got[("tune.lr=0.2,child.width=3", "pat")].tune
    assert (pat.epochs, pat.nesterov, pat.div_factor, pat.batch_size) == (1, True, 100.0, 128)  # the preset stays
    assert got[("tune.lr=0.2,child.width=3", "kd")].child == {"name": "cnn", "depth": 2, "width": 3}
    kd = parse_experiment(dict(BASE, methods=[{"name": "kd", "init": "pretrained", "pretrain": {"epochs": 2}}],
                               sweep={"train.lr": [0.001, 0.01], "child.name": ["mlp"]}))
    last = kd.method_config(kd.methods[0], kd.settings()[-1])
    assert last.train.lr == 0.01 and last.pretrain.lr == 0.01 and last.pretrain.epochs == 2  # as if written
    assert last.child == {"name": "mlp"}  # another model: the old spec's options do not carry over
    ind = parse_experiment(dict(BASE, methods=[{"name": "independent", "train": {"epochs": 3}}],
                                sweep={"train.lr": [0.05]}))
    assert ind.method_config(ind.methods[0], ind.settings()[0]).train.model_fields_set == {"epochs", "lr"}
    with pytest.raises(ConfigError, match=r"sweep\.bogus\.x: no method in this experiment has a field 'bogus'"):
        parse_experiment(dict(BASE, sweep={"bogus.x": [1]}))
    with pytest.raises(ConfigError, match=r"train\.lrr: unknown field\. Did you mean 'lr'"):
        parse_experiment(dict(BASE, sweep={"train.lrr": [1]}))
    with pytest.raises(ConfigError, match=r"select\.train\.lr: selected here and swept by sweep\.train\.lr"):
        parse_experiment(dict(BASE, methods=[{"name": "scratch", "select": {"lr": [1e-3, 1e-2]}}],
                              sweep={"train.lr": [0.1, 0.2]}))
    with pytest.raises(ConfigError, match=r"\(scratch\)\.train\.lr: set here and swept by sweep\.train\.lr"):
        parse_experiment(dict(BASE, methods=[{"name": "scratch", "train": {"lr": 0.3}}], sweep={"train.lr": [0.1]}))

@pytest.mark.parametrize("name", ["inas-mlp.yaml", "inas-mnist.yaml"])
def test_validate_builds_a_child_of_a_device_space(name):
    """`childnet validate` on an iNAS experiment crashed with KeyError (its device space was looked up among
    the ENAS spaces); it now builds and runs one child of the device space."""
    from childnet.dryrun import dry_run

    lines = dry_run(load_experiment(Path(__file__).parents[1] / "experiments" / name))
    assert any("methods[inas]" in line for line in lines), lines


@pytest.mark.parametrize("text,needle", [
    ("methods: [kd]\nmethods: [scratch]\n", "the key 'methods' is given twice (first on line 4); keep one"),
    ("methods:\n  - {name: kd, temperature: 2, temperature: 8}\n", "the key 'temperature' is given twice"),
])
def test_a_key_given_twice_is_refused_not_silently_dropped(tmp_path, text, needle):
    path = tmp_path / "exp.yaml"
    path.write_text("name: a\ntask: {name: digits}\nparent: {model: {name: mlp, hidden: [8]}}\n" + text)
    with pytest.raises(ChildnetError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        load_experiment(path)


def test_a_methods_block_merges_into_the_defaults_key_by_key():
    cfg = parse_experiment({**BASE, "defaults": {"train": {"epochs": 3, "batch_size": 32}},
                            "methods": [{"name": "scratch", "train": {"lr": 0.1}}]})
    train = cfg.methods[0].options["train"]
    assert train == {"epochs": 3, "batch_size": 32, "lr": 0.1}


def test_derive_merges_option_blocks_and_checks_the_device(tiny_parent, digits_task):
    from childnet import derive

    with pytest.raises(ChildnetError, match="device: 'tpu' is not a torch device"):
        derive("scratch", tiny_parent, digits_task, device="tpu")
    for seed in (1.5, -1, True):
        with pytest.raises(ChildnetError, match="seed: expected an integer >= 0"):
            derive("scratch", tiny_parent, digits_task, seed=seed)
    child = derive("scratch", tiny_parent, digits_task, {"train": {"epochs": 0.05, "lr": 0.5}},
                   train={"batch_size": 32}, child={"name": "mlp", "hidden": [4]})
    assert (child.lineage.config["train"]["epochs"], child.lineage.config["train"]["lr"],
            child.lineage.config["train"]["batch_size"]) == (0.05, 0.5, 32)


def test_api_entry_points_refuse_bad_specs_with_a_config_error(digits_task):
    from childnet import get_parent, load_task

    for bad in (5, None):
        with pytest.raises(ConfigError, match="task: expected a task name or a mapping"):
            load_task(bad)
    with pytest.raises(ConfigError, match="parent: expected a mapping"):
        get_parent("cnn", digits_task)
    with pytest.raises(ConfigError, match="parent.model.name: unknown model 'cnnn'. Did you mean 'cnn'"):
        get_parent({"model": {"name": "cnnn"}}, digits_task)


def test_predict_names_a_parent_or_a_wrong_example_shape(tiny_parent, digits_task):
    from childnet import derive, predict

    with pytest.raises(ChildnetError, match="predict: expected a Child"):
        predict(tiny_parent, digits_task.x_test[:2])
    child = derive("scratch", tiny_parent, digits_task, train={"epochs": 0.05}, child={"name": "mlp", "hidden": [4]})
    with pytest.raises(ChildnetError, match=r"input shape \(1, 8, 8\) \(64 values\); got examples of shape \(65,\)"):
        predict(child, torch.zeros(2, 65))
    assert len(predict(child, digits_task.x_test[:3].reshape(3, 64))) == 3  # flat rows are reshaped, as the task did
    x = digits_task.x_test[:3].clone()
    x[1, 0, 2, 3] = float("nan")
    with pytest.raises(ChildnetError, match=r"1 input value\(s\) are NaN or infinite \(in example\(s\) 1\)"):
        predict(child, x)
    with pytest.raises(ChildnetError, match="should have the child's input shape"):  # the shape is named first
        predict(child, torch.full((2, 65), float("nan")))
    with pytest.raises(ChildnetError, match="got a single number"):
        predict(child, 3.0)
    with pytest.raises(ChildnetError, match="expected an array or tensor of examples"):
        predict(child, {"input_ids": [[1, 2]]})


def test_a_child_of_another_model_replaces_the_default_child_whole():
    cfg = parse_experiment({**BASE, "defaults": {"child": {"name": "cnn", "width": 4}},
                            "methods": [{"name": "scratch", "child": {"name": "mlp", "hidden": [8]}},
                                        {"name": "kd", "child": {"width": 2}}]})
    assert cfg.methods[0].options["child"] == {"name": "mlp", "hidden": [8]}
    assert cfg.methods[1].options["child"] == {"name": "cnn", "width": 2}


def test_a_label_yaml_reads_as_a_boolean_is_refused():
    """`label: on` became a method (and folder) named 'True'."""
    with pytest.raises(ConfigError, match=r"methods\[0\]\.label: expected a text label \(got True\) \(YAML reads on/off"):
        load_experiment_text = yaml.safe_load("methods: [{name: scratch, label: on}]")
        parse_experiment(dict(BASE, **load_experiment_text))
    assert parse_experiment(dict(BASE, methods=[{"name": "scratch", "label": 1}])).methods[0].label == "1"


def test_a_stage_label_yaml_reads_as_a_boolean_is_refused_too():
    raw = dict(BASE, stages=[{"name": "prune", "methods": [{"name": "oneshot", "label": True}]}])
    raw.pop("methods")
    with pytest.raises(ConfigError, match=r"stages\[prune\]\.methods\[0\]\.label: expected a text label \(got True\)"):
        parse_experiment(raw)


def test_a_sweep_a_pipeline_overrides_is_refused():
    """A later stage's `child: same` takes the incoming child's architecture: `sweep: {child.width: ...}`
    set nothing, yet doubled the units."""
    stages = [{"name": "prune", "methods": [{"name": "oneshot", "tune": {"epochs": 1}}]},
              {"name": "distil", "methods": [{"name": "kd", "train": {"epochs": 1}}]}]
    raw = {k: v for k, v in BASE.items() if k != "methods"}
    with pytest.raises(ConfigError, match=r"sweep\.child\.width: no method in this experiment has a field 'child'"):
        parse_experiment(dict(raw, stages=stages, sweep={"child.width": [4, 8]}))
    root_kd = [{"name": "distil", "methods": [{"name": "kd", "child": {"name": "cnn"}, "train": {"epochs": 1}}]}]
    assert len(parse_experiment(dict(raw, stages=root_kd, sweep={"child.width": [4, 8]})).settings()) == 2


def test_a_stage_without_methods_is_one_problem():
    """It also drew 'stages[b].from: 'a' is no stage', a `from` the user never wrote."""
    raw = {k: v for k, v in BASE.items() if k != "methods"}
    stages = [{"name": "a", "methods": []}, {"name": "b", "methods": [{"name": "oneshot"}]}]
    with pytest.raises(ConfigError) as err:
        parse_experiment(dict(raw, stages=stages))
    assert err.value.problems == ["stages[a].methods: a stage needs at least one method (got [])"]


def test_a_pipeline_shrinking_an_inas_child_is_checked_by_its_space():
    """After inas, `structure: channels` passed validate and failed at run time ('inas_conv' declares no
    prunable units); search methods now name the model their child is."""
    raw = {k: v for k, v in BASE.items() if k != "methods"}
    stages = lambda space, structure: [  # noqa: E731
        {"name": "search", "methods": [{"name": "inas", "space": space}]},
        {"name": "shrink", "methods": [{"name": "iterative", "structure": structure, "tune": {"epochs": 1}}]}]
    with pytest.raises(ConfigError, match=r"stages\[shrink\].*structure: channels cannot be removed from the child "
                                          r"of stage search, a 'inas_conv' model"):
        parse_and_check(dict(raw, stages=stages("conv", "channels")))
    parse_and_check(dict(raw, stages=stages("mlp", "neurons")))  # an MLP child has neurons to remove


def parse_and_check(raw):
    from childnet.pipeline import check_stages

    cfg = parse_experiment(raw)
    check_stages(cfg)
    return cfg
