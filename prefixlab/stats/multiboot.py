"""Seeds and test items together: the multi-bootstrap (Sellam et al., 2022, "The MultiBERTs", section 3).

A setting (a prefix length, a method) has several runs (seeds), all scored on the same test items. Its score is
the mean over seeds of each run's corpus score. One replicate resamples the seeds with replacement and the test
items with replacement (the same items for every seed and for both settings: items stay paired), rescores each
drawn seed's run on the drawn items (its corpus metric recomputed from per-item statistics) and averages over
the drawn seeds. As in google-research/language ``multiberts/multibootstrap.py``, seeds are drawn
independently for the two settings unless ``paired_seeds`` (seed i of A goes with seed i of B).

* Interval: the percentile interval of the replicates (95% by default).
* p-value of a difference: two-sided, ``min(1, 2 * (1 + min(#{d* <= 0}, #{d* >= 0})) / (1 + n))``: the
  MultiBERTs p-value ``P(d* <= 0)`` made two-sided, with the +1 that keeps it above 0.

With one seed on each side the item resamples (hence intervals) equal those of
`prefixlab.stats.paired.paired_bootstrap` for the same seed.

How well the 95% interval of a difference covers (synthetic studies, 600 replications, 50 items, seed and
item variances of comparable size; see ``tests/test_stats_multiboot.py``): 93% with 20 or 10 seeds a
setting, 92% with 5, 87% with 3, 77% with 2 -- resampling few seeds underestimates the seed variance
(by (S-1)/S, and noisily), so with 2-3 seeds read the interval as too narrow. When per-(seed, item) noise
dominates instead, the interval is conservative (98% in such a study): resampling seeds and items both
counts that noise about three times over (the two-way bootstrap's known bias).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from prefixlab.stats.itemstats import EXACT, ItemStatistics
from prefixlab.stats.resampling import (
    CONFIDENCE,
    DEFAULT_SEED,
    Interval,
    bootstrap_counts,
    comparison_fields,
    percentile_interval,
    percentile_p_value,
    rng_for,
)

__all__ = ["MultiBootstrapResult", "interval", "multi_bootstrap", "seed_item_replicates"]

DEFAULT_SAMPLES = 1000


@dataclass(frozen=True)
class MultiBootstrapResult:
    """Settings A and B (several seeds each) compared over seeds and items; ``difference`` is A minus B."""

    metric: str
    a: Interval
    b: Interval
    difference: Interval
    p_value: float
    n_seeds_a: int
    n_seeds_b: int
    n_items: int
    n_samples: int
    seed: int | None
    paired_seeds: bool
    resampling: str
    note: str

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: ``a``, ``b``, ``difference``, ``ci95`` (of the difference), ``p_value`` and details."""
        return comparison_fields(self.a, self.b, self.difference, self.p_value) | {
            "test": "multi-bootstrap",
            "samples": self.n_samples,
            "seeds_a": self.n_seeds_a,
            "seeds_b": self.n_seeds_b,
            "paired_seeds": self.paired_seeds,
            "items": self.n_items,
            "seed": self.seed,
            "resampling": self.resampling,
            "note": self.note,
        }


def _check_setting(per_seed: Sequence[ItemStatistics], name: str) -> None:
    if not per_seed:
        raise ValueError(f"setting {name} has no runs")
    first = per_seed[0]
    for i, stats in enumerate(per_seed):
        if stats.metric != first.metric or stats.values.shape != first.values.shape:
            raise ValueError(
                f"setting {name}: run {i} ({stats.metric}, {stats.n_items} items) does not match run 0 "
                f"({first.metric}, {first.n_items} items)"
            )


def seed_item_replicates(
    per_seed: Sequence[ItemStatistics], item_counts: np.ndarray, seed_counts: np.ndarray
) -> np.ndarray:
    """Replicates of a setting's mean-over-seeds score.

    ``item_counts`` ``(m, n_items)`` and ``seed_counts`` ``(m, n_seeds)`` give how often each item and each
    seed is drawn in each of the m replicates; replicate r is ``sum_s seed_counts[r, s] *
    score_s(item_counts[r]) / n_seeds``.
    """
    scores = np.stack([stats.resampled(item_counts) for stats in per_seed], axis=1)  # (m, n_seeds)
    return (seed_counts * scores).sum(axis=1) / len(per_seed)


def _resampling_of(*settings: Sequence[ItemStatistics]) -> tuple[str, str]:
    first = settings[0][0]
    kinds = {stats.resampling for setting in settings for stats in setting}
    return (EXACT if kinds == {EXACT} else next(k for k in kinds if k != EXACT)), first.note


def multi_bootstrap(
    a: Sequence[ItemStatistics],
    b: Sequence[ItemStatistics],
    n_samples: int = DEFAULT_SAMPLES,
    seed: int | None = DEFAULT_SEED,
    paired_seeds: bool = False,
    level: float = CONFIDENCE,
) -> MultiBootstrapResult:
    """Compare settings A and B (one `ItemStatistics` per seed, all on the same items) over seeds and items.

    Returns each setting's mean-over-seeds score with its interval, the difference A - B with its interval,
    and the two-sided p-value. ``paired_seeds`` draws the same seed indices for both (needs equal counts).
    """
    _check_setting(a, "A")
    _check_setting(b, "B")
    if a[0].metric != b[0].metric or a[0].values.shape != b[0].values.shape:
        raise ValueError(
            f"A ({a[0].metric}, {a[0].n_items} items) and B ({b[0].metric}, {b[0].n_items} items) do not match"
        )
    if paired_seeds and len(a) != len(b):
        raise ValueError(f"paired seeds need as many runs on both sides (A has {len(a)}, B has {len(b)})")
    rng = rng_for(seed)
    items = bootstrap_counts(rng, a[0].n_items, n_samples)
    seeds_a = bootstrap_counts(rng, len(a), n_samples)
    seeds_b = seeds_a if paired_seeds else bootstrap_counts(rng, len(b), n_samples)
    replicates_a = seed_item_replicates(a, items, seeds_a)
    replicates_b = seed_item_replicates(b, items, seeds_b)
    differences = replicates_a - replicates_b
    estimate_a = float(np.mean([stats.score() for stats in a]))
    estimate_b = float(np.mean([stats.score() for stats in b]))
    resampling, note = _resampling_of(a, b)
    return MultiBootstrapResult(
        metric=a[0].metric,
        a=Interval(estimate_a, *percentile_interval(replicates_a, level)),
        b=Interval(estimate_b, *percentile_interval(replicates_b, level)),
        difference=Interval(estimate_a - estimate_b, *percentile_interval(differences, level)),
        p_value=percentile_p_value(differences),
        n_seeds_a=len(a),
        n_seeds_b=len(b),
        n_items=a[0].n_items,
        n_samples=n_samples,
        seed=seed,
        paired_seeds=paired_seeds,
        resampling=resampling,
        note=note,
    )


def interval(
    per_seed: Sequence[ItemStatistics],
    n_samples: int = DEFAULT_SAMPLES,
    seed: int | None = DEFAULT_SEED,
    level: float = CONFIDENCE,
) -> Interval:
    """One setting's mean-over-seeds score and its interval over seeds x items (a report's table cell).

    With a single run this is the item bootstrap of that run's corpus score.
    """
    _check_setting(per_seed, "")
    rng = rng_for(seed)
    items = bootstrap_counts(rng, per_seed[0].n_items, n_samples)
    seeds = bootstrap_counts(rng, len(per_seed), n_samples)
    replicates = seed_item_replicates(per_seed, items, seeds)
    estimate = float(np.mean([stats.score() for stats in per_seed]))
    return Interval(estimate, *percentile_interval(replicates, level))
