"""Typed nested specs, partial blocks merged onto each method's own defaults, and the parent cache key.

Issue 10 §3 (typed specs, "did you mean"), issue 11 §1 (partial training overrides merge; the parent
cache key comes from the validated, defaults-filled spec).
"""

from __future__ import annotations

import pytest

from childnet.config import ModelSpec, canonical_spec, parse_experiment
from childnet.errors import ConfigError
from childnet.registry import METHODS, MODELS

BASE = {
    "task": {"name": "digits"},
    "parent": {"model": {"name": "cnn", "width": 8}, "train": {"epochs": 1}},
    "methods": ["scratch"],
}


def _problems(raw) -> str:
    with pytest.raises(ConfigError) as err:
        parse_experiment(raw)
    return "\n".join(err.value.problems)


# ------------------------------------------------------------------ typed nested specs


def test_typos_in_nested_blocks_are_caught_with_their_full_path():
    text = _problems(dict(BASE, evaluate={"latncy": False},
                          methods=[{"name": "kd", "child": {"name": "cnnn"}},
                                   {"name": "independent", "member": {"name": "mlp", "hiden": [8]}},
                                   {"name": "oneshot", "tune": {"epohcs": 2}}],
                          parent={"model": {"name": "cnn", "widht": 8}, "train": {"lrr": 0.1}}))
    for needle in ["evaluate.latncy: unknown field. Did you mean 'latency'?",
                   "methods[0](kd).child.name: unknown model 'cnnn'. Did you mean 'cnn'?",
                   "methods[1](independent).member.hiden: unknown field. Did you mean 'hidden'?",
                   "methods[2](oneshot).tune.epohcs: unknown field. Did you mean 'epochs'?",
                   "parent.model.widht: unknown field. Did you mean 'width'?",
                   "parent.train.lrr: unknown field. Did you mean 'lr'?"]:
        assert needle in text, f"{needle!r} not in:\n{text}"


def test_ensemble_members_are_model_specs_too():
    text = _problems(dict(BASE, methods=[{"name": "scratch", "child": {
        "name": "ensemble", "members": [{"name": "mlp", "hidden": [0]}, {"name": "resnett"}]}}]))
    assert "child.members.0.hidden.0: Input should be greater than or equal to 1" in text
    assert "child.members.1.name: unknown model 'resnett'" in text


def test_seeds_and_sizes_refused_strictly():
    text = _problems(dict(BASE, seeds=True, parent={"model": {"name": "mlp", "hidden": [0]}, "seed": -1},
                          task={"name": "digits", "split_seed": 2**40}))
    assert "seeds: Input should be a valid integer" in text
    assert "parent.model.hidden.0" in text and "parent.seed" in text and "task.split_seed" in text
    assert "epochs" in _problems(dict(BASE, parent={"model": "cnn", "train": {"epochs": True}}))


def test_every_model_field_of_every_method_config_is_a_checked_model_spec():
    """A method config field holding a model must refuse an unknown model (no field left as a plain dict)."""
    checked = 0
    for entry in METHODS.entries():
        for field, info in (entry.config.model_fields if entry.config else {}).items():
            if "model spec" in (info.description or ""):
                with pytest.raises(Exception, match="unknown model"):
                    entry.config(**{field: {"name": "no_such_model"}})
                checked += 1
    assert checked >= 5  # scratch, kd, fitnets, hkt (child), independent (member)


def test_validated_configs_are_plain_dicts_as_written():
    from pydantic import TypeAdapter

    spec = TypeAdapter(ModelSpec).validate_python("cnn")
    assert spec == {"name": "cnn"}
    assert canonical_spec(MODELS, {"name": "cnn", "width": 32}) == canonical_spec(MODELS, {"name": "cnn", "depth": 3})


# ------------------------------------------------------------------ partial blocks merge (issue 11)

#: (method, partial block, the method's documented defaults that must survive it)
PARTIAL = [
    ("oneshot", {"tune": {"epochs": 4}}, "tune", {"optimizer": "sgd", "lr": 0.01, "schedule": "constant"}),
    ("iterative", {"tune": {"epochs": 4}}, "tune", {"optimizer": "sgd", "lr": 0.01, "schedule": "constant"}),
    ("ssa", {"tune": {"epochs": 4}}, "tune", {"optimizer": "sgd", "lr": 0.01, "schedule": "constant"}),
    ("pat", {"tune": {"epochs": 4}}, "tune", {"optimizer": "sgd", "lr": 0.1, "schedule": "onecycle",
                                              "weight_decay": 5e-4}),
    ("pat_ssa", {"tune": {"epochs": 4}}, "tune", {"optimizer": "sgd", "lr": 0.1, "schedule": "onecycle"}),
    ("snapshot", {"cycle": {"epochs": 3}}, "cycle", {"optimizer": "sgd", "lr": 0.1, "nesterov": True,
                                                     "weight_decay": 1e-4}),
    ("vanilla", {"train": {"epochs": 2}}, "train", {"lr": 4e-5, "schedule": "linear", "warmup_frac": 0.1}),
    ("random_search", {"retrain": {"epochs": 2}}, "retrain", {"optimizer": "sgd", "lr": 0.05, "grad_clip": 5.0}),
    ("scratch", {"train": {"epochs": 2}, "pretrain": {"lr": 0.5}}, "pretrain", {"epochs": 2}),
]


@pytest.mark.parametrize("method,block,field,kept", PARTIAL, ids=[p[0] for p in PARTIAL])
def test_partial_training_block_merges_onto_the_methods_defaults(method, block, field, kept):
    cfg = parse_experiment(dict(BASE, methods=[{"name": method, **block}]))
    mcfg = cfg.method_config(cfg.methods[0], cfg.settings()[0])
    got = getattr(mcfg, field).model_dump()
    for k, v in {**block[field], **kept}.items():
        assert got[k] == v, f"{method}.{field}.{k} = {got[k]!r}, expected {v!r}"


def test_every_family_default_survives_a_partial_block():
    """Over the registry: a nested config field with its own default keeps it under a partial block."""
    for entry in METHODS.entries():
        cls = entry.config
        for name, info in (cls.model_fields if cls else {}).items():
            default = info.get_default(call_default_factory=True)
            if not hasattr(default, "epochs"):
                continue
            merged = getattr(cls(**{name: {"epochs": 0.5}}), name)
            assert merged.model_dump() == {**default.model_dump(), "epochs": 0.5}, f"{entry.name}.{name}"


def test_lineage_records_the_effective_block(tiny_parent, digits_task):
    from childnet.api import derive

    child = derive("oneshot", tiny_parent, digits_task, {"sparsity": 0.5, "tune": {"epochs": 0.2}}, seed=0)
    assert child.lineage.config["tune"] == {**METHODS.get("oneshot").config().tune.model_dump(), "epochs": 0.2}
    ens = derive("independent", tiny_parent, digits_task, {"members": 2, "train": {"epochs": 0.2}}, seed=0)
    train = ens.lineage.config["train"]
    assert train["epochs"] == 0.2 and train["lr"] == 0.01  # the parent's own lr (conftest.TINY_PARENT)
    assert all(m["extra"]["train"] == train for m in ens.lineage.extra["members"])


# ------------------------------------------------------------------ the parent cache key (issue 11)


def test_writing_a_default_out_does_not_retrain_the_parent(digits_task, tmp_path, monkeypatch):
    from childnet import get_parent

    monkeypatch.setenv("CHILDNET_CACHE", str(tmp_path))
    first = get_parent({"model": {"name": "mlp", "hidden": [16]}, "train": {"epochs": 0.2}}, digits_task)
    assert first.source == "trained"
    spelled = {"model": {"name": "mlp", "hidden": [16], "dropout": 0.0},
               "train": {"epochs": 0.2, "optimizer": "adamw", "lr": 1e-3, "schedule": "cosine"}, "seed": 0}
    again = get_parent(spelled, digits_task)
    assert again.source == "cache" and again.fingerprint == first.fingerprint
    other = get_parent({"model": {"name": "mlp", "hidden": [16], "dropout": 0.1}, "train": {"epochs": 0.2}},
                       digits_task)
    assert other.source == "trained"
