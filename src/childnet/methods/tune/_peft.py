"""What the PEFT baselines (``lora``, ``ia3``) share: target modules, injection, merging, the adapter file.

Both go through Hugging Face's PEFT library (the ``peft`` extra) at its lowest level,
``peft.inject_adapter_in_model``, so they work on any ``nn.Module`` PEFT supports (Linear, Conv, Embedding
layers), childnet's own models included — not only ``transformers`` models. The classifier ``head`` is
new for the target task (as in every tune method), so it trains in full (PEFT's ``modules_to_save`` for
sequence classification does the same); every other parent weight is frozen.

Saving: the child's ``model.safetensors`` holds the *merged* weights (``W + ΔW`` for LoRA, ``l ⊙ W`` for
IA3), so it loads and evaluates like any other child at the parent's cost; ``adapter.safetensors`` (the
adapter and head weights only) and ``adapter_config.json`` sit beside it, with the parent's fingerprint on
the lineage card as the base reference (:func:`load_adapter` re-applies them to that parent).

Target modules (``target_modules``): names matched as PEFT matches them (a module whose name is the entry
or ends with ``.entry``). ``null`` picks PEFT's own defaults for BERT when the model has them (LoRA:
``query``, ``value``; IA3: ``key``, ``value``, ``output.dense`` with ``output.dense`` feed-forward),
else every Linear / Conv layer except the head. A name that matches no module is refused before training,
with the candidates listed.
"""

from __future__ import annotations

import importlib.util
import json

import torch
from torch import nn

from ...errors import ChildnetError, MissingDependencyError
from ..base import fit_on
from ._common import extra_hooks, prepare_model, tune_child

__all__ = ["require_peft", "adaptable_names", "resolve_targets", "inject", "merge_adapters", "adapter_files",
           "load_adapter"]

_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Embedding)
#: PEFT's defaults for BERT-style encoders (peft.utils.constants), used when the model has these modules.
BERT_LORA = ["query", "value"]
BERT_IA3 = ["key", "value", "output.dense"]
BERT_IA3_FF = ["output.dense"]


def require_peft():
    """The ``peft`` module, or a one-sentence error naming the extra."""
    if importlib.util.find_spec("peft") is None:
        raise MissingDependencyError("peft", "peft", "The lora and ia3 methods fine-tune through it.")
    import peft

    return peft


def adaptable_names(model: nn.Module) -> list[str]:
    """Names of the layers PEFT can adapt (Linear, Conv1d/2d, Embedding), the head excluded."""
    return [n for n, m in model.named_modules() if isinstance(m, _LAYERS) and n and n != "head"]


def _matches(name: str, target: str) -> bool:
    return name == target or name.endswith("." + target)


def resolve_targets(model: nn.Module, targets: list[str] | None, bert_default: list[str], field: str) -> list[str]:
    """The target module names, checked against ``model`` (default: PEFT's BERT names, else every layer).

    PEFT adapts every module whose name is the entry or ends with ``.entry``, so an entry must match at least
    one adaptable layer and nothing else (not a container such as ``blocks.0``, not the classifier head).

    Raises:
        ChildnetError: an empty list, or a name that matches no adaptable layer or also another module (the
            message lists names that work).
    """
    names = adaptable_names(model)
    if not names:
        raise ChildnetError(f"{field}: the parent has no Linear, Conv or Embedding layer besides its head for an "
                            "adapter")
    if targets is None:
        if all(any(_matches(n, t) for n in names) for t in bert_default):
            return list(bert_default)
        return [n for n in names if not isinstance(model.get_submodule(n), nn.Embedding)]
    if not targets:
        raise ChildnetError(f"{field}: an empty list adapts nothing; name modules, or leave it out (null) for the "
                            f"default; candidates: {_candidates(model, names)}")
    adaptable = set(names)
    for t in targets:
        hits = [n for n, _ in model.named_modules() if n and _matches(n, t)]
        if not any(n in adaptable for n in hits):
            what = ("is the classifier, which trains in full and takes no adapter" if hits == ["head"]
                    else f"matches no Linear, Conv or Embedding layer of the parent (as the name or its '.{t}' end)")
            raise ChildnetError(f"{field}: {t!r} {what}; candidates: {_candidates(model, names)}")
        other = [n for n in hits if n not in adaptable]
        if other:
            kind = type(model.get_submodule(other[0])).__name__
            raise ChildnetError(f"{field}: {t!r} also matches {other[0]} (a {kind}), which PEFT cannot adapt; "
                                f"name the layers by a longer path; candidates: {_candidates(model, names)}")
    return list(targets)


def _candidates(model: nn.Module, names: list[str]) -> str:
    """Short names that match only adaptable layers (what PEFT would adapt), then full paths; up to 40."""
    every = [n for n, _ in model.named_modules() if n]
    adaptable = set(names)
    short = sorted({".".join(n.split(".")[-k:]) for n in names for k in (1, 2)})
    safe = [t for t in short if all(n in adaptable for n in every if _matches(n, t))]
    out = list(dict.fromkeys(safe + [n for n in names if n not in safe]))
    return ", ".join(out[:40]) + (f", … ({len(out)} in all)" if len(out) > 40 else "")


def inject(model: nn.Module, peft_config, seed: int = 0) -> nn.Module:
    """Insert the adapters into ``model`` in place (initialised from ``seed``); freeze every other weight
    except the head's."""
    peft = require_peft()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        peft.inject_adapter_in_model(peft_config, model)
    for name, p in model.named_parameters():
        p.requires_grad_(_is_adapter(name) or name.startswith("head."))
    return model


def _is_adapter(name: str) -> bool:
    return any(part.startswith(("lora_", "ia3_")) for part in name.split("."))


def adapter_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """What training changed: adapter weights, the head, and buffers (BatchNorm statistics move in train mode)."""
    state = {n: p.detach().cpu().contiguous() for n, p in model.named_parameters() if p.requires_grad}
    state.update({n: b.detach().cpu().contiguous() for n, b in model.named_buffers()})
    return state


def merge_adapters(model: nn.Module) -> nn.Module:
    """Fold every adapter into its base layer and put the plain layer back (in place): the parent's architecture."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    for name, module in list(model.named_modules()):
        if isinstance(module, BaseTunerLayer):
            module.merge()
            parent_name, _, attr = name.rpartition(".")
            setattr(model.get_submodule(parent_name) if parent_name else model, attr, module.get_base_layer())
    for p in model.parameters():
        p.requires_grad_(True)
    return model


def adapter_files(state: dict[str, torch.Tensor], peft_config, parent_fingerprint: str) -> dict[str, bytes]:
    """``adapter.safetensors`` + ``adapter_config.json`` (with the base reference) for ``Child.files``."""
    from safetensors.torch import save

    config = {k: (sorted(v) if isinstance(v, set) else v) for k, v in peft_config.to_dict().items()}
    config = json.loads(json.dumps(config, default=str))
    card = {"peft_config": config, "base_parent_fingerprint": parent_fingerprint}
    return {"adapter.safetensors": save(state), "adapter_config.json": json.dumps(card, indent=2).encode()}


def config_record(peft_config) -> dict:
    """The adapter config as plain JSON (for the lineage card)."""
    config = {k: (sorted(v) if isinstance(v, set) else v) for k, v in peft_config.to_dict().items()}
    return json.loads(json.dumps(config, default=str))


def load_adapter(child_dir, parent_model: nn.Module, *, merge: bool = False) -> nn.Module:
    """Re-apply a saved adapter (``adapter.safetensors`` + ``adapter_config.json``) to a copy of its parent.

    Args:
        child_dir: folder of a ``lora`` / ``ia3`` child.
        parent_model: the base model the card names (its fingerprint is checked).
        merge: fold the adapter into the weights (then the result equals the child's ``model.safetensors``).
    """
    import copy
    from pathlib import Path

    from safetensors.torch import load_file

    from ...child import state_fingerprint

    peft = require_peft()
    child_dir = Path(child_dir)
    if not (child_dir / "adapter_config.json").exists():
        raise ChildnetError(f"{child_dir} holds no adapter (adapter_config.json); it is not a lora / ia3 child")
    card = json.loads((child_dir / "adapter_config.json").read_text())
    base = card.get("base_parent_fingerprint")
    if base and state_fingerprint(parent_model) != base:
        raise ChildnetError(f"{child_dir}: the adapter was trained on parent {base}, not on the model given "
                            f"({state_fingerprint(parent_model)})")
    cfg = dict(card["peft_config"])
    kind = cfg.pop("peft_type")
    cfg = {k: v for k, v in cfg.items() if k in _init_fields(kind)}
    config = (peft.LoraConfig if "LORA" in str(kind) else peft.IA3Config)(**cfg)
    state = load_file(str(child_dir / "adapter.safetensors"))
    model = copy.deepcopy(parent_model)
    head = state.get("head.weight")
    if head is not None and head.shape != model.head.weight.shape:
        model.head = nn.Linear(head.shape[1], head.shape[0])
    inject(model, config)
    known = dict(model.named_parameters()) | dict(model.named_buffers())
    missing = [k for k in state if k not in known]
    if missing:
        raise ChildnetError(f"{child_dir}/adapter.safetensors does not fit the parent (e.g. {missing[0]!r})")
    model.load_state_dict(state, strict=False)
    return merge_adapters(model).eval() if merge else model.eval()


def _init_fields(kind) -> set[str]:
    import dataclasses

    peft = require_peft()
    cls = peft.LoraConfig if "LORA" in str(kind) else peft.IA3Config
    return {f.name for f in dataclasses.fields(cls) if f.init}


def derive_adapted(method: str, parent, task, cfg, ctx, peft_config):
    """The derive step LoRA and IA3 share: inject the adapters ``peft_config(model, cfg)`` describes into a
    copy of the parent, train them (and the head) with the tune family's recipe, merge them into the child's
    weights and keep the adapter (and its config) as files beside them."""
    model, replaced = prepare_model(parent, task, cfg, ctx)
    config = peft_config(model, cfg)
    inject(model, config, ctx.seed)
    history = fit_on(task, model, cfg.train, ctx, hooks=extra_hooks(ctx), val=cfg.val_accuracy)
    state = adapter_state(model)
    adapter_params = sum(p.numel() for k, p in model.named_parameters() if p.requires_grad and not k.startswith("head."))
    merge_adapters(model)
    child = tune_child(model, method, cfg, ctx, parent, task, head_replaced=replaced, history=history,
                       extra={"adapter": config_record(config), "adapter_params": adapter_params})
    child.files.update(adapter_files(state, config, parent.fingerprint))
    return child
