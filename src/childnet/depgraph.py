"""Structured shrinking of any model through Torch-Pruning's dependency graph, guarded.

Fang, Ma, Song, Bi Mi, Wang, "DepGraph: Towards Any Structural Pruning", CVPR 2023 (Torch-Pruning,
arXiv 2301.12900): tracing one forward pass gives the *groups* of coupled tensors — a conv's filters,
its BatchNorm, the next layer's input channels, every branch joined by an addition — that must lose the
same channels together. :func:`depgraph_shrink` uses those groups for models childnet's own unit tables
(:mod:`childnet.shrink`) do not cover: the ENAS children, MiniLM (attention heads and the feed-forward
width), any ``nn.Module`` given through the Python API, and the residual stream of a ResNet.

What childnet adds around Torch-Pruning (each a choice of ours):

- **The guard.** Every pruned group is checked at once: the shrunk model's outputs on a batch of real
  inputs must equal those of the *masked parent* (the parent with the removed channels' output-side
  weights, biases and norm scales/shifts set to zero) within ``atol + rtol·max|output|``. Otherwise
  nothing is returned and :class:`~childnet.errors.ChildnetError` names the layer that broke.
  Where the zero lies depends on the module (an embedding's channels are its columns, …): see
  :mod:`childnet._depgraph_mask`.
- **Groups normalised by a LayerNorm** (the hidden stream of a transformer, its embeddings included): a
  zero channel still counts in the mean and variance, so zeroing alone does not define the child. By
  default (``norm_stream=False``) such groups are kept at full width, with the reason on the report. With
  ``norm_stream=True`` they are pruned, and the masked parent is *defined* with every LayerNorm of the
  group replaced by one that normalises over the kept channels only and outputs 0 on the removed ones
  (several groups through one LayerNorm: the kept sets intersect). Removing the channels is then exactly
  equivalent, so the guard keeps its meaning — and still refuses, naming the layer, if anything else
  breaks. This is our choice: Torch-Pruning itself shrinks BERT's hidden size with no such check (issue
  17 measured MiniLM at 50 %: 22.6 M → 8.6 M parameters; ours builds the same 8.6 M); here the reference
  is the parent with restricted LayerNorms, which is *not* the parent's function — the tuning that
  follows has to recover what the restriction changed.
- **Groups where no masked parent makes removal exact** are kept at full width, with the reason on the
  report: a GroupNorm (removing channels changes which channels share statistics, and the group count must
  still divide the width), a LayerNorm over more than the last dimension, MultiheadAttention and LSTM
  (packed projections), any other module type with parameters that Torch-Pruning would prune at its output,
  and a zero-padding (``F.pad``: the option-A shortcut of CIFAR ResNets, which Torch-Pruning maps one
  channel to one channel, so it would build a model that crashes at forward). For that ResNet the stream
  stays at full width and only the block-inner channels go — exactly what :func:`childnet.shrink.shrink`
  builds (the tests check both paths give the same child).
- **Frozen parameters.** Torch-Pruning traces through autograd, so a parent whose parameters do not
  require gradients yields an empty graph (and prunes nothing). We switch gradients on for the trace and
  restore every surviving parameter's ``requires_grad`` afterwards.
- **Importance by name.** Any registered scorer (:mod:`childnet.scorers`: magnitude, random, fisher,
  …) scores the weights; a channel's importance is the sum of the scores of its *output-side* rows in
  every Conv/Linear of the group (for magnitude: the L1 norm of its filters, Li et al. 2017 — with one
  producer per group, the rule of childnet's own structured masks). Attention heads: the sum over the
  head's query, key and value rows. That ignores a BatchNorm after the conv, which rescales each channel;
  ``importance: group`` (Torch-Pruning's own group magnitude: every member of the group, BN scales
  included) and ``importance: bn_scale`` (Network Slimming's ``|γ|``) rank with it instead
  (``benchmarks/depgraph_speed.py importance`` compares the three on a BatchNorm ResNet).
- **Allocation.** ``scope: layer`` removes ``round(sparsity · n)`` units of every group; ``scope:
  global`` ranks all units together, each group's importances divided by their mean first (as
  Torch-Pruning's global pruning does). ``round_to`` rounds every kept width to a multiple (8, 16: dense
  kernels prefer them). A sparsity that would remove every unit of a group is refused.
- **Saving.** The shrunk model keeps its registered spec; :func:`layout` records the parameter shapes and
  module attributes that changed and :func:`apply_layout` re-applies them when a child is loaded. A BERT
  encoder with a smaller hidden size needs nothing else: its forward reads the shapes of its tensors, the
  LayerNorms' ``normalized_shape`` and ``attention_head_size`` (unchanged), never ``config.hidden_size``
  (left at the parent's value, as Torch-Pruning leaves it).
"""

from __future__ import annotations

import copy
import importlib.util
from dataclasses import dataclass, field

import torch
from torch import nn

from ._depgraph_mask import indices, mask_group, refusal
from .errors import ChildnetError, MissingDependencyError
from .masks import remove_masks
from .models.base import classifier_name
from .scorers import score as _score
from .tasks.base import to_device

__all__ = ["ShrinkReport", "depgraph_shrink", "plan_groups", "layout", "apply_layout"]

_WEIGHTED = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


@dataclass
class ShrinkReport:
    """What :func:`depgraph_shrink` did: per group, the layer, kind, width before/after; skipped groups."""

    groups: list[dict] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)
    max_error: float = 0.0

    def as_dict(self) -> dict:
        return {"groups": self.groups, "skipped": self.skipped, "max_output_error": self.max_error}


def _tp():
    if importlib.util.find_spec("torch_pruning") is None:
        raise MissingDependencyError("torch-pruning", None, "Structured shrinking of any model uses its dependency "
                                     "graph; install it with: pip install 'torch-pruning>=1.6,<1.7'")
    import torch_pruning

    return torch_pruning


def _forward(model: nn.Module, x):
    return model(x)


def _build_graph(model: nn.Module, x):
    tp = _tp()
    try:
        return tp.DependencyGraph().build_dependency(model, example_inputs=x, forward_fn=_forward,
                                                     verbose=False)
    except ChildnetError:
        raise
    except Exception as err:  # noqa: BLE001 - any tracing failure is the user's model, said in one sentence
        raise ChildnetError(f"Torch-Pruning cannot trace model {type(model).__name__} on the example inputs "
                            f"({type(err).__name__}: {str(err).splitlines()[0][:160] if str(err) else ''}); "
                            "it can shrink models whose forward is one traceable graph of torch operations") from None


def _attention_of(model: nn.Module) -> dict[nn.Module, nn.Module]:
    """Query/key/value Linear layers of Hugging Face style attention modules → their attention module."""
    out = {}
    for m in model.modules():
        if hasattr(m, "attention_head_size") and all(isinstance(getattr(m, n, None), nn.Linear)
                                                      for n in ("query", "key", "value")):
            for n in ("query", "key", "value"):
                out[getattr(m, n)] = m
    return out


def _group_info(group, names: dict, attention: dict, norm_stream: bool) -> dict:
    """Kind of a group (inner, stream, heads), why it cannot be pruned (if so) and its producers."""
    producers, reason, stream, heads = [], None, False, None
    for dep, idxs in group:
        node, module, handler = dep.target, dep.target.module, dep.handler
        grad_fn = type(node.grad_fn).__name__ if node.grad_fn is not None else ""
        if "ConstantPadNd" in grad_fn or "Pad" in grad_fn:
            reason = "its channels pass through a zero-padding (F.pad), which Torch-Pruning maps one-to-one"
        if "AddBackward" in grad_fn:
            stream = True
        out_side = handler.__name__.startswith("prune_out")
        if out_side and reason is None and not isinstance(module, nn.Parameter):
            reason = refusal(module, names.get(module, type(module).__name__), norm_stream)
        if isinstance(module, _WEIGHTED) and out_side:
            producers.append((module, indices(idxs)))
            if module in attention:
                heads = attention[module]
    return {"producers": producers, "reason": reason, "stream": stream, "heads": heads}


def plan_groups(model: nn.Module, x, sparsity: float, *, scorer: str = "magnitude", scope: str = "global",
                prune_stream: bool = True, norm_stream: bool = False, heads: bool = True, round_to: int = 1,
                seed: int = 0, data=None, ignored: list[str] | None = None, importance: str = "producers"):
    """Which channels of which group go (no pruning yet): ``(graph, plans, skipped)``.

    ``plans``: per prunable group ``{root, name, kind, size, unit, prune: [channel indices]}``.
    ``importance``: see :data:`IMPORTANCES`.
    """
    check_importance(importance, scorer)
    if not 0.0 <= float(sparsity) < 1.0:
        raise ChildnetError(f"sparsity: must be a fraction in [0, 1) — the share of channels removed (got {sparsity!r})")
    if scope not in ("global", "layer"):
        raise ChildnetError(f"scope: must be 'global' or 'layer' (got {scope!r})")
    if int(round_to) < 1:
        raise ChildnetError(f"round_to: must be 1 (no rounding) or a channel multiple such as 8 or 16 (got {round_to!r})")
    names = {m: n for n, m in model.named_modules()}
    ignored_mods = _ignored_modules(model, ignored, x)
    graph = _build_graph(model, x)
    attention = _attention_of(model)
    weights = [f"{n}.weight" for n, m in model.named_modules() if isinstance(m, _WEIGHTED) and m not in ignored_mods]
    scores, rank_group = {}, None
    if importance == "producers":
        scores = {k: v.float() for k, v in _score(scorer, model, weights, seed=seed, data=data).items()}
    else:
        if importance == "bn_scale" and not any(isinstance(m, nn.modules.batchnorm._BatchNorm) and m.affine
                                                for m in model.modules()):
            raise ChildnetError(f"importance: bn_scale ranks channels by their BatchNorm scale, and model "
                                f"{type(model).__name__} has no BatchNorm layer with a scale (affine); use "
                                "importance: producers or group")
        tp = _tp()
        # normalizer=None: a group whose scales are all 0 would give 0/0 (NaN) under Torch-Pruning's 'mean'
        # normaliser; the global allocation divides by the group's mean itself, and per-layer order is the same
        rank_group = (tp.importance.GroupMagnitudeImportance(normalizer=None) if importance == "group"
                      else tp.importance.BNScaleImportance(normalizer=None))
    plans, skipped = [], []
    for group in graph.get_all_groups(ignored_layers=ignored_mods, root_module_types=_WEIGHTED):
        root = group[0].dep.target.module
        info = _group_info(group, names, attention, norm_stream)
        name = names.get(root, "?")
        reason = info["reason"]
        if reason is None and info["heads"] is None and info["stream"] and not prune_stream:
            reason = "it is the residual stream (prune_stream: false)"
        if reason is None and info["heads"] is not None and not heads:
            reason = "it is the attention heads (heads: false)"
        size = len(group[0].idxs)
        if reason is not None:
            skipped.append({"layer": name, "channels": size, "reason": reason})
            continue
        if rank_group is None:
            imp = torch.zeros(size)
            for module, idxs in info["producers"]:
                if len(idxs) != size:
                    continue
                s = scores.get(f"{names[module]}.weight")
                if s is not None:
                    imp += s.flatten(1).sum(1)[idxs].abs().cpu()
        else:
            try:
                with torch.no_grad():
                    ranked = rank_group(group)
            except (RuntimeError, IndexError, ValueError) as err:  # e.g. channels split over several BatchNorms
                skipped.append({"layer": name, "channels": size, "reason": (
                    f"Torch-Pruning's {importance} importance could not score it ({type(err).__name__}: "
                    f"{(str(err).splitlines() or [''])[0][:100]})")})
                continue
            if ranked is None or len(ranked) != size:
                skipped.append({"layer": name, "channels": size, "reason": (
                    "no BatchNorm scale ranks its channels (importance: bn_scale)" if importance == "bn_scale"
                    else "Torch-Pruning's group importance gave no score for it")})
                continue
            imp = ranked.detach().float().cpu()
        unit = 1
        if info["heads"] is not None:
            unit = int(info["heads"].attention_head_size)
            imp = imp.view(-1, unit).sum(1)
        plans.append({"root": root, "name": names.get(info["heads"], name) if info["heads"] is not None else name,
                      "kind": "heads" if info["heads"] is not None else ("stream" if info["stream"] else "inner"),
                      "size": size, "unit": unit, "imp": imp, "attention": info["heads"]})
    if not plans and importance == "bn_scale" and float(sparsity) > 0:
        raise ChildnetError(f"importance: bn_scale found no group of model {type(model).__name__} it can rank (each "
                            f"needs a BatchNorm with a scale among its layers): {skipped[0]['layer']} — "
                            f"{skipped[0]['reason']}; use importance: producers or group")
    if not plans and not skipped:
        raise ChildnetError(f"Torch-Pruning found no channel group to prune in model {type(model).__name__}: its "
                            "forward left no autograd trace through a Conv or Linear layer besides the ignored ones "
                            "(inputs converted outside torch, or only ignored layers)")
    _allocate(plans, float(sparsity), scope, int(round_to))
    return graph, plans, skipped


#: How a group's channels are ranked (``importance``). ``producers`` (default, ours): the chosen scorer's
#: scores of the output-side rows of every Conv/Linear producing the channel, summed (with ``magnitude``:
#: the L1 norm of its filters, Li et al. 2017). ``group``: Torch-Pruning's default group importance
#: (``GroupMagnitudeImportance``: squared L2 norm of every member of the group — producers' rows,
#: consumers' input columns, BatchNorm/LayerNorm scales — averaged over the members; called with
#: ``normalizer=None``, since the global allocation divides by the group's mean itself). ``bn_scale``: Network Slimming (Liu et al. 2017, arXiv 1708.06519) through
#: Torch-Pruning's ``BNScaleImportance``: ``|γ|`` of the group's BatchNorms; a group with no BatchNorm
#: is kept at full width, with the reason on the report. ``group`` and ``bn_scale`` read weight
#: magnitudes, so they take ``scorer: magnitude`` only.
IMPORTANCES = ("producers", "group", "bn_scale")


def check_importance(importance: str, scorer: str = "magnitude") -> str:
    """``importance`` itself, or a :class:`ChildnetError` naming the accepted values / the scorer clash."""
    if importance not in IMPORTANCES:
        raise ChildnetError(f"importance: must be one of {', '.join(IMPORTANCES)} (got {importance!r})")
    if importance != "producers" and scorer != "magnitude":
        raise ChildnetError(f"importance: {importance} ranks channels by weight magnitudes (Torch-Pruning's "
                            f"importance), so scorer must be magnitude (got {scorer!r}); use importance: producers "
                            f"to rank by the {scorer} scorer")
    return importance


def _ignored_modules(model: nn.Module, ignored: list[str] | None, x=None) -> list[nn.Module]:
    """The classifier (always: pruning its outputs would drop classes) and the modules named in ``ignored``
    (a container stands for every module inside it: Torch-Pruning only honours the layers themselves)."""
    modules = dict(model.named_modules())
    for name in ignored or ():
        if not isinstance(name, str) or not name or name not in modules:
            weighted = [n for n, m in modules.items() if isinstance(m, _WEIGHTED)]
            shown = ", ".join(weighted[:40]) + (f", … ({len(weighted)} in all)" if len(weighted) > 40 else "")
            raise ChildnetError(f"ignored: {name!r} is not a module of {type(model).__name__}; name modules by their "
                                f"path in the model, e.g. its Conv/Linear layers: {shown}")
    named = [*_default_ignored(model, x), *(ignored or ())]
    inside = [n for n in modules if any(n.startswith(f"{name}.") for name in named)]
    return [modules[n] for n in dict.fromkeys([*named, *inside])]


def _default_ignored(model: nn.Module, x=None) -> list[str]:
    """The classifier (:func:`~childnet.models.base.classifier_name`): its outputs are the classes."""
    head = classifier_name(model, x)
    return [head] if head else []


def _allocate(plans: list[dict], sparsity: float, scope: str, round_to: int) -> None:
    """Set ``plan["prune"]`` (channel indices) for every plan; refuse a group emptied."""
    if scope == "global" and plans:
        pool = torch.cat([p["imp"] / p["imp"].mean().clamp_min(1e-12) for p in plans])
        owner = torch.cat([torch.full((len(p["imp"]),), i) for i, p in enumerate(plans)])
        weight = torch.cat([torch.full((len(p["imp"]),), float(p["unit"])) for p in plans])
        # ties (e.g. every BatchNorm scale still 1.0 in an untrained parent) go round the groups in turn,
        # by a unit's place in its group, rather than emptying the first group listed
        place = torch.cat([(torch.arange(len(p["imp"]), dtype=torch.float64) + 0.5) / len(p["imp"]) for p in plans])
        order = torch.tensor(sorted(range(len(pool)), key=lambda i: (float(pool[i]), float(place[i]))))
        target, removed = sparsity * float(weight.sum()), 0.0
        counts = [0] * len(plans)
        for i in order.tolist():
            if removed + weight[i] / 2 > target:
                break
            counts[int(owner[i])] += 1
            removed += float(weight[i])
    else:
        counts = [round(sparsity * len(p["imp"])) for p in plans]
    for p, n_prune in zip(plans, counts):
        n = len(p["imp"])
        keep = n - n_prune
        if p["unit"] == 1 and round_to > 1 and keep > 0:
            keep = min(n, max(round_to, round_to * round(keep / round_to)))
        if keep <= 0:
            what = "heads" if p["kind"] == "heads" else "channels"
            raise ChildnetError(
                f"sparsity {sparsity:g} ({scope} allocation) would remove every one of the {n} {what} of layer "
                f"{p['name']}; use a lower sparsity" + (" or scope: layer" if scope == "global" else ""))
        order = torch.argsort(p["imp"].double(), stable=True)  # ties: lower index goes first
        units = sorted(order[: n - keep].tolist())
        p["prune"] = [u * p["unit"] + j for u in units for j in range(p["unit"])]
        p["kept"] = n - len(units)
    if sparsity > 0 and plans and not any(p["prune"] for p in plans):
        widest = max(len(p["imp"]) for p in plans)
        why = (f"round_to {round_to} keeps every group at full width (the widest has {widest})" if round_to > 1
               else f"every group is too small for that fraction (the widest has {widest})")
        raise ChildnetError(f"sparsity {sparsity:g} would remove nothing: {why}; raise sparsity"
                            + (" or lower round_to" if round_to > 1 else ""))


def _error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).abs().max()) if a.shape == b.shape else float("inf")


def depgraph_shrink(model: nn.Module, example_inputs, sparsity: float, *, scorer: str = "magnitude",
                    scope: str = "global", prune_stream: bool = True, norm_stream: bool = False, heads: bool = True,
                    round_to: int = 1, seed: int = 0, data=None, ignored: list[str] | None = None,
                    atol: float = 1e-4, rtol: float = 1e-4, importance: str = "producers"
                    ) -> tuple[nn.Module, ShrinkReport]:
    """A physically smaller copy of ``model`` through Torch-Pruning's dependency graph, checked group by group.

    Args:
        model: any ``nn.Module`` (mask parametrizations are baked in first); not modified.
        example_inputs: a batch of real inputs (a tensor, or a dict of tensors for text models); traced
            once and used by the guard.
        sparsity: fraction of the prunable units (channels, neurons, attention heads) removed, in [0, 1).
        scorer: a registered scorer scoring the weights (magnitude, random, fisher, …).
        scope: ``global`` (one ranking over every group) or ``layer`` (the same fraction per group).
        prune_stream: also prune groups joined by additions (the residual stream).
        norm_stream: also prune groups normalised by a LayerNorm (a transformer's hidden stream); the guard
            then compares with the parent whose LayerNorms are restricted to the kept channels.
        heads: prune whole attention heads of Hugging Face style attention modules.
        round_to: round every kept width to a multiple of this (1: no rounding).
        seed, data: for scorers that draw random numbers or look at data (fisher: ``(x, y)``).
        ignored: module names never pruned at their output (default: the classifier head).
        atol, rtol: the guard's tolerance on the outputs.
        importance: how a group's channels are ranked — ``producers`` (the scorer on the producing layers'
            rows), ``group`` (Torch-Pruning's group L2 magnitude, BatchNorm scales included) or
            ``bn_scale`` (Network Slimming's ``|γ|``); see :data:`IMPORTANCES`.

    Returns:
        ``(small_model, report)``.

    Raises:
        ChildnetError: the model cannot be traced, a group would be emptied, or the shrunk model's
            outputs differ from the masked parent's (naming the layer).
    """
    was_training = model.training
    work = remove_masks(copy.deepcopy(model)).eval()
    grads = {n: p.requires_grad for n, p in work.named_parameters()}
    for p in work.parameters():  # frozen weights leave no autograd trace: Torch-Pruning would see no graph
        p.requires_grad_(True)
    masked = copy.deepcopy(work)
    names = {m: n for n, m in work.named_modules()}
    graph, plans, skipped = plan_groups(work, example_inputs, sparsity, scorer=scorer, scope=scope,
                                        prune_stream=prune_stream, norm_stream=norm_stream, heads=heads,
                                        round_to=round_to, seed=seed, data=data, ignored=ignored,
                                        importance=importance)
    report = ShrinkReport(skipped=skipped)
    with torch.no_grad():
        scale = float(_output(work, example_inputs).abs().max())
    for plan in plans:
        if plan["prune"]:
            group = graph.get_pruning_group(plan["root"], _out_handler(graph, plan["root"]), plan["prune"])
            try:
                mask_group(group, masked, names, getattr(graph, "_param_to_name", {}))
                group.prune()
            except (MemoryError, torch.OutOfMemoryError):
                raise
            except (RuntimeError, ValueError, IndexError, KeyError) as err:  # Torch-Pruning cannot cut this group
                joined = sorted({names[d.dep.target.module] for d in group
                                 if d.dep.target.module in names and names[d.dep.target.module]})
                raise ChildnetError(
                    f"structured shrinking cannot prune layer {plan['name']}: Torch-Pruning failed removing "
                    f"{len(plan['prune'])} of its {plan['size']} channels from the layers they join "
                    f"({', '.join(joined[:12])}{', …' if len(joined) > 12 else ''}) with {type(err).__name__}: "
                    f"{(str(err).splitlines() or [''])[0][:120]}; add {plan['name']} to ignored") from None
            if plan["attention"] is not None:
                att = plan["attention"]
                att.num_attention_heads = plan["kept"]
                att.all_head_size = plan["kept"] * int(att.attention_head_size)
            err = _guard(work, masked, example_inputs)
            if not err <= atol + rtol * scale:
                raise ChildnetError(
                    f"structured shrinking broke layer {plan['name']}: after removing {len(plan['prune'])} of its "
                    f"{plan['size']} channels the outputs differ from the masked parent's by {err:.3g} (tolerance "
                    f"{atol + rtol * scale:.3g}); this layer cannot be shrunk this way (add it to ignored)")
            report.max_error = max(report.max_error, err)
        report.groups.append({"layer": plan["name"], "kind": plan["kind"], "before": plan["size"] // plan["unit"],
                              "after": plan["kept"], "unit": "heads" if plan["unit"] > 1 else "channels"})
    for n, p in work.named_parameters():
        p.requires_grad_(grads.get(n, True))
    return work.train(was_training), report


def _out_handler(graph, module):
    return graph.get_pruner_of_module(module).prune_out_channels


def _output(model: nn.Module, x) -> torch.Tensor:
    out = model(x)
    return out if isinstance(out, torch.Tensor) else out[0]


def _guard(work: nn.Module, masked: nn.Module, x) -> float:
    with torch.no_grad():
        try:
            got = _output(work, x)
        except Exception:  # noqa: BLE001 - a shrunk model that cannot run is a refused shrink
            return float("inf")
        return _error(got, _output(masked, x))


def example_batch(x, n: int = 16, device="cpu"):
    """The first ``n`` examples of a split (tensor or dict of tensors), on ``device``."""
    from .tasks.base import take

    return to_device(take(x, slice(0, n)), device)


_ATTRS = ("in_features", "out_features", "in_channels", "out_channels", "num_features", "normalized_shape",
          "embedding_dim", "num_attention_heads", "all_head_size", "groups")


def layout(model: nn.Module, reference: nn.Module) -> dict:
    """What differs between a shrunk ``model`` and a freshly built ``reference``: tensor shapes and attributes."""
    ref_state = reference.state_dict()
    shapes = {k: list(v.shape) for k, v in model.state_dict().items()
              if k in ref_state and tuple(ref_state[k].shape) != tuple(v.shape)}
    ref_mods = dict(reference.named_modules())
    attrs = {}
    for name, m in model.named_modules():
        r = ref_mods.get(name)
        diff = {a: _plain(getattr(m, a)) for a in _ATTRS if hasattr(m, a) and r is not None
                and getattr(m, a) != getattr(r, a, None)}
        if diff:
            attrs[name] = diff
    return {"shapes": shapes, "attributes": attrs}


def _plain(v):
    return list(v) if isinstance(v, tuple) else v


def apply_layout(model: nn.Module, spec: dict, saved: dict | None = None, where: str = "the layout") -> nn.Module:
    """Resize ``model`` (built from its registered spec) to a recorded :func:`layout` (in place).

    Args:
        saved: the weights file's name → shape table (:func:`childnet.checkpoint.tensor_shapes`); every
            recorded shape must be the saved one, so a card cannot make childnet allocate what the file
            does not hold.
        where: the card, for error messages.
    """
    shapes, attrs = spec.get("shapes", {}), spec.get("attributes", {})
    if not isinstance(shapes, dict) or not isinstance(attrs, dict):
        raise ChildnetError(f"{where}: extra.shrunk_layout must map 'shapes' and 'attributes' to objects")
    modules = dict(model.named_modules())
    for name, shape in shapes.items():
        mod_name, _, attr = str(name).rpartition(".")
        ok = (isinstance(shape, list) and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
              and mod_name in modules and isinstance(getattr(modules[mod_name], attr, None), torch.Tensor))
        if not ok or (saved is not None and tuple(saved.get(name, ())) != tuple(shape)):
            raise ChildnetError(f"{where}: extra.shrunk_layout.shapes[{str(name)[:80]!r}] = {str(shape)[:60]} does not "
                                "match the model or its weights file; the card was changed after saving")
    for name, values in attrs.items():
        bad = (name not in modules or not isinstance(values, dict)
               or any(a not in _ATTRS or not _plain_value(v) for a, v in values.items()))
        if bad:
            raise ChildnetError(f"{where}: extra.shrunk_layout.attributes[{str(name)[:80]!r}] is not a width of a "
                                f"module of the model (accepted: {', '.join(_ATTRS)}, as integers)")
    for name, shape in shapes.items():
        mod_name, _, attr = name.rpartition(".")
        module = modules[mod_name]
        old = getattr(module, attr)
        new = torch.zeros(shape, dtype=old.dtype, device=old.device)
        if isinstance(old, nn.Parameter):
            setattr(module, attr, nn.Parameter(new, requires_grad=old.requires_grad))
        else:
            module.register_buffer(attr, new)
    for name, values in attrs.items():
        for a, v in values.items():
            setattr(modules[name], a, tuple(v) if isinstance(v, list) else v)
    return model


def _plain_value(v) -> bool:
    """An integer width, or a list of them (``normalized_shape``)."""
    def whole(x):
        return isinstance(x, int) and not isinstance(x, bool) and 0 <= x <= 2**31

    return whole(v) or (isinstance(v, list) and len(v) <= 8 and all(whole(x) for x in v))