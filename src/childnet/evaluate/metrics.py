"""Quality metrics: accuracy, negative log-likelihood, expected calibration error."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..tasks.base import Inputs, num_examples, take, to_device

__all__ = ["predict_proba", "classification_metrics", "expected_calibration_error"]


@torch.no_grad()
def predict_proba(model: nn.Module, x: Inputs, batch_size: int = 512, device="cpu") -> torch.Tensor:
    """Softmax probabilities of ``model`` on ``x`` (eval mode, batched, on CPU at the end)."""
    was = model.training
    model.eval()
    out = []
    for i in range(0, num_examples(x), batch_size):
        logits = model(to_device(take(x, slice(i, i + batch_size)), device))
        out.append(F.softmax(logits.float(), dim=-1).cpu())
    model.train(was)
    return torch.cat(out)


def expected_calibration_error(probs: torch.Tensor, y: torch.Tensor, bins: int = 15) -> float:
    """ECE with equal-width confidence bins (Guo et al. 2017, eq. 3)."""
    conf, pred = probs.max(-1)
    correct = (pred == y).float()
    edges = torch.linspace(0, 1, bins + 1)
    ece = torch.zeros(())
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (conf > lo) & (conf <= hi)
        if m.any():
            ece += m.float().mean() * (conf[m].mean() - correct[m].mean()).abs()
    return float(ece)


def classification_metrics(probs: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    """Accuracy, NLL (mean, natural log) and ECE of predicted probabilities; classes predicted, majority rate."""
    nll = F.nll_loss(torch.log(probs.clamp_min(1e-12)), y).item()
    return {
        "accuracy": (probs.argmax(-1) == y).float().mean().item(),
        "nll": nll,
        "ece": expected_calibration_error(probs, y),
        # degenerate classifiers: how many classes it predicts at all, and the accuracy of always
        # predicting the most frequent test class (the report warns at or below it)
        "predicted_classes": int(probs.argmax(-1).unique().numel()),
        "majority_accuracy": float(torch.bincount(y).max()) / max(1, len(y)),
    }
