"""Your own models, tasks, methods or scorers in the ``childnet`` command: ``CHILDNET_PLUGINS``.

``CHILDNET_PLUGINS=my_models.py childnet run exp.yaml`` imports each comma-separated entry — the path of
a ``.py`` file, or the name of an importable module (``mypkg.models``) — before the command runs, so
that what it registers (``@MODELS.register(...)``, see docs/own-model.md) can be named in an experiment
file, and a saved child of it loads in ``childnet show`` and ``childnet report``. Worker processes and
Ray's workers import the same entries before their first unit (a file path is made absolute first, so
a worker started elsewhere finds it; on a multi-node Ray cluster the file must exist at that path on
every node). A script that registers its models itself and calls :func:`childnet.run_experiment` needs
none of this: its workers re-import the script.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import sys
from pathlib import Path

from .errors import ChildnetError

__all__ = ["ENV", "load_plugins"]

ENV = "CHILDNET_PLUGINS"

#: Entries imported in this process (a file imported twice would register its builders twice).
_loaded: set[str] = set()


def _entries(spec: str) -> list[str]:
    out = []
    for raw in spec.split(","):
        entry = raw.strip()
        if not entry:
            continue
        if entry.endswith(".py") or os.sep in entry or "/" in entry:
            entry = str(Path(entry).expanduser().resolve())
        out.append(entry)
    return out


def _import_file(path: str) -> None:
    file = Path(path)
    if not file.is_file():
        raise ChildnetError(f"{ENV}: {path}: no such file (entries are .py files or importable module names, "
                            "separated by commas)")
    name = f"childnet_plugin_{file.stem}_{hashlib.sha256(path.encode()).hexdigest()[:8]}"
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:
        raise ChildnetError(f"{ENV}: {path} is not a Python file that can be imported")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise


def load_plugins(spec: str | None = None) -> list[str]:
    """Import every entry of ``spec`` (default: the ``CHILDNET_PLUGINS`` variable) not imported yet.

    Returns the entries as imported (file paths made absolute). Sets the variable to that absolute form,
    so that worker processes started from here import the same files.

    Raises:
        ChildnetError: an entry that is no file or module, or whose import fails (with the error).
    """
    spec = os.environ.get(ENV, "") if spec is None else spec
    entries = _entries(spec)
    for entry in entries:
        if entry in _loaded:
            continue
        try:
            if entry.startswith(os.sep) or entry.endswith(".py"):
                _import_file(entry)
            else:
                importlib.import_module(entry)
        except ChildnetError:
            raise
        except ModuleNotFoundError as err:
            if entry.startswith(os.sep) or entry.endswith(".py") or (err.name and err.name != entry
                                                                      and not entry.startswith(err.name + ".")):
                raise ChildnetError(f"{ENV}: importing {entry!r} failed: it needs the module {err.name!r}, which is "
                                    "not installed") from None
            raise ChildnetError(f"{ENV}: cannot import {entry!r} ({err}); give the path of a .py file, or a module "
                                "on PYTHONPATH") from None
        except Exception as err:  # the plugin's own error: say which plugin, keep its message
            how = f"python {entry}" if entry.endswith(".py") else f"python -c 'import {entry}'"
            raise ChildnetError(f"{ENV}: importing {entry!r} failed: {type(err).__name__}: {err} (`{how}` shows "
                                "the traceback)") from None
        _loaded.add(entry)
    if entries:
        os.environ[ENV] = ",".join(entries)
    return entries
