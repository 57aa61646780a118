"""Evaluate a child the same way every time: quality and cost."""

from __future__ import annotations

from typing import Any

from torch import nn

from ..tasks.base import Task, num_examples, take
from .cost import count_macs, count_nonzero, count_params, measure_latency, sparse_checkpoint_bytes
from .device import DeviceConfig, device_cost
from .metrics import classification_metrics, expected_calibration_error, predict_proba
from .ranking import RANKING_KS, RANKING_METRICS, predict_scores, ranking_metrics

__all__ = [
    "evaluate",
    "evaluate_model",
    "classification_metrics",
    "expected_calibration_error",
    "predict_proba",
    "predict_scores",
    "ranking_metrics",
    "RANKING_METRICS",
    "count_params",
    "count_nonzero",
    "count_macs",
    "measure_latency",
    "sparse_checkpoint_bytes",
    "DeviceConfig",
    "device_cost",
    "device_card",
]


def evaluate_model(model: nn.Module, task: Task, *, split: str = "test", latency: bool = True,
                   device="cpu", repeats: int = 20, device_model: DeviceConfig | None = None) -> dict[str, Any]:
    """Quality on ``split`` and cost (params, non-zeros, MACs per example, latency at batch 1 and 64).

    With ``device_model``, also the simulated intermittent device's columns (``device_feasible``,
    ``device_latency_s``, ``device_energy_j``, ... see :func:`~childnet.evaluate.device.device_cost`).
    """
    x, y = task.split(split)
    if task.kind == "ranking":  # HR@k / nDCG@k of the true item among candidates (evaluate/ranking.py)
        k_fit = tuple(k for k in RANKING_KS if k <= task.num_classes)
        metrics = ranking_metrics(predict_scores(model, x, device=device), y, ks=k_fit)
    else:
        metrics = classification_metrics(predict_proba(model, x, device=device), y)
    if hasattr(model, "members"):  # an ensemble: members' accuracy, disagreement, KL (evaluate/diversity.py)
        from .diversity import ensemble_metrics

        metrics.update(ensemble_metrics(model, x, y, device=device))
    metrics["params"] = count_params(model)
    metrics["nonzero_params"] = count_nonzero(model)
    metrics["sparse_bytes"] = sparse_checkpoint_bytes(model)
    one = take(task.x_test, slice(0, 1))
    metrics["macs"] = count_macs(model, one)
    if latency:
        n = num_examples(task.x_test)
        metrics["latency_ms_b1"] = measure_latency(model, one, repeats=repeats, device=device)
        metrics["latency_ms_b64"] = measure_latency(model, take(task.x_test, slice(0, min(64, n))),
                                                    repeats=max(3, repeats // 4), device=device)
    if device_model is not None:
        metrics.update(device_cost(model, tuple(task.input_shape), device_model, kind=task.kind).metrics())
    return metrics


def evaluate(child, task: Task, **kwargs) -> dict[str, Any]:
    """Evaluate a :class:`~childnet.child.Child` (or a bare model) and record metrics in its lineage.

    ``device_model`` (a :class:`DeviceConfig`) adds the simulated device's columns and puts the design
    per layer on the lineage card (``extra["device"]``).
    """
    model = getattr(child, "model", child)
    _check_fits(child, model, task)
    device_model = kwargs.pop("device_model", None)
    metrics = evaluate_model(model, task, **kwargs)
    cost = None if device_model is None else device_cost(model, tuple(task.input_shape), device_model,
                                                          kind=task.kind)
    if cost is not None:
        metrics.update(cost.metrics())
    if hasattr(child, "lineage"):
        child.lineage.metrics.update(metrics)
        if cost is not None:  # the design per layer goes on the lineage card
            child.lineage.extra["device"] = device_card(cost)
    return metrics


def device_card(cost) -> dict[str, Any]:
    """The lineage-card view of a :class:`~childnet.evaluate.device.DeviceCost`: totals and designs per layer."""
    keys = ("name", "type", "feasible", "reason", "design", "latency_s", "power_cycles", "continuous_latency_s")
    return {"status": cost.status, "reason": cost.reason, "config": cost.config,
            "layers": [{k: layer[k] for k in keys} for layer in cost.layers]}


def _check_fits(child, model: nn.Module, task: Task) -> None:
    """A child built for other classes than ``task``'s, or for inputs it cannot read, is refused with a
    sentence (it failed with a matrix-shape error, or — same inputs, other classes — scored against the
    wrong labels). Inputs of another shape that the network reads (adaptive pooling) are fine."""
    from ..errors import ChildnetError
    from ..models.base import forward_error

    lineage = getattr(child, "lineage", None)
    arch = (getattr(lineage, "architecture", None) or getattr(model, "childnet_spec", None) or {})
    shape, classes = arch.get("input_shape"), arch.get("num_classes")
    trained_on = (lineage.task or {}).get("name") if lineage is not None else None
    made_for = f" (trained on task '{trained_on}')" if trained_on and trained_on != task.name else ""
    if classes is not None and task.kind != "ranking" and int(classes) != task.num_classes:
        raise ChildnetError(f"evaluate: the child predicts {classes} classes{made_for} but task '{task.name}' has "
                            f"{task.num_classes}; evaluate it on its own task")
    if shape is None or tuple(shape) == tuple(task.input_shape):
        return
    err = forward_error(model, task.example_input(1))
    if err is not None:
        raise ChildnetError(f"evaluate: the child reads inputs of shape {tuple(shape)}{made_for} but task "
                            f"'{task.name}' has inputs of shape {tuple(task.input_shape)} "
                            f"({type(err).__name__}); evaluate it on its own task")
