"""Per-item statistics of one system's corpus score: the unit every test and interval here resamples.

An `ItemStatistics` holds one row of additive statistics per test item (e.g. BLEU's n-gram matches and
lengths, or a ROUGE F-measure and a count of 1) and the function that turns summed rows into the corpus
score. A resample of the items is a count vector ``w``; its score is ``score_fn(w @ values)``. With every count
1 this is the corpus score itself; the decompositions in `prefixlab.stats.decompose` are tested to reproduce
the official scores.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = ["EXACT", "FIXED_WEIGHTS", "ItemStatistics", "ScoreFn", "mean_statistics"]

ScoreFn = Callable[[np.ndarray], np.ndarray]
"""Maps ``(m, k)`` rows of summed statistics to ``(m,)`` scores."""

EXACT = "exact"
"""A resample's score is the metric recomputed on the resampled items."""
FIXED_WEIGHTS = "fixed-weights"
"""Per-item statistics reproduce the corpus score, but corpus-level weights (CIDEr's IDF, NIST's information
weights) stay those of the full test set in a resample: an approximation."""


@dataclass(frozen=True, eq=False)
class ItemStatistics:
    """One system's additive per-item statistics for one metric.

    ``values``: ``(n_items, k)`` floats, one row per test item, in test-set order. ``score_fn``: summed rows
    to scores (vectorised). ``resampling``: `EXACT` or `FIXED_WEIGHTS`; ``note`` says how the metric was
    decomposed.
    """

    metric: str
    values: np.ndarray
    score_fn: ScoreFn
    resampling: str = EXACT
    note: str = ""

    def __post_init__(self) -> None:
        values = np.asarray(self.values, dtype=np.float64)
        if values.ndim != 2 or values.shape[0] < 1:
            raise ValueError(f"{self.metric}: values must be (n_items >= 1, k), got shape {values.shape}")
        object.__setattr__(self, "values", values)

    @property
    def n_items(self) -> int:
        """Number of test items."""
        return int(self.values.shape[0])

    def score(self) -> float:
        """The corpus score (every item once)."""
        return float(self.score_fn(self.values.sum(axis=0, keepdims=True))[0])

    def resampled(self, counts: np.ndarray) -> np.ndarray:
        """Scores of resamples given as ``(m, n_items)`` item counts (or weights)."""
        return np.asarray(self.score_fn(counts @ self.values), dtype=np.float64)

    def mixed(self, other: ItemStatistics, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Scores of the two pseudo-systems of approximate randomization, for ``(m, n_items)`` masks.

        Where ``keep`` is True item i stays with its system; where False the two systems swap item i.
        """
        keep_f = keep.astype(np.float64)
        swap_f = 1.0 - keep_f
        first = self.score_fn(keep_f @ self.values + swap_f @ other.values)
        second = self.score_fn(swap_f @ self.values + keep_f @ other.values)
        return np.asarray(first, dtype=np.float64), np.asarray(second, dtype=np.float64)

    def identical_to(self, other: ItemStatistics) -> bool:
        """Whether both hold the same per-item statistics (so no resample can tell them apart)."""
        return self.values.shape == other.values.shape and bool(np.array_equal(self.values, other.values))


def mean_statistics(
    metric: str,
    per_item: np.ndarray | list[float],
    *,
    scale: float = 1.0,
    resampling: str = EXACT,
    note: str = "",
) -> ItemStatistics:
    """Statistics of a metric that is the mean of per-item scores (times ``scale``): rows ``[score, 1]``."""
    scores = np.asarray(per_item, dtype=np.float64).reshape(-1)
    values = np.column_stack([scores, np.ones_like(scores)])

    def score_fn(sums: np.ndarray) -> np.ndarray:
        return scale * sums[:, 0] / sums[:, 1]

    return ItemStatistics(metric, values, score_fn, resampling, note)
