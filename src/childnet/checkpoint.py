"""Safe checkpoints: safetensors only. A pickle is refused with a clear message, never unpickled.

Also where cached checkpoints live (:func:`cache_dir`): ``$CHILDNET_CACHE``, default ``~/.cache/childnet``.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .errors import ChildnetError

__all__ = ["save_tensors", "load_tensors", "tensor_shapes", "load_state_checked", "atomic_write_text", "cache_dir"]

_PICKLE_MAGIC = (b"\x80", b"PK\x03\x04")  # raw pickle protocol 2+, torch.save zip archive


def save_tensors(tensors: dict[str, torch.Tensor], path: str | Path, metadata: dict | None = None) -> None:
    """Write tensors to ``path`` as safetensors, atomically (temp file + rename)."""
    path = Path(path)
    plain = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    # safetensors refuses tensors that share memory: clone the duplicates.
    seen: dict[int, str] = {}
    for k, v in plain.items():
        ptr = v.untyped_storage().data_ptr() if v.numel() else id(v)
        if ptr in seen:
            plain[k] = v.clone()
        seen[ptr] = k
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".safetensors")
    os.close(fd)
    try:
        save_file(plain, tmp, metadata={k: str(v) for k, v in (metadata or {}).items()})
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def load_tensors(path: str | Path, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """Load a safetensors file. Pickles (``torch.save`` files) are refused, not unpickled."""
    path = Path(path)
    if not path.exists():
        raise ChildnetError(f"checkpoint not found: {path}")
    if path.is_dir():
        raise ChildnetError(f"{path} is a folder; expected a .safetensors file (a child's weights are "
                            f"{path}/model.safetensors)")
    try:
        with open(path, "rb") as fh:
            head = fh.read(9)
    except OSError as err:
        raise ChildnetError(f"cannot read the checkpoint {path}: {err.strerror or err}") from None
    # a safetensors file opens with its header's length (8 bytes, little-endian) then '{': a header of
    # 128 + 256k bytes also starts with 0x80, which is not a pickle
    if head.startswith(_PICKLE_MAGIC) and head[8:9] != b"{":
        raise ChildnetError(
            f"{path} is a pickle (torch.save) checkpoint; childnet never unpickles files, because unpickling "
            "can run arbitrary code. Convert it once, in a trusted session: "
            "safetensors.torch.save_file(torch.load(path, weights_only=True), 'model.safetensors')"
        )
    try:
        return load_file(str(path), device=str(device))
    except (SafetensorError, OSError, ValueError) as err:
        raise ChildnetError(f"{path} is not a valid safetensors checkpoint ({err})") from None


def tensor_shapes(path: str | Path) -> dict[str, tuple[int, ...]]:
    """The name → shape table of a safetensors file, read from its header only (no tensor is loaded).

    Raises:
        ChildnetError: not a valid safetensors file (same checks as :func:`load_tensors`).
    """
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        load_tensors(path)  # its sentence: missing, a folder
    try:
        with safe_open(str(path), framework="pt") as fh:
            return {k: tuple(int(d) for d in fh.get_slice(k).get_shape()) for k in fh.keys()}
    except (SafetensorError, OSError, ValueError) as err:
        with open(path, "rb") as raw:
            pickled = raw.read(9).startswith(_PICKLE_MAGIC)
        if pickled:
            load_tensors(path)  # the pickle sentence
        raise ChildnetError(f"{path} is not a valid safetensors checkpoint ({err})") from None


def cache_dir() -> Path:
    """The parent cache: ``$CHILDNET_CACHE``, default ``~/.cache/childnet`` (parents under ``parents/<hash>/``)."""
    return Path(os.environ.get("CHILDNET_CACHE", Path.home() / ".cache" / "childnet")).expanduser()


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write text to ``path`` via a temp file and rename, so readers never see half a file (nor a temporary
    left behind when the write fails). One implementation: :func:`childnet.runfolder.write_atomic`."""
    from .runfolder import write_atomic

    write_atomic(path, text)


def load_state_checked(model: torch.nn.Module, state: dict[str, torch.Tensor], what: str) -> None:
    """Load ``state`` into ``model`` strictly; a mismatch becomes a ChildnetError that says what differs."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k}: {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in own.items()
              if k in state and tuple(state[k].shape) != tuple(v.shape)]
    if missing or unexpected or shapes:
        parts = [f"missing keys {missing[:5]}" if missing else "", f"unexpected keys {unexpected[:5]}" if unexpected else "",
                 f"shape mismatches (file vs model) {shapes[:3]}" if shapes else ""]
        raise ChildnetError(f"{what} ({'; '.join(p for p in parts if p)})")
    label = what.split(" does not")[0]
    converted = []
    for k, v in own.items():
        got = state[k]
        if v.is_floating_point() and not got.is_floating_point():
            raise ChildnetError(f"{label}: '{k}' holds {str(got.dtype).removeprefix('torch.')} values where the "
                                f"model has {str(v.dtype).removeprefix('torch.')} weights; save the float weights")
        if got.is_floating_point() and not bool(torch.isfinite(got).all()):
            raise ChildnetError(f"{label}: '{k}' holds NaN or infinite values (a diverged training run?); "
                                "these weights cannot be used")
        if v.is_floating_point() and got.dtype != v.dtype:
            converted.append(f"{k} ({str(got.dtype).removeprefix('torch.')})")
    if converted:
        warnings.warn(f"{label}: converted {len(converted)} tensor(s) to the model's "
                      f"{str(next(iter(own.values())).dtype).removeprefix('torch.')}: {', '.join(converted[:3])}"
                      f"{', …' if len(converted) > 3 else ''}", stacklevel=2)
    model.load_state_dict(state, strict=True)
