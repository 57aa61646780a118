"""Contract tests over the MODELS and TASKS registries (timm style: a new entry is tested the moment it
registers). Entries that need an optional extra are skipped, not errored, when it is absent."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from childnet import Child, load_task
from childnet.child import Lineage
from childnet.errors import ChildnetError, ConfigError, MissingDependencyError
from childnet.models import build_model
from childnet.models.base import shrinkable_models, unit_groups
from childnet.registry import MODELS, TASKS

MODEL_NAMES = MODELS.names()
TASK_NAMES = TASKS.names()


def _needs_extra(meta: dict) -> None:
    if meta.get("extra") == "text" and importlib.util.find_spec("transformers") is None:
        pytest.skip("needs the 'text' extra (transformers)")


def test_every_model_declares_tiny_options():
    missing = [n for n in MODEL_NAMES if "tiny" not in MODELS.get(n).meta]
    assert not missing, f"register tiny={{...}} options for the model contract tests: {missing}"


def _example(name):
    meta = MODELS.get(name).meta
    _needs_extra(meta)
    if meta.get("inputs") == "text":
        from childnet.models.minilm import load_tokenizer

        try:
            tok = load_tokenizer()
        except MissingDependencyError as err:
            pytest.skip(str(err))
        enc = tok(["a fine film", "dull"], padding=True, return_tensors="pt")
        return (), {k: enc[k] for k in ("input_ids", "attention_mask")}
    torch.manual_seed(0)
    if meta.get("inputs") == "ranking":  # (users, items, history length); 3 candidates per row
        x = {"user": torch.tensor([0, 4]), "history": torch.randint(0, 20, (2, 4)),
             "candidates": torch.randint(0, 20, (2, 3))}
        return (5, 20, 4), x
    return (1, 8, 8), torch.rand(2, 1, 8, 8)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_model_contract(name, tmp_path):
    """Build, forward, save/load round-trip, and (if it declares units) shrinkable groups."""
    shape, x = _example(name)
    spec = {"name": name, **MODELS.get(name).meta["tiny"]}
    torch.manual_seed(0)
    try:
        model = build_model(spec, shape, 3, max_params=10**9).eval()
    except MissingDependencyError as err:
        pytest.skip(str(err))
    with torch.no_grad():
        out = model(x)
    assert out.shape == (2, 3) and torch.isfinite(out).all()
    child = Child(model, Lineage(method="none", config={}, seed=0))
    loaded = Child.load(child.save(tmp_path / name))
    with torch.no_grad():
        assert torch.allclose(loaded.model(x), out, atol=1e-6)
    if name in shrinkable_models():
        groups = unit_groups(model)
        params = dict(model.named_parameters())
        assert groups and all(g.score_param in params and g.size == params[g.score_param].shape[0] for g in groups)
    else:
        with pytest.raises(ChildnetError, match="cannot be shrunk"):
            unit_groups(model)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_model_refuses_unknown_option_with_a_suggestion(name):
    _needs_extra(MODELS.get(name).meta)
    fields = list(MODELS.get(name).config.model_fields)
    typo = fields[0] + "x"
    with pytest.raises(ConfigError, match=rf"model\.{typo}: unknown field"):
        build_model({"name": name, **MODELS.get(name).meta["tiny"], typo: 1}, _example(name)[0], 3)


@pytest.mark.parametrize("name", TASK_NAMES)
def test_task_contract(name):
    """A task that loads with its defaults has consistent splits; one that needs input names the field."""
    entry = TASKS.get(name)
    required = [f for f, info in entry.config.model_fields.items() if info.is_required()]
    if required:
        with pytest.raises(ConfigError, match=rf"task\.{required[0]}: Field required"):
            load_task({"name": name})
        return
    _needs_extra(entry.meta)
    small = {"name": name, "n_train": 50, **entry.meta.get("tiny", {})}  # large sets declare a small subset
    try:
        task = load_task(small)
    except MissingDependencyError as err:
        pytest.skip(str(err))
    assert len(task.y_train) == 50 and len(task.y_val) > 0 and len(task.y_test) > 0
    for y in (task.y_train, task.y_val, task.y_test):
        assert y.dtype == torch.int64 and 0 <= int(y.min()) and int(y.max()) < task.num_classes
    if isinstance(task.x_train, torch.Tensor):
        assert tuple(task.x_train.shape[1:]) == tuple(task.input_shape)
    again = load_task(small)
    assert torch.equal(again.y_train, task.y_train) and torch.equal(again.y_val, task.y_val)
