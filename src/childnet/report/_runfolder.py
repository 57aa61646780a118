"""The report's view of a run folder; reading it (and its format) belongs to :mod:`childnet.runfolder`.

A unit may appear more than once in ``results.jsonl`` (a failed unit re-run on resume): the LAST line for a
unit key wins. Lines that are not valid results (a run killed mid-write) are skipped and counted, never fatal.
"""

from __future__ import annotations

from ..runfolder import EXPERIMENT_FILE, RESULTS_FILE, RunFolder, load_run_folder

__all__ = ["RunFolder", "load_run_folder", "settings_with_overrides", "label_order", "EXPERIMENT_FILE",
           "RESULTS_FILE"]


def _expected_settings(experiment: dict) -> dict[str, dict]:
    """``{setting id: overrides}`` in the order the runner creates them (from the sweep)."""
    from pydantic import ValidationError

    from ..config import ExperimentConfig

    try:
        settings = ExperimentConfig.model_validate(experiment).settings()
    except (ValidationError, TypeError, ValueError):
        return {} if experiment.get("sweep") else {"default": {}}
    return {s.id: dict(s.overrides) for s in settings}


def settings_with_overrides(run: RunFolder) -> dict[str, dict]:
    """Every setting id with its overrides: the experiment's order, then others found in the results."""
    settings = _expected_settings(run.experiment)
    for unit in run.units:
        sid = str(unit.get("setting", "default"))
        if sid not in settings or (not settings[sid] and unit.get("overrides")):
            settings[sid] = dict(unit.get("overrides") or {})
    return settings


def label_order(run: RunFolder) -> list[str]:
    """Every method label: the experiment's order, then any others found in the results."""
    order = [str(m.get("label", m.get("name"))) for m in run.experiment.get("methods", []) if isinstance(m, dict)]
    for unit in run.units:
        label = str(unit.get("label", unit.get("method", "?")))
        if label not in order:
            order.append(label)
    return order
