"""Ranking quality: hit rate HR@k and nDCG@k of the true item among a candidate list (one per row).

With a single relevant item, HR@k = 1 if its rank r (0-based) is below k, and nDCG@k = 1 / log2(r + 2)
if r < k else 0 (the ideal DCG is 1), as in the NCR/MANAS evaluation code (Chen et al. 2022). Ties
count against the true item (it is ranked after every candidate with an equal score), so a constant
scorer gets no credit.
"""

from __future__ import annotations

import torch

from ..errors import ChildnetError

__all__ = ["RANKING_KS", "RANKING_METRICS", "ranking_metrics", "check_metric_fits"]

#: The cut-offs reported for ranking tasks, and the metric names the experiment ``metric:`` accepts.
RANKING_KS = (5, 10)
RANKING_METRICS = tuple(f"{m}@{k}" for m in ("hr", "ndcg") for k in RANKING_KS)


def ranking_metrics(scores: torch.Tensor, y: torch.Tensor, ks=RANKING_KS) -> dict[str, float]:
    """HR@k and nDCG@k for each k in ``ks`` (and ``accuracy`` = HR@1) of ``scores`` (N, C), true index ``y``."""
    scores, y = scores.float(), y.long()
    num = scores.shape[1]
    too_big = [k for k in ks if k > num]
    if too_big:
        raise ChildnetError(f"ranking metrics: k = {too_big[0]} is larger than the {num} candidates per row; "
                            f"use k <= {num} or more negatives (task.num_negatives)")
    true = scores.gather(1, y[:, None])
    rank = (scores >= true).sum(1) - 1  # candidates scoring at least as high, minus the true item itself
    out = {"accuracy": (rank == 0).float().mean().item()}
    for k in ks:
        hit = rank < k
        out[f"hr@{k}"] = hit.float().mean().item()
        out[f"ndcg@{k}"] = torch.where(hit, 1.0 / torch.log2(rank.float() + 2.0), torch.zeros(())).mean().item()
    return out


def check_metric_fits(metric: str, task) -> None:
    """Refuse, before any training, a primary metric that cannot be computed on ``task``."""
    ranking = metric in RANKING_METRICS
    if ranking and task.kind != "ranking":
        raise ChildnetError(f"metric: '{metric}' needs a ranking task (task '{task.name}' is {task.kind}); "
                            "use accuracy, nll or ece")
    if ranking and int(metric.split("@")[1]) > task.num_classes:
        raise ChildnetError(f"metric: '{metric}' needs at least {metric.split('@')[1]} candidates per row; task "
                            f"'{task.name}' ranks {task.num_classes}; use accuracy or more negatives")
    if task.kind == "ranking" and metric in ("nll", "ece"):
        raise ChildnetError(f"metric: '{metric}' is not computed for ranking task '{task.name}'; "
                            f"use accuracy (HR@1) or one of {', '.join(RANKING_METRICS)}")


@torch.no_grad()
def predict_scores(model, x, batch_size: int = 512, device="cpu") -> torch.Tensor:
    """Raw scores of ``model`` on ``x`` (eval mode, batched, on CPU at the end) — one per candidate."""
    from ..tasks.base import num_examples, take, to_device

    was = model.training
    model.eval()
    out = [model(to_device(take(x, slice(i, i + batch_size)), device)).float().cpu()
           for i in range(0, num_examples(x), batch_size)]
    model.train(was)
    return torch.cat(out)
