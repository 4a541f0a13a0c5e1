"""Per-item decompositions (`prefixlab.stats.decompose`) reproduce the official scores on real E2E data.

Needs ``e2e/testset_w_refs.csv`` and the golden systems under ``$PREFIXLAB_DATA_DIR`` (skipped without
them, failed under CI); the METEOR/ROUGE_L/CIDEr test also needs Java. "Exact" is checked two ways: the
full test set gives the corpus score, and a bootstrap resample (items repeated) gives the metric recomputed
on the resampled corpus. For NIST and CIDEr (corpus weights held fixed) the second is an approximation, and
the test bounds its size.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import pytest
from test_metrics_golden import load_grouped_references, read_lines
from test_tasks_support import require_data

from prefixlab.metrics.bleu import corpus_bleu
from prefixlab.metrics.coco import coco_scores, meteor_scorer
from prefixlab.metrics.nist import corpus_nist
from prefixlab.metrics.rouge import score_rouge
from prefixlab.stats.decompose import item_statistics, meteor_scores
from prefixlab.stats.itemstats import EXACT, FIXED_WEIGHTS

pytestmark = pytest.mark.data

REQUIRED = ("e2e/testset_w_refs.csv", "e2e/golden/template630.txt", "e2e/golden/short630.txt")
GOLDEN = ("template630", "short630")


def golden() -> tuple[dict[str, list[str]], list[list[str]], dict]:
    root = require_data(*REQUIRED, "e2e/golden/official_scores.json")
    references = load_grouped_references(root / "e2e/testset_w_refs.csv")
    systems = {name: read_lines(root / f"e2e/golden/{name}.txt") for name in GOLDEN}
    official = json.loads(Path(root / "e2e/golden/official_scores.json").read_text())
    return systems, references, official


@functools.cache
def golden_bleu_nist() -> list[dict]:
    """BLEU and NIST statistics of both golden systems (computed once for the tests of this module)."""
    systems, references, _ = golden()
    return item_statistics("e2e", list(systems.values()), references, ["BLEU", "NIST"])


def resample(n_items: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """One bootstrap resample: the drawn indices and the (1, n_items) count row."""
    indices = np.random.default_rng(seed).choice(n_items, n_items)
    return indices, np.bincount(indices, minlength=n_items)[None].astype(float)


def test_bleu_and_nist_decompose_to_the_official_corpus_scores() -> None:
    systems, references, official = golden()
    for (name, outputs), stats in zip(systems.items(), golden_bleu_nist(), strict=True):
        assert stats["BLEU"].n_items == 630 and stats["BLEU"].resampling == EXACT
        assert stats["BLEU"].score() == corpus_bleu(outputs, references).score
        assert stats["BLEU"].score() == pytest.approx(official[name]["BLEU"], abs=1e-13)
        assert stats["NIST"].score() == pytest.approx(corpus_nist(outputs, references).score, rel=1e-12)
        assert stats["NIST"].score() == pytest.approx(official[name]["NIST"], rel=1e-12)
        assert stats["NIST"].resampling == FIXED_WEIGHTS


def test_a_resample_of_bleu_is_bleu_of_the_resampled_corpus_and_nist_nearly() -> None:
    systems, references, _ = golden()
    outputs = systems["template630"]
    stats = golden_bleu_nist()[0]
    for seed in (1, 2):
        indices, counts = resample(len(outputs), seed)
        drawn_outputs, drawn_refs = [outputs[i] for i in indices], [references[i] for i in indices]
        assert stats["BLEU"].resampled(counts)[0] == corpus_bleu(drawn_outputs, drawn_refs).score
        recomputed = corpus_nist(drawn_outputs, drawn_refs).score  # information weights of the resample
        assert stats["NIST"].resampled(counts)[0] == pytest.approx(recomputed, rel=0.01)


def test_rouge_decomposes_exactly() -> None:
    systems, references, _ = golden()
    outputs, refs = systems["short630"][:150], references[:150]
    stats = item_statistics("rouge", [outputs], refs, ["ROUGE_1", "ROUGE_2", "ROUGE_L", "ROUGE_Lsum"])[0]
    official = score_rouge(outputs, refs)
    indices, counts = resample(len(outputs), 3)
    recomputed = score_rouge([outputs[i] for i in indices], [refs[i] for i in indices])
    for metric, item_stats in stats.items():
        assert item_stats.score() == pytest.approx(official[metric], rel=1e-12)
        assert item_stats.resampled(counts)[0] == pytest.approx(recomputed[metric], rel=1e-12)


def test_meteor_rouge_l_and_cider_decompose() -> None:
    """On 60 MRs: METEOR from summed segment statistics is the jar's corpus METEOR, also on a resample;
    ROUGE_L is a mean; CIDEr with fixed document frequencies is within 5% of CIDEr recomputed on a resample
    (3.5% here; about 1% on the 630 MRs of the test set, where the document frequencies move less)."""
    systems, references, _ = golden()
    refs = references[:60]
    # Five outputs copy a reference: perfectly matched segments, whose chunks the jar leaves out of its sums.
    outputs = [group[0] for group in refs[:5]] + systems["template630"][5:60]
    indices, counts = resample(len(outputs), 4)
    with meteor_scorer() as meteor:
        stats = item_statistics("e2e", [outputs], refs, ["METEOR", "ROUGE_L", "CIDEr"], meteor)[0]
        official = coco_scores(outputs, refs, meteor)
        recomputed = coco_scores([outputs[i] for i in indices], [refs[i] for i in indices], meteor)
    for metric in ("METEOR", "ROUGE_L"):
        assert stats[metric].resampling == EXACT
        assert stats[metric].score() == pytest.approx(official[metric], rel=1e-12)
        assert stats[metric].resampled(counts)[0] == pytest.approx(recomputed[metric], rel=1e-12)
    # Why METEOR needs its statistics: its corpus score is not the mean of the segment scores.
    assert abs(meteor_scores(stats["METEOR"].values).mean() - stats["METEOR"].score()) > 1e-3
    assert stats["CIDEr"].resampling == FIXED_WEIGHTS
    assert stats["CIDEr"].score() == pytest.approx(official["CIDEr"], rel=1e-12)
    assert stats["CIDEr"].resampled(counts)[0] == pytest.approx(recomputed["CIDEr"], rel=0.05)
