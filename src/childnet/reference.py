"""Field references generated from the config classes: ``childnet list methods --fields [--markdown]``.

``docs/methods-reference.md`` is this module's Markdown output, committed; a test regenerates it and
compares, so the page never drifts from the code. Regenerate with::

    childnet list methods --fields --markdown > docs/methods-reference.md
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["config_fields", "methods_reference", "registry_reference"]

FAMILY_ORDER = ("inherit", "tune", "prune", "ensemble", "search")


def _type_name(annotation: Any) -> str:
    """A readable, stable type name (never a repr holding a memory address)."""
    import types
    import typing

    from ._base import ModelSpec, TaskSpec

    for alias, name in ((ModelSpec, "ModelSpec"), (TaskSpec, "TaskSpec")):
        if annotation == alias:
            return name
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return _type_name(args[0])
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_name(a) for a in args)
    if origin is typing.Literal:
        return "Literal[" + ", ".join(repr(a) for a in args) + "]"
    if origin is not None and args:
        return f"{getattr(origin, '__name__', str(origin))}[{', '.join(_type_name(a) for a in args)}]"
    text = getattr(annotation, "__name__", None) or str(annotation)
    for noise in ("typing.", "childnet.train.", "pydantic.main.", "<class '", "'>"):
        text = text.replace(noise, "")
    return text.replace("NoneType", "None")


def _default_text(info) -> str:
    if info.is_required():
        return "required"
    value = info.default_factory() if info.default_factory is not None else info.default
    if hasattr(value, "model_dump"):  # a nested config: only what differs from that config's own defaults
        base = type(value)().model_dump() if _constructible(type(value)) else {}
        diff = {k: v for k, v in value.model_dump().items() if base.get(k, object()) != v}
        name = type(value).__name__
        return f"{name} defaults" if not diff else f"{name} with {json.dumps(diff, default=str)}"
    if isinstance(value, dict) and len(json.dumps(value, default=str)) > 60:
        return f"{{{len(value)} fields}}"
    return json.dumps(value, default=str)


def _constructible(cls) -> bool:
    try:
        cls()
    except Exception:
        return False
    return True


def config_fields(cls) -> list[dict]:
    """``[{"name", "type", "default", "description"}]`` of a pydantic config class, in declaration order."""
    if cls is None:
        return []
    return [{"name": name, "type": _type_name(info.annotation), "default": _default_text(info),
             "description": (info.description or "").replace("\n", " ")}
            for name, info in cls.model_fields.items()]


def _row(f: dict) -> str:
    cell = lambda text: text.replace("|", "\\|")  # noqa: E731 - a pipe ends a Markdown table cell
    return f"| `{f['name']}` | `{cell(f['type'])}` | `{cell(f['default'])}` | {cell(f['description'])} |"


def _entries(registry) -> list:
    entries = list(registry.entries())
    if registry.kind == "method":
        rank = {f: i for i, f in enumerate(FAMILY_ORDER)}
        entries.sort(key=lambda e: (rank.get(e.family, len(rank)), e.name))
    return entries


def registry_reference(registry, markdown: bool = False) -> str:
    """Every entry of ``registry`` with its config fields, as Markdown or as plain text."""
    lines: list[str] = []
    family = None
    for e in _entries(registry):
        if markdown and e.family and e.family != family:
            family = e.family
            lines += [f"## {family}", ""]
        fields = config_fields(e.config)
        if markdown:
            lines += [f"### `{e.name}`", "", e.summary, ""]
            if fields:
                lines += ["| field | type | default | description |", "|---|---|---|---|"]
                lines += [_row(f) for f in fields]
            else:
                lines.append("No options.")
            lines.append("")
        else:
            lines.append(f"{e.name}" + (f" ({e.family})" if e.family else "") + f": {e.summary}")
            for f in fields:
                lines.append(f"    {f['name']}: {f['type']} = {f['default']} — {f['description']}")
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def methods_reference() -> str:
    """The Markdown page ``docs/methods-reference.md``."""
    from .registry import METHODS

    head = ("# Methods reference\n\n"
            "Every method's fields, generated from its config class (do not edit by hand; regenerate with\n"
            "`childnet list methods --fields --markdown > docs/methods-reference.md` — a test checks the page is\n"
            "current). Nested blocks such as `train` take the fields of the training loop (`TrainConfig`); a\n"
            "partial block is merged as each family page describes. Families, papers and defaults are explained in\n"
            "[inherit](inherit.md), [tune](tune.md), [prune](prune.md), [ensemble](ensemble.md) and\n"
            "[search](search.md).\n\n")
    from .train import TrainConfig

    train = "\n".join(["## The `train` block (TrainConfig)", "",
                       "| field | type | default | description |", "|---|---|---|---|"]
                      + [_row(f) for f in config_fields(TrainConfig)])
    return head + registry_reference(METHODS, markdown=True) + "\n" + train + "\n"
