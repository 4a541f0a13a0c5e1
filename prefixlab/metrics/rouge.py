"""ROUGE for summarization (XSum): Google's ``rouge-score`` package, F-measure x 100.

* ROUGE-1, ROUGE-2, ROUGE-L and ROUGE-Lsum F-measures from ``rouge_score.rouge_scorer.RougeScorer``
  with the Porter stemmer (``use_stemmer=True``) and its default tokenizer.
* Corpus score = plain mean over documents (not the bootstrap ``BootstrapAggregator``), x 100.
* ``ROUGE_L`` is sentence-level LCS over the whole text (what the Prefix-Tuning paper reports);
  ``ROUGE_Lsum`` is rouge-score's summary-level LCS with sentences **split on newlines only**: no
  sentence splitter is applied here, so single-line texts get ROUGE_Lsum == ROUGE_L. Put one
  sentence per line in outputs and references for a meaningful ROUGE_Lsum.
* Multiple references: each document scores the maximum F-measure over its references, taken per
  ROUGE type (what ``RougeScorer.score_multi`` does); with one reference this is the plain score.
"""

from __future__ import annotations

from rouge_score import rouge_scorer

from prefixlab.metrics.validation import check_outputs, check_single_or_multi_references

__all__ = ["ROUGE_KEYS", "rouge_item_scores", "score_rouge"]

ROUGE_KEYS: dict[str, str] = {
    "rouge1": "ROUGE_1",
    "rouge2": "ROUGE_2",
    "rougeL": "ROUGE_L",
    "rougeLsum": "ROUGE_Lsum",
}


def score_rouge(
    outputs: list[str], references: list[str] | list[list[str]], *, use_stemmer: bool = True
) -> dict[str, float]:
    """Mean ROUGE F-measures x 100 of ``outputs`` against ``references``.

    Args:
        outputs: one generated summary per document.
        references: one reference string per document, or one list of reference strings per
            document (each document then takes its best reference, per ROUGE type).
        use_stemmer: Porter stemming, on by default as in the paper's evaluation.

    Returns:
        ``{"ROUGE_1", "ROUGE_2", "ROUGE_L", "ROUGE_Lsum"}`` F-measures on a 0..100 scale.

    Raises:
        MetricInputError: counts differ, ``outputs`` is empty, a document has no reference, an
            entry is not a string, or a reference is empty.
    """
    outputs = check_outputs(outputs)
    groups = check_single_or_multi_references(references, len(outputs))
    scorer = rouge_scorer.RougeScorer(list(ROUGE_KEYS), use_stemmer=use_stemmer)
    totals = dict.fromkeys(ROUGE_KEYS, 0.0)
    for output, group in zip(outputs, groups, strict=True):
        per_ref = [scorer.score(ref, output) for ref in group]
        for rouge_type in ROUGE_KEYS:
            totals[rouge_type] += max(scores[rouge_type].fmeasure for scores in per_ref)
    return {key: 100.0 * totals[rouge_type] / len(outputs) for rouge_type, key in ROUGE_KEYS.items()}


def rouge_item_scores(
    outputs: list[str], references: list[str] | list[list[str]], *, use_stemmer: bool = True
) -> dict[str, list[float]]:
    """Each document's ROUGE F-measures (0..1, best reference per type), as `score_rouge` averages them.

    ``100 * sum(scores[key]) / len(outputs)``, summed in order, is `score_rouge`'s value for ``key``.
    Same arguments and errors as `score_rouge`.
    """
    outputs = check_outputs(outputs)
    groups = check_single_or_multi_references(references, len(outputs))
    scorer = rouge_scorer.RougeScorer(list(ROUGE_KEYS), use_stemmer=use_stemmer)
    scores: dict[str, list[float]] = {key: [] for key in ROUGE_KEYS.values()}
    for output, group in zip(outputs, groups, strict=True):
        per_ref = [scorer.score(ref, output) for ref in group]
        for rouge_type, key in ROUGE_KEYS.items():
            scores[key].append(max(s[rouge_type].fmeasure for s in per_ref))
    return scores
