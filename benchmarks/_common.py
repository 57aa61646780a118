"""Helpers shared by the speed benchmarks: the result file and the command that made it."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def command() -> str:
    script = Path(sys.argv[0]).resolve().relative_to(Path(__file__).resolve().parents[1])
    return " ".join(["python", str(script)] + [shlex.quote(a) for a in sys.argv[1:]])


def write_json(data: dict, results_dir: Path = RESULTS, units: int | None = None) -> Path:
    """Write ``data`` to ``results_dir/<data["name"]>.json`` (a summary of a run folder) and say where."""
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / f"{data['name']}.json"
    path.write_text(json.dumps(data, indent=2) + "\n")
    print(f"wrote {path}" + (f" from {units} units" if units is not None else ""))
    return path


def write_result(name: str, metric: str, value: float, target: str, passed: bool, raw: dict) -> Path:
    """Write ``benchmarks/results/<name>.json`` in the DESIGN.md speed-benchmark format."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    data = {"name": name, "command": command(), "metric": metric, "value": round(value, 4), "target": target,
            "passed": bool(passed), "raw": raw}
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=2) + "\n")
    print(json.dumps({k: data[k] for k in ("name", "metric", "value", "target", "passed")}))
    return path
