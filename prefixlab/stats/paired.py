"""Paired tests of two systems on the same test items: paired bootstrap and approximate randomization.

Any metric given as per-item statistics (`prefixlab.stats.itemstats`), with the resamples drawn exactly as
sacrebleu's paired tests (``sacrebleu.significance``) draw them for the same seed:

* **Paired bootstrap** (Koehn 2004): resample the items with replacement, the same resample for both
  systems. The p-value is the two-sided percentile-bootstrap p-value of ``a - b = 0``,
  ``min(1, 2 (1 + min(#{d* <= 0}, #{d* >= 0})) / (1 + n))``: p < 0.05 exactly when the reported 95%
  interval of the difference excludes 0 (up to the resample count), and the same rule as the
  multi-bootstrap (`prefixlab.stats.multiboot`). ``moses_p_value`` is also given: the statistic of
  sacrebleu's ``bs`` test (its port of Moses' ``bootstrap-hypothesis-difference-significance.pl``, the
  share of ``|d*| - mean|d*| >= |d|``). That statistic is in effect one-sided: on exchangeable systems
  (no true difference) it gives p < 0.05 in about 11% of cases (1,000 synthetic replications, 60 items,
  1,000 resamples), where the percentile p-value and approximate randomization give 5%.
* **Approximate randomization** (Riezler & Maxwell 2005; sacrebleu's ``ar``): swap the two systems' outputs
  of each item with probability 1/2; ``p = (1 + #{|d*| >= |d|}) / (1 + n)``.

Ties count (``>=``, the permutation-test convention: the observed assignment is one of the randomizations);
sacrebleu counts only ``>``. That matters when the systems differ on few items (randomization then often
reproduces the observed difference exactly, and sacrebleu's p-value comes out too small) and for identical
systems (sacrebleu: p = 1/(n+1); here p = 1). Otherwise `paired_randomization` and `moses_p_value` equal
sacrebleu's p-values on BLEU (tested). `sacrebleu_bleu_p_value` runs sacrebleu's own ``PairedTest`` on E2E
BLEU; `prefixlab compare` reports it next to ours.

Intervals (95% unless ``level`` says otherwise) are bootstrap percentile intervals over the same resamples:
each system's score and the difference ``a - b``. With approximate randomization they come from a separate
bootstrap (``n_bootstrap`` resamples, drawn after the swaps, as sacrebleu's ``n_ar_confidence``).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from prefixlab.stats.itemstats import ItemStatistics
from prefixlab.stats.resampling import (
    CONFIDENCE,
    DEFAULT_SEED,
    Interval,
    bootstrap_counts,
    comparison_fields,
    percentile_interval,
    percentile_p_value,
    rng_for,
    swap_masks,
)

__all__ = [
    "DEFAULT_BOOTSTRAP",
    "DEFAULT_SAMPLES",
    "TESTS",
    "PairedResult",
    "moses_p_value",
    "paired_bootstrap",
    "paired_randomization",
    "paired_test",
    "sacrebleu_bleu_p_value",
]

TESTS = ("bootstrap", "randomization")
DEFAULT_SAMPLES = {"bootstrap": 1000, "randomization": 10000}  # sacrebleu's defaults
DEFAULT_BOOTSTRAP = 1000
_SACREBLEU_TEST = {"bootstrap": "bs", "randomization": "ar"}


@dataclass(frozen=True)
class PairedResult:
    """A paired comparison of systems A and B on one metric (``difference`` is A minus B)."""

    metric: str
    a: Interval
    b: Interval
    difference: Interval
    p_value: float
    test: str
    n_samples: int
    n_bootstrap: int
    n_items: int
    seed: int | None
    resampling: str
    note: str
    moses_p_value: float | None = None
    sacrebleu_p_value: float | None = None
    signature: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: ``a``, ``b``, ``difference``, ``ci95`` (of the difference), ``p_value`` and details."""
        return comparison_fields(self.a, self.b, self.difference, self.p_value) | {
            "test": self.test,
            "samples": self.n_samples,
            "bootstrap_samples": self.n_bootstrap,
            "items": self.n_items,
            "seed": self.seed,
            "resampling": self.resampling,
            "note": self.note,
            **({"moses_p_value": self.moses_p_value} if self.moses_p_value is not None else {}),
            **({"sacrebleu_p_value": self.sacrebleu_p_value} if self.sacrebleu_p_value is not None else {}),
            **({"signature": self.signature} if self.signature else {}),
        }


def _check_pair(a: ItemStatistics, b: ItemStatistics) -> None:
    if a.metric != b.metric:
        raise ValueError(f"cannot compare {a.metric} with {b.metric}")
    if a.values.shape != b.values.shape:
        raise ValueError(
            f"{a.metric}: the systems are not on the same items ({a.n_items} vs {b.n_items} items, "
            f"{a.values.shape[1]} vs {b.values.shape[1]} statistics)"
        )


def moses_p_value(resampled_differences: np.ndarray, observed: float) -> float:
    """sacrebleu's (Moses') paired-bootstrap statistic, ties counted: share of ``|d*| - mean|d*| >= |d|``.

    For comparison with sacrebleu-style reports; it rejects too often under the null (module docstring).
    """
    absolute = np.abs(resampled_differences)
    centred = absolute - absolute.mean()
    count = int(np.sum(centred >= abs(observed)))
    return (count + 1) / (len(resampled_differences) + 1)


def randomization_p_value(shuffled_differences: np.ndarray, observed: float) -> float:
    """Approximate-randomization p-value, ties counted: share of ``|d*| >= |d|``, as ``(1 + count) / (1 + n)``."""
    count = int(np.sum(np.abs(shuffled_differences) >= abs(observed)))
    return (count + 1) / (len(shuffled_differences) + 1)


def _intervals(
    a: ItemStatistics, b: ItemStatistics, counts: np.ndarray, level: float
) -> tuple[Interval, Interval, Interval, np.ndarray]:
    score_a, score_b = a.score(), b.score()
    resampled_a, resampled_b = a.resampled(counts), b.resampled(counts)
    differences = resampled_a - resampled_b
    return (
        Interval(score_a, *percentile_interval(resampled_a, level)),
        Interval(score_b, *percentile_interval(resampled_b, level)),
        Interval(score_a - score_b, *percentile_interval(differences, level)),
        differences,
    )


def paired_bootstrap(
    a: ItemStatistics,
    b: ItemStatistics,
    n_samples: int = DEFAULT_SAMPLES["bootstrap"],
    seed: int | None = DEFAULT_SEED,
    level: float = CONFIDENCE,
) -> PairedResult:
    """Paired bootstrap test of A vs B over test items, with the intervals of both scores and of A - B."""
    _check_pair(a, b)
    counts = bootstrap_counts(rng_for(seed), a.n_items, n_samples)
    interval_a, interval_b, difference, differences = _intervals(a, b, counts, level)
    return PairedResult(
        metric=a.metric,
        a=interval_a,
        b=interval_b,
        difference=difference,
        p_value=percentile_p_value(differences),
        moses_p_value=moses_p_value(differences, difference.estimate),
        test="bootstrap",
        n_samples=n_samples,
        n_bootstrap=n_samples,
        n_items=a.n_items,
        seed=seed,
        resampling=a.resampling,
        note=a.note,
    )


def paired_randomization(
    a: ItemStatistics,
    b: ItemStatistics,
    n_samples: int = DEFAULT_SAMPLES["randomization"],
    seed: int | None = DEFAULT_SEED,
    n_bootstrap: int = DEFAULT_BOOTSTRAP,
    level: float = CONFIDENCE,
) -> PairedResult:
    """Approximate randomization test of A vs B (``n_samples`` swaps), intervals from ``n_bootstrap`` resamples."""
    _check_pair(a, b)
    rng = rng_for(seed)
    keep = swap_masks(rng, a.n_items, n_samples)
    counts = bootstrap_counts(rng, a.n_items, n_bootstrap)
    interval_a, interval_b, difference, _ = _intervals(a, b, counts, level)
    first, second = a.mixed(b, keep)
    return PairedResult(
        metric=a.metric,
        a=interval_a,
        b=interval_b,
        difference=difference,
        p_value=randomization_p_value(first - second, difference.estimate),
        test="randomization",
        n_samples=n_samples,
        n_bootstrap=n_bootstrap,
        n_items=a.n_items,
        seed=seed,
        resampling=a.resampling,
        note=a.note,
    )


def paired_test(
    a: ItemStatistics,
    b: ItemStatistics,
    test: str = "bootstrap",
    n_samples: int | None = None,
    seed: int | None = DEFAULT_SEED,
    level: float = CONFIDENCE,
) -> PairedResult:
    """`paired_bootstrap` or `paired_randomization` by name (``n_samples`` None: sacrebleu's defaults)."""
    if test not in TESTS:
        raise ValueError(f"unknown test {test!r}; choose one of {list(TESTS)}")
    n = n_samples or DEFAULT_SAMPLES[test]
    if test == "bootstrap":
        return paired_bootstrap(a, b, n, seed, level)
    return paired_randomization(a, b, n, seed, DEFAULT_BOOTSTRAP, level)


@contextlib.contextmanager
def _sacrebleu_seed(seed: int) -> Iterator[None]:
    """Set ``SACREBLEU_SEED`` (how sacrebleu's tests take their seed) for the duration of a call."""
    previous = os.environ.get("SACREBLEU_SEED")
    os.environ["SACREBLEU_SEED"] = str(seed)
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("SACREBLEU_SEED", None)
        else:
            os.environ["SACREBLEU_SEED"] = previous


def sacrebleu_bleu_p_value(
    outputs_a: list[str],
    outputs_b: list[str],
    references: list[list[str]],
    test: str = "bootstrap",
    n_samples: int | None = None,
    seed: int = DEFAULT_SEED,
) -> tuple[float, str]:
    """The p-value of sacrebleu's own ``PairedTest`` on the official E2E BLEU (A as the baseline) and its
    signature.

    BLEU as `prefixlab.metrics.bleu` computes it (mteval text, references padded with ``None``); the number
    is sacrebleu's as it is (strict ``>``; for ``bootstrap`` the Moses statistic, see the module
    docstring). ``seed`` must be >= 1 (sacrebleu treats 0 as unseeded).
    """
    from sacrebleu.significance import PairedTest

    from prefixlab.metrics.bleu import mteval_bleu, mteval_bleu_inputs

    if test not in TESTS:
        raise ValueError(f"unknown test {test!r}; choose one of {list(TESTS)}")
    if seed < 1:
        raise ValueError(f"seed must be >= 1 for sacrebleu's tests (0 means unseeded there), got {seed}")
    hyps_a, streams = mteval_bleu_inputs(outputs_a, references)
    hyps_b, _ = mteval_bleu_inputs(outputs_b, references)
    metric = mteval_bleu(streams)  # references cached once; PairedTest then takes references=None
    with _sacrebleu_seed(seed):
        paired = PairedTest(
            [("A", hyps_a), ("B", hyps_b)],
            {"BLEU": metric},
            None,
            test_type=_SACREBLEU_TEST[test],
            n_samples=n_samples or 0,
        )
        signatures, scores = paired()
    signature = signatures["BLEU"]
    signature.info["case"] = "lc-ascii"  # A-Z lowercased by mteval_bleu_inputs, as mteval does
    return float(scores["BLEU"][1].p_value), str(signature)
