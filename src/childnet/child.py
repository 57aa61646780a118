"""A Child is a model plus its lineage card, saved as a folder that loads without unpickling.

Folder layout::

    child.json            lineage card (parent, method, config, seed, architecture, metrics, …)
    model.safetensors     weights (state dict)
    masks.safetensors     masks, if the method made any (pruning, Child-Tuning_D, PAT, …)
    <other files>         whatever the method attached in ``Child.files`` (e.g. the ``naml`` search's
                          controller.safetensors + controller.json)
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ._base import check_field_types
from ._version import __version__
from .checkpoint import load_state_checked, load_tensors, save_tensors, tensor_shapes
from .errors import ChildnetError
from .models.base import MAX_PARAMS, build_model, model_spec

__all__ = ["Child", "Lineage", "state_fingerprint", "read_card", "check_card", "check_architecture"]


def state_fingerprint(model: nn.Module) -> str:
    """A short content hash of a model's weights (identifies a parent across runs)."""
    import hashlib

    h = hashlib.sha256()
    for k, v in sorted(model.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


@dataclass
class Lineage:
    """Where a child comes from and how it was made — everything needed to reproduce it.

    Attributes:
        method: registry name of the method.
        config: the method's full config (all fields, defaults included).
        seed: the unit's seed.
        parent: parent fingerprint, architecture and task.
        architecture: the child's model spec (rebuilds the model on load).
        task: the task spec the child was derived on.
        metrics: evaluation results (filled by ``evaluate``).
        history: per-epoch training records.
        extra: method-specific records (search trace, α, diversity, members' lineage, …).
        ancestors: in a pipeline of generations (:mod:`childnet.pipeline`), every ancestor from the root
            parent to the incoming child: fingerprint, method, stage, architecture and metrics at that point.
            The child never needs their folders: it loads from its own.
    """

    method: str
    config: dict
    seed: int
    parent: dict = field(default_factory=dict)
    architecture: dict = field(default_factory=dict)
    task: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    history: list = field(default_factory=list)
    extra: dict = field(default_factory=dict)
    ancestors: list = field(default_factory=list)
    library_version: str = __version__
    created: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))


#: Types of a card's fields, and whether every card must have it.
_CARD_TYPES = {"method": (str, True), "config": (dict, True), "seed": (int, True), "parent": (dict, False),
               "architecture": (dict, False), "task": (dict, False), "metrics": (dict, False),
               "history": (list, False), "extra": (dict, False), "ancestors": (list, False), "library_version": (str, False),
               "created": (str, False)}


def check_card(card: Any, where: str) -> dict:
    """Check the shape of a lineage card read from a file: a mapping whose fields have their types.

    Raises:
        ChildnetError: naming the field, what it holds and what it should hold.
    """
    if not isinstance(card, dict):
        raise ChildnetError(f"{where} is not a lineage card: expected a JSON object, got a {type(card).__name__}")
    missing = [key for key, (_, required) in _CARD_TYPES.items() if required and key not in card]
    if missing:
        raise ChildnetError(f"{where} is not a lineage card: the field '{missing[0]}' is missing")
    check_field_types(card, {key: (typ,) for key, (typ, _) in _CARD_TYPES.items()}, where)
    return card


def check_architecture(arch: Any, where: str) -> tuple[dict, tuple, int]:
    """A card's architecture as ``(spec, input_shape, num_classes)``, checked against sane bounds.

    Nothing is allocated: the spec is validated against its model's config (whose fields are bounded),
    the input shape and class count against :data:`~childnet.models.base.MAX_INPUT_ELEMENTS` and
    :data:`~childnet.models.base.MAX_CLASSES`; :func:`~childnet.models.base.build_model` then counts the
    parameters on the meta device before building for real.
    """
    from .models.base import MAX_CLASSES, MAX_INPUT_ELEMENTS

    if not isinstance(arch, dict) or not isinstance(arch.get("name"), str):
        raise ChildnetError(f"{where}: 'architecture' must be a model spec {{name: <model>, ...}} (got {arch!r:.80})")
    shape = arch.get("input_shape", [])
    if (not isinstance(shape, list) or len(shape) > 4
            or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in shape)
            or math.prod(shape) > MAX_INPUT_ELEMENTS):
        raise ChildnetError(f"{where}: architecture.input_shape must be a list of at most 4 positive sizes of at "
                            f"most {MAX_INPUT_ELEMENTS:,} elements in all (got {shape!r:.80})")
    classes = arch.get("num_classes")
    if not isinstance(classes, int) or isinstance(classes, bool) or not 1 <= classes <= MAX_CLASSES:
        raise ChildnetError(f"{where}: architecture.num_classes must be an integer in 1 … {MAX_CLASSES:,} "
                            f"(got {classes!r:.40})")
    return arch, tuple(shape), classes


class _RepeatedKey(ValueError):
    pass


def _no_repeated_keys(pairs: list[tuple[str, Any]]) -> dict:
    out: dict = {}
    for key, value in pairs:
        if key in out:
            raise _RepeatedKey(key)
        out[key] = value
    return out


def read_card(path: str | Path) -> dict:
    """The lineage card (``child.json``) of a child folder, as a dict; a clear error if there is none."""
    card_path = Path(path) / "child.json"
    if not Path(path).exists():
        raise ChildnetError(f"{path} does not exist (expected a child folder, with a child.json)")
    if not card_path.exists():
        raise ChildnetError(f"{path} is not a child folder (no child.json)")
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"), object_pairs_hook=_no_repeated_keys)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as err:
        raise ChildnetError(f"{card_path} is not valid JSON ({str(err)[:200]})") from None
    except _RepeatedKey as err:  # JSON readers disagree on which copy counts: a card must say one thing
        raise ChildnetError(f"{card_path} gives key {str(err)[:80]!r} twice in one object; a card written by "
                            "childnet never does — it was edited by hand or damaged") from None
    except OSError as err:
        raise ChildnetError(f"cannot read {card_path}: {err.strerror or err}") from None
    return check_card(card, str(card_path))


@dataclass
class Child:
    """A derived model with its lineage card and (optional) masks."""

    model: nn.Module
    lineage: Lineage
    masks: dict[str, torch.Tensor] = field(default_factory=dict)
    #: extra files written into the child folder (plain file name -> bytes), e.g. a search's controller
    files: dict[str, bytes] = field(default_factory=dict)

    def save(self, path: str | Path, overwrite: bool = False) -> Path:
        """Write the child folder atomically (a temp folder renamed into place).

        ``path`` is a new or empty folder; a folder that already holds a child (a ``child.json``) is replaced
        only with ``overwrite=True``. A file, or a non-empty folder that is not a child folder, is never
        replaced (:class:`ChildnetError`): saving must not delete what a user keeps there.
        """
        path = Path(path)
        _check_save_target(path, overwrite)
        self.lineage.architecture = self.lineage.architecture or model_spec(self.model)
        self._record_shrunk_layout()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".tmp-{path.name}-"))
        except OSError as err:  # e.g. a file where a parent folder should be, or no permission
            raise ChildnetError(f"cannot save the child to {path}: cannot create a folder in {path.parent} "
                                f"({err.strerror or err}); name a folder you can write to") from None
        try:
            save_tensors(self.model.state_dict(), tmp / "model.safetensors")
            if self.masks:
                save_tensors(self.masks, tmp / "masks.safetensors")
            card = json.dumps(asdict(self.lineage), indent=2, default=_json_default)
            (tmp / "child.json").write_text(card)
            for name, data in self.files.items():
                if Path(name).name != name or name in ("child.json", "model.safetensors", "masks.safetensors"):
                    raise ValueError(f"Child.files: {name!r} must be a plain file name other than the child's own")
                (tmp / name).write_bytes(data)
            if path.exists():  # empty, or a child folder with overwrite=True (checked above)
                shutil.rmtree(path)
            os.replace(tmp, path)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp)
        return path

    def _record_shrunk_layout(self) -> None:
        """A model physically smaller than its architecture spec builds (depgraph shrinking; an ensemble of
        such members assembled through the Python API) needs its shapes on the card, or ``load`` cannot rebuild
        it. Methods that shrink record them; this catches the rest, comparing with the spec built on the meta
        device (no memory), or on the CPU for a model that cannot be built there (a pretrained encoder loads its
        weights as it is built); torch's random state is left as it was. A spec that cannot be built at all is
        left to ``load`` to report."""
        extra = self.lineage.extra
        if not isinstance(extra, dict) or "shrunk_layout" in extra:
            return
        found = None
        for device in ("meta", "cpu"):
            try:
                with torch.random.fork_rng(devices=[]):
                    found = layout_against_spec(self.model, self.lineage.architecture, device)
                break
            except (ChildnetError, RuntimeError, NotImplementedError, ValueError, TypeError, KeyError,
                    AttributeError, AssertionError):
                continue
        if found is not None:
            extra["shrunk_layout"] = found

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu") -> "Child":
        """Rebuild the model from ``child.json`` and load its safetensors weights (no pickle)."""
        path = Path(path)
        card = read_card(path)
        lineage = Lineage(**{k: v for k, v in card.items() if k in Lineage.__dataclass_fields__})
        arch, input_shape, num_classes = check_architecture(lineage.architecture, str(path / "child.json"))
        weights = path / "model.safetensors"  # its header only: sizes are checked before anything is built
        shapes = tensor_shapes(weights) if weights.is_file() else None  # (a missing file is said at loading)
        layout = lineage.extra.get("shrunk_layout") if isinstance(lineage.extra, dict) else None
        saved = sum(math.prod(s) for s in shapes.values()) if shapes is not None else MAX_PARAMS
        # a model larger than its weights file is a card that lies (a shrunk child is built at its parent's size)
        cap = MAX_PARAMS if layout or saved >= MAX_PARAMS else saved
        model = build_model(arch, input_shape, num_classes, max_params=cap,
                            limit="childnet builds from a file" if cap == MAX_PARAMS else
                            f"numbers that {path / 'model.safetensors'} holds: the card does not match its weights")
        if layout is not None:  # a depgraph child: resize to its recorded shapes (checked against the file)
            from .depgraph import apply_layout

            apply_layout(model, layout, shapes, where=str(path / "child.json"))
        load_state_checked(model, load_tensors(path / "model.safetensors", device),
                           f"{path}/model.safetensors does not match its architecture")
        masks = load_tensors(path / "masks.safetensors", device) if (path / "masks.safetensors").exists() else {}
        model.to(device).eval()
        return cls(model, lineage, masks)


def layout_against_spec(model: nn.Module, spec: dict, device: str = "cpu") -> dict | None:
    """The :func:`~childnet.depgraph.layout` of ``model`` against what its architecture ``spec`` builds on
    ``device`` (``meta``: shapes only), or ``None`` when they have the same shapes and attributes."""
    from .depgraph import layout

    arch, input_shape, num_classes = check_architecture(spec, "the child's architecture")
    with torch.device(device):
        reference = build_model(arch, input_shape, num_classes)
    found = layout(model, reference)
    return found if found.get("shapes") or found.get("attributes") else None


def _check_save_target(path: Path, overwrite: bool) -> None:
    if path.exists() and not path.is_dir():
        raise ChildnetError(f"cannot save the child to {path}: it is a file, not a folder; name a new folder")
    if not path.is_dir() or not any(path.iterdir()):
        return
    if not (path / "child.json").is_file():
        raise ChildnetError(f"cannot save the child to {path}: that folder is not empty and holds no child "
                            "(no child.json), so childnet will not replace it; name a new or empty folder")
    if not overwrite:
        raise ChildnetError(f"cannot save the child to {path}: it already holds a child; pass overwrite=True "
                            "to replace it, or name another folder")


def _json_default(o: Any):
    if isinstance(o, torch.Tensor):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    if hasattr(o, "model_dump"):
        return o.model_dump()
    if isinstance(o, (set, tuple)):
        return list(o)
    return str(o)
