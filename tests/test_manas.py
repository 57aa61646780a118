"""MANAS (issue 14): ranking tasks and metrics, the logic child, the assembling controller, the methods."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml

from childnet import Child, load_task
from childnet.api import derive
from childnet.errors import ChildnetError, ConfigError, DataError
from childnet.evaluate import RANKING_METRICS, evaluate, ranking_metrics
from childnet.methods.search.assembly import AssemblyController, uniform_architectures
from childnet.methods.search.manas import row_rewards
from childnet.models.base import build_model
from childnet.models.logic import format_expression, parse_expression, run_grouped
from childnet.tasks.logic import best_static_accuracy, exact_accuracy



def write_seq(path, rows, header=("uid", "iid", "label", "sequence"), sep="\t"):
    lines = [sep.join(header)] + [sep.join(str(v) for v in r) for r in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def seq_rows(users=30, per_user=5, items=400, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(users):
        seq = list(rng.choice(items, 4 + per_user, replace=False))
        for r in range(per_user):
            rows.append((u, seq[4 + r], 1, ",".join(map(str, seq[r:r + 4]))))
    return rows


@pytest.fixture(scope="module")
def synth():
    return load_task({"name": "logic-synthetic", "n_rows": 300, "variables": 8})


def test_ranking_metrics_by_hand_and_ties_count_against():
    scores = torch.tensor([[0.9, 0.1, 0.5] + [0.0] * 7, [1.0] * 10, [1.0] + [0.0] * 8 + [2.0]])
    y = torch.tensor([0, 0, 0])
    m = ranking_metrics(scores, y)
    # ranks 0, 9 (all tie), 1
    assert m["hr@5"] == pytest.approx(2 / 3) and m["hr@10"] == pytest.approx(1.0)
    assert m["ndcg@10"] == pytest.approx((1 + 1 / np.log2(11) + 1 / np.log2(3)) / 3)
    assert m["accuracy"] == pytest.approx(1 / 3)
    assert row_rewards(scores, y).tolist() == pytest.approx([4.0, 1 + 1 / np.log2(11), 2 + 2 / np.log2(3)])
    with pytest.raises(ChildnetError, match="k = 20 is larger than the 10 candidates"):
        ranking_metrics(scores, y, ks=(5, 20))


def test_sequences_split_counts_drops_and_samples_untouched(tmp_path):
    rows = seq_rows() + [(99, 7, 1, "1,2,3,4"), (99, 8, 1, "2,3,4,7")]  # user 99: 2 rows, dropped
    task = load_task({"name": "sequences", "path": str(write_seq(tmp_path / "s.tsv", rows))})
    assert task.kind == "ranking" and task.num_classes == 101 and task.meta["dropped_users"] == 1
    assert task.meta["dropped_rows"] == 2 and len(task.y_test) == 30 and len(task.y_train) == 90
    xt, yt = task.x_test, task.y_test
    true = xt["candidates"].gather(1, yt[:, None]).squeeze(1)
    by_user = {}
    for u, i, _, s in seq_rows():
        by_user.setdefault(u, []).append((i, s))
    for r in range(len(yt)):
        u = int(xt["user"][r])
        last_item, last_seq = by_user[u][-1]  # users keep file order, so user index u is uid u
        assert int(true[r]) == last_item and xt["history"][r].tolist() == [int(v) for v in last_seq.split(",")]
        touched = {i for i, _ in by_user[u]} | {int(v) for _, s in by_user[u] for v in s.split(",")}
        negs = set(xt["candidates"][r].tolist()) - {last_item}
        assert len(negs) == 100 and not negs & touched
    again = load_task({"name": "sequences", "path": str(tmp_path / "s.tsv")})
    assert torch.equal(again.x_test["candidates"], xt["candidates"])
    other = load_task({"name": "sequences", "path": str(tmp_path / "s.tsv"), "split_seed": 1})
    assert not torch.equal(other.x_test["candidates"], xt["candidates"])


def test_sequences_bad_input_is_one_sentence(tmp_path):
    with pytest.raises(DataError, match=r"no column \['sequence'\]"):
        load_task({"name": "sequences", "path": str(write_seq(tmp_path / "a.csv", [(1, 2, 1)],
                                                             header=("uid", "iid", "label"), sep=","))})
    with pytest.raises(DataError, match="integer item ids"):
        load_task({"name": "sequences", "path": str(write_seq(tmp_path / "b.tsv", [(1, "x7", 1, "1,2,3,4")]))})
    with pytest.raises(DataError, match="integer item ids"):
        load_task({"name": "sequences", "path": str(write_seq(tmp_path / "c.tsv", [(1, 7, 1, "1,b,3,4")]))})
    with pytest.raises(ConfigError, match="num_negatives"):
        load_task({"name": "sequences", "path": str(tmp_path / "c.tsv"), "num_negatives": 5})
    with pytest.raises(DataError, match="no user has 3 or more rows"):
        load_task({"name": "sequences", "path": str(write_seq(tmp_path / "d.tsv", [(1, 7, 1, "1,2,3,4")]))})


def test_metric_field_accepts_ranking_metrics_and_cli_refuses_mismatch(tmp_path, run_cli, monkeypatch):
    from childnet.config import parse_experiment

    base = {"task": {"name": "logic-synthetic", "n_rows": 300}, "parent": {"model": "bpr_mf"},
            "methods": [{"name": "bpr_mf", "epochs": 1}], "seeds": 1}
    assert parse_experiment({**base, "metric": "ndcg@10"}).metric == "ndcg@10"
    with pytest.raises(ConfigError, match="metric"):
        parse_experiment({**base, "metric": "hr@3"})
    (tmp_path / "e.yaml").write_text(yaml.safe_dump({**base, "metric": "hr@10"}))
    monkeypatch.setenv("CHILDNET_CACHE", str(tmp_path / "cache"))
    proc = run_cli("run", tmp_path / "e.yaml", "--out", tmp_path / "o", "--workers", "0")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "hr@10" in proc.stdout + proc.stderr and "candidates" in proc.stdout + proc.stderr


def test_logic_synthetic_caps_every_static_expression(synth):
    acc, _ = best_static_accuracy(synth)
    assert acc < 0.85  # all 9,216 read-once expressions over 4 variables tried, read as exact logic
    x, y = synth.split("test")
    label = (x["candidates"].gather(1, y[:, None]).squeeze(1) == synth.input_shape[1] - 2).numpy()
    group, values = x["group"].numpy(), x["values"].numpy()
    and_chain = parse_expression("AND(0,1);AND(4,2);AND(5,3)", 4).tolist()
    or_chain = parse_expression("OR(0,1);OR(4,2);OR(5,3)", 4).tolist()
    per_input = np.where(group == 0, [exact_accuracy(and_chain, values[i:i + 1], label[i:i + 1]) for i in
                                      range(len(group))], [exact_accuracy(or_chain, values[i:i + 1], label[i:i + 1])
                                                           for i in range(len(group))])
    assert per_input.mean() == 1.0


def test_controller_builds_read_once_expressions_and_learns_a_preference():
    ctrl = AssemblyController(num_items=20, hidden=16, steps=3)
    hist = torch.randint(0, 20, (32, 4), generator=torch.Generator().manual_seed(0))
    arch, logp, ent = ctrl.sample(hist, generator=torch.Generator().manual_seed(0))
    assert arch.shape == (32, 3, 5) and torch.isfinite(logp).all() and (ent > 0).all()
    for a in arch.tolist():
        used = [i for step in a for i in step[1:3]]
        assert sorted(used) == [0, 1, 2, 3, 4, 5] and all(s[1] < s[2] for s in a)
    greedy = ctrl.sample(hist, greedy=True)[0]
    assert torch.equal(greedy, ctrl.sample(hist, greedy=True)[0])
    opt = torch.optim.Adam(ctrl.parameters(), lr=0.1)
    gen = torch.Generator().manual_seed(1)
    for _ in range(12):  # reward: the first step is an OR
        arch, logp, _ = ctrl.sample(hist, generator=gen)
        r = (arch[:, 0, 0] == 1).float()
        loss = -((r - r.mean()) * logp).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert (ctrl.sample(hist, greedy=True)[0][:, 0, 0] == 1).float().mean() > 0.9


def test_grouped_evaluation_equals_per_example():
    model = build_model({"name": "logic", "dim": 8, "assembly": "random"}, (1, 30, 4), 10)
    hist = torch.randint(0, 30, (40, 4))
    arch = uniform_architectures(40, 4, 3, torch.Generator().manual_seed(0))
    arch[:20] = arch[0]  # a shared expression for half the rows
    leaves = model.item(hist)
    ref = run_grouped(model, leaves, arch, "example")
    for g in ("operation", "expression"):
        assert torch.allclose(run_grouped(model, leaves, arch, g), ref, atol=1e-6)
    assert parse_expression(format_expression(arch[3]), 4).tolist() == arch[3].tolist()
    with pytest.raises(ConfigError, match="two different anchors"):
        parse_expression("AND(0,0)", 4)


@pytest.mark.parametrize("name", ["manas", "static_logic", "random_assembly", "bpr_mf"])
def test_methods_train_save_load_and_evaluate(name, synth, tmp_path):
    from childnet.registry import METHODS

    opts = dict(METHODS.get(name).meta["tiny"])
    child = derive(name, None, synth, opts, seed=1)
    again = derive(name, None, synth, opts, seed=1)
    for k, v in child.model.state_dict().items():
        assert torch.equal(v, again.model.state_dict()[k]), k
    m = evaluate(child, synth, latency=False)
    assert 0.0 <= m["accuracy"] <= 1.0
    child.save(tmp_path / "c")
    loaded = Child.load(tmp_path / "c")
    x = {k: v[:32] for k, v in synth.x_test.items()}
    assert torch.allclose(child.model(x), loaded.model(x), atol=1e-6)
    if name == "manas":
        assert any(k.startswith("controller.") for k in loaded.model.state_dict())
        assert child.lineage.extra["expressions"]["rows"] == len(synth.y_test)


def test_ranking_methods_refuse_classification_tasks():
    from childnet.tasks.base import Task

    x, y = torch.zeros(4, 3), torch.zeros(4, dtype=torch.long)
    images = Task("imgs", x, y, x, y, x, y, num_classes=2, input_shape=(3,), kind="tabular")
    with pytest.raises(ConfigError, match="needs a ranking task"):
        derive("manas", None, images, {"search_epochs": 0, "final_epochs": 0}, seed=0)


def test_sequences_file_mistakes_get_a_sentence(tmp_path, run_cli):
    """An unquoted sequence in a .csv was cut to its first item (history 1, then an internal error in
    MANAS); a short first row set history 1 past the field's bounds; a BOM hid the 'uid' column; a CNN
    parent on the ranking task crashed with a traceback in validate and run."""
    rows = seq_rows()
    unquoted = tmp_path / "u.csv"
    unquoted.write_text("uid,iid,sequence\n" + "\n".join(f"{u},{i},{s}" for u, i, _, s in rows) + "\n")
    with pytest.raises(DataError, match=r"line 2 has 6 fields, the header has 3 \(a sequence with commas"):
        load_task({"name": "sequences", "path": str(unquoted)})
    short = write_seq(tmp_path / "short.tsv", [(999, 5, 1, "3")] + rows)
    with pytest.raises(DataError, match=r"first row's sequence has 1 items.*task\.history accepts 2–11"):
        load_task({"name": "sequences", "path": str(short)})
    assert load_task({"name": "sequences", "path": str(short), "history": 4}).meta["history"] == 4
    trailing = tmp_path / "trailing.tsv"  # a tab at the end of every line: empty trailing fields
    trailing.write_text("\n".join(line + "\t" for line in write_seq(tmp_path / "t0.tsv", rows).read_text().splitlines()))
    assert load_task({"name": "sequences", "path": str(trailing)}).kind == "ranking"
    bom = tmp_path / "bom.tsv"
    bom.write_bytes(b"\xef\xbb\xbf" + write_seq(tmp_path / "plain.tsv", rows).read_bytes())
    assert load_task({"name": "sequences", "path": str(bom)}).kind == "ranking"
    exp = tmp_path / "exp.yaml"
    exp.write_text(yaml.safe_dump({"task": {"name": "sequences", "path": str(bom)},
                                   "parent": {"model": {"name": "cnn", "width": 4}, "train": {"epochs": 1}},
                                   "methods": [{"name": "bpr_mf", "epochs": 1, "dim": 8}], "seeds": 1}))
    for cmd in (("validate", exp), ("run", exp, "--out", tmp_path / "run", "--workers", "0", "--quiet")):
        proc = run_cli(*cmd)
        assert proc.returncode == 2 and "parent.model cnn cannot run on task 'sequences' (ranking inputs)" in proc.stderr, \
            proc.stderr


def test_predict_on_a_ranking_child_points_to_predict_scores(synth):
    from childnet import derive, predict

    task = synth
    child = derive("bpr_mf", None, task, {"epochs": 1, "dim": 4}, seed=0)
    with pytest.raises(ChildnetError, match=r"ranks candidate items.*predict_scores"):
        predict(child, task.x_test)


def test_bpr_mf_macs_count_its_products_and_the_parent_row_shows_the_ranking_metric(tmp_path, run_cli, monkeypatch):
    from childnet.evaluate import count_macs
    from childnet.models import build_model

    model = build_model({"name": "bpr_mf", "dim": 8}, (30, 400, 5), 400)
    x = {"user": torch.tensor([0, 1, 2]), "candidates": torch.randint(0, 400, (3, 101))}
    assert count_macs(model, x) == 3 * 101 * 8  # one dot product of size dim per candidate (it was 0)
    path = write_seq(tmp_path / "s.tsv", seq_rows())
    exp = {"task": {"name": "sequences", "path": str(path)}, "parent": {"model": {"name": "bpr_mf", "dim": 4},
           "train": {"epochs": 1}}, "methods": [{"name": "bpr_mf", "epochs": 1, "dim": 4}], "seeds": 1,
           "metric": "hr@10", "evaluate": {"latency": False, "device": False}}
    (tmp_path / "e.yaml").write_text(yaml.safe_dump(exp))
    monkeypatch.setenv("CHILDNET_CACHE", str(tmp_path / "cache"))
    run_cli("run", tmp_path / "e.yaml", "--out", tmp_path / "o", "--workers", "0", check=0)
    card = json.loads(next((tmp_path / "o" / "children").rglob("child.json")).read_text())
    parent = card["parent"]["metrics"]
    assert 0 <= parent["hr@10"] <= 1 and set(RANKING_METRICS) <= set(parent)


def test_the_device_model_says_a_ranking_child_is_not_modelled_without_feeding_it_an_array(synth, recwarn):
    from childnet.evaluate import DeviceConfig, evaluate_model

    child = derive("bpr_mf", None, synth, {"epochs": 1, "dim": 4}, seed=0)
    metrics = evaluate_model(child.model, synth, latency=False, device_model=DeviceConfig())
    assert metrics["device_status"] == "not modelled: ranking inputs (user, history, candidates)"
    assert not [w for w in recwarn if "indexing" in str(w.message)]  # it was fed zeros and indexed them with "user"
