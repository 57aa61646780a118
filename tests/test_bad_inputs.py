"""Bad inputs that crashed (issue 10 §2): each ends in one sentence, exit code 2, no traceback,
before expensive work — through the real CLI where a user meets them.

One test starts the installed ``childnet`` executable; the others call the same entry point
(``childnet.cli.main``) in-process, which saves the interpreter start-up per case.
"""

from __future__ import annotations

import json
import warnings

import pytest
import torch
from safetensors.torch import save_file

from childnet import Child
from childnet.errors import ChildnetError
from test_cli import TINY, cli, user_error, write


#: A parent that costs a fraction of a second to train.
FAST_PARENT = {"model": {"name": "mlp", "hidden": [16]}, "train": {"epochs": 0.2}}


def _exp(**over):
    return {**TINY, "methods": ["scratch"], "seeds": 1, **over}


def test_typos_in_nested_blocks_through_validate(tmp_path):
    raw = _exp(evaluate={"latncy": False}, methods=[{"name": "kd", "child": {"name": "cnnn"}},
                                                    {"name": "independent", "member": {"name": "mlp", "hiden": [4]}}])
    raw.pop("defaults")
    proc = cli("validate", write(tmp_path, raw))
    user_error(proc, "evaluate.latncy: unknown field. Did you mean 'latency'?",
               "methods[0](kd).child.name: unknown model 'cnnn'. Did you mean 'cnn'?",
               "methods[1](independent).member.hiden: unknown field. Did you mean 'hidden'?")


@pytest.mark.parametrize("over,needle", [
    ({"seeds": True}, "seeds"),
    ({"task": {"name": "digits", "split_seed": -1}}, "task.split_seed"),
    ({"parent": {**FAST_PARENT, "seed": -3}}, "parent.seed"),
    ({"parent": {**FAST_PARENT, "seed": 2**70}}, "parent.seed"),
    ({"parent": {"model": {"name": "mlp", "hidden": [0]}}}, "parent.model.hidden.0"),
], ids=["seeds-true", "split-seed", "parent-seed", "huge-seed", "hidden-0"])
def test_bad_values_refused_by_validate(tmp_path, over, needle, run_cli):
    user_error(run_cli("validate", write(tmp_path, _exp(**over))), needle)


def test_seeds_override_out_of_range_writes_nothing(tmp_path, run_cli):
    out = tmp_path / "run"
    user_error(run_cli("run", write(tmp_path, _exp()), "--out", out, "--seeds", "1000000"), "--seeds", "1000")
    assert not out.exists()


def test_unknown_or_missing_device(tmp_path, run_cli):
    exp, out = write(tmp_path, _exp()), tmp_path / "run"
    user_error(run_cli("run", exp, "--out", out, "--device", "foo"), "device: 'foo' is not a torch device")
    user_error(run_cli("run", exp, "--out", out, "--device", "cpu:99"), "device: 'cpu:99' does not exist")
    if not torch.cuda.is_available():
        user_error(run_cli("run", exp, "--out", out, "--device", "cuda"), "no CUDA device")
    assert not out.exists()


def test_parent_that_diverges_is_a_sentence(tmp_path, run_cli):
    parent = {"model": {"name": "mlp", "hidden": [16]},
              "train": {"epochs": 1, "optimizer": "sgd", "lr": 1e12, "schedule": "constant"}}
    proc = run_cli("run", write(tmp_path, _exp(parent=parent)), "--out", tmp_path / "run", "--quiet")
    user_error(proc, "the parent (mlp) diverged", "parent.train.lr")


def _parent_weights(tmp_path, transform):
    from childnet import load_task
    from childnet.models import build_model

    task = load_task({"name": "digits"})
    model = build_model(FAST_PARENT["model"], task.input_shape, task.num_classes)
    path = tmp_path / "parent.safetensors"
    save_file({k: transform(v.clone()) for k, v in model.state_dict().items()}, str(path))
    return path


def _nan(v):
    v.view(-1)[0] = float("nan")
    return v


@pytest.mark.parametrize("transform,needle", [
    (_nan, "NaN"),
    (lambda v: v.to(torch.int64), "int64"),
], ids=["nan", "int64"])
def test_bad_parent_checkpoint_weights(tmp_path, transform, needle, run_cli):
    path = _parent_weights(tmp_path, transform)
    raw = _exp(parent={"model": FAST_PARENT["model"], "checkpoint": str(path)})
    user_error(run_cli("run", write(tmp_path, raw), "--out", tmp_path / "run", "--quiet"), needle)


def test_fp16_parent_checkpoint_warns_and_loads(tmp_path, digits_task):
    from childnet import get_parent

    path = _parent_weights(tmp_path, lambda v: v.half())
    with pytest.warns(UserWarning, match="converted .*float16"):
        parent = get_parent({"model": FAST_PARENT["model"], "checkpoint": str(path)}, digits_task)
    assert parent.source == "checkpoint"


def test_checkpoint_path_that_is_a_folder(tmp_path, run_cli):
    raw = _exp(parent={"model": FAST_PARENT["model"], "checkpoint": str(tmp_path)})
    user_error(run_cli("run", write(tmp_path, raw), "--out", tmp_path / "run", "--quiet"), "is a folder")


@pytest.mark.parametrize("damage", ["missing", "empty", "malformed", "list", "wrong-shape"])
def test_corrupt_parent_cache_entry_is_retrained(damage, digits_task, tmp_path, monkeypatch):
    from childnet import get_parent
    from childnet.models import build_model

    monkeypatch.setenv("CHILDNET_CACHE", str(tmp_path))
    first = get_parent(FAST_PARENT, digits_task)
    folder = tmp_path / "parents" / first.path.rsplit("/", 1)[-1]
    if damage == "missing":
        (folder / "parent.json").unlink()
    elif damage == "empty":
        (folder / "parent.json").write_text("")
    elif damage == "malformed":
        (folder / "parent.json").write_text("{not json")
    elif damage == "list":
        (folder / "parent.json").write_text("[1, 2]")
    else:
        other = build_model({"name": "mlp", "hidden": [7]}, digits_task.input_shape, digits_task.num_classes)
        save_file(other.state_dict(), str(folder / "model.safetensors"))
    logs: list[str] = []
    again = get_parent(FAST_PARENT, digits_task, log=logs.append)
    assert again.source == "trained" and again.fingerprint == first.fingerprint
    assert any("unusable" in line and "training the parent again" in line for line in logs), logs
    assert get_parent(FAST_PARENT, digits_task).source == "cache"  # rewritten


def _card_folder(tmp_path, card) -> str:
    folder = tmp_path / "child"
    folder.mkdir()
    (folder / "child.json").write_text(card if isinstance(card, str) else json.dumps(card))
    return folder


GOOD = {"method": "scratch", "config": {}, "seed": 0,
        "architecture": {"name": "mlp", "hidden": [8], "input_shape": [64], "num_classes": 10}}


@pytest.mark.parametrize("card,needle", [
    ([1, 2], "expected a JSON object, got a list"),
    ({**GOOD, "seed": "zero"}, "field 'seed' should be an integer (got str 'zero')"),
    ({**GOOD, "parent": [1]}, "field 'parent' should be a JSON object"),
    ({**GOOD, "metrics": "high"}, "field 'metrics'"),
], ids=["list", "seed-str", "parent-list", "metrics-str"])
def test_show_on_a_malformed_card(tmp_path, card, needle, run_cli):
    user_error(run_cli("show", _card_folder(tmp_path, card)), needle)


@pytest.mark.parametrize("arch,needle", [
    ({"name": "mlp", "hidden": [10**9], "input_shape": [64], "num_classes": 10}, "hidden.0"),
    ({"name": "mlp", "hidden": [16384] * 40, "input_shape": [64, 64, 64], "num_classes": 10}, "parameters"),
    ({"name": "mlp", "hidden": [8], "input_shape": [64], "num_classes": 10**9}, "num_classes"),
    ({"name": "mlp", "hidden": [8], "input_shape": [10**6, 10**6], "num_classes": 10}, "input_shape"),
    ({"name": "mlp", "hidden": [8], "input_shape": "64", "num_classes": 10}, "input_shape"),
    ([1], "architecture"),
], ids=["huge-width", "huge-total", "huge-classes", "huge-input", "input-str", "arch-list"])
def test_child_load_refuses_absurd_architectures_before_allocating(tmp_path, arch, needle):
    folder = _card_folder(tmp_path, {**GOOD, "architecture": arch})
    with warnings.catch_warnings(), pytest.raises(ChildnetError, match=needle):
        Child.load(folder)


def test_a_masks_file_is_checked_by_validate_not_after_training(tmp_path, run_cli):
    """``oneshot``'s ``masks`` file: missing, not a safetensors file, or made for another network — validate said ok
    and the unit failed after the parent had trained."""
    (tmp_path / "table.csv").write_text("x,label\n1,0\n")
    save_file({"blocks.0.0.weight": torch.ones(3, 1, 3, 3)}, str(tmp_path / "other.safetensors"))
    for path, needle in ((tmp_path / "nothere.safetensors", "checkpoint not found"),
                         (tmp_path / "table.csv", "is not a valid safetensors checkpoint"),
                         (tmp_path / "other.safetensors", "do not match the model")):
        raw = _exp(methods=["scratch", {"name": "oneshot", "masks": str(path), "tune": {"epochs": 1}}])
        user_error(run_cli("validate", write(tmp_path, raw)), "methods[oneshot].masks: ", needle)
