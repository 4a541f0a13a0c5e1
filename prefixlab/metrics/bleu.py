"""Corpus BLEU as the official E2E script computes it (mteval-v13a via sacrebleu).

The E2E script writes one mteval reference set per reference position and pads MRs that have fewer
references with empty segments, which mteval then ignores when it picks the closest reference
length. sacrebleu reproduces this exactly when the padding is ``None`` (an empty string would count
as a length-0 reference), with 13a tokenization, "exp" smoothing (= mteval's) and ASCII-only
lowercasing (see `prefixlab.metrics.mteval_text`).

Known corner case: sacrebleu stops at the first n-gram order with no system n-grams at all (a corpus
with fewer than four tokens in total) where mteval would keep a factor of 1; irrelevant for any real
test set.
"""

from __future__ import annotations

from dataclasses import dataclass

from sacrebleu.metrics import BLEU

from prefixlab.metrics.mteval_text import mteval_normalize

__all__ = [
    "BleuResult",
    "corpus_bleu",
    "mteval_bleu",
    "mteval_bleu_inputs",
    "reference_streams",
]


@dataclass(frozen=True)
class BleuResult:
    """Corpus BLEU on the 0..1 scale, with the sacrebleu signature and the length statistics."""

    score: float
    signature: str
    brevity_penalty: float
    sys_len: int
    ref_len: int
    precisions: tuple[float, ...]


def reference_streams(references: list[list[str]]) -> list[list[str | None]]:
    """Transpose per-MR reference lists into sacrebleu streams, padding short MRs with ``None``.

    ``[["a", "b"], ["c"]]`` becomes ``[["a", "c"], ["b", None]]``: stream k holds the k-th
    reference of every MR.
    """
    n_streams = max(len(group) for group in references)
    return [[group[k] if k < len(group) else None for group in references] for k in range(n_streams)]


def mteval_bleu(references: list[list[str | None]] | None = None) -> BLEU:
    """The sacrebleu BLEU object configured as mteval-v13a (13a tokens, "exp" smoothing, no lowercasing).

    Feed it the text of `mteval_bleu_inputs` (lowercased A-Z already); ``references`` (streams) are
    cached by sacrebleu for repeated scoring, e.g. in its paired tests.
    """
    return BLEU(lowercase=False, tokenize="13a", smooth_method="exp", references=references)


def mteval_bleu_inputs(
    outputs: list[str], references: list[list[str]]
) -> tuple[list[str], list[list[str | None]]]:
    """Outputs and reference streams normalised as mteval does, ready for `mteval_bleu` (or sacrebleu's tests)."""
    hyps = [mteval_normalize(out) for out in outputs]
    streams = [
        [None if ref is None else mteval_normalize(ref) for ref in stream]
        for stream in reference_streams(references)
    ]
    return hyps, streams


def corpus_bleu(outputs: list[str], references: list[list[str]]) -> BleuResult:
    """Multi-reference corpus BLEU (0..1) exactly as mteval-v13a-sig.pl in the E2E script.

    Inputs must already be validated (see `prefixlab.metrics.validation`).
    """
    metric = mteval_bleu()
    hyps, streams = mteval_bleu_inputs(outputs, references)
    result = metric.corpus_score(hyps, streams)
    signature = metric.get_signature()
    signature.info["case"] = "lc-ascii"  # we lowercased A-Z ourselves, as mteval does
    return BleuResult(
        score=result.score / 100.0,
        signature=str(signature),
        brevity_penalty=float(result.bp),
        sys_len=int(result.sys_len),
        ref_len=int(result.ref_len),
        precisions=tuple(p / 100.0 for p in result.precisions),
    )
