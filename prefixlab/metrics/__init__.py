"""Evaluation metrics: the official E2E NLG Challenge scores and ROUGE for summarization.

* `score_e2e` -- BLEU, NIST, METEOR, ROUGE_L, CIDEr exactly as the official E2E script computes them
  (`score_e2e_detailed` adds the BLEU signature and length statistics).
* `score_rouge` -- ROUGE-1/2/L/Lsum F-measure x 100 with ``rouge-score`` (stemming, mean over documents).

Bad input raises `MetricInputError` (a ``ValueError``); a missing or failing Java runtime (needed by
METEOR and the PTB tokenizer) raises `MetricBackendError`.
"""

from prefixlab.metrics.e2e import E2E_METRICS, E2EReport, score_e2e, score_e2e_detailed
from prefixlab.metrics.errors import MetricBackendError, MetricInputError
from prefixlab.metrics.rouge import ROUGE_KEYS, score_rouge

__all__ = [
    "E2E_METRICS",
    "ROUGE_KEYS",
    "E2EReport",
    "MetricBackendError",
    "MetricInputError",
    "score_e2e",
    "score_e2e_detailed",
    "score_rouge",
]
