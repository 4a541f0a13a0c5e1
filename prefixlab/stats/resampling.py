"""Resampling plans over test items (and seeds): bootstrap counts, randomization swaps, percentile intervals.

The draws follow sacrebleu's paired tests (``sacrebleu.significance``) so that a given seed selects the same
resamples here as there: ``numpy.random.default_rng(seed)``, bootstrap indices from
``rng.choice(n, size=(n_samples, n))``, randomization swaps from ``rng.integers(2, size=(n_samples, n),
dtype=bool)``. A resample is represented by its count matrix ``(n_samples, n)``: how often each item is drawn,
so that the resampled sums of per-item statistics are one matrix product.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "CONFIDENCE",
    "DEFAULT_SEED",
    "Interval",
    "bootstrap_counts",
    "percentile_interval",
    "percentile_p_value",
    "rng_for",
    "swap_masks",
]

DEFAULT_SEED = 12345  # sacrebleu's default SACREBLEU_SEED
CONFIDENCE = 0.95


@dataclass(frozen=True)
class Interval:
    """A point estimate with the bounds of its (95%) interval."""

    estimate: float
    low: float
    high: float

    def bounds(self) -> list[float]:
        """``[low, high]``."""
        return [self.low, self.high]

    def contains(self, value: float) -> bool:
        """Whether ``low <= value <= high``."""
        return self.low <= value <= self.high


def rng_for(seed: int | None) -> np.random.Generator:
    """The generator sacrebleu's tests use for ``seed`` (``None``: fresh OS entropy)."""
    return np.random.default_rng(seed)


def bootstrap_counts(rng: np.random.Generator, n_items: int, n_samples: int) -> np.ndarray:
    """``(n_samples, n_items)`` counts of ``n_samples`` bootstrap resamples (n items drawn with replacement)."""
    if n_items < 1 or n_samples < 1:
        raise ValueError(
            f"need at least one item and one sample, got {n_items} items and {n_samples} samples"
        )
    indices = rng.choice(n_items, size=(n_samples, n_items), replace=True)
    flat = (indices + n_items * np.arange(n_samples)[:, None]).ravel()
    return np.bincount(flat, minlength=n_samples * n_items).reshape(n_samples, n_items).astype(np.float64)


def swap_masks(rng: np.random.Generator, n_items: int, n_samples: int) -> np.ndarray:
    """``(n_samples, n_items)`` booleans for approximate randomization: True keeps an item's pair, False swaps it."""
    if n_items < 1 or n_samples < 1:
        raise ValueError(
            f"need at least one item and one sample, got {n_items} items and {n_samples} samples"
        )
    return rng.integers(2, size=(n_samples, n_items), dtype=bool)


def percentile_interval(replicates: np.ndarray, level: float = CONFIDENCE) -> tuple[float, float]:
    """The percentile interval of bootstrap replicates: their (1 - level)/2 and (1 + level)/2 quantiles."""
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    low, high = np.quantile(np.asarray(replicates, dtype=np.float64), [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)


def percentile_p_value(replicated_differences: np.ndarray) -> float:
    """Two-sided bootstrap p-value of ``difference = 0``: ``min(1, 2 (1 + min(#d*<=0, #d*>=0)) / (1 + n))``.

    The level at which the percentile interval of the replicates just reaches 0; +1 keeps it above 0, and
    replicates that are all exactly 0 (identical systems) give 1.
    """
    at_most = int(np.sum(replicated_differences <= 0))
    at_least = int(np.sum(replicated_differences >= 0))
    return min(1.0, 2 * (1 + min(at_most, at_least)) / (1 + len(replicated_differences)))


def comparison_fields(a: Interval, b: Interval, difference: Interval, p_value: float) -> dict[str, Any]:
    """The JSON keys every comparison shares: ``a``, ``b``, ``difference`` (a minus b), ``ci95`` (of the
    difference), ``p_value``, and each side's own interval."""
    return {
        "a": a.estimate,
        "b": b.estimate,
        "difference": difference.estimate,
        "ci95": difference.bounds(),
        "p_value": p_value,
        "a_ci95": a.bounds(),
        "b_ci95": b.bounds(),
    }
