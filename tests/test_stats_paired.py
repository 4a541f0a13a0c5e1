"""Paired tests over test items (`prefixlab.stats.paired`) on synthetic data with known answers.

No data files and no Java: synthetic per-item statistics, and sacrebleu BLEU on generated sentences.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from sacrebleu.metrics import BLEU
from sacrebleu.significance import PairedTest

from prefixlab.stats.itemstats import ItemStatistics, mean_statistics
from prefixlab.stats.multiboot import multi_bootstrap
from prefixlab.stats.paired import (
    paired_bootstrap,
    paired_randomization,
    paired_test,
    sacrebleu_bleu_p_value,
)

LEVEL = 0.95


def binomial_band(p: float, n: int, z: float = 3.5) -> tuple[float, float]:
    """The range a binomial proportion with success probability p falls in, n trials, +-z standard errors."""
    half = z * math.sqrt(p * (1 - p) / n)
    return p - half, p + half


def ratio_statistics(metric: str, matches: np.ndarray, totals: np.ndarray) -> ItemStatistics:
    """A BLEU-like ratio metric: sum of matches / sum of totals (not a mean of per-item ratios)."""
    return ItemStatistics(metric, np.column_stack([matches, totals]), lambda s: s[:, 0] / s[:, 1])


def test_self_comparison_gives_p_one_and_zero_difference() -> None:
    rng = np.random.default_rng(0)
    stats = mean_statistics("acc", rng.random(80))
    for result in (
        paired_bootstrap(stats, stats, 300),
        paired_randomization(stats, stats, 300, n_bootstrap=200),
    ):
        assert result.p_value == 1.0
        assert result.difference.estimate == 0.0
        assert result.difference.bounds() == [0.0, 0.0]
        assert result.a == result.b


def test_clear_winner_has_the_smallest_p_value() -> None:
    rng = np.random.default_rng(1)
    base = rng.random(100)
    better, worse = mean_statistics("acc", base + 0.3), mean_statistics("acc", base)
    for test, n, floor in (("bootstrap", 500, 2 / 501), ("randomization", 500, 1 / 501)):
        result = paired_test(better, worse, test, n)
        assert result.p_value == pytest.approx(floor)
        assert result.difference.estimate == pytest.approx(0.3)
        assert result.difference.low > 0
        reverse = paired_test(worse, better, test, n)  # two-sided: the loser's side is as significant
        assert reverse.p_value == pytest.approx(floor)
        assert reverse.difference.estimate == pytest.approx(-0.3) and reverse.difference.high < 0


@pytest.mark.parametrize("kind", ["mean", "ratio"])
def test_difference_interval_covers_the_true_difference_95_percent(kind: str) -> None:
    """Many synthetic replications with a known population difference: coverage near 95%.

    The band is +-3 binomial standard errors around 95%. Items share an effect (so pairing matters: an
    unpaired interval would be far too wide and cover ~100%); a 90% interval falls below the band.
    """
    rng = np.random.default_rng(2024)
    replications, n_items, n_samples = 400, 120, 400
    # mean: E[a - b] = 0.05; ratio: E[matches] / E[total] is 0.5 for A and 0.4 for B.
    true_difference = 0.05 if kind == "mean" else 0.1
    covered = 0
    for r in range(replications):
        if kind == "mean":
            item = rng.normal(0.5, 0.2, n_items)
            a = mean_statistics("m", item + 0.05 + rng.normal(0, 0.1, n_items))
            b = mean_statistics("m", item + rng.normal(0, 0.1, n_items))
        else:
            totals = rng.integers(1, 6, n_items).astype(float)  # E[total] = 3
            a = ratio_statistics("r", rng.binomial(totals.astype(int), 0.5).astype(float), totals)
            b = ratio_statistics("r", rng.binomial(totals.astype(int), 0.4).astype(float), totals)
        result = paired_bootstrap(a, b, n_samples, seed=r + 1)
        covered += result.difference.contains(true_difference)
    low, high = binomial_band(LEVEL, replications, z=3.0)
    assert low <= covered / replications <= high, covered / replications


def test_p_values_reject_at_the_nominal_rate_under_the_null() -> None:
    """Exchangeable systems (no true difference): p < 0.05 in about 5% of replications.

    Holds for approximate randomization and for the percentile-bootstrap p-value; sacrebleu's Moses statistic
    (``moses_p_value``) rejects about twice as often, which is why it is not the headline p-value.
    """
    rng = np.random.default_rng(7)
    replications, n_items = 400, 60
    rejections = {"randomization": 0, "bootstrap": 0, "moses": 0}
    for r in range(replications):
        item = rng.normal(0, 1, n_items)
        a = mean_statistics("m", item + rng.normal(0, 1, n_items))
        b = mean_statistics("m", item + rng.normal(0, 1, n_items))
        rejections["randomization"] += (
            paired_randomization(a, b, 200, seed=r + 1, n_bootstrap=10).p_value < 0.05
        )
        bootstrap = paired_bootstrap(a, b, 400, seed=r + 1)
        rejections["bootstrap"] += bootstrap.p_value < 0.05
        rejections["moses"] += bootstrap.moses_p_value < 0.05
    low, high = binomial_band(0.05, replications, z=3.0)
    assert low <= rejections["randomization"] / replications <= high, rejections
    assert low <= rejections["bootstrap"] / replications <= high, rejections
    assert rejections["moses"] / replications > high, rejections


def _sentences(rng: np.random.Generator, n: int, vocabulary: list[str]) -> list[str]:
    return [" ".join(rng.choice(vocabulary, size=rng.integers(4, 12))) for _ in range(n)]


def _perturb(
    rng: np.random.Generator, sentences: list[str], share: float, vocabulary: list[str]
) -> list[str]:
    out = []
    for sentence in sentences:
        words = sentence.split()
        if rng.random() < share:
            words[rng.integers(len(words))] = str(rng.choice(vocabulary))
        out.append(" ".join(words))
    return out


@pytest.fixture(scope="module")
def bleu_systems() -> dict[str, list]:
    """150 items with 2-3 references; A, an independent system of the same quality, one differing from A on
    a few items only, and the reference streams (padded with None) for sacrebleu."""
    rng = np.random.default_rng(11)
    vocabulary = [f"w{i}" for i in range(40)]
    refs1 = _sentences(rng, 150, vocabulary)
    references = [
        [r, _perturb(rng, [r], 0.9, vocabulary)[0]]
        + ([_perturb(rng, [r], 0.9, vocabulary)[0]] if i % 2 else [])
        for i, r in enumerate(refs1)
    ]
    a = _perturb(rng, _perturb(rng, refs1, 0.8, vocabulary), 0.5, vocabulary)
    independent = _perturb(rng, _perturb(rng, refs1, 0.8, vocabulary), 0.5, vocabulary)
    close = _perturb(rng, a, 0.05, vocabulary)
    streams = [[g[k] if k < len(g) else None for g in references] for k in range(3)]
    return {"a": a, "independent": independent, "close": close, "references": references, "streams": streams}


def _sacrebleu_p(systems: dict[str, list], b: str, sacrebleu_type: str, n: int) -> tuple[float, float, float]:
    """sacrebleu's PairedTest itself (SACREBLEU_SEED set by the caller): A's and B's BLEU, B's p-value."""
    _, scores = PairedTest(
        [("a", systems["a"]), ("b", systems[b])],
        {"BLEU": BLEU(tokenize="13a", smooth_method="exp")},
        systems["streams"],
        sacrebleu_type,
        n,
    )()
    return scores["BLEU"][0].score, scores["BLEU"][1].score, scores["BLEU"][1].p_value


def _ours(systems: dict[str, list], b: str, test: str, n: int):
    from prefixlab.stats.decompose import item_statistics

    stats_a, stats_b = (
        s["BLEU"] for s in item_statistics("e2e", [systems["a"], systems[b]], systems["references"], ["BLEU"])
    )
    return paired_test(stats_a, stats_b, test, n, seed=12345)


@pytest.mark.parametrize(
    ("test", "sacrebleu_type", "n"), [("bootstrap", "bs", 300), ("randomization", "ar", 500)]
)
def test_per_item_bleu_tests_equal_sacrebleus_paired_tests(
    bleu_systems: dict[str, list], test: str, sacrebleu_type: str, n: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same draws, same statistic: on BLEU statistics our p-value is sacrebleu's PairedTest p-value."""
    ours = _ours(bleu_systems, "independent", test, n)
    comparable = ours.moses_p_value if test == "bootstrap" else ours.p_value  # sacrebleu's statistic
    assert 0.02 < comparable < 0.98  # a non-trivial comparison
    monkeypatch.setenv("SACREBLEU_SEED", "12345")
    bleu_a, bleu_b, p_value = _sacrebleu_p(bleu_systems, "independent", sacrebleu_type, n)
    assert ours.a.estimate * 100 == pytest.approx(bleu_a, abs=1e-12)
    assert ours.b.estimate * 100 == pytest.approx(bleu_b, abs=1e-12)
    assert comparable == p_value
    wrapped, signature = sacrebleu_bleu_p_value(
        bleu_systems["a"], bleu_systems["independent"], bleu_systems["references"], test, n, 12345
    )
    assert wrapped == p_value
    assert f"{sacrebleu_type}:{n}" in signature and "seed:12345" in signature


def test_ties_count_where_sacrebleu_counts_them_out(bleu_systems: dict[str, list], monkeypatch) -> None:
    """Systems that differ on a few items: many randomizations reproduce the observed difference exactly.

    A permutation test counts them (``>=``), sacrebleu does not (``>``), so sacrebleu's p-value is smaller;
    for identical systems sacrebleu gives 1/(n+1) and we give 1.
    """
    monkeypatch.setenv("SACREBLEU_SEED", "12345")
    ours = _ours(bleu_systems, "close", "randomization", 500)
    _, _, strict = _sacrebleu_p(bleu_systems, "close", "ar", 500)
    assert strict < ours.p_value
    assert strict == pytest.approx(1 / 501)
    _, scores = PairedTest(
        [("a", bleu_systems["a"]), ("b", bleu_systems["a"])],
        {"BLEU": BLEU()},
        bleu_systems["streams"],
        "bs",
        200,
    )()
    assert scores["BLEU"][1].p_value == pytest.approx(1 / 201)
    assert _ours({**bleu_systems, "same": bleu_systems["a"]}, "same", "bootstrap", 200).p_value == 1.0


def test_one_seed_multi_bootstrap_has_the_paired_bootstrap_intervals() -> None:
    rng = np.random.default_rng(3)
    a, b = mean_statistics("m", rng.random(50)), mean_statistics("m", rng.random(50))
    single = paired_bootstrap(a, b, 200, seed=9)
    multi = multi_bootstrap([a], [b], 200, seed=9)
    assert multi.difference == single.difference
    assert multi.a == single.a and multi.b == single.b


def test_mismatched_items_are_rejected() -> None:
    with pytest.raises(ValueError, match="not on the same items"):
        paired_bootstrap(mean_statistics("m", [1.0, 2.0]), mean_statistics("m", [1.0, 2.0, 3.0]), 10)
