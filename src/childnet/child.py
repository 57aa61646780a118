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
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ._version import __version__
from .checkpoint import load_state_checked, load_tensors, save_tensors
from .errors import ChildnetError
from .models.base import build_model, model_spec

__all__ = ["Child", "Lineage", "state_fingerprint"]


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
    library_version: str = __version__
    created: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))


def read_card(path: str | Path) -> dict:
    """The lineage card (``child.json``) of a child folder, as a dict; a clear error if there is none."""
    card_path = Path(path) / "child.json"
    if not card_path.exists():
        raise ChildnetError(f"{path} is not a child folder (no child.json)")
    try:
        return json.loads(card_path.read_text())
    except json.JSONDecodeError as err:
        raise ChildnetError(f"{card_path} is not valid JSON ({err})") from None


@dataclass
class Child:
    """A derived model with its lineage card and (optional) masks."""

    model: nn.Module
    lineage: Lineage
    masks: dict[str, torch.Tensor] = field(default_factory=dict)
    #: extra files written into the child folder (plain file name -> bytes), e.g. a search's controller
    files: dict[str, bytes] = field(default_factory=dict)

    def save(self, path: str | Path) -> Path:
        """Write the child folder atomically (a temp folder renamed into place)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.lineage.architecture = self.lineage.architecture or model_spec(self.model)
        tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".tmp-{path.name}-"))
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
            if path.exists():
                shutil.rmtree(path)
            os.replace(tmp, path)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp)
        return path

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu") -> "Child":
        """Rebuild the model from ``child.json`` and load its safetensors weights (no pickle)."""
        path = Path(path)
        card = read_card(path)
        lineage = Lineage(**{k: v for k, v in card.items() if k in Lineage.__dataclass_fields__})
        arch = dict(lineage.architecture)
        model = build_model(arch, tuple(arch.get("input_shape", ())), arch.get("num_classes", 0))
        load_state_checked(model, load_tensors(path / "model.safetensors", device),
                           f"{path}/model.safetensors does not match its architecture")
        masks = load_tensors(path / "masks.safetensors", device) if (path / "masks.safetensors").exists() else {}
        model.to(device).eval()
        return cls(model, lineage, masks)


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
