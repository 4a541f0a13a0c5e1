"""Unit tests of prefixlab.metrics on hand-made inputs (no data files needed).

Tests marked ``requires_java`` run the Java METEOR jar / Stanford PTB tokenizer and are skipped
where no ``java`` is on PATH.
"""

from __future__ import annotations

import math
import shutil

import pytest
import sacrebleu
from rouge_score import rouge_scorer

from prefixlab.metrics import (
    E2E_METRICS,
    MetricBackendError,
    MetricInputError,
    score_e2e,
    score_e2e_detailed,
    score_rouge,
)
from prefixlab.metrics import coco as coco_module
from prefixlab.metrics.bleu import corpus_bleu, reference_streams
from prefixlab.metrics.mteval_text import ascii_lower, mteval_tokenize
from prefixlab.metrics.nist import NIST_BETA, corpus_nist, ngram_information, nist_length_penalty

requires_java = pytest.mark.skipif(
    shutil.which("java") is None, reason="needs a Java runtime (`java` on PATH)"
)


# ---------------------------------------------------------------- mteval text handling


def test_ascii_lower_leaves_non_ascii_alone():
    assert ascii_lower("CAFÉ £20 Zizzi") == "cafÉ £20 zizzi"


def test_mteval_tokenize_13a_rules():
    assert mteval_tokenize("Price £20-25, Café.") == ["price", "£20", "-", "25", ",", "café", "."]
    assert mteval_tokenize("It has 3.5 stars") == ["it", "has", "3.5", "stars"]
    # mteval collapses whitespace (newlines included) before tokenizing, so "-\n" stays a hyphen
    # followed by a space; sacrebleu's tokenizer alone would join it as an end-of-line hyphenation.
    assert mteval_tokenize("well-\nknown  place") == ["well-", "known", "place"]


# ---------------------------------------------------------------- BLEU


def test_identical_output_and_reference_gives_bleu_one():
    outputs = ["The Eagle is a coffee shop near Burger King.", "Zizzi is a cheap pub in the city centre."]
    result = corpus_bleu(outputs, [[out] for out in outputs])
    assert result.score == pytest.approx(1.0, abs=1e-12)
    assert result.brevity_penalty == 1.0


def test_bleu_lowercases_ascii_only_like_mteval():
    # mteval's tr/[A-Z]/[a-z]/ leaves "É" uppercase, so "CAFÉ" does not match "café" ...
    hyp = ["the CAFÉ is open today ."]
    assert corpus_bleu(hyp, [["The cafÉ is open today."]]).score == pytest.approx(1.0, abs=1e-12)
    assert corpus_bleu(hyp, [["The café is open today."]]).score < 0.6
    # ... whereas sacrebleu's own lowercase=True (str.lower) would call it a perfect match.
    assert sacrebleu.corpus_bleu(hyp, [["The café is open today."]], lowercase=True).score == pytest.approx(
        100
    )


def test_reference_streams_pad_with_none():
    refs = [["a", "b"], ["c"], ["d", "e", "f"]]
    assert reference_streams(refs) == [["a", "c", "d"], ["b", None, "e"], [None, None, "f"]]


def test_bleu_none_padding_ignores_missing_references():
    # MR 1 has one 10-word reference, MR 2 has two. All n-grams of the outputs match, so
    # BLEU = brevity penalty. Closest reference lengths: 10 (MR 1) + 2 (MR 2) = 12 against an
    # output length of 4 + 2 = 6, so BP = exp(1 - 12/6) = e^-1.
    outputs = ["a b c d", "x y"]
    refs = [["a b c d e f g h i j"], ["x y", "x z"]]
    result = corpus_bleu(outputs, refs)
    assert (result.sys_len, result.ref_len) == (6, 12)
    assert result.score == pytest.approx(math.exp(-1), abs=1e-12)
    # Padding with "" instead would make a length-0 "reference" the closest one for MR 1
    # (|4 - 0| < |4 - 10|): ref_len 2, no brevity penalty -- not what mteval does.
    padded_with_empty = sacrebleu.corpus_bleu(outputs, [["a b c d e f g h i j", "x y"], ["", "x z"]])
    assert padded_with_empty.score == pytest.approx(100)


def test_bleu_signature_records_configuration():
    sig = corpus_bleu(["a b c d"], [["a b c d"]]).signature
    for part in ("nrefs:", "case:lc-ascii", "tok:13a", "smooth:exp", f"version:{sacrebleu.__version__}"):
        assert part in sig


# ---------------------------------------------------------------- NIST


def test_nist_length_penalty_points():
    assert nist_length_penalty(2 / 3) == pytest.approx(0.5, abs=1e-12)
    assert nist_length_penalty(1.0) == 1.0
    assert nist_length_penalty(1.7) == 1.0
    assert nist_length_penalty(0.0) == 0.0


def test_nist_by_hand():
    # Segment 1: output "the cat", references "the cat sat" and "a cat".
    # Segment 2: output "a dog",   reference  "a dog".
    # Reference words (all references): the cat sat a cat a dog -> 7 words.
    #   unigram counts: the 1, cat 2, sat 1, a 2, dog 1
    #   bigram counts:  "the cat" 1, "cat sat" 1, "a cat" 1, "a dog" 1
    # Information (bits):
    #   info(the) = log2(7/1), info(cat) = log2(7/2), info(a) = log2(7/2), info(dog) = log2(7/1)
    #   info(the cat) = log2(count(the)/count(the cat)) = log2(1/1) = 0
    #   info(a dog)   = log2(count(a)/count(a dog))     = log2(2/1) = 1
    # Matches: seg 1 unigrams the, cat and bigram "the cat"; seg 2 unigrams a, dog and bigram "a dog".
    #   unigrams: (log2 7 + log2 3.5 + log2 3.5 + log2 7) / 4 system unigrams = (2 log2 7 - 1) / 2
    #   bigrams:  (0 + 1) / 2 system bigrams                                  = 1/2
    #   3..5-grams: no system n-grams -> 0 / max(0, 1) = 0
    #   sum = log2 7
    # Length: 4 system words; the E2E mteval counts 3 references over 2 segments (1.5 per segment),
    #   so ref_len = 7 / 1.5 = 14/3 and the ratio is 4 / (14/3) = 6/7.
    #   penalty = exp(-beta * ln(6/7)^2), beta = -ln(0.5) / ln(1.5)^2
    result = corpus_nist(["the cat", "a dog"], [["the cat sat", "a cat"], ["a dog"]])
    beta = -math.log(0.5) / math.log(1.5) ** 2
    penalty = math.exp(-beta * math.log(6 / 7) ** 2)
    assert beta == pytest.approx(NIST_BETA)
    assert result.ref_len == pytest.approx(14 / 3)
    assert result.brevity_penalty == pytest.approx(penalty, abs=1e-12)
    assert result.score == pytest.approx(math.log2(7) * penalty, abs=1e-12)  # 2.53973


def test_nist_information_keeps_perl_zero_quirk():
    # Perl treats the prefix "0" as false and falls back to the unigram formula:
    # info("0 x") = log2(4 total words / 1) = 2 instead of log2(count("0") / count("0 x")) = 0.
    info = ngram_information([[["0", "x"], ["a", "x"]]])
    assert info[("0", "x")] == pytest.approx(2.0)
    assert info[("a", "x")] == pytest.approx(0.0)
    assert info[("x",)] == pytest.approx(1.0)


# ---------------------------------------------------------------- ROUGE


def test_rouge_matches_direct_rouge_score_calls():
    outputs = ["The cats were sitting on the mat.", "A storm hit the coast on Monday."]
    refs = ["A cat sat on the mat.", "Storms battered the coast on Monday night."]
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL", "rougeLsum"], use_stemmer=True)
    direct = [scorer.score(ref, out) for ref, out in zip(refs, outputs, strict=True)]
    expected = {
        key: 100 * sum(s[rtype].fmeasure for s in direct) / 2
        for rtype, key in [
            ("rouge1", "ROUGE_1"),
            ("rouge2", "ROUGE_2"),
            ("rougeL", "ROUGE_L"),
            ("rougeLsum", "ROUGE_Lsum"),
        ]
    }
    got = score_rouge(outputs, refs)
    assert got == pytest.approx(expected, abs=1e-12)
    assert set(got) == {"ROUGE_1", "ROUGE_2", "ROUGE_L", "ROUGE_Lsum"}


def test_rouge_uses_stemming():
    assert score_rouge(["cats running"], ["cat runs"])["ROUGE_1"] == pytest.approx(100.0)
    assert score_rouge(["cats running"], ["cat runs"], use_stemmer=False)["ROUGE_1"] == 0.0


def test_rouge_multi_reference_takes_best_reference():
    out = ["the cat sat on the mat"]
    best = score_rouge(out, ["the cat sat on the mat"])
    multi = score_rouge(out, [["a dog barked", "the cat sat on the mat"]])
    assert multi == pytest.approx(best)
    assert multi["ROUGE_1"] == pytest.approx(100.0)


def test_rouge_lsum_splits_on_newlines():
    out = ["the cat sat\nthe dog ran"]
    ref = ["the dog ran\nthe cat sat"]
    scores = score_rouge(out, ref)
    assert scores["ROUGE_Lsum"] == pytest.approx(100.0)  # sentence order does not matter for Lsum
    assert scores["ROUGE_L"] < 100.0


# ---------------------------------------------------------------- bad input


BAD_E2E_INPUTS = [
    pytest.param(["a", "b"], [["a"]], "different counts", id="count-mismatch"),
    pytest.param([], [], "outputs is empty", id="empty-outputs"),
    pytest.param(["a"], [[]], r"references\[0\] is empty", id="mr-without-references"),
    pytest.param(["a", 3], [["a"], ["b"]], r"outputs\[1\] must be a string", id="non-string-output"),
    pytest.param(["a"], [["a", None]], r"references\[0\]\[1\] must be a string", id="non-string-reference"),
    pytest.param(["a"], ["a"], r"references\[0\] must be a list", id="reference-not-grouped"),
    pytest.param(["a"], [["  "]], r"references\[0\]\[0\] is an empty string", id="empty-reference"),
    pytest.param("a b", [["a b"]], "outputs must be a list", id="outputs-is-a-string"),
]


@pytest.mark.parametrize(("outputs", "references", "message"), BAD_E2E_INPUTS)
def test_score_e2e_rejects_bad_input(outputs, references, message):
    with pytest.raises(MetricInputError, match=message):
        score_e2e(outputs, references)


BAD_ROUGE_INPUTS = [
    pytest.param(["a", "b"], ["a"], "different counts", id="count-mismatch"),
    pytest.param([], [], "outputs is empty", id="empty-outputs"),
    pytest.param(["a"], [[]], r"references\[0\] is empty", id="document-without-references"),
    pytest.param([None], ["a"], r"outputs\[0\] must be a string", id="non-string-output"),
    pytest.param(["a"], [1], r"references\[0\] must be a list", id="non-string-reference"),
    pytest.param(["a"], [""], r"references\[0\] is an empty string", id="empty-reference"),
]


@pytest.mark.parametrize(("outputs", "references", "message"), BAD_ROUGE_INPUTS)
def test_score_rouge_rejects_bad_input(outputs, references, message):
    with pytest.raises(MetricInputError, match=message):
        score_rouge(outputs, references)


def test_metric_input_error_is_a_value_error():
    assert issubclass(MetricInputError, ValueError)


def test_missing_java_names_the_fix(monkeypatch):
    monkeypatch.setenv("PATH", "")
    with pytest.raises(MetricBackendError, match="default-jre-headless"):
        score_e2e(["a cat"], [["a cat"]])


# ---------------------------------------------------------------- Java-backed parts


@requires_java
def test_ptb_tokenize_matches_pycocoevalcap_tokenizer():
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    texts = [
        'Price £20-25, café "Blue Spice"!',
        "",
        "The Eagle isn't cheap; it's near the river.",
        "Rated 5 out of 5 (high).",
        "",
    ]
    expected = PTBTokenizer().tokenize({i: [{"caption": t}] for i, t in enumerate(texts)})
    assert coco_module.ptb_tokenize(texts) == [expected[i][0] for i in range(len(texts))]
    assert coco_module.ptb_tokenize(texts)[0] == "price # 20-25 café blue spice"


@requires_java
def test_ptb_tokenize_keeps_one_line_per_text():
    texts = ["a\rb", "c\u2028d", "e\x0cf", "g\nh", "last"]
    assert coco_module.ptb_tokenize(texts) == ["a b", "c d", "e f", "g h", "last"]


@requires_java
def test_score_e2e_end_to_end_and_meteor_process_is_closed(monkeypatch):
    started = []

    class RecordingMeteor(coco_module.Meteor):
        def __init__(self):
            super().__init__()
            started.append(self)

    monkeypatch.setattr(coco_module, "Meteor", RecordingMeteor)
    outputs = [
        "The Eagle is a coffee shop near Burger King.",
        "Zizzi is a cheap pub in the city centre.",
        "Blue Spice is a restaurant by the river.",
        "",  # a model that generated nothing still scores (0 on its own segment)
    ]
    refs = [[out, "Some other reference text."] for out in outputs[:3]] + [["The Wrestlers is a pub."]]
    report = score_e2e_detailed(outputs, refs)
    assert tuple(report.scores) == E2E_METRICS
    assert all(math.isfinite(v) for v in report.scores.values())
    assert report.scores["BLEU"] == pytest.approx(corpus_bleu(outputs, refs).score)
    assert report.scores["NIST"] == pytest.approx(corpus_nist(outputs, refs).score)
    assert report.scores["ROUGE_L"] == pytest.approx(0.75)  # 1, 1, 1 and 0
    assert (
        0.3 < report.scores["METEOR"] < 1.0
    )  # METEOR's fragmentation penalty keeps even exact matches below 1
    assert report.scores["CIDEr"] > 0.0
    assert report.n_outputs == 4 and report.n_references == 7
    assert "tok:13a" in report.bleu_signature
    assert len(started) == 1 and started[0].meteor_p.poll() is not None  # the JVM has exited
