"""Calibration compared at matched accuracy: an accuracy-adjusted paired difference of NLL or ECE.

Why: a method that under-fits is less confident, and lower confidence alone lowers NLL and ECE when the
model was over-confident. So "method A has a lower ECE than B" means little when A is also less
accurate (the first tune-family run: Child-Tuning's ECE 0.04 against vanilla's 0.12, at 4.7 points
lower accuracy). This compares the two at the same accuracy, the way an analysis of covariance does:

1. Over the runs of both methods (seeds; with ``select``, every candidate too), fit the calibration
   metric's within-method slope on accuracy, β, pooled: each method's runs are centred on its own
   means, so β says how the metric moves with accuracy *inside* a method, not between methods.
2. Per seed, the adjusted difference is (m_A − m_B) − β (acc_A − acc_B): the difference in calibration
   that remains once A's and B's accuracies are made equal along that slope.
3. Report its mean ± std, the paired t-test p-value (:func:`~childnet.report.stats.paired_t_test`), the
   raw difference, β and the accuracy at which both adjusted means are read (the mean of the two methods'
   accuracies).

Assumption, stated: within the accuracy range the runs span, the metric is linear in accuracy with the
same slope for both methods. With 5 seeds and a narrow accuracy range β is uncertain (its standard error
is returned); when the methods' accuracy ranges do not overlap the comparison is an extrapolation and
``overlap`` says so.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .stats import mean_std, paired_t_test

__all__ = ["matched_accuracy_difference"]


def _slope(groups: list[tuple[np.ndarray, np.ndarray]]) -> tuple[float, float | None]:
    """Pooled within-group least-squares slope of y on x, and its standard error."""
    xs = np.concatenate([x - x.mean() for x, _ in groups])
    ys = np.concatenate([y - y.mean() for _, y in groups])
    sxx = float((xs**2).sum())
    if sxx <= 0:
        return 0.0, None
    beta = float((xs * ys).sum() / sxx)
    dof = len(xs) - len(groups) - 1
    if dof <= 0:
        return beta, None
    resid = ys - beta * xs
    return beta, float(np.sqrt((resid**2).sum() / dof / sxx))


def matched_accuracy_difference(a: Mapping[int, Mapping[str, float]], b: Mapping[int, Mapping[str, float]],
                                metric: str = "ece", extra_a=(), extra_b=()) -> dict:
    """Accuracy-adjusted paired difference of ``metric`` between methods A and B (A − B).

    Args:
        a, b: per seed, ``{"accuracy": ..., metric: ...}`` of the run each method reports.
        metric: ``ece``, ``nll`` or any lower-is-better calibration metric in the rows.
        extra_a, extra_b: further ``{"accuracy", metric}`` runs of each method (e.g. every ``select``
            candidate) used only to estimate the slope.

    Returns:
        ``{"metric", "seeds", "raw_difference", "adjusted_difference": {mean, std, values}, "p_value",
        "slope", "slope_se", "at_accuracy", "adjusted_means": {"a", "b"}, "overlap"}``.
    """
    seeds = sorted(set(a) & set(b))
    if len(seeds) < 2:
        raise ValueError(f"matched-accuracy comparison needs at least 2 seeds run by both methods (got {seeds})")

    def arrays(rows):
        rows = list(rows)
        return (np.array([float(r["accuracy"]) for r in rows]), np.array([float(r[metric]) for r in rows]))

    xa, ya = arrays([a[s] for s in seeds] + list(extra_a))
    xb, yb = arrays([b[s] for s in seeds] + list(extra_b))
    beta, se = _slope([(xa, ya), (xb, yb)])
    raw = [float(a[s][metric]) - float(b[s][metric]) for s in seeds]
    adjusted = [r - beta * (float(a[s]["accuracy"]) - float(b[s]["accuracy"])) for r, s in zip(raw, seeds)]
    acc_a, acc_b = xa[: len(seeds)].mean(), xb[: len(seeds)].mean()
    at = float((acc_a + acc_b) / 2)
    mean_a, mean_b = ya[: len(seeds)].mean(), yb[: len(seeds)].mean()
    mean, std = mean_std(adjusted)
    raw_mean, raw_std = mean_std(raw)
    return {
        "metric": metric, "seeds": seeds,
        "raw_difference": {"mean": raw_mean, "std": raw_std, "values": raw},
        "adjusted_difference": {"mean": mean, "std": std, "values": adjusted},
        "p_value": paired_t_test(adjusted), "raw_p_value": paired_t_test(raw),
        "slope": beta, "slope_se": se, "at_accuracy": at,
        "adjusted_means": {"a": float(mean_a + beta * (at - acc_a)), "b": float(mean_b + beta * (at - acc_b))},
        "overlap": bool(min(xa.max(), xb.max()) >= max(xa.min(), xb.min())),
    }
