"""Docs a user can work from: the methods reference is generated and current; every task option is documented."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from childnet.reference import methods_reference
from childnet.registry import METHODS, TASKS

ROOT = Path(__file__).resolve().parents[1]


def test_methods_reference_page_is_current():
    page = (ROOT / "docs" / "methods-reference.md").read_text(encoding="utf-8")
    assert page == methods_reference(), ("docs/methods-reference.md is stale: regenerate it with "
                                         "`childnet list methods --fields --markdown > docs/methods-reference.md`")
    for entry in METHODS.entries():
        assert f"### `{entry.name}`" in page


def test_tasks_page_documents_every_option_and_the_cache():
    page = (ROOT / "docs" / "tasks.md").read_text(encoding="utf-8")
    for name in ("arrays", "text-csv"):
        for field in TASKS.get(name).config.model_fields:
            assert f"`{field}`" in page, (name, field)
    assert "CHILDNET_CACHE" in page and "rm -rf" in page


def test_cli_lists_method_fields():
    cli = str(Path(sys.executable).parent / "childnet")
    proc = subprocess.run([cli, "list", "methods", "--fields"], capture_output=True, text=True,
                          env=dict(os.environ, COLUMNS="200"))
    assert proc.returncode == 0, proc.stderr
    assert "oneshot (prune)" in proc.stdout and "sparsity: float = 0.9" in proc.stdout
