"""The base of every config: the ``Config`` class, typed registry specs, readable errors, ``stable_hash``.

This module imports nothing of childnet but :mod:`childnet.errors` and :mod:`childnet.registry`, so
every other module (the trainer, tasks, models, methods) can build on it without import cycles.
:mod:`childnet.config` re-exports everything here; write ``from childnet.config import Config``.

Three behaviours every :class:`Config` subclass gets for free:

- **Unknown fields are refused** with "did you mean …" (``format_validation_error``).
- **A partial block merges onto its field's default**: a nested config field whose default is not the
  class's own defaults (the SGD recipe of ``tune`` in the prune family, a snapshot ``cycle``) takes a
  mapping that sets only some options; the rest keep *that field's* defaults, not the nested class's.
  ``tune: {epochs: 4}`` stays SGD with its schedule.
- **A bool is not a number**: ``seeds: true`` or ``epochs: yes`` are refused, not read as 1.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import types
import typing
from typing import Annotated, Any, Union

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from .errors import ConfigError
from .registry import MODELS, TASKS, Registry

__all__ = [
    "Config",
    "ModelSpec",
    "TaskSpec",
    "Seed",
    "SEED_MAX",
    "canonical_spec",
    "check_field_types",
    "entry_problems",
    "format_validation_error",
    "put_path",
    "stable_hash",
    "validate_entry",
]

#: Largest seed every RNG childnet uses accepts (numpy's legacy seeding takes 32 bits).
SEED_MAX = 2**32 - 1

#: A seed: a non-negative integer that fits every RNG childnet seeds.
Seed = Annotated[int, Field(ge=0, le=SEED_MAX)]


def put_path(options: dict, path: str, value: Any) -> dict:
    """``options`` with the dotted ``path`` set to ``value``, every other option as it was written (a sweep
    value). Setting a model spec's ``name`` replaces the spec: the other model's options would not fit it."""
    out = dict(options)
    head, _, rest = path.partition(".")
    if not rest:
        out[head] = value
    elif rest == "name" and isinstance(out.get(head), dict) and "name" in out[head]:
        out[head] = {"name": value}
    else:
        inner = out.get(head)
        out[head] = put_path(inner if isinstance(inner, dict) else {}, rest, value)
    return out


def stable_hash(obj: Any, n: int = 16) -> str:
    """A short, stable hash of JSON-serialisable data (used to key caches)."""
    blob = json.dumps(obj, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:n]


_TYPE_WORDS = {str: "a string", dict: "a JSON object", int: "an integer", list: "a list", type(None): "null"}


def check_field_types(data: dict, shape: dict[str, tuple[type, ...]], where: str) -> None:
    """Each field of ``data`` (read from a JSON file) that ``shape`` names holds one of its types.

    A bool is not an integer here. Raises :class:`~childnet.errors.ChildnetError` naming the field, what it
    holds and what it should hold.
    """
    from .errors import ChildnetError

    for key, allowed in shape.items():
        if key not in data:
            continue
        value = data[key]
        if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
            raise ChildnetError(f"{where}: field '{key}' should be {' or '.join(_TYPE_WORDS[t] for t in allowed)} "
                                f"(got {type(value).__name__} {value!r:.60})")


def _strip(ann: Any) -> list:
    """The concrete types an annotation allows (through Annotated, Optional and unions)."""
    origin = typing.get_origin(ann)
    if origin is Annotated:
        return _strip(typing.get_args(ann)[0])
    if origin is Union or origin is types.UnionType:
        return [t for a in typing.get_args(ann) for t in _strip(a)]
    return [ann]


def _config_classes(ann: Any) -> list[type]:
    """Pydantic model classes an annotation may hold, also inside lists and dicts."""
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return [ann]
    return [c for a in typing.get_args(ann) for c in _config_classes(a)]


def _is_number(ann: Any) -> bool:
    allowed = [t for t in _strip(ann) if t is not type(None)]
    return bool(allowed) and all(t in (int, float) for t in allowed)


class Config(BaseModel):
    """Base of every childnet config: frozen, unknown fields rejected, partial blocks merged."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)  # .inf epochs ran into an overflow

    @model_validator(mode="before")
    @classmethod
    def _merge_and_check(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        out = dict(data)
        for name, info in cls.model_fields.items():
            if name not in out:
                continue
            value = out[name]
            if isinstance(value, bool) and _is_number(info.annotation):
                out[name] = "true" if value else "false"  # fails the number check: "got 'true'"
            elif isinstance(value, dict) and (info.default_factory is not None or isinstance(info.default, BaseModel)):
                default = info.get_default(call_default_factory=True)
                if isinstance(default, BaseModel) and _config_classes(info.annotation):
                    out[name] = {**default.model_dump(), **value}
        return out


# ------------------------------------------------------------------ registry entries ({name: X, ...options})


def entry_problems(registry: Registry, raw: Any) -> tuple[tuple[str, Any] | None, list[tuple[str, str]]]:
    """Validate ``{name: X, ...options}`` (or a bare name) against ``registry``'s config for X.

    Returns ``((name, config_instance), [])`` or ``(None, [(relative path, message), ...])``.
    """
    if isinstance(raw, str):
        raw = {"name": raw}
    if not isinstance(raw, dict) or "name" not in raw:
        return None, [("", f"expected a {registry.kind} name or a mapping with 'name' (got {raw!r})")]
    opts = {k: v for k, v in raw.items() if k != "name"}
    name = raw["name"]
    if not isinstance(name, str) or name not in registry:
        return None, [("name", registry.unknown_message(name))]
    cls = registry.get(name).config
    if cls is None:
        if opts:
            return None, [("", f"{registry.kind} '{name}' takes no options (got {sorted(opts)})")]
        return (name, None), []
    try:
        return (name, cls(**opts)), []
    except ValidationError as err:
        return None, [_split(line) for line in format_validation_error(err, cls=cls)]


def _split(line: str) -> tuple[str, str]:
    path, _, msg = line.partition(": ")
    return ("" if path == "<root>" else path), msg


def _join(where: str, path: str) -> str:
    return ".".join(p for p in (where, path) if p) or "<root>"


def validate_entry(registry: Registry, raw: Any, where: str, problems: list[str]):
    """Like :func:`entry_problems`, appending ``where.path: message`` lines to ``problems``."""
    res, found = entry_problems(registry, raw)
    problems.extend(f"{_join(where, p)}: {m}" for p, m in found)
    return res


def canonical_spec(registry: Registry, spec: dict | str) -> dict:
    """``{name, **every option with defaults filled}``: two ways of writing the same entry give one dict."""
    res, found = entry_problems(registry, spec)
    if found:
        raise ConfigError([f"{_join(registry.kind, p)}: {m}" for p, m in found])
    name, cfg = res
    return {"name": name, **(cfg.model_dump(mode="json") if cfg is not None else {})}


def _spec_validator(registry: Registry):
    def check(value: Any) -> Any:
        if isinstance(value, str):
            value = {"name": value}
        _, found = entry_problems(registry, value)
        if found:
            raise PydanticCustomError(f"{registry.kind}_spec", "{message}",
                                      {"message": "; ".join(f"{p}: {m}" if p else m for p, m in found),
                                       "problems": found})
        return dict(value)

    return check


#: A model spec ``{name: <model>, ...options}`` (or a bare name), validated against the MODELS registry:
#: the name and that model's own config fields. The value is the plain dict as written (a bare name
#: becomes ``{"name": ...}``); :func:`canonical_spec` gives it with every default filled in.
ModelSpec = Annotated[dict, BeforeValidator(_spec_validator(MODELS))]

#: A task spec ``{name: <task>, ...options}``, validated against the TASKS registry.
TaskSpec = Annotated[dict, BeforeValidator(_spec_validator(TASKS))]


# ------------------------------------------------------------------ readable errors


def _fields_at(cls: type | None, loc: tuple) -> list[str]:
    """Field names of the config class found by walking ``loc`` from ``cls`` (for "did you mean")."""
    if cls is None:
        return []
    current: Any = cls
    for part in loc:
        if isinstance(part, int):
            continue
        for c in _config_classes(current):
            if part in c.model_fields:
                current = c.model_fields[part].annotation
                break
        else:
            return []
    return sorted({f for c in _config_classes(current) for f in c.model_fields})


def format_validation_error(err: ValidationError, prefix: str = "", cls: type | None = None) -> list[str]:
    """One readable line per pydantic error: ``path: message (got value)``.

    Args:
        err: the pydantic error.
        prefix: prepended to every path (``methods[0](kd)``).
        cls: the config class that was validated; unknown fields then get "did you mean …".
    """
    lines = []
    for e in err.errors():
        loc = tuple(e["loc"])
        path = ".".join(str(p) for p in ((prefix,) if prefix else ()) + loc)
        if e["type"].endswith("_spec") and "problems" in (e.get("ctx") or {}):
            lines.extend(f"{_join(path, p)}: {m}" for p, m in e["ctx"]["problems"])
            continue
        msg = e["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown field"
            fields = _fields_at(cls, loc[:-1])
            close = difflib.get_close_matches(str(loc[-1]), fields, n=1) if fields else []
            if close:
                msg += f". Did you mean '{close[0]}'?"
            if fields:
                msg += f" (fields: {', '.join(fields)})"
        got = e.get("input")
        got_s = "" if e["type"] in ("missing", "extra_forbidden") or "(got " in msg else f" (got {got!r})"
        lines.append(f"{path or '<root>'}: {msg}{got_s}")
    return lines
