"""The five official E2E NLG Challenge metrics (tuetschek/e2e-metrics, ``measure_scores.py``).

`score_e2e` reproduces the default (Perl mteval-v13a-sig) configuration of the official script:

* BLEU: corpus BLEU-4, mteval 13a tokens, ASCII-only lowercasing, closest reference length
  (`prefixlab.metrics.bleu`, via sacrebleu), 0..1.
* NIST: corpus NIST-5 with the E2E script's reference-length rule (`prefixlab.metrics.nist`).
* METEOR (1.5), ROUGE_L and CIDEr(-D): pycocoevalcap on PTB-tokenized text
  (`prefixlab.metrics.coco`); METEOR and ROUGE_L 0..1.

References are grouped by MR: ``references[i]`` is the list of all references of the MR whose
output is ``outputs[i]``. Agreement with the official script on the two golden systems of the E2E
test set is better than 1e-4 on every metric (see ``tests/test_metrics_golden.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

from prefixlab.metrics.bleu import BleuResult, corpus_bleu
from prefixlab.metrics.coco import coco_scores, meteor_scorer
from prefixlab.metrics.nist import NistResult, corpus_nist
from prefixlab.metrics.validation import check_multi_references, check_outputs

__all__ = ["E2E_METRICS", "E2EReport", "score_e2e", "score_e2e_detailed"]

E2E_METRICS: tuple[str, ...] = ("BLEU", "NIST", "METEOR", "ROUGE_L", "CIDEr")


@dataclass(frozen=True)
class E2EReport:
    """The five E2E scores plus what is worth recording next to them.

    ``bleu_signature`` is sacrebleu's signature of the BLEU configuration, with ``case:lc-ascii``
    (A-Z lowercased, as mteval does); ``bleu`` and ``nist`` hold the length statistics.
    """

    scores: dict[str, float]
    bleu_signature: str
    bleu: BleuResult
    nist: NistResult
    n_outputs: int
    n_references: int


def score_e2e_detailed(outputs: list[str], references: list[list[str]]) -> E2EReport:
    """Score like `score_e2e` and also return the BLEU signature and length statistics."""
    outputs = check_outputs(outputs)
    references = check_multi_references(references, len(outputs))
    # Start METEOR's JVM first (it fails fast without Java); it loads while BLEU and NIST run.
    with meteor_scorer() as meteor:
        bleu = corpus_bleu(outputs, references)
        nist = corpus_nist(outputs, references)
        coco = coco_scores(outputs, references, meteor)
    scores = {"BLEU": bleu.score, "NIST": nist.score, **coco}
    return E2EReport(
        scores={name: scores[name] for name in E2E_METRICS},
        bleu_signature=bleu.signature,
        bleu=bleu,
        nist=nist,
        n_outputs=len(outputs),
        n_references=sum(len(group) for group in references),
    )


def score_e2e(outputs: list[str], references: list[list[str]]) -> dict[str, float]:
    """Official E2E NLG Challenge scores of ``outputs`` against MR-grouped ``references``.

    Args:
        outputs: one system output per MR.
        references: for each output, the list of all references of its MR (at least one).

    Returns:
        ``{"BLEU", "NIST", "METEOR", "ROUGE_L", "CIDEr"}`` on the official script's scales (BLEU,
        METEOR and ROUGE_L in 0..1; NIST and CIDEr raw).

    Raises:
        MetricInputError: counts differ, ``outputs`` is empty, an MR has no references, an entry is
            not a string, or a reference is empty.
        MetricBackendError: Java (needed by METEOR and the PTB tokenizer) is missing or failed.
    """
    return score_e2e_detailed(outputs, references).scores
