"""PEFT baselines of the tune family (lora, ia3): adapters, merged children, adapter files, bad input."""

from __future__ import annotations

import importlib.util

import pytest
import torch
from test_bad_inputs import FAST_PARENT, _exp
from test_cli import write
from test_tune_text import minilm_parent, text_task  # noqa: F401 - fixtures

from childnet import Child, derive
from childnet.errors import MissingDependencyError
from childnet.evaluate import predict_proba
from childnet.methods.tune._peft import load_adapter, require_peft


@pytest.mark.parametrize("method,options", [("lora", {"r": 2}), ("ia3", {})])
def test_adapter_child_is_merged_and_its_adapter_reloads(method, options, tiny_parent, digits_task, tmp_path):
    child = derive(method, tiny_parent, digits_task, {"train": {"epochs": 1, "lr": 5e-3}, **options}, seed=0)
    total = sum(p.numel() for p in tiny_parent.model.parameters())
    metrics = child.lineage.metrics
    assert 0 < metrics["trainable_params"] < total and metrics["optimizer_state_mb"] > 0 and metrics["step_ms"] > 0
    assert child.lineage.extra["adapter"]["peft_type"].endswith(method.upper())
    assert type(child.model) is type(tiny_parent.model)  # merged: the parent's architecture, no adapter layers
    path = child.save(tmp_path / method)
    assert (path / "adapter.safetensors").exists() and (path / "adapter_config.json").exists()
    x = digits_task.x_test[:32]
    again = load_adapter(path, tiny_parent.model, merge=True)
    assert torch.allclose(predict_proba(again, x), predict_proba(Child.load(path).model, x), atol=1e-5)
    unmerged = load_adapter(path, tiny_parent.model)
    assert torch.allclose(predict_proba(unmerged, x), predict_proba(child.model, x), atol=1e-5)


def test_lora_on_minilm_adapts_query_and_value_only(minilm_parent, text_task):  # noqa: F811
    child = derive("lora", minilm_parent, text_task, {"train": {"epochs": 1}}, seed=0)
    assert sorted(child.lineage.extra["adapter"]["target_modules"]) == ["query", "value"]
    # r·(d_in + d_out) per adapted layer (384 → 384, one transformer layer, query and value)
    assert child.lineage.extra["adapter"]["r"] == 8 and child.lineage.extra["adapter_params"] == 2 * 8 * (384 + 384)
    vanilla = derive("vanilla", minilm_parent, text_task, {"train": {"epochs": 1}}, seed=0)
    ours, theirs = child.lineage.metrics, vanilla.lineage.metrics
    assert ours["trainable_params"] < theirs["trainable_params"] / 100
    assert ours["optimizer_state_mb"] < theirs["optimizer_state_mb"] / 100


def test_unknown_target_module_exits_2_listing_candidates(tmp_path, run_cli):  # noqa: F811
    raw = _exp(parent=FAST_PARENT, methods=[{"name": "lora", "target_modules": ["query"]}], baseline="lora")
    raw.pop("defaults")
    path = write(tmp_path, raw)
    for args in (("validate", path), ("run", path, "--out", tmp_path / "run", "--workers", "0", "--quiet")):
        proc = run_cli(*args)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr + proc.stdout
    assert "'query'" in (tmp_path / "run" / "results.jsonl").read_text()
    proc = run_cli("validate", path)
    assert "target_modules: 'query' matches no Linear, Conv or Embedding layer of the parent" in proc.stderr
    assert "candidates: " in proc.stderr and "body.1" in proc.stderr


CNN_PARENT = {"model": {"name": "cnn", "width": 4, "depth": 2}, "train": {"epochs": 0.2}}


@pytest.mark.parametrize("targets,needle", [
    (["0"], "target_modules: '0' also matches blocks.0 (a Sequential), which PEFT cannot adapt; name the layers by "
            "a longer path; candidates: 0.0, 1.0, blocks.0.0, blocks.1.0"),
    ([], "target_modules: an empty list adapts nothing"),
    (["head"], "target_modules: 'head' is the classifier, which trains in full and takes no adapter"),
])
def test_target_modules_peft_could_not_use_exit_2_in_validate(tmp_path, run_cli, targets, needle):  # noqa: F811
    raw = _exp(parent=CNN_PARENT, methods=[{"name": "lora", "target_modules": targets}], baseline="lora")
    raw.pop("defaults")
    proc = run_cli("validate", write(tmp_path, raw))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and needle in proc.stderr, proc.stderr


def test_a_two_part_name_from_the_candidates_adapts_a_cnn(tiny_parent, digits_task):
    child = derive("lora", tiny_parent, digits_task, {"target_modules": ["0.0"], "train": {"epochs": 0.2}}, seed=0)
    assert child.lineage.extra["adapter"]["target_modules"] == ["0.0"]


def test_missing_peft_extra_names_it(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "peft" else real(name, *a))
    with pytest.raises(MissingDependencyError, match=r"childnet\[peft\]"):
        require_peft()
