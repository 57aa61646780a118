"""docs/results.md's tables are generated from benchmarks/results/*.json and current (as the methods reference is)."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import results_doc  # noqa: E402


def test_generated_sections_of_results_md_are_current():
    text = results_doc.DOC.read_text(encoding="utf-8")
    assert text == results_doc.render(text), ("docs/results.md is stale: regenerate its tables with "
                                              "`python benchmarks/results_doc.py`")


def test_every_reproduction_json_and_the_claims_have_a_section():
    text = results_doc.DOC.read_text(encoding="utf-8")
    for key in results_doc.sections():
        assert f"<!-- generated: {key} -->" in text, key
    claims = results_doc.claims_table()
    assert claims.count("\n| ") == len(results_doc.CLAIMS)  # one row per paper
    assert "no result yet" not in claims


def test_a_changed_number_makes_the_page_stale(tmp_path, monkeypatch):
    import json
    import shutil

    for path in results_doc.RESULTS.glob("*.json"):
        shutil.copy(path, tmp_path / path.name)
    data = json.loads((tmp_path / "ssa-mnist.json").read_text())
    data["settings"]["sparsity=0.98"]["methods"]["ssa"]["mean"] += 0.5
    (tmp_path / "ssa-mnist.json").write_text(json.dumps(data))
    monkeypatch.setattr(results_doc, "RESULTS", tmp_path)
    text = results_doc.DOC.read_text(encoding="utf-8")
    assert results_doc.render(text) != text


def test_reproductions_are_the_experiments_run_by_reproduce_py_and_start_from_an_empty_cache(tmp_path):
    import pytest

    import reproduce

    names = [p.stem for p in reproduce.reproductions()]
    assert "demo" not in names and {"ssa-mnist", "tune-minilm-rt", "hkt-mnist"} <= set(names)
    assert set(reproduce.FOLLOW_UPS) <= set(names)
    used = tmp_path / "used"
    used.mkdir()
    (used / "parents").mkdir()
    with pytest.raises(SystemExit, match="not empty"):
        reproduce._fresh_cache(used)
    reproduce._fresh_cache(tmp_path / "new")  # absent: created and marked, so a rerun resumes with it
    reproduce._fresh_cache(tmp_path / "new")
