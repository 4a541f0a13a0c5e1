"""Seeds x items (`prefixlab.stats.multiboot`): the multi-bootstrap on synthetic studies with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from prefixlab.stats.itemstats import ItemStatistics, mean_statistics
from prefixlab.stats.multiboot import interval, multi_bootstrap
from prefixlab.stats.paired import paired_bootstrap


def binomial_band(p: float, n: int, z: float = 3.0) -> tuple[float, float]:
    """+-z binomial standard errors around p for n replications."""
    half = z * math.sqrt(p * (1 - p) / n)
    return p - half, p + half


def synthetic_study(
    rng: np.random.Generator, n_seeds: int, n_items: int, difference: float
) -> tuple[list[ItemStatistics], list[ItemStatistics], np.ndarray, np.ndarray]:
    """Scores y[s, i] = mu + seed effect + item effect + small noise, with A - B = difference in expectation.

    Items have a shared effect and a setting-specific one (sd 0.1: which setting suits which item), seeds an
    effect of sd 0.06, so over 20 seeds and 50 items the seed and item variances of a setting's mean are
    about equal; the per-(seed, item) noise (sd 0.05) is small.
    """
    shared = rng.normal(0.5, 0.2, n_items)

    def setting(mu: float) -> np.ndarray:
        items = shared + rng.normal(0, 0.1, n_items)
        return mu + rng.normal(0, 0.06, (n_seeds, 1)) + items + rng.normal(0, 0.05, (n_seeds, n_items))

    y_a, y_b = setting(0.5 + difference), setting(0.5)
    return [mean_statistics("m", row) for row in y_a], [mean_statistics("m", row) for row in y_b], y_a, y_b


def test_seeds_by_items_interval_covers_the_true_difference_and_items_alone_do_not() -> None:
    """Coverage of the population difference near 95% (+-3 binomial s.e.); an items-only bootstrap of the
    seed-averaged scores ignores the seed variance and covers far less (so would a seeds-only one)."""
    rng = np.random.default_rng(5)
    replications, n_seeds, n_items, true_difference = 600, 20, 50, 0.03
    covered = covered_items_only = 0
    for r in range(replications):
        a, b, y_a, y_b = synthetic_study(rng, n_seeds, n_items, true_difference)
        result = multi_bootstrap(a, b, n_samples=400, seed=r + 1)
        covered += result.difference.contains(true_difference)
        items_only = paired_bootstrap(
            mean_statistics("m", y_a.mean(axis=0)), mean_statistics("m", y_b.mean(axis=0)), 400, seed=r + 1
        )
        covered_items_only += items_only.difference.contains(true_difference)
    low, high = binomial_band(0.95, replications)
    assert low <= covered / replications <= high, covered / replications
    assert covered_items_only / replications < low, covered_items_only / replications


def test_identical_settings_give_p_one_and_zero_difference() -> None:
    a, _, _, _ = synthetic_study(np.random.default_rng(1), 4, 30, 0.0)
    result = multi_bootstrap(a, a, 200, paired_seeds=True)
    assert result.p_value == 1.0
    assert result.difference.estimate == 0.0 and result.difference.bounds() == [0.0, 0.0]


def test_a_clear_difference_is_significant_both_ways() -> None:
    a, b, _, _ = synthetic_study(np.random.default_rng(2), 5, 60, 0.5)
    forward, backward = multi_bootstrap(a, b, 400), multi_bootstrap(b, a, 400)
    assert forward.p_value == backward.p_value == pytest.approx(2 / 401)
    assert forward.difference.low > 0 > backward.difference.high


def test_estimate_is_the_mean_of_each_seeds_corpus_score() -> None:
    """A ratio metric (sum of matches / sum of totals) is recomputed per seed, then averaged over seeds."""
    rng = np.random.default_rng(3)
    runs = []
    for _ in range(3):
        totals = rng.integers(1, 9, 40).astype(float)
        matches = np.minimum(totals, rng.integers(0, 9, 40)).astype(float)
        runs.append(ItemStatistics("r", np.column_stack([matches, totals]), lambda s: s[:, 0] / s[:, 1]))
    cell = interval(runs, 300)
    expected = np.mean([run.values[:, 0].sum() / run.values[:, 1].sum() for run in runs])
    assert cell.estimate == pytest.approx(expected, rel=1e-12)
    assert cell.low < cell.estimate < cell.high


def test_cell_interval_is_the_settings_interval_of_a_comparison() -> None:
    a, b, _, _ = synthetic_study(np.random.default_rng(4), 3, 40, 0.1)
    assert interval(a, 250, seed=7) == multi_bootstrap(a, b, 250, seed=7).a


def test_paired_seeds_need_equal_seed_counts() -> None:
    a, b, _, _ = synthetic_study(np.random.default_rng(6), 3, 20, 0.0)
    with pytest.raises(ValueError, match="paired seeds"):
        multi_bootstrap(a, b[:2], 50, paired_seeds=True)
    with pytest.raises(ValueError, match="do not match"):
        multi_bootstrap(a, [mean_statistics("m", np.zeros(21))], 50)
