"""Registries of methods, models and tasks: everything is named, nothing is imported by path.

A builder is registered with its config class (a pydantic model), so a YAML entry
``{name: kd, temperature: 4}`` is validated against ``KDConfig`` and the error names the
field. Tests loop over every registry, so a new entry is tested the moment it exists
(the timm pattern).
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import Any, Callable

from .errors import ChildnetError

__all__ = ["Entry", "Registry", "METHODS", "MODELS", "TASKS", "SCORERS", "load_all"]


@dataclass(frozen=True)
class Entry:
    """One registered builder.

    Attributes:
        name: registry name, as written in YAML.
        fn: the builder (a method's ``derive``, a model or task builder).
        config: the pydantic config class validating its options.
        family: for methods: inherit | tune | prune | ensemble | search.
        meta: free-form extras (e.g. ``baseline=True``). A method that uses the parent says how, as
            ``parent_use``: ``"inputs"`` (it reads the task's inputs and fits its own head: tune, FitNets)
            or ``"outputs"`` (the child keeps the parent's output layer or learns from its outputs: prune,
            ensembles, KD, HKT), so a parent trained on another task is refused before any training
            when its inputs, or its classes, do not fit (:func:`childnet.methods.base.check_parent_fits`).
            A search method whose child is not an ENAS space's names its model as ``child_model`` (a name,
            or a function of the method's options), so a pipeline can check what comes out of it.
    """

    name: str
    fn: Callable[..., Any]
    config: type | None = None
    family: str | None = None
    meta: dict = field(default_factory=dict)

    @property
    def summary(self) -> str:
        doc = (self.fn.__doc__ or "").strip().splitlines()
        return doc[0] if doc else ""


def _same_source(a: Callable, b: Callable) -> bool:
    """Two functions defined by the same lines of the same file (a module imported under two names)."""
    ca, cb = getattr(a, "__code__", None), getattr(b, "__code__", None)
    return (ca is not None and cb is not None and ca.co_filename == cb.co_filename
            and ca.co_firstlineno == cb.co_firstlineno and a.__qualname__ == b.__qualname__)


class Registry:
    """A name → :class:`Entry` map with helpful errors for unknown names."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Entry] = {}

    def register(self, name: str, *, config: type | None = None, family: str | None = None, **meta):
        """Decorator registering ``fn`` under ``name``."""

        def deco(fn):
            old = self._entries.get(name)
            if old is not None and old.fn is not fn:
                if _same_source(old.fn, fn):  # one file imported twice (a script, and CHILDNET_PLUGINS): the first
                    return fn                 # registration stands, so configs built from it stay valid
                where = getattr(getattr(old.fn, "__code__", None), "co_filename", "?")
                raise ChildnetError(f"{self.kind} '{name}' is registered twice (first in {where}); give it another name")
            self._entries[name] = Entry(name, fn, config, family, dict(meta))
            return fn

        return deco

    def get(self, name: str) -> Entry:
        load_all()
        if name not in self._entries:
            raise ChildnetError(self.unknown_message(name))
        return self._entries[name]

    def unknown_message(self, name: object) -> str:
        names = self.names()
        lower = {n.lower(): n for n in names}  # 'Kd' → 'kd' (case), then spelling
        close = ([lower[str(name).lower()]] if str(name).lower() in lower else
                 [lower[c] for c in difflib.get_close_matches(str(name).lower(), list(lower), n=1)])
        hint = f" Did you mean '{close[0]}'?" if close else ""
        import os

        from .plugins import ENV

        own = ("" if close or os.environ.get(ENV) else
               f" (registered by your own code? set {ENV} to its module or .py file, as for the run)")
        return f"unknown {self.kind} '{name}'.{hint} Valid {self.kind}s: {', '.join(names)}{own}"

    def names(self, family: str | None = None) -> list[str]:
        load_all()
        return sorted(n for n, e in self._entries.items() if family is None or e.family == family)

    def entries(self) -> list[Entry]:
        load_all()
        return [self._entries[n] for n in sorted(self._entries)]

    def __contains__(self, name: str) -> bool:
        load_all()
        return name in self._entries


METHODS = Registry("method")
MODELS = Registry("model")
TASKS = Registry("task")
#: Mask scorers (:mod:`childnet.scorers`): ``score(model, names, *, seed, data) -> {name: scores}``.
SCORERS = Registry("scorer")

_LOADED = False


def load_all() -> None:
    """Import every module under childnet.tasks/models/methods (and childnet.scorers) so their entries register."""
    global _LOADED
    if _LOADED:
        return
    _LOADED = True
    importlib.import_module("childnet.scorers")
    for pkg_name in ("childnet.tasks", "childnet.models", "childnet.methods"):
        pkg = importlib.import_module(pkg_name)
        for info in pkgutil.walk_packages(pkg.__path__, prefix=pkg_name + "."):
            if info.name.rsplit(".", 1)[-1].startswith("_"):
                continue
            importlib.import_module(info.name)
