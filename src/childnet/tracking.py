"""Experiment tracking: every finished unit also goes to TensorBoard and/or MLflow.

``results.jsonl`` stays the record of truth (resume reads it, the report reads it); a sink is told
about each line right after the head appended it, whatever the executor — with Ray the head logs what
workers sent back, so trackers need no access to worker nodes.

* ``tensorboard``: ``RUN/tensorboard/<setting>/<label>/seed<k>/`` holds the per-epoch records of the
  unit's training (``epoch/<term>``: learning rate, training loss terms, validation accuracy) and
  ``…/hparams/`` the unit's hyper-parameters with its final metrics (``final/<metric>``) for the HParams
  dashboard.
* ``mlflow``: one MLflow run per unit (named by the unit key) in the experiment named like the
  childnet experiment; params = the method's full config (nested keys joined by ``.``), metrics = the
  per-epoch records (``step`` = epoch) and the final metrics, artifact ``child.json`` (the card).
  The store is ``$MLFLOW_TRACKING_URI`` or, by default, ``RUN/mlruns`` (MLflow's file store: it works
  offline with mlflow-skinny, whose database store needs the full ``mlflow`` package; MLflow 3 asks for
  ``MLFLOW_ALLOW_FILE_STORE=true`` to use it, which we set for that default store only).

Failed units are not drawn in TensorBoard; in MLflow they are runs with status FAILED and the error as
a tag. A tracker that stops answering mid-run does not stop the run (one warning per sink).

**Catching up.** A run with ``--track`` first logs the lines of ``results.jsonl`` a sink's store does
not hold — units finished before tracking was asked for, or a line whose logging a kill interrupted —
even when no unit is left to run. The store says what it holds: TensorBoard a ledger inside its own
folder (``RUN/tensorboard/.childnet-logged``; a folder written before ledgers counts its unit folders),
MLflow its runs' tags (``childnet.run_folder``, ``childnet.record``; runs from other run folders in a
shared store are never counted or touched). An interrupted unit is logged afresh: its TensorBoard
folder is rewritten, its MLflow run left RUNNING by the kill is deleted.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
from pathlib import Path
from typing import Callable, Iterable

from .errors import ChildnetError, MissingDependencyError

__all__ = ["TRACKERS", "parse_track", "open_sinks", "Sinks", "flatten"]

TRACKERS = ("tensorboard", "mlflow")


def parse_track(track: str | Iterable[str] | None) -> list[str]:
    """``"tensorboard,mlflow"`` or ``["mlflow"]`` → checked names (unknown names name the valid ones)."""
    if track is None:
        return []
    items = [track] if isinstance(track, str) else list(track)
    names = [n.strip() for item in items for n in str(item).split(",") if n.strip()]
    for n in names:
        if n not in TRACKERS:
            raise ChildnetError(f"unknown --track value {n!r}; valid trackers: {', '.join(TRACKERS)}")
    return list(dict.fromkeys(names))


def flatten(d: dict, prefix: str = "") -> dict[str, object]:
    """Nested dicts → ``{"a.b": value}``; lists and None become JSON text (trackers take scalars)."""
    flat: dict[str, object] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            flat.update(flatten(v, key + "."))
        elif isinstance(v, (bool, int, float, str)):
            flat[key] = v
        else:
            flat[key] = json.dumps(v, default=str, sort_keys=True)
    return flat


def _numbers(d: dict) -> dict[str, float]:
    return {k: float(v) for k, v in d.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def _slug(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=,+-]", "_", s)


class TensorBoardSink:
    name = "tensorboard"

    def __init__(self, out: Path, cfg):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise MissingDependencyError("tensorboard", "tensorboard", "(needed by --track tensorboard)") from None
        self._writer = SummaryWriter
        self.root = out / "tensorboard"
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            probe = self.root / ".write-test"
            probe.write_text("ok")
            probe.unlink()
        except OSError as err:
            raise ChildnetError(f"--track tensorboard cannot write to {self.root}: {err.strerror or err}") from None

    def log(self, rec: dict, card: dict | None) -> None:
        if rec.get("status") != "ok":
            return
        logdir = self._logdir(rec)
        shutil.rmtree(logdir, ignore_errors=True)  # a unit's folder is written whole (a kill may have cut one)
        writer = self._writer(log_dir=str(logdir))
        try:
            for h in rec.get("history") or []:
                step = int(h.get("epoch", 0))
                for k, v in _numbers(h).items():
                    if k != "epoch":
                        writer.add_scalar(f"epoch/{k}", v, step)
            hparams = {"method": rec["method"], "label": rec["label"], "seed": rec["seed"], "setting": rec["setting"]}
            hparams.update(flatten((card or {}).get("config") or {}))
            metrics = {f"final/{k}": v for k, v in _numbers(rec.get("metrics") or {}).items()}
            writer.add_hparams(hparams, metrics, run_name="hparams")
        finally:
            writer.close()

    def _logdir(self, rec: dict) -> Path:
        return self.root / _slug(rec["setting"]) / _slug(rec["label"]) / f"seed{rec['seed']}"

    def logged(self, records: list[dict]) -> set[str]:
        """The lines this TensorBoard folder holds: its ledger (kept inside it, so a folder deleted to be
        rebuilt is rebuilt); for a folder written before ledgers, the units whose folders are there."""
        ledger = self.root / LEDGER_NAME
        if ledger.exists():
            return set(ledger.read_text(encoding="utf-8", errors="replace").split())
        have = {record_id(r) for r in records if r.get("status") != "ok" or self._logdir(r).is_dir()}
        self._append(sorted(have))
        return have

    def remember(self, rec: dict) -> None:
        self._append([record_id(rec)])

    def _append(self, ids: list[str]) -> None:
        try:
            with open(self.root / LEDGER_NAME, "a", encoding="utf-8") as fh:
                fh.write("".join(f"{i}\n" for i in ids))
        except OSError:  # the ledger only saves re-logging; the run goes on
            pass

    def close(self) -> None:
        pass


class MLflowSink:
    name = "mlflow"

    def __init__(self, out: Path, cfg):
        try:
            from mlflow.tracking import MlflowClient
        except ImportError:
            raise MissingDependencyError("mlflow-skinny", "mlflow", "(needed by --track mlflow)") from None
        uri = os.environ.get("MLFLOW_TRACKING_URI")
        if not uri:
            uri = (out / "mlruns").resolve().as_uri()
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        elif uri.startswith(("http://", "https://")):  # fail in seconds, not after minutes of retries
            os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
            os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
        elif uri.startswith("file:") or "://" not in uri:
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        self.uri = uri
        self.folder = str(out.resolve())
        try:
            self.client = MlflowClient(tracking_uri=uri)
            exp = self.client.get_experiment_by_name(cfg.name)
            self.experiment_id = exp.experiment_id if exp else self.client.create_experiment(cfg.name)
            self.client.set_experiment_tag(self.experiment_id, "childnet.run_folder", str(out.resolve()))
        except Exception as err:  # MlflowException, OSError, requests errors: all mean "cannot write there"
            first = (str(err).strip().splitlines() or [type(err).__name__])[0][:300]
            raise ChildnetError(f"--track mlflow cannot write to the MLflow tracking URI {uri} ({first}); set "
                                "MLFLOW_TRACKING_URI to a writable store, or unset it to log into the run folder "
                                "(RUN/mlruns)") from None

    def log(self, rec: dict, card: dict | None) -> None:
        from mlflow.entities import Metric, Param

        ok = rec.get("status") == "ok"
        tags = {"childnet.unit": rec["unit"], "childnet.setting": rec["setting"], "childnet.method": rec["method"],
                "childnet.label": rec["label"], "childnet.seed": str(rec["seed"]), "childnet.status": rec["status"],
                "childnet.record": record_id(rec), "childnet.run_folder": self.folder}
        if not ok:
            tags["childnet.error"] = str(rec.get("error"))[:5000]
        run = self.client.create_run(self.experiment_id, run_name=rec["unit"], tags=tags)
        run_id = run.info.run_id
        params = [Param(k, str(v)[:6000]) for k, v in flatten((card or {}).get("config") or {}).items()]
        now = int(time.time() * 1000)
        final = _numbers(rec.get("metrics") or {})
        metrics = [Metric(k, v, now, 0) for k, v in final.items()]
        for h in rec.get("history") or []:
            step = int(h.get("epoch", 0))
            for k, v in _numbers(h).items():
                if k != "epoch":
                    metrics.append(Metric(f"epoch/{k}" if k in final else k, v, now, step))
        for i in range(0, len(params), 100):
            self.client.log_batch(run_id, params=params[i:i + 100])
        for i in range(0, len(metrics), 1000):
            self.client.log_batch(run_id, metrics=metrics[i:i + 1000])
        if card is not None:
            self.client.log_text(run_id, json.dumps(card, indent=2, default=str), "child.json")
        self.client.set_terminated(run_id, "FINISHED" if ok else "FAILED")

    def logged(self, records: list[dict]) -> set[str]:
        """The lines the store holds for this run folder (runs tagged with it and the line's id), read in a
        few queries; a run a kill left RUNNING while it was being logged is deleted, so its line is logged
        again. (Runs logged before these tags existed are not recognised: their lines are logged again.)"""
        quoted = self.folder.replace("\\", "\\\\").replace("'", "\\'")
        have, token = set(), None
        while True:
            page = self.client.search_runs([self.experiment_id], f"tags.`childnet.run_folder` = '{quoted}'",
                                           max_results=1000, page_token=token)
            for run in page:
                if run.info.status == "RUNNING":
                    self.client.delete_run(run.info.run_id)
                elif run.data.tags.get("childnet.record"):
                    have.add(run.data.tags["childnet.record"])
            token = page.token
            if not token:
                return have

    def remember(self, rec: dict) -> None:
        pass  # the run's tags are the record

    def close(self) -> None:
        pass


_SINKS = {"tensorboard": TensorBoardSink, "mlflow": MLflowSink}

#: In ``RUN/tensorboard``: the result lines it holds (``record_id`` per line).
LEDGER_NAME = ".childnet-logged"


def record_id(rec: dict) -> str:
    """One result line's identity: its unit and a hash of its content (a unit failed, then finished, is two)."""
    digest = hashlib.sha256(json.dumps(rec, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return f"{rec.get('unit')}#{digest}".replace(" ", "_")


class Sinks:
    """The open sinks of one run: ``log(rec)`` after each appended result line."""

    def __init__(self, sinks: list, out: Path, log: Callable[[str], None]):
        self.sinks, self.out, self._log, self._warned = sinks, out, log, set()

    def catch_up(self, records: list[dict]) -> None:
        """Log the result lines each sink's store does not hold yet (see the module docstring)."""
        for sink in self.sinks:
            try:
                have = sink.logged(records)
            except Exception as err:  # noqa: BLE001 - a tracker is a view: say so, and the run goes on
                self._log(f"tracking: {sink.name} could not tell which earlier lines it holds ({type(err).__name__}: "
                          f"{err}); it logs the new units only")
                continue
            todo = [rec for rec in records if record_id(rec) not in have]
            if todo:
                self._log(f"tracking: {sink.name}: logging {len(todo)} earlier result line(s) it does not have yet")
            for rec in todo:
                self.log(rec, only=sink)

    def log(self, rec: dict, only=None) -> None:
        if not self.sinks:
            return
        card = None
        if rec.get("status") == "ok" and rec.get("child_dir"):
            from .child import read_card

            try:
                card = read_card(self.out / rec["child_dir"])
            except ChildnetError:
                card = None
        for sink in self.sinks if only is None else [only]:
            try:
                sink.log(rec, card)
                sink.remember(rec)
            except Exception as err:  # a tracker is a view; the run and results.jsonl go on
                if sink.name not in self._warned:
                    self._warned.add(sink.name)
                    self._log(f"tracking: {sink.name} could not log unit {rec.get('unit')} ({type(err).__name__}: "
                              f"{err}); results.jsonl is complete, later units are still tried")

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()


def open_sinks(names: list[str], out: Path, cfg, log: Callable[[str], None] = print) -> Sinks:
    """Open (and check we can write to) every requested tracker — before any unit runs."""
    sinks = [_SINKS[n](Path(out), cfg) for n in names]
    for s in sinks:
        where = getattr(s, "uri", None) or getattr(s, "root", "")
        log(f"tracking: {s.name} → {where}")
    return Sinks(sinks, Path(out), log)
