"""How the members of an ensemble differ: in their outputs and in their hidden representations.

The question is Whitaker & Whitley's, "Interpretable Diversity Analysis: Visualizing Feature
Representations In Low-Cost Ensembles", 2023 (arXiv 2302.05822), which compares Snapshot and
Prune-and-Tune children grown from one parent. Their exact visualisations are not known; these are the
standard tools for the question:

- **pairwise disagreement**: the fraction of inputs on which two members' top-1 predictions differ;
- **KL** ``KL(p_i ‖ p_j)`` between two members' predictive distributions, averaged over inputs;
- **linear CKA** (Kornblith, Norouzi, Lee, Hinton, "Similarity of Neural Network Representations
  Revisited", ICML 2019, arXiv 1905.00414, eq. 5) between members' hidden layers — the parent
  included — one heat-map per layer. CKA is 1 for identical representations and is invariant to
  orthogonal transforms and isotropic scaling of either;
- **activation maximisation** (Erhan et al. 2009; Simonyan, Vedaldi, Zisserman 2014, arXiv 1312.6034):
  for a chosen unit, the input that most excites it, by gradient ascent from the same noise for every
  model, with a small L2 penalty and the input clamped to the data range; shown side by side.

Entry points: :func:`diversity_report` (one ensemble child) and :func:`diversity_for_run` (every ensemble
child of a run folder; the ``childnet diversity RUN_DIR`` command).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch
from torch import nn

from ..errors import ChildnetError
from ..features import FEATURES, capture, get_layer, layer_names
from ..tasks.base import Inputs, num_examples, take, to_device
from ._diversity_io import (load_ensemble_child, load_parent_model, plot_activation_maximisation, plot_heatmap,
                            summarise_by_method)

__all__ = [
    "member_models",
    "member_probabilities",
    "pairwise_disagreement",
    "pairwise_kl",
    "linear_cka",
    "cka_matrix",
    "default_layers",
    "check_layers",
    "layer_representations",
    "load_parent_model",
    "activation_maximisation",
    "ensemble_metrics",
    "diversity_report",
    "diversity_for_run",
]


def member_models(source) -> list[nn.Module]:
    """The member networks of an ensemble :class:`~childnet.child.Child` or model."""
    model = getattr(source, "model", source)
    members = getattr(model, "members", None)
    if members is None:
        raise ChildnetError(f"{type(model).__name__} is not an ensemble (it has no members); "
                            "diversity needs a child of an ensemble method (independent, snapshot, pat, pat_ssa)")
    return list(members)


@torch.no_grad()
def member_probabilities(models: list[nn.Module], x: Inputs, batch_size: int = 512, device="cpu") -> torch.Tensor:
    """Softmax outputs of every model on ``x``: shape ``(models, examples, classes)``."""
    out = []
    for model in models:
        model.eval()
        chunks = [torch.softmax(model(to_device(take(x, slice(i, i + batch_size)), device)).float(), -1).cpu()
                  for i in range(0, num_examples(x), batch_size)]
        out.append(torch.cat(chunks))
    return torch.stack(out)


def pairwise_disagreement(probs: torch.Tensor) -> torch.Tensor:
    """``D[i, j]`` = fraction of examples where members i and j predict different classes."""
    pred = probs.argmax(-1)
    return (pred[:, None, :] != pred[None, :, :]).double().mean(-1)


def pairwise_kl(probs: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """``K[i, j]`` = mean over examples of ``KL(p_i ‖ p_j)`` in nats (not symmetric)."""
    p = probs.double().clamp_min(eps)
    logp = p.log()
    # KL(p_i || p_j) = sum_c p_i (log p_i - log p_j)
    neg_entropy = (p * logp).sum(-1).mean(-1)  # (N,)
    cross = torch.einsum("inc,jnc->ij", p, logp) / p.shape[1]
    return neg_entropy[:, None] - cross


def _centered_gram(x: torch.Tensor) -> torch.Tensor:
    """``Xc Xcᵀ`` with column-centred ``X`` (= H K H for the linear kernel), in float64."""
    x = x.flatten(1).double()
    x = x - x.mean(0, keepdim=True)
    return x @ x.T


def linear_cka(x: torch.Tensor, y: torch.Tensor) -> float:
    """Linear CKA between two representations of the same examples (rows), Kornblith et al. 2019, eq. 5.

    ``CKA = ‖Yᵀ X‖²_F / (‖Xᵀ X‖_F ‖Yᵀ Y‖_F)`` with centred columns; computed through the (equal)
    Gram form ``⟨Kc, Lc⟩ / (‖Kc‖ ‖Lc‖)`` so wide feature maps cost ``O(n² p)``.
    """
    if x.shape[0] != y.shape[0]:
        raise ValueError("CKA needs the same examples in both representations "
                         f"(got {x.shape[0]} and {y.shape[0]} rows)")
    k, l_ = _centered_gram(x), _centered_gram(y)
    denom = (k.norm() * l_.norm()).item()
    return float((k * l_).sum().item() / denom) if denom > 0 else 0.0


@torch.no_grad()
def layer_representations(model: nn.Module, layers: list[str], x: Inputs, batch_size: int = 256,
                          device="cpu") -> dict[str, torch.Tensor]:
    """The output of each named layer for every example, flattened to ``(examples, features)``."""
    model.eval()
    out: dict[str, list] = {n: [] for n in layers}
    with capture(model, layers) as feats:
        for i in range(0, num_examples(x), batch_size):
            model(to_device(take(x, slice(i, i + batch_size)), device))
            for n in layers:
                out[n].append(feats[n].detach().flatten(1).float().cpu())
    return {n: torch.cat(v) for n, v in out.items()}


def cka_matrix(models: list[nn.Module], layer: str, x: Inputs, device="cpu") -> torch.Tensor:
    """Linear CKA between every pair of ``models`` at ``layer`` (each model's Gram matrix computed once)."""
    grams = []
    for m in models:
        g = _centered_gram(layer_representations(m, [layer], x, device=device)[layer])
        norm = g.norm()
        grams.append(g / norm if norm > 0 else g)
    flat = torch.stack([g.flatten() for g in grams])
    return flat @ flat.T


def default_layers(model: nn.Module) -> list[str]:
    """The blocks of a CNN (``blocks.i``), the stem and stages of a ResNet, an MLP's ReLUs, and ``features``."""
    names: list[str] = ["stem"] if isinstance(getattr(model, "stem", None), nn.Module) else []
    for attr in ("blocks", "stages"):
        seq = getattr(model, attr, None)
        if isinstance(seq, nn.Sequential):
            names += [f"{attr}.{i}" for i in range(len(seq))]
    body = getattr(model, "body", None)
    if isinstance(body, nn.Sequential):
        names += [f"body.{i}" for i, m in enumerate(body) if isinstance(m, nn.ReLU)]
    return names + ([FEATURES] if hasattr(model, "head") else [])


def check_layers(model: nn.Module, layers: list[str]) -> list[str]:
    """Raise a user error naming the valid layers if one of ``layers`` does not exist."""
    for name in layers:
        get_layer(model, name)
    return list(layers)


def _total_variation(x: torch.Tensor) -> torch.Tensor:
    """Sum of squared differences between neighbouring pixels (images) or features (vectors)."""
    if x.dim() < 4:
        return (x[..., 1:] - x[..., :-1]).pow(2).sum()
    return (x[..., 1:, :] - x[..., :-1, :]).pow(2).sum() + (x[..., :, 1:] - x[..., :, :-1]).pow(2).sum()


def activation_maximisation(model: nn.Module, layer: str, units: list[int], input_shape: tuple, *,
                            steps: int = 256, lr: float = 0.01, l2: float = 1e-3, tv: float = 0.05, seed: int = 0,
                            value_range: tuple[float, float] = (0.0, 1.0),
                            device="cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs that maximise each unit's mean activation at ``layer``, and the activation they reach.

    Gradient ascent (Adam) from the same seeded noise for every model, objective
    ``a_u(x) − l2 · ‖x − mid‖² − tv · TV(x)``: ``a_u`` is unit u's activation (its spatial mean for a
    map), ``mid`` the middle of the data range, TV the squared total variation (Mahendran & Vedaldi 2015,
    arXiv 1412.0035) that keeps the image smooth; the input is clamped to ``value_range`` after each step.
    The regulariser weights and step count are our choice (small, so the unit dominates).
    A unit that stays at 0 (a ReLU unit dead for every input tried, e.g. a pruned channel) has no
    gradient: its image is only smoothed noise, and its activation 0 says so.

    Returns:
        ``(images, activations)``: shape ``(units, *input_shape)`` and ``(units,)``.
    """
    get_layer(model, layer)
    model.eval()
    lo, hi = value_range
    mid = (lo + hi) / 2
    gen = torch.Generator().manual_seed(seed)
    noise = mid + 0.1 * (hi - lo) * torch.randn((1, *input_shape), generator=gen)
    x = noise.repeat(len(units), *([1] * len(input_shape))).to(device).requires_grad_(True)
    opt = torch.optim.Adam([x], lr=lr)
    idx, unit_idx = torch.arange(len(units)), torch.as_tensor(units)
    with capture(model, [layer]) as feats:
        for step in range(steps + 1):
            model(x)
            act = feats[layer].flatten(2).mean(-1) if feats[layer].dim() > 2 else feats[layer]
            act = act[idx, unit_idx]
            if step == steps:  # the activation the final image reaches
                break
            objective = act.sum() - l2 * (x - mid).pow(2).sum() - tv * _total_variation(x)
            (grad,) = torch.autograd.grad(objective, x)
            x.grad = -grad
            opt.step()
            with torch.no_grad():
                x.clamp_(lo, hi)
    return x.detach().cpu(), act.detach().cpu()


def _off_diagonal_mean(m: torch.Tensor) -> float:
    n = m.shape[0]
    return float((m.sum() - m.diagonal().sum()) / max(1, n * (n - 1)))


def ensemble_metrics(model: nn.Module, x: Inputs, y: torch.Tensor, device="cpu") -> dict:
    """Members' test accuracy and NLL, mean pairwise disagreement and KL (added by ``evaluate``)."""
    probs = member_probabilities(member_models(model), x, device=device)
    acc = (probs.argmax(-1) == y[None]).double().mean(-1)
    nll = -probs.clamp_min(1e-12).log().gather(-1, y[None, :, None].expand(len(probs), -1, 1)).mean((1, 2))
    return {"member_accuracy": [round(float(a), 6) for a in acc],
            "member_accuracy_mean": float(acc.mean()), "member_nll_mean": float(nll.mean()),
            "disagreement": _off_diagonal_mean(pairwise_disagreement(probs)),
            "kl": _off_diagonal_mean(pairwise_kl(probs))}


def _cka_entry(matrix: torch.Tensor, labels: list[str], has_parent: bool) -> dict:
    members = matrix[1:, 1:] if has_parent else matrix
    entry = {"labels": labels, "matrix": [[round(float(v), 6) for v in row] for row in matrix],
             "member_pairs_mean": _off_diagonal_mean(members)}
    if has_parent:
        entry["member_parent_mean"] = float(matrix[0, 1:].mean())
    return entry


def diversity_report(source, task=None, *, layers: list[str] | None = None, out: str | Path | None = None,
                     parent: nn.Module | None = None, units: int = 4, actmax_layer: str | None = None,
                     max_examples: int = 1000, steps: int = 256, seed: int = 0, device="cpu") -> dict:
    """Disagreement, KL, per-layer CKA (parent included) and activation maximisation of one ensemble.

    Args:
        source: an ensemble :class:`~childnet.child.Child`, its folder, or an ensemble model.
        task: the task whose test split is analysed (default: the child's own, from its lineage).
        layers: hidden layers for CKA (default :func:`default_layers` of the members).
        out: folder for ``diversity.json`` and the figures (nothing is written when ``None``).
        parent: the parent network (default: loaded from the child's lineage when its cache exists).
        units: how many units (0 … units−1) of ``actmax_layer`` to visualise (0: none; text inputs: none).
        actmax_layer: layer of those units (default: ``features``, the penultimate layer; for members
            without a ``head``, the last of ``layers``).
        max_examples: test examples used (the first ones).
        steps: gradient-ascent steps of activation maximisation.

    Raises:
        ChildnetError: not an ensemble, or a layer name that does not exist (the valid ones are listed).
    """
    t0 = time.perf_counter()
    if out is not None:
        _check_out(Path(out), "out")
    child, task, parent = load_ensemble_child(source, task, parent)
    members = member_models(child)
    layers = check_layers(members[0], layers if layers is not None else default_layers(members[0]))
    if actmax_layer is None:  # the penultimate layer; a model without a head: the last CKA layer
        actmax_layer = FEATURES if FEATURES in layer_names(members[0]) else (layers[-1] if layers else None)
    if actmax_layer is None:
        units = 0
    else:
        actmax_layer = check_layers(members[0], [actmax_layer])[0]
    if parent is not None and any(n not in dict(parent.named_modules()) and n != FEATURES for n in layers):
        parent = None  # a parent of another architecture has no matching layers
    x, y = task.split("test")
    n = min(max_examples, num_examples(x))
    x, y = take(x, slice(0, n)), y[:n]
    probs = member_probabilities(members, x, device=device)
    models = ([parent] if parent is not None else []) + members
    labels = (["parent"] if parent is not None else []) + [f"m{k}" for k in range(len(members))]
    report: dict = {"members": len(members), "examples": n, "has_parent": parent is not None,
                    "member_accuracy": [float(a) for a in (probs.argmax(-1) == y).double().mean(-1)],
                    "ensemble_accuracy": float((probs.mean(0).argmax(-1) == y).double().mean())}
    dis, kl = pairwise_disagreement(probs), pairwise_kl(probs)
    report.update(disagreement=dis.tolist(), disagreement_mean=_off_diagonal_mean(dis),
                  kl=kl.tolist(), kl_mean=_off_diagonal_mean(kl), cka={})
    for layer in layers:
        report["cka"][layer] = _cka_entry(cka_matrix(models, layer, x, device), labels, parent is not None)
    images = None
    if units > 0 and torch.is_tensor(task.x_train) and task.x_train.is_floating_point():  # not token ids
        # members of a physically shrunk ensemble may differ in width: only units every model has
        n_units = min([units] + [_layer_width(m, actmax_layer, task, device) for m in models])
        rng = (float(task.x_train.min()), float(task.x_train.max()))
        found = [activation_maximisation(m, actmax_layer, list(range(n_units)), task.input_shape, steps=steps,
                                         seed=seed, value_range=rng, device=device) for m in models]
        images = [img for img, _ in found]
        report["activation_maximisation"] = {
            "layer": actmax_layer, "units": list(range(n_units)), "steps": steps,
            "activations": {lab: [round(float(a), 6) for a in acts] for lab, (_, acts) in zip(labels, found)}}
    report["seconds"] = round(time.perf_counter() - t0, 3)
    if out is not None:
        _write_report(Path(out), report, labels, images)
    return report


def _check_out(out: Path, flag: str = "--out") -> Path:
    """``out`` if it is new, empty or an earlier analysis (which is then replaced); never someone's other files.

    An earlier analysis: a ``diversity.json`` at the top, or — one interrupted before writing it — nothing but
    what this module writes (``diversity.json`` files and ``.png`` figures) in it and its sub-folders.
    """
    if out.exists() and not out.is_dir():
        raise ChildnetError(f"{flag} {out} is a file; name a folder for the diversity report and its figures")
    if out.is_dir() and not (out / "diversity.json").is_file():
        entries = [p for p in out.iterdir() if not p.name.startswith(".")]
        ours = all(f.name == "diversity.json" or f.suffix == ".png"
                   for e in entries for f in ([e] if e.is_file() else e.rglob("*")) if f.is_file())
        if entries and not ours:
            shown = ", ".join(sorted(p.name for p in entries)[:5]) + (", …" if len(entries) > 5 else "")
            raise ChildnetError(f"{flag} {out} holds other files ({shown}) and no earlier diversity analysis "
                                "(diversity.json); name a new or empty folder — nothing was written")
    return out


@torch.no_grad()
def _layer_width(model: nn.Module, layer: str, task, device) -> int:
    """Number of units (channels or features) at ``layer``."""
    model.eval()
    with capture(model, [layer]) as feats:
        model(to_device(task.example_input(1), device))
    return int(feats[layer].shape[1])


def _write_report(out: Path, report: dict, labels: list[str], images) -> None:
    out.mkdir(parents=True, exist_ok=True)
    member_labels = [lab for lab in labels if lab != "parent"]
    figures = {"disagreement": plot_heatmap(report["disagreement"], member_labels, "pairwise disagreement",
                                            out / "disagreement.png"),
               "kl": plot_heatmap(report["kl"], member_labels, "KL(row ‖ column), nats", out / "kl.png")}
    for layer, entry in report["cka"].items():
        path = out / f"cka_{layer.replace('.', '_')}.png"
        figures[f"cka:{layer}"] = plot_heatmap(entry["matrix"], labels, f"linear CKA — {layer}", path, vmin=0, vmax=1)
    if images is not None:
        am = report["activation_maximisation"]
        figures["activation_maximisation"] = plot_activation_maximisation(
            images, labels, am["units"], f"activation maximisation — {am['layer']}",
            out / "activation_maximisation.png", [am["activations"][lab] for lab in labels])
    report["figures"] = {k: Path(v).name for k, v in figures.items()}
    (out / "diversity.json").write_text(json.dumps(report, indent=2))


def diversity_for_run(run_dir: str | Path, layers: list[str] | None = None, out: str | Path | None = None,
                      progress=None, *, actmax_layer: str | None = None, units: int = 4) -> dict:
    """Diversity analysis of every ensemble child in a run folder (the ``childnet diversity`` command).

    Each child's report and figures go to ``out/<setting>/<label>/seed<k>/``; ``out/diversity.json``
    holds all of them plus the per-method means over seeds. ``out`` defaults to ``RUN_DIR/diversity``.
    ``progress(done, total, name)`` is called after each child (the CLI shows a bar). ``actmax_layer`` and
    ``units`` are :func:`diversity_report`'s. ``out`` must be new, empty or an earlier analysis (its
    ``diversity.json`` is then replaced: the returned summary says so in ``replaced_earlier``).

    Raises:
        ChildnetError: no such folder, no ensemble child in it, an unknown layer name, or ``out`` holding
            other files.
    """
    from ..child import read_card
    from ..runfolder import DIVERSITY_DIR, child_dirs, write_atomic

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ChildnetError(f"run folder not found: {run_dir}")
    out = _check_out(Path(out) if out is not None else run_dir / DIVERSITY_DIR,
                     "--out" if out is not None else "the run's diversity folder")
    found = [(rel, folder) for rel, folder in child_dirs(run_dir)
             if (read_card(folder).get("architecture") or {}).get("name") == "ensemble"]
    if not found:
        raise ChildnetError(f"no ensemble child in {run_dir} (ensemble methods: independent, snapshot, pat, pat_ssa)")
    tasks: dict = {}
    reports = {}
    for i, (rel, folder) in enumerate(found):
        card = read_card(folder)
        key = json.dumps(card.get("task", {}), sort_keys=True)
        if key not in tasks:
            from ..tasks.base import load_task

            tasks[key] = load_task(card["task"])
        rep = diversity_report(folder, tasks[key], layers=layers, out=out / rel, actmax_layer=actmax_layer,
                               units=units)
        rep["method"], rep["seed"] = card.get("method"), card.get("seed")
        reports[str(rel)] = rep
        if progress is not None:
            progress(i + 1, len(found), str(rel))
    summary = {"run_dir": str(run_dir), "children": reports, "by_method": summarise_by_method(reports)}
    earlier = (out / "diversity.json").is_file()
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / "diversity.json", json.dumps(summary, indent=2))
    return {**summary, "replaced_earlier": earlier}

