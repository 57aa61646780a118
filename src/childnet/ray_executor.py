"""Units as Ray tasks: a private local cluster or an existing one, with no shared filesystem.

The head (the process that runs ``childnet run``) trains or loads each parent once, puts its
weights (safetensors bytes) and its cache entry in Ray's object store, and submits one Ray core task
per unit. A worker materialises the parent in *its own* cache folder, derives and evaluates the child
in a private temporary folder, and returns the child's files (``model.safetensors``, ``child.json``,
masks) and the unit's result line. Only the head writes the run folder and ``results.jsonl`` — so
resume, the skip logic and the report are those of the process pool.

Failure isolation: a worker process that dies is retried by Ray (``max_retries``); a unit that raises
is a ``failed`` record like with the process pool; Ctrl-C cancels outstanding tasks.

Where we chose: the worker's cache is its node's ``CHILDNET_CACHE`` when that differs from the head's,
else ``$CHILDNET_WORKER_DIR`` (default ``<tmp>/childnet-ray-<uid>``)``/cache`` — so a worker never
reads the head's cache even on the head's machine. Task data (digits, MNIST, …) come from the packages
installed on every node; a node whose data differ from the head's fails its units with a clear message
instead of silently training another parent.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
import time
import uuid
from pathlib import Path
from typing import Callable

from .errors import ChildnetError, MissingDependencyError

__all__ = ["RaySession", "require_ray", "execute"]

#: How long we wait for a TCP answer from ``--address`` before calling it unreachable.
CONNECT_TIMEOUT_S = 5.0


def require_ray():
    """Import Ray or say which extra installs it."""
    try:
        import ray
    except ImportError:
        raise MissingDependencyError("ray", "ray", "(needed by --executor ray)") from None
    return ray


def _resolve_auto(ray) -> str | None:
    """The HOST:PORT that ``address="auto"`` means ($RAY_ADDRESS or the last `ray start` here), if Ray says."""
    try:
        from ray._private.services import canonicalize_bootstrap_address

        return canonicalize_bootstrap_address("auto")
    except Exception:  # a private helper of Ray: if it moved or finds nothing, ray.init will say
        return None


def _check_reachable(address: str, given: str | None = None) -> None:
    """A clear sentence within seconds for a HOST:PORT nobody answers on (Ray itself would retry for minutes)."""
    if address == "auto":
        return
    given = given or address
    host, sep, port = address.rpartition(":")
    if address.startswith("ray://"):
        raise ChildnetError(f"--address {address}: Ray Client addresses (ray://) are not supported; give the "
                            "GCS address HOST:PORT of the head (`ray start --head` prints it) or 'auto'")
    if not sep or not (port.isascii() and port.isdigit()) or not host:
        raise ChildnetError(f"--address must be 'auto' or HOST:PORT of a Ray head node (got {address!r})")
    if not 1 <= int(port) <= 65535:
        raise ChildnetError(f"--address {address}: the port should be 1 … 65535 (got {port}); give HOST:PORT "
                            "of a Ray head node (`ray start --head` prints it) or 'auto'")
    try:
        with socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S):
            pass
    except OSError as err:
        found = " (found for 'auto': the last `ray start` on this machine or RAY_ADDRESS)" if given != address else ""
        raise ChildnetError(f"cannot reach a Ray cluster at {address}{found} ({err.strerror or err}); start one with "
                            "`ray start --head` on that machine, check the address it printed, or run without "
                            "--address for a private local cluster") from None


class RaySession:
    """A connection to a Ray cluster; :meth:`close` shuts down only what it started."""

    def __init__(self, address: str | None, num_cpus: int, log: Callable[[str], None] = print):
        ray = require_ray()
        if address is None and num_cpus < 1:
            raise ChildnetError(f"--workers must be at least 1 with --executor ray (got {num_cpus}); "
                                "--workers 0 means in-process and needs --executor process")
        self.ray, self.owned, self.private = ray, False, False
        if ray.is_initialized():  # a library user who called ray.init() themselves
            log("ray: using the Ray session this process already joined")
            return
        if address == "auto":
            _check_reachable(_resolve_auto(ray) or "auto", "auto")
        elif address is not None:
            _check_reachable(address)
        import logging
        import signal

        # ray.init installs its own SIGTERM/SIGINT handlers (a C++ one that aborts with a stack dump); the
        # command's handlers turn them into the clean shutdown (finished units kept, exit 143 / 130)
        handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            if address is None:
                # Ray runs its workers at niceness 15 by default; in a private cluster the units *are* the
                # work, and the process pool does not nice its workers either.
                os.environ.setdefault("RAY_worker_niceness", "0")
                ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, log_to_driver=False,
                         logging_level=logging.WARNING)
            else:
                ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
        except (ConnectionError, RuntimeError, ValueError, TimeoutError) as err:
            where = address or "a private local cluster"
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ChildnetError(f"cannot start or join Ray at {where}: {first}") from None
        finally:
            import threading

            if threading.current_thread() is threading.main_thread():  # (signal handlers live there only)
                for sig, handler in handlers.items():
                    if handler is not None:
                        signal.signal(sig, handler)
        self.owned = True
        self.private = address is None  # a cluster started here: ray.shutdown() stops its workers
        cpus = ray.cluster_resources().get("CPU", 0)
        log(f"ray: {'started a local cluster' if address is None else 'joined ' + address} "
            f"({len(ray.nodes())} node(s), {cpus:g} CPUs)")

    def close(self) -> None:
        if self.owned and self.ray.is_initialized():
            self.ray.shutdown()
        self.owned = False


# ---------------------------------------------------------------- head side


def _parent_blob(cfg, payload: dict) -> dict:
    """The parent of ``payload``'s setting as bytes plus its cache entry (trained/loaded already on the head,
    from the head's cache or the weights the runner handed over when the cache could not keep them)."""
    from ._version import __version__
    from .checkpoint import save_tensors
    from .parent import _key
    from ._unit import _unit_parent

    task_json = json.dumps(payload["task"], sort_keys=True)
    parent = _unit_parent(payload, task_json)
    kind = "checkpoint" if cfg.parent.checkpoint else "pretrained" if cfg.parent.pretrained else "cache"
    with tempfile.TemporaryDirectory(prefix="childnet-parent-") as tmp:
        save_tensors({k: v.detach().cpu() for k, v in parent.model.state_dict().items()}, Path(tmp) / "w")
        weights = (Path(tmp) / "w").read_bytes()
    meta = {"config": cfg.parent.model_dump(), "metrics": parent.metrics, "history": parent.history,
            "fingerprint": parent.fingerprint, "library_version": __version__}
    return {"kind": kind, "key": _key(cfg.parent, parent.task) if kind == "cache" else None,
            "fingerprint": parent.fingerprint, "weights": weights, "meta": meta}


def _failed(payload: dict, error: str, kind: str = "internal") -> dict:
    from .config import Setting

    setting = Setting(**payload["setting"])
    return {"unit": payload["key"], "setting": setting.id, "overrides": setting.overrides, "method": payload["method"],
            "label": payload["label"], "seed": payload["seed"], "status": "failed", "error": error,
            "error_kind": kind, "wall_time_s": 0.0}


def _write_child(out: Path, child_dir: str, files: dict[str, bytes]) -> None:
    """Write a worker's child folder into the run folder atomically (temp folder renamed into place)."""
    target = out / child_dir
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".tmp-{target.name}-"))
    try:
        for name, data in files.items():
            (tmp / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp / name).write_bytes(data)
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def execute(session: RaySession, cfg, payloads: list[dict], out: Path, device: str,
            record: Callable[[dict], None], max_retries: int = 3, follow=None) -> None:
    """Run ``payloads`` as Ray tasks; ``record`` appends each result line (head only).

    ``follow(rec)`` returns the units a finished one released (a pipeline's next stage); they are submitted
    with the incoming child's files.
    """
    ray = session.ray

    blobs: dict[str, object] = {}
    refs_for: dict[str, object] = {}

    def ref_for(p: dict):
        sid = p["setting"]["id"]
        if sid not in refs_for:
            blob = _parent_blob(cfg, p)
            if blob["fingerprint"] not in blobs:
                blobs[blob["fingerprint"]] = ray.put(blob)
            refs_for[sid] = blobs[blob["fingerprint"]]
        return refs_for[sid]

    for p in payloads:
        ref_for(p)
    remote = ray.remote(num_cpus=1, max_retries=max_retries, retry_exceptions=False)(_ray_unit)
    head_cache = str(_head_cache())
    pending = {}
    # counts each unit's attempts: a private cluster's job id is the same in every run (01000000), so the
    # attempt markers of one run must not be found by the next
    run_token = uuid.uuid4().hex

    def submit(p: dict) -> None:
        # the worker gets its parent from the shipped blob, never from a path on the head's disk
        shipped = dict(p, parent={"fingerprint": (p.get("parent") or {}).get("fingerprint")}, ray_session=run_token)
        if p.get("incoming"):  # a pipeline's later stage: the incoming child's files travel with the unit
            from .pipeline import incoming_files

            shipped["incoming_files"] = incoming_files(out, p["incoming"])
        pending[remote.remote(shipped, ref_for(p), head_cache)] = p

    for p in payloads:
        submit(p)
    try:
        while pending:
            ready, _ = _signal_safe(ray.wait, list(pending), num_returns=1, timeout=0.5)
            for ref in ready:
                p = pending.pop(ref)
                rec = _result(ray, ref, p, out, max_retries)
                record(rec)
                for released in (follow(rec) if follow is not None else []):
                    submit(released)
    except BaseException:  # Ctrl-C or an error on the head: cancel what is queued or running on a joined cluster
        # A private cluster's workers stop with it (RaySession.close). Cancelling there raced with a task that was
        # just finishing: Ray's core worker aborted ("Tried to complete task that was not pending", a Ray bug,
        # ray-project/ray#54798), so a SIGTERM ended with exit 1 and a C++ stack dump instead of 143.
        for ref in pending if not session.private else ():
            try:
                ray.cancel(ref, force=True)
            except Exception:  # already finished or its worker is gone
                pass
        raise
    finally:  # this run's attempt markers on the head's node (other nodes' are a few empty-ish files)
        for folder in (_worker_root() / "attempts").glob(f"*-{run_token}"):
            shutil.rmtree(folder, ignore_errors=True)


def _signal_safe(fn, *args, **kwargs):
    """``fn(...)``, a Ray call; a signal handler that raised inside Ray's Cython code (SIGTERM → the CLI's
    ``Terminated``) reaches us as a SystemError around it: raise the handler's exception itself."""
    try:
        return fn(*args, **kwargs)
    except SystemError as err:
        cause = err.__cause__
        if isinstance(cause, BaseException) and not isinstance(cause, Exception):
            raise cause from None
        raise


def _result(ray, ref, payload: dict, out: Path, max_retries: int) -> dict:
    try:
        res = _signal_safe(ray.get, ref)
    except ray.exceptions.TaskCancelledError:
        raise KeyboardInterrupt from None
    except ray.exceptions.RayTaskError as err:  # the task wrapper itself raised (run_unit never does)
        if isinstance(getattr(err, "cause", None), KeyboardInterrupt):
            raise KeyboardInterrupt from None
        return _failed(payload, f"internal error in the Ray task: {str(err).strip().splitlines()[-1]}")
    except ray.exceptions.RayError as err:  # the worker process or its node died more than max_retries times
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        return _failed(payload, f"the Ray worker running this unit died {max_retries + 1} time(s) "
                                f"({type(err).__name__}: {first})")
    rec = res["record"]
    if rec.get("status") == "ok":
        _write_child(out, rec["child_dir"], res["files"])
    return rec


def _head_cache() -> Path:
    from .parent import cache_dir

    return cache_dir().resolve()


# ---------------------------------------------------------------- worker side

_MATERIALISED: dict[str, str] = {}


def _worker_root() -> Path:
    root = os.environ.get("CHILDNET_WORKER_DIR") or Path(tempfile.gettempdir()) / f"childnet-ray-{os.getuid()}"
    Path(root).mkdir(parents=True, exist_ok=True)
    return Path(root)


def _use_worker_cache(head_cache: str) -> None:
    """Point CHILDNET_CACHE at this node's own cache, never the head's."""
    from .parent import cache_dir

    if str(cache_dir().resolve()) == head_cache:
        os.environ["CHILDNET_CACHE"] = str(_worker_root() / "cache")


def _materialise(blob: dict, payload: dict) -> dict:
    """Put the shipped parent where ``run_unit`` finds it on this node; return the payload to run."""
    import copy

    from .config import ParentConfig
    from .parent import _key, cache_dir
    from ._unit import _cached_parent, _cached_task
    from .tasks.base import load_task

    if blob["kind"] == "pretrained":  # the weights ship in a package installed on every node
        return payload
    if blob["kind"] == "checkpoint":
        path = _worker_root() / "checkpoints" / f"{blob['fingerprint']}.safetensors"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".tmp{os.getpid()}")
            tmp.write_bytes(blob["weights"])
            os.replace(tmp, path)
        payload = copy.deepcopy(payload)
        payload["parent_config"]["checkpoint"] = str(path)
        return payload
    pcfg = ParentConfig.model_validate(payload["parent_config"])
    task_json = json.dumps(payload["task"], sort_keys=True)
    ptask = load_task(pcfg.task) if pcfg.task is not None else _cached_task(task_json)
    key = _key(pcfg, ptask)
    if key != blob["key"]:
        raise ChildnetError(f"the data of task {ptask.name} on Ray node {socket.gethostname()} differ from the "
                            f"head's (parent cache key {key}, head {blob['key']}); install the same data "
                            "packages (and versions) on every node")
    folder = cache_dir() / "parents" / key
    if _MATERIALISED.get(key) != blob["fingerprint"]:
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".tmp-"))
        (tmp / "model.safetensors").write_bytes(blob["weights"])
        (tmp / "parent.json").write_text(json.dumps(blob["meta"], indent=2, default=str))
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
        _MATERIALISED[key] = blob["fingerprint"]
        _cached_parent.cache_clear()
    return payload


def _ray_unit(payload: dict, parent_blob: dict, head_cache: str) -> dict:
    """One unit on a Ray worker: returns ``{"record": …, "files": {name: bytes}}``; never touches the head's disk."""
    import torch

    from .parent import cache_dir
    from ._unit import run_unit

    torch.set_num_threads(1)
    _use_worker_cache(head_cache)
    attempt = _count_attempt(payload["key"], payload.get("ray_session", ""))
    t0 = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="unit-", dir=_worker_root()))
    try:
        try:
            local = _materialise(parent_blob, payload)
        except ChildnetError as err:
            rec = _failed(payload, str(err), "user")
            rec["wall_time_s"] = round(time.perf_counter() - t0, 3)
            return {"record": _tag(rec, cache_dir(), attempt), "files": {}}
        rec = run_unit(dict(local, out=str(tmp)))
        files = {}
        if rec.get("status") == "ok":
            child = tmp / rec["child_dir"]
            files = {str(f.relative_to(child)): f.read_bytes() for f in sorted(child.rglob("*")) if f.is_file()}
            if rec["parent"]["fingerprint"] != parent_blob["fingerprint"]:
                rec = _failed(payload, f"the parent on Ray node {socket.gethostname()} has fingerprint "
                                       f"{rec['parent']['fingerprint']}, not the head's {parent_blob['fingerprint']}; "
                                       "install the same childnet and data packages on every node", "user")
                files = {}
        return {"record": _tag(rec, cache_dir(), attempt), "files": files}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _count_attempt(key: str, session: str) -> int:
    """1 for a unit's first run in this run (``session``) on this node, 2 after its worker died once, …"""
    import ray

    job = ray.get_runtime_context().get_job_id()
    marker = _worker_root() / "attempts" / f"{job}-{session}" / key.replace("/", "__")
    marker.parent.mkdir(parents=True, exist_ok=True)
    with open(marker, "a") as fh:
        fh.write("x")
    return marker.stat().st_size


def _tag(rec: dict, cache: Path, attempt: int) -> dict:
    """Where the unit ran (node, process, its cache and working folder, attempt): for audits and the tests."""
    import ray

    rec["executor"] = {"name": "ray", "node_id": ray.get_runtime_context().get_node_id(),
                       "host": socket.gethostname(), "pid": os.getpid(), "cache": str(cache), "cwd": os.getcwd(),
                       "attempt": attempt}
    return rec
