"""Shared fixtures: a tiny real task (sklearn digits) and a tiny trained parent.

Every test runs with one torch thread and a private parent cache.
"""

from __future__ import annotations

import os

import pytest
import torch

torch.set_num_threads(1)


def pytest_collection_modifyitems(config, items):
    """Tests marked ``slow`` first: with ``pytest -n 2`` they then start early instead of ending the run alone."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory):
    old = os.environ.get("CHILDNET_CACHE")
    os.environ["CHILDNET_CACHE"] = str(tmp_path_factory.mktemp("childnet-cache"))
    yield
    if old is None:
        os.environ.pop("CHILDNET_CACHE", None)
    else:
        os.environ["CHILDNET_CACHE"] = old


@pytest.fixture(scope="session")
def digits_task():
    from childnet import load_task

    return load_task({"name": "digits"})


#: The parent every contract test derives from: a small CNN trained briefly on digits.
TINY_PARENT = {"model": {"name": "cnn", "width": 8, "depth": 2}, "train": {"epochs": 3, "lr": 0.01}}


@pytest.fixture(scope="session")
def tiny_parent(digits_task, _private_cache):
    from childnet import get_parent

    return get_parent(TINY_PARENT, digits_task)


class CliResult:
    """What a finished ``childnet`` command left: its exit code and what it printed."""

    def __init__(self, returncode, stdout, stderr):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


@pytest.fixture
def run_cli(capsys, monkeypatch):
    """``childnet ARGS`` through :func:`childnet.cli.main` in this process (no interpreter start-up).

    Returns a ``CliResult`` (returncode, stdout, stderr) like ``subprocess.run``. An exception that is not a
    ``SystemExit`` — what would print a traceback — fails the test. Tests of the console entry point
    itself, signals and worker processes go through the real ``childnet`` executable instead.
    """
    from childnet.cli import main

    monkeypatch.setenv("COLUMNS", "200")

    def call(*args, check=None):
        capsys.readouterr()
        with pytest.raises(SystemExit) as exit_:
            main([str(a) for a in args])
        out = capsys.readouterr()
        code = exit_.value.code
        result = CliResult(0 if code is None else code, out.out, out.err)
        if check is not None:
            assert result.returncode == check, result.stdout + result.stderr
        return result

    return call
