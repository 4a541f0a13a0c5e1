"""The official metrics as sums of per-item statistics, so that test items can be resampled.

Per metric (the values `prefixlab.metrics.score_e2e` / `score_rouge` return, on their scales):

* BLEU: sacrebleu's per-MR statistics (output length, closest reference length, matches and totals of
  1-4-grams; mteval text, references padded with ``None``) and its own score function. Exact.
* NIST: per-MR information-weighted matches, output n-grams, reference words and references. The sums give
  the corpus NIST exactly; the information weights are those of the full test set's references, held fixed
  in resamples (`FIXED_WEIGHTS`: a resample with repeated MRs would weigh its n-grams a little differently).
* METEOR: the METEOR 1.5 jar's per-segment sufficient statistics (23 numbers); the corpus METEOR is computed
  from their sums with the jar's own formula (parameters of ``-l en -norm``: alpha 0.85, beta 0.2, gamma 0.6,
  delta 0.75, stage weights 1.0 0.6 0.8 0.6), including its rule of not counting the chunks of perfectly
  matched segments. Exact (checked against the jar on every call).
* ROUGE_L (E2E, pycocoevalcap) and ROUGE_1/2/L/Lsum (rouge-score): means of per-item F-measures. Exact.
* CIDEr: mean of per-MR CIDEr-D with the document frequencies of the full test set's references held fixed
  (`FIXED_WEIGHTS`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from prefixlab.stats.itemstats import EXACT, FIXED_WEIGHTS, ItemStatistics, mean_statistics

__all__ = [
    "METEOR_PARAMETERS",
    "SUITE_METRICS",
    "default_metrics",
    "item_statistics",
    "meteor_scores",
    "nist_scores",
    "resolve_metrics",
]

SUITE_METRICS: dict[str, tuple[str, ...]] = {
    "e2e": ("BLEU", "NIST", "METEOR", "ROUGE_L", "CIDEr"),
    "rouge": ("ROUGE_1", "ROUGE_2", "ROUGE_L", "ROUGE_Lsum"),
}
"""Every metric each suite's scorer returns (what `--metric` may name)."""

# METEOR 1.5, `-l en -norm` (task "rank"): alpha, beta, gamma, delta and the weights of the exact, stem,
# synonym and paraphrase stages. Verified against the jar's scores in `_meteor_statistics`.
METEOR_PARAMETERS = {
    "alpha": 0.85,
    "beta": 0.20,
    "gamma": 0.60,
    "delta": 0.75,
    "weights": (1.0, 0.6, 0.8, 0.6),
}
_METEOR_CHECK_TOLERANCE = 1e-9

NOTES = {
    "BLEU": "exact: per-MR n-gram matches and lengths (sacrebleu statistics, mteval-v13a text)",
    "NIST": "approximation: per-MR information-weighted matches and lengths, with the full test set's "
    "information weights held fixed in resamples (within 0.4% of NIST recomputed on a resample of the E2E test set)",
    "METEOR": "exact: per-MR METEOR 1.5 sufficient statistics, scored from their sums with the jar's formula",
    "ROUGE_L/e2e": "exact: mean of per-MR ROUGE-L F (pycocoevalcap)",
    "CIDEr": "approximation: mean of per-MR CIDEr-D with the full test set's document frequencies held fixed "
    "(within about 1% of CIDEr recomputed on a resample of the E2E test set)",
    "rouge": "exact: mean of per-document F-measures (rouge-score, stemming)",
}


def default_metrics(suite: str) -> tuple[str, ...]:
    """The metrics compared by default: the suite's reported metrics (`prefixlab.suites`)."""
    from prefixlab.suites import SUITES

    if suite not in SUITE_METRICS:
        raise ValueError(f"unknown metric suite {suite!r}; choose one of {sorted(SUITE_METRICS)}.")
    reported = SUITES[suite].metrics if suite in SUITES else SUITE_METRICS[suite]
    return tuple(m for m in reported if m in SUITE_METRICS[suite])


def resolve_metrics(suite: str, names: Sequence[str] | None) -> tuple[str, ...]:
    """The metric names to compute (case-insensitive match), or a clear error naming the suite's metrics."""
    if suite not in SUITE_METRICS:
        raise ValueError(f"unknown metric suite {suite!r}; choose one of {sorted(SUITE_METRICS)}.")
    if not names:
        return default_metrics(suite)
    known = {m.lower(): m for m in SUITE_METRICS[suite]}
    resolved: list[str] = []
    for name in names:
        metric = known.get(name.lower())
        if metric is None:
            raise ValueError(
                f"unknown metric {name!r} for the {suite} suite; choose from {list(SUITE_METRICS[suite])}."
            )
        if metric not in resolved:
            resolved.append(metric)
    return tuple(resolved)


def _bleu_statistics(systems: Sequence[list[str]], references: list[list[str]]) -> list[ItemStatistics]:
    from prefixlab.metrics.bleu import mteval_bleu, mteval_bleu_inputs

    hyps_per_system = []
    streams: list[list[str | None]] = []
    for outputs in systems:
        hyps, streams = mteval_bleu_inputs(outputs, references)
        hyps_per_system.append(hyps)
    metric = mteval_bleu(streams)  # references tokenized once, cached by sacrebleu

    def score_fn(sums: np.ndarray) -> np.ndarray:
        return np.array([metric._compute_score_from_stats(row.tolist()).score / 100.0 for row in sums])

    return [
        ItemStatistics(
            "BLEU",
            np.asarray(metric._extract_corpus_statistics(hyps, None), dtype=np.float64),
            score_fn,
            EXACT,
            NOTES["BLEU"],
        )
        for hyps in hyps_per_system
    ]


def nist_scores(sums: np.ndarray, max_n: int = 5) -> np.ndarray:
    """NIST from summed `prefixlab.metrics.nist.nist_item_statistics` rows (+ a final count column)."""
    from prefixlab.metrics.nist import NIST_BETA

    credited = sums[:, :max_n]
    sys_ngrams = sums[:, max_n : 2 * max_n]
    ref_words, nonempty, count = sums[:, 2 * max_n], sums[:, 2 * max_n + 1], sums[:, 2 * max_n + 2]
    raw = (credited / np.maximum(sys_ngrams, 1.0)).sum(axis=1)
    ref_len = ref_words / (nonempty / count)
    ratio = sys_ngrams[:, 0] / ref_len
    with np.errstate(divide="ignore", invalid="ignore"):
        penalty = np.where(
            ratio >= 1,
            1.0,
            np.where(ratio <= 0, 0.0, np.exp(-NIST_BETA * np.log(np.maximum(ratio, 1e-300)) ** 2)),
        )
    return raw * penalty


def _nist_statistics(systems: Sequence[list[str]], references: list[list[str]]) -> list[ItemStatistics]:
    from prefixlab.metrics.nist import NIST_MAX_NGRAM, nist_item_statistics

    out = []
    for rows in nist_item_statistics(systems, references, NIST_MAX_NGRAM):
        values = np.column_stack([np.asarray(rows, dtype=np.float64), np.ones(len(rows))])
        out.append(ItemStatistics("NIST", values, nist_scores, FIXED_WEIGHTS, NOTES["NIST"]))
    return out


def meteor_scores(sums: np.ndarray) -> np.ndarray:
    """METEOR 1.5 (the jar's ``computeMetrics``) from summed rows of `_meteor_rows` (the jar's 23 statistics)."""
    p = METEOR_PARAMETERS
    alpha, beta, gamma, delta = p["alpha"], p["beta"], p["gamma"], p["delta"]
    weights = np.asarray(p["weights"])
    test_len, ref_len, test_fn, ref_fn = sums[:, 0], sums[:, 1], sums[:, 2], sums[:, 3]
    stages = sums[:, 4:20].reshape(
        -1, 4, 4
    )  # stage x (test content, ref content, test function, ref function)
    chunks = sums[:, 20]
    test_weighted_len = delta * (test_len - test_fn) + (1.0 - delta) * test_fn
    ref_weighted_len = delta * (ref_len - ref_fn) + (1.0 - delta) * ref_fn
    test_matches = (stages[:, :, 0] * weights * delta).sum(axis=1) + (
        stages[:, :, 2] * weights * (1 - delta)
    ).sum(axis=1)
    ref_matches = (stages[:, :, 1] * weights * delta).sum(axis=1) + (
        stages[:, :, 3] * weights * (1 - delta)
    ).sum(axis=1)
    test_total = stages[:, :, 0].sum(axis=1) + stages[:, :, 2].sum(axis=1)
    ref_total = stages[:, :, 1].sum(axis=1) + stages[:, :, 3].sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = test_matches / test_weighted_len
        recall = ref_matches / ref_weighted_len
        fmean = 1.0 / (((1.0 - alpha) / precision) + (alpha / recall))
        perfect = (test_total == test_len) & (ref_total == ref_len) & (chunks == 1)
        frag = np.where(perfect, 0.0, chunks / ((test_total + ref_total) / 2))
        score = fmean * (1.0 - gamma * frag**beta)
    return np.where(np.isnan(score), 0.0, np.maximum(score, 0.0))


def _meteor_rows(stats: list[list[float]]) -> np.ndarray:
    """The jar's per-segment statistics, with the chunks of a perfectly matched segment set to 0.

    When the jar sums segments (``MeteorStats.addStats``) it skips the chunk count of any segment whose every
    word matched in one chunk; zeroing it here makes the aggregate a plain sum.
    """
    rows = np.asarray(stats, dtype=np.float64)
    if rows.ndim != 2 or rows.shape[1] != 23:
        raise ValueError(f"expected 23 METEOR statistics per segment, got shape {rows.shape}")
    stages = rows[:, 4:20].reshape(-1, 4, 4)
    test_total = stages[:, :, 0].sum(axis=1) + stages[:, :, 2].sum(axis=1)
    ref_total = stages[:, :, 1].sum(axis=1) + stages[:, :, 3].sum(axis=1)
    perfect = (test_total == rows[:, 0]) & (ref_total == rows[:, 1]) & (rows[:, 20] == 1)
    rows = rows.copy()
    rows[perfect, 20] = 0.0
    return rows


def _coco_statistics(
    systems: Sequence[list[str]], references: list[list[str]], metrics: Sequence[str], meteor: Any = None
) -> list[dict[str, ItemStatistics]]:
    from prefixlab.metrics.coco import coco_item_statistics

    raw = coco_item_statistics(systems, references, meteor, metrics)
    out: list[dict[str, ItemStatistics]] = []
    for per_system in raw:
        stats: dict[str, ItemStatistics] = {}
        if "ROUGE_L" in per_system:
            stats["ROUGE_L"] = mean_statistics("ROUGE_L", per_system["ROUGE_L"][1], note=NOTES["ROUGE_L/e2e"])
        if "CIDEr" in per_system:
            stats["CIDEr"] = mean_statistics(
                "CIDEr", per_system["CIDEr"][1], resampling=FIXED_WEIGHTS, note=NOTES["CIDEr"]
            )
        if "METEOR" in per_system:
            corpus, seg_stats = per_system["METEOR"]
            item = ItemStatistics("METEOR", _meteor_rows(seg_stats), meteor_scores, EXACT, NOTES["METEOR"])  # type: ignore[arg-type]
            ours = item.score()
            if not math.isclose(
                ours, corpus, rel_tol=_METEOR_CHECK_TOLERANCE, abs_tol=_METEOR_CHECK_TOLERANCE
            ):
                raise RuntimeError(
                    f"METEOR from summed segment statistics ({ours!r}) differs from the jar's corpus score "
                    f"({corpus!r}): this METEOR version aggregates differently; cannot resample it exactly"
                )
            stats["METEOR"] = item
        out.append(stats)
    return out


def _rouge_statistics(
    systems: Sequence[list[str]], references: list[list[str]], metrics: Sequence[str]
) -> list[dict[str, ItemStatistics]]:
    from prefixlab.metrics.rouge import rouge_item_scores

    out = []
    for outputs in systems:
        scores = rouge_item_scores(outputs, references)
        out.append({m: mean_statistics(m, scores[m], scale=100.0, note=NOTES["rouge"]) for m in metrics})
    return out


def item_statistics(
    suite: str,
    systems: Sequence[list[str]],
    references: list[list[str]],
    metrics: Sequence[str] | None = None,
    meteor: Any = None,
) -> list[dict[str, ItemStatistics]]:
    """Per-item statistics of each system (outputs in test-set order) on the same references.

    Args:
        suite: ``"e2e"`` or ``"rouge"``.
        systems: one list of outputs per system, each aligned with ``references``.
        references: the references of each item (E2E: all references of the MR).
        metrics: names from `SUITE_METRICS` (default: `default_metrics`).
        meteor: an open `prefixlab.metrics.coco.meteor_scorer` to reuse (default: one is started when
            METEOR is asked for, and stopped after).

    Returns:
        One ``{metric: ItemStatistics}`` per system. Java is needed only for METEOR, ROUGE_L and CIDEr of
        the E2E suite (one JVM for METEOR, references tokenized once for all systems).
    """
    from prefixlab.metrics.validation import check_multi_references, check_outputs

    names = resolve_metrics(suite, metrics)
    if not systems:
        raise ValueError("no systems to decompose")
    checked = [check_outputs(outputs) for outputs in systems]
    references = check_multi_references(references, len(checked[0]))
    for i, outputs in enumerate(checked):
        if len(outputs) != len(references):
            raise ValueError(f"system {i} has {len(outputs)} outputs for {len(references)} items")
    result: list[dict[str, ItemStatistics]] = [{} for _ in checked]
    if suite == "rouge":
        for per_system, stats in zip(result, _rouge_statistics(checked, references, names), strict=True):
            per_system.update(stats)
    else:
        if "BLEU" in names:
            for per_system, stats in zip(result, _bleu_statistics(checked, references), strict=True):
                per_system["BLEU"] = stats
        if "NIST" in names:
            for per_system, stats in zip(result, _nist_statistics(checked, references), strict=True):
                per_system["NIST"] = stats
        coco = [m for m in ("METEOR", "ROUGE_L", "CIDEr") if m in names]
        if coco:
            coco_stats = _coco_statistics(checked, references, coco, meteor)
            for per_system, stats in zip(result, coco_stats, strict=True):
                per_system.update(stats)
    return [{m: per_system[m] for m in names} for per_system in result]
