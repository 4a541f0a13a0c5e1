"""METEOR, ROUGE_L and CIDEr as the official E2E script computes them (COCO caption code).

The E2E script runs the COCO caption evaluator (pycocoevalcap): the Stanford PTB tokenizer
(``-preserveLines -lowerCase``, punctuation tokens dropped, ``£`` becomes ``#``) on references and
outputs, then METEOR 1.5 (``-l en -norm``), ROUGE_L (LCS F-measure, beta 1.2, max over references)
and CIDEr-D (document frequencies from the references of every scored MR, so it must be computed over
the whole test set in one call). This module calls pycocoevalcap 1.2's own ``Meteor``, ``Rouge`` and
``Cider`` classes. The PTB tokenizer runs pycocoevalcap's jar with exactly the command, punctuation
list and post-processing of its ``PTBTokenizer``, but writes its temporary file to the system
temporary folder (not into site-packages), checks the Java exit status and the line count, and turns
vertical whitespace that the tokenizer would treat as a line break (``\\r``, ``\\v``, ``\\f``,
U+2028, U+2029) into spaces, like ``\\n``, so that one input line stays one output line.

Both METEOR and the tokenizer need a Java runtime (``java`` on ``PATH``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.meteor.meteor import Meteor
from pycocoevalcap.rouge.rouge import Rouge
from pycocoevalcap.tokenizer import ptbtokenizer

from prefixlab.metrics.errors import MetricBackendError

__all__ = [
    "COCO_METRICS",
    "JAVA_FIX",
    "coco_item_statistics",
    "coco_scores",
    "meteor_scorer",
    "ptb_tokenize",
    "require_java",
]

COCO_METRICS: tuple[str, ...] = ("METEOR", "ROUGE_L", "CIDEr")

JAVA_FIX = (
    "install a Java runtime (JRE 8 or newer) and put `java` on PATH, "
    "e.g. `apt-get install default-jre-headless` (Debian/Ubuntu) or `conda install openjdk`"
)
_PTB_JAR = Path(ptbtokenizer.__file__).resolve().parent / ptbtokenizer.STANFORD_CORENLP_3_4_1_JAR
_PTB_PUNCTUATIONS = frozenset(ptbtokenizer.PUNCTUATIONS)
# Characters the PTB lexer treats as line breaks; the COCO wrapper only replaces "\n".
_LINE_BREAKS = str.maketrans({"\n": " ", "\r": " ", "\v": " ", "\f": " ", "\u2028": " ", "\u2029": " "})


def require_java(purpose: str = "METEOR and the PTB tokenizer") -> str:
    """Return the path of ``java``, or raise `MetricBackendError` naming the fix."""
    java = shutil.which("java")
    if java is None:
        raise MetricBackendError(
            f"Java is required for {purpose}, but no `java` was found on PATH: {JAVA_FIX}"
        )
    return java


def ptb_tokenize(texts: list[str]) -> list[str]:
    """Tokenize like pycocoevalcap's ``PTBTokenizer``: lowercased PTB tokens, punctuation removed."""
    java = require_java("the Stanford PTB tokenizer (used for METEOR, ROUGE_L and CIDEr)")
    with tempfile.TemporaryDirectory(prefix="prefixlab-ptb-") as tmp:
        path = os.path.join(tmp, "sentences.txt")
        with open(path, "wb") as fh:
            fh.write("\n".join(text.translate(_LINE_BREAKS) for text in texts).encode("utf-8"))
        cmd = [
            java,
            "-cp",
            str(_PTB_JAR),
            "edu.stanford.nlp.process.PTBTokenizer",
            "-preserveLines",
            "-lowerCase",
            path,
        ]
        try:
            proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, check=False)
        except OSError as exc:
            raise MetricBackendError(f"could not start the PTB tokenizer ({exc}): {JAVA_FIX}") from exc
    if proc.returncode != 0:
        raise MetricBackendError(
            f"the PTB tokenizer failed (exit {proc.returncode}): {proc.stderr.decode('utf-8', 'replace')[-2000:]}"
        )
    lines = proc.stdout.decode("utf-8").split("\n")
    if len(lines) < len(texts) or any(lines[len(texts) :]):
        raise MetricBackendError(
            f"the PTB tokenizer returned {len(lines)} lines for {len(texts)} inputs; cannot align them"
        )
    return [
        " ".join(w for w in line.rstrip().split(" ") if w not in _PTB_PUNCTUATIONS)
        for line in lines[: len(texts)]
    ]


@contextlib.contextmanager
def meteor_scorer() -> Iterator[Meteor]:
    """pycocoevalcap's METEOR 1.5 scorer, whose Java subprocess is always shut down on exit.

    The JVM needs a few seconds to load METEOR's paraphrase tables; open the scorer early and do
    other work meanwhile (as `prefixlab.metrics.e2e` does) to overlap that start-up.
    """
    require_java("METEOR")
    try:
        scorer = Meteor()
    except OSError as exc:
        raise MetricBackendError(f"could not start METEOR ({exc}): {JAVA_FIX}") from exc
    try:
        yield scorer
    finally:
        _close_meteor(scorer)


def _close_meteor(scorer: Meteor) -> None:
    """Close the pipes and end the Java process (pycocoevalcap only does this in ``__del__``)."""
    proc = scorer.meteor_p
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        with contextlib.suppress(OSError, ValueError):
            if stream is not None:
                stream.close()
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    # compute_score() leaves its lock held when it fails; Meteor.__del__ would then block forever.
    if scorer.lock.locked():
        scorer.lock.release()


def _meteor(scorer: Meteor, gts: dict[int, list[str]], res: dict[int, list[str]]) -> float:
    try:
        score, _ = scorer.compute_score(gts, res)
    except (ValueError, OSError) as exc:  # the jar died: readline() gave b"" or the pipe broke
        code = scorer.meteor_p.poll()
        raise MetricBackendError(f"METEOR (Java) stopped unexpectedly (exit status {code}): {exc}") from exc
    return float(score)


def coco_scores(
    outputs: list[str], references: list[list[str]], meteor: Meteor | None = None
) -> dict[str, float]:
    """METEOR, ROUGE_L (both 0..1) and CIDEr of ``outputs`` against their references, in one call.

    Inputs must already be validated (see `prefixlab.metrics.validation`). ``meteor`` is a scorer
    opened with `meteor_scorer` (one is opened and closed here when it is not given).
    """
    if meteor is None:
        with meteor_scorer() as scorer:
            return coco_scores(outputs, references, scorer)
    flat_refs = [ref for group in references for ref in group]
    tok_flat_refs = ptb_tokenize(flat_refs)
    tok_outputs = ptb_tokenize(outputs)
    gts: dict[int, list[str]] = {}
    start = 0
    for i, group in enumerate(references):
        gts[i] = tok_flat_refs[start : start + len(group)]
        start += len(group)
    res = {i: [out] for i, out in enumerate(tok_outputs)}

    rouge_l, _ = Rouge().compute_score(gts, res)
    cider, _ = Cider().compute_score(gts, res)
    return {"METEOR": _meteor(meteor, gts, res), "ROUGE_L": float(rouge_l), "CIDEr": float(cider)}


def _meteor_statistics(
    scorer: Meteor, gts: dict[int, list[str]], res: dict[int, list[str]]
) -> tuple[float, list[list[float]]]:
    """METEOR's corpus score and each segment's sufficient statistics, as ``Meteor.compute_score`` gets them.

    The same jar protocol as pycocoevalcap's ``compute_score`` (one ``SCORE`` line per segment, then one
    ``EVAL`` line over all their statistics), keeping the statistics: 23 numbers per segment (lengths,
    function words, content/function matches of the four stages, chunks, word matches).
    """
    stat_lines: list[str] = []
    scorer.lock.acquire()
    try:
        try:
            for i in gts:
                stat_lines.append(scorer._stat(res[i][0], gts[i]))
            scorer.meteor_p.stdin.write(("EVAL ||| " + " ||| ".join(stat_lines) + "\n").encode())
            scorer.meteor_p.stdin.flush()
            for _ in gts:
                float(scorer.meteor_p.stdout.readline().strip())
            score = float(scorer.meteor_p.stdout.readline().strip())
        except (ValueError, OSError) as exc:
            code = scorer.meteor_p.poll()
            raise MetricBackendError(
                f"METEOR (Java) stopped unexpectedly (exit status {code}): {exc}"
            ) from exc
    finally:
        scorer.lock.release()
    return score, [[float(x) for x in line.split()] for line in stat_lines]


def coco_item_statistics(
    systems: Sequence[list[str]],
    references: list[list[str]],
    meteor: Meteor | None = None,
    metrics: Sequence[str] = COCO_METRICS,
) -> list[dict[str, tuple[float, list[float] | list[list[float]]]]]:
    """Per-MR scores behind METEOR, ROUGE_L and CIDEr for several systems on the same references.

    For each system (a list of outputs, one per MR) returns ``{metric: (corpus score, per-MR values)}``
    with the corpus score exactly as `coco_scores` computes it. ROUGE_L and CIDEr: the per-MR scores
    (the corpus score is their mean; CIDEr's document frequencies come from all MRs' references).
    METEOR: the per-MR sufficient statistics of the jar (its corpus score is computed from their sums,
    not the mean of segment scores). References are tokenized once; the outputs of all systems in one
    call. Inputs must already be validated; ``meteor`` as in `coco_scores`.
    """
    unknown = sorted(set(metrics) - set(COCO_METRICS))
    if unknown:
        raise ValueError(f"unknown COCO metrics {unknown}; known: {list(COCO_METRICS)}")
    if "METEOR" in metrics and meteor is None:
        with meteor_scorer() as scorer:
            return coco_item_statistics(systems, references, scorer, metrics)
    tok_flat_refs = ptb_tokenize([ref for group in references for ref in group])
    gts: dict[int, list[str]] = {}
    start = 0
    for i, group in enumerate(references):
        gts[i] = tok_flat_refs[start : start + len(group)]
        start += len(group)
    tok_all = ptb_tokenize([out for outputs in systems for out in outputs])
    results: list[dict[str, tuple[float, list[float] | list[list[float]]]]] = []
    offset = 0
    for outputs in systems:
        res = {i: [out] for i, out in enumerate(tok_all[offset : offset + len(outputs)])}
        offset += len(outputs)
        result: dict[str, tuple[float, list[float] | list[list[float]]]] = {}
        if "ROUGE_L" in metrics:
            score, per_item = Rouge().compute_score(gts, res)
            result["ROUGE_L"] = (float(score), [float(x) for x in per_item])
        if "CIDEr" in metrics:
            score, per_item = Cider().compute_score(gts, res)
            result["CIDEr"] = (float(score), [float(x) for x in per_item])
        if "METEOR" in metrics:
            assert meteor is not None
            result["METEOR"] = _meteor_statistics(meteor, gts, res)
        results.append(result)
    return results
