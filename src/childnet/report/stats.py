"""Statistics over seeds: mean ± std and paired tests of a method against the baseline.

Why these tests: every method of an experiment is run on the *same* seeds, task split and
parent, so a method's result on seed k and the baseline's result on seed k share their data
order, initial draws and test set. The differences ``method[k] - baseline[k]`` are therefore the
natural unit of comparison (a paired design), and a paired test removes the between-seed
variance that an unpaired test would count as noise.

- :func:`paired_t_test` — Student's paired t-test (``scipy.stats.ttest_rel``), two-sided. It is
  the test the report shows: with the 3–10 seeds we can afford it is the most powerful standard
  choice, and it assumes the differences are roughly normal.
- :func:`wilcoxon_signed_rank` — the Wilcoxon signed-rank test (``scipy.stats.wilcoxon``),
  two-sided, which drops that normality assumption. With n paired seeds its smallest attainable
  p-value is 2 / 2**n (0.25 at n = 3), so it is only informative from about n = 6; the report
  includes it in the JSON only from :data:`MIN_WILCOXON_PAIRS` pairs on.

Degenerate cases are decided here, explicitly, instead of surfacing NaN warnings:
fewer than 2 pairs → no test (``None``); all differences zero → p = 1.0 (no evidence of any
difference); all differences equal but non-zero → the t statistic is infinite and we return
its limit, p = 0.0 (every seed moved by exactly the same amount). Differences are considered
equal when they agree to within :data:`TIE_TOLERANCE` (float noise in ``k/n`` accuracies).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
from scipy import stats as _scipy_stats

__all__ = [
    "MIN_WILCOXON_PAIRS",
    "TIE_TOLERANCE",
    "mean_std",
    "paired_differences",
    "paired_t_test",
    "wilcoxon_signed_rank",
]

#: The Wilcoxon p-value is reported only from this many pairs on (see the module docstring).
MIN_WILCOXON_PAIRS = 6

#: Differences closer than this (absolute) count as equal: accuracies are multiples of 1/n_test, stored as
#: float32 (about 7 significant digits), so smaller gaps are rounding, not a difference.
TIE_TOLERANCE = 1e-6


def mean_std(values: Sequence[float]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (ddof=1) of ``values``.

    Returns:
        ``(mean, std)``; mean is ``None`` for no values, std is ``None`` for fewer than 2.
    """
    arr = np.asarray(list(values), dtype=float)
    if arr.size == 0:
        return None, None
    mean = float(arr.mean())
    if arr.size < 2:
        return mean, None
    return mean, float(arr.std(ddof=1))


def paired_differences(values: dict[int, float], baseline: dict[int, float]) -> tuple[list[int], np.ndarray]:
    """Seeds present in both ``{seed: value}`` maps, and ``values[seed] - baseline[seed]`` for each.

    Returns:
        ``(seeds, differences)`` with seeds in increasing order.
    """
    seeds = sorted(set(values) & set(baseline))
    return seeds, np.asarray([values[s] - baseline[s] for s in seeds], dtype=float)


def _constant(diffs: np.ndarray) -> bool:
    return bool(np.ptp(diffs) <= TIE_TOLERANCE)


def paired_t_test(diffs: Sequence[float]) -> float | None:
    """Two-sided paired t-test p-value on per-seed differences (method − baseline).

    Equivalent to ``scipy.stats.ttest_rel(method, baseline).pvalue`` on the paired values;
    the degenerate cases follow the module docstring.

    Args:
        diffs: one difference per seed present for both the method and the baseline.

    Returns:
        The p-value, or ``None`` when fewer than 2 pairs exist.
    """
    diffs = np.asarray(list(diffs), dtype=float)
    if diffs.size < 2:
        return None
    if _constant(diffs):
        return 1.0 if abs(float(diffs.mean())) <= TIE_TOLERANCE else 0.0
    res = _scipy_stats.ttest_1samp(diffs, 0.0)
    p = float(res.pvalue)
    return p if math.isfinite(p) else None


def wilcoxon_signed_rank(diffs: Sequence[float], min_pairs: int = MIN_WILCOXON_PAIRS) -> float | None:
    """Two-sided Wilcoxon signed-rank p-value on per-seed differences (method − baseline).

    Zero differences are dropped (scipy's default ``zero_method="wilcox"``).

    Args:
        diffs: one difference per seed present for both the method and the baseline.
        min_pairs: below this many pairs the test is not reported (``None``).

    Returns:
        The p-value, 1.0 when every difference is zero, or ``None`` (too few pairs).
    """
    diffs = np.asarray(list(diffs), dtype=float)
    if diffs.size < max(2, min_pairs):
        return None
    diffs = np.where(np.abs(diffs) <= TIE_TOLERANCE, 0.0, diffs)
    if not np.any(diffs):
        return 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        warnings.simplefilter("ignore", UserWarning)
        p = float(_scipy_stats.wilcoxon(diffs).pvalue)
    return p if math.isfinite(p) else None
