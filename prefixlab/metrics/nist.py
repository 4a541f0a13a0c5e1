"""Corpus NIST (5-gram) exactly as mteval-v13a-sig.pl in the official E2E script computes it.

No package reproduces this number (NLTK's NIST differs), so it is written out here from the Perl:

* Text: mteval 13a tokens with ASCII-only lowercasing (`prefixlab.metrics.mteval_text`).
* Information weights from the n-gram counts over **all** references of all segments::

      info(w1..wn) = log2(count(w1..wn-1) / count(w1..wn))      n > 1
      info(w)      = log2(total reference words / count(w))      n = 1

  (Perl quirk kept: when the (n-1)-gram prefix is the single token ``"0"``, which Perl treats as
  false, the unigram formula is used.)
* Per segment, each system n-gram is credited ``min(count in output, max count in any one reference
  of the segment)`` times its information weight.
* ``score = sum_{n=1..5} (credited information of order n) / max(1, system n-grams of order n)``
  summed over the whole corpus, times the length penalty
  ``exp(-beta * ln(min(1, sys_len / ref_len))**2)`` with ``beta = -ln(0.5) / ln(1.5)**2`` (0.5 at a
  ratio of 2/3).
* ``ref_len`` is the total number of reference words divided by the average number of (non-empty)
  references per segment -- the E2E version of the script counts the references of each MR instead
  of dividing by the number of reference sets (which the E2E script pads with empty segments).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from prefixlab.metrics.errors import MetricInputError
from prefixlab.metrics.mteval_text import mteval_tokenize

__all__ = [
    "NIST_BETA",
    "NIST_MAX_NGRAM",
    "NistResult",
    "corpus_nist",
    "ngram_information",
    "nist_item_statistics",
    "nist_length_penalty",
]

NIST_MAX_NGRAM = 5
NIST_BETA = -math.log(0.5) / math.log(1.5) ** 2

Ngram = tuple[str, ...]


@dataclass(frozen=True)
class NistResult:
    """Corpus NIST with its length statistics (``ref_len`` is the effective reference length)."""

    score: float
    brevity_penalty: float
    sys_len: int
    ref_len: float


def nist_length_penalty(ratio: float) -> float:
    """mteval's NIST brevity factor for ``ratio = sys_len / ref_len`` (1 at >= 1, 0.5 at 2/3, 0 at <= 0)."""
    if ratio >= 1:
        return 1.0
    if ratio <= 0:
        return 0.0
    return math.exp(-NIST_BETA * math.log(ratio) ** 2)


def _ngram_counts(tokens: list[str], max_n: int) -> Counter[Ngram]:
    counts: Counter[Ngram] = Counter()
    for n in range(1, max_n + 1):
        for i in range(len(tokens) - n + 1):
            counts[tuple(tokens[i : i + n])] += 1
    return counts


def ngram_information(
    tokenized_references: list[list[list[str]]], max_n: int = NIST_MAX_NGRAM
) -> dict[Ngram, float]:
    """Information weight (bits) of every reference n-gram up to ``max_n``, from all references."""
    counts: Counter[Ngram] = Counter()
    total_words = 0
    for group in tokenized_references:
        for ref in group:
            total_words += len(ref)
            counts.update(_ngram_counts(ref, max_n))
    info: dict[Ngram, float] = {}
    for ngram, count in counts.items():
        prefix = ngram[:-1]
        if prefix and prefix != ("0",):
            info[ngram] = -math.log(count / counts[prefix]) / math.log(2)
        else:
            info[ngram] = -math.log(count / total_words) / math.log(2)
    return info


def corpus_nist(outputs: list[str], references: list[list[str]], max_n: int = NIST_MAX_NGRAM) -> NistResult:
    """Multi-reference corpus NIST exactly as mteval-v13a-sig.pl in the E2E script.

    Inputs must already be validated (see `prefixlab.metrics.validation`).
    """
    tok_refs = [[mteval_tokenize(ref) for ref in group] for group in references]
    info = ngram_information(tok_refs, max_n)

    credited_info = [0.0] * (max_n + 1)
    sys_ngrams = [0] * (max_n + 1)
    ref_words = 0
    nonempty_refs = 0
    for output, group in zip(outputs, tok_refs, strict=True):
        tokens = mteval_tokenize(output)
        for n in range(1, max_n + 1):
            sys_ngrams[n] += max(len(tokens) - n + 1, 0)
        max_ref_counts: dict[Ngram, int] = {}
        for ref in group:
            ref_words += len(ref)
            nonempty_refs += bool(ref)
            for ngram, count in _ngram_counts(ref, max_n).items():
                if count > max_ref_counts.get(ngram, 0):
                    max_ref_counts[ngram] = count
        for ngram, count in _ngram_counts(tokens, max_n).items():
            if ngram in max_ref_counts:
                credited_info[len(ngram)] += info[ngram] * min(count, max_ref_counts[ngram])

    if ref_words == 0:
        raise MetricInputError(
            "the references contain no tokens after mteval tokenization: NIST is undefined"
        )
    score = sum(credited_info[n] / max(sys_ngrams[n], 1) for n in range(1, max_n + 1))
    avg_refs_per_segment = nonempty_refs / len(outputs)
    ref_len = ref_words / avg_refs_per_segment
    penalty = nist_length_penalty(sys_ngrams[1] / ref_len)
    return NistResult(score=score * penalty, brevity_penalty=penalty, sys_len=sys_ngrams[1], ref_len=ref_len)


def nist_item_statistics(
    systems: Sequence[list[str]], references: list[list[str]], max_n: int = NIST_MAX_NGRAM
) -> list[list[list[float]]]:
    """Per-segment NIST statistics of each system, one row per output, whose column sums give `corpus_nist`.

    ``systems``: one list of outputs per system, all against ``references``. Row: ``[credited information
    of order 1..max_n, system n-grams of order 1..max_n, reference words, non-empty references]``. The
    score is ``sum_n credited_n / max(1, sys_n)`` times the length penalty of ``sys_1 / (ref_words /
    (non_empty_refs / segments))``, as `corpus_nist` computes it from the same sums (up to floating-point
    summation order). The information weights come from the references of all segments given here.
    Inputs must already be validated.
    """
    tok_refs = [[mteval_tokenize(ref) for ref in group] for group in references]
    info = ngram_information(tok_refs, max_n)
    segment_refs: list[tuple[dict[Ngram, int], float, float]] = []
    for group in tok_refs:
        max_ref_counts: dict[Ngram, int] = {}
        for ref in group:
            for ngram, count in _ngram_counts(ref, max_n).items():
                if count > max_ref_counts.get(ngram, 0):
                    max_ref_counts[ngram] = count
        segment_refs.append(
            (max_ref_counts, float(sum(len(r) for r in group)), float(sum(bool(r) for r in group)))
        )
    result: list[list[list[float]]] = []
    for outputs in systems:
        rows: list[list[float]] = []
        for output, (max_ref_counts, ref_words, nonempty) in zip(outputs, segment_refs, strict=True):
            tokens = mteval_tokenize(output)
            credited = [0.0] * max_n
            for ngram, count in _ngram_counts(tokens, max_n).items():
                if ngram in max_ref_counts:
                    credited[len(ngram) - 1] += info[ngram] * min(count, max_ref_counts[ngram])
            sys_ngrams = [float(max(len(tokens) - n + 1, 0)) for n in range(1, max_n + 1)]
            rows.append([*credited, *sys_ngrams, ref_words, nonempty])
        result.append(rows)
    return result
