"""`prefixlab compare`: two runs (or two settings of several seeds) on the same test items, with evidence.

    prefixlab compare RUN_A RUN_B                          # paired bootstrap over test items, every metric
    prefixlab compare RUN_A RUN_B --test randomization --metric BLEU --json
    prefixlab compare --a runs/s/len5_seed* --b runs/s/len1_seed*      # seeds x items (multi-bootstrap)

A run is a run folder (``generations.jsonl`` + ``metrics.json``) or a ``generations.jsonl`` file (then
``--suite``). One run a side: paired bootstrap (default) or approximate randomization over test items
(`prefixlab.stats.paired`: sacrebleu's tests on per-item statistics; for BLEU sacrebleu's own ``PairedTest``
p-value is shown too). Several runs on a side: the multi-bootstrap over seeds and items (`prefixlab.stats.multiboot`). Prints each side's score with its 95%
interval, the difference A - B with its interval, and the p-value; ``--json`` prints one object whose
``metrics`` maps each metric to ``a``, ``b``, ``difference``, ``ci95``, ``p_value`` (and details), on the
scale of ``metrics.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from prefixlab.stats.resampling import DEFAULT_SEED

__all__ = ["Comparison", "add_arguments", "compare", "format_text", "run_command"]

STORED_TOLERANCE = 1e-6


@dataclass
class Comparison:
    """The result of `compare`: one `PairedResult` or `MultiBootstrapResult` per metric."""

    a: list[str]
    b: list[str]
    suite: str
    method: str
    n_items: int
    n_samples: int
    seed: int
    paired_seeds: bool
    results: dict[str, Any]
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The ``--json`` object."""
        return {
            "a": self.a,
            "b": self.b,
            "suite": self.suite,
            "method": self.method,
            "items": self.n_items,
            "samples": self.n_samples,
            "seed": self.seed,
            "paired_seeds": self.paired_seeds,
            "metrics": {name: result.to_dict() for name, result in self.results.items()},
            "warnings": self.warnings,
        }


def _stored_warnings(runs: Sequence[Any], per_run: Sequence[dict[str, Any]]) -> list[str]:
    warnings = []
    for run, stats in zip(runs, per_run, strict=True):
        for metric, item_stats in stats.items():
            if metric not in run.stored_metrics:
                continue
            ours, stored = item_stats.score(), run.stored_metrics[metric]
            if not math.isclose(ours, stored, rel_tol=STORED_TOLERANCE, abs_tol=STORED_TOLERANCE):
                warnings.append(
                    f"{run.path}: {metric} recomputed from the generations is {ours:.6g} but metrics.json "
                    f"says {stored:.6g} (different metric code or data?); the comparison uses the recomputed one"
                )
    return warnings


def compare(
    a: Sequence[str | os.PathLike[str]],
    b: Sequence[str | os.PathLike[str]],
    metrics: Sequence[str] | None = None,
    test: str = "bootstrap",
    n_samples: int | None = None,
    seed: int = DEFAULT_SEED,
    suite: str | None = None,
    paired_seeds: bool = False,
) -> Comparison:
    """Compare runs ``a`` with runs ``b`` (one or more each, all on the same test items).

    One run a side: `paired_test` (``test`` "bootstrap" or "randomization"; for E2E BLEU also sacrebleu's own
    ``PairedTest`` p-value, ``sacrebleu_p_value``). Several: `multi_bootstrap` (``test`` must be "bootstrap"). ``n_samples`` None: 1,000
    bootstrap resamples / 10,000 randomization trials. Raises `RunInputError` for bad or mismatched inputs.
    """
    from prefixlab.stats.decompose import resolve_metrics
    from prefixlab.stats.multiboot import multi_bootstrap
    from prefixlab.stats.paired import DEFAULT_SAMPLES, TESTS, paired_test, sacrebleu_bleu_p_value
    from prefixlab.stats.runs import (
        RunInputError,
        check_same_items,
        load_generations,
        resolve_suite,
        run_statistics,
    )

    if not a or not b:
        raise RunInputError("need at least one run on each side (A and B)")
    if test not in TESTS:
        raise RunInputError(f"unknown test {test!r}; choose one of {list(TESTS)}")
    if n_samples is not None and n_samples < 1:
        raise RunInputError(f"--samples must be >= 1, got {n_samples}")
    if seed < 1:
        raise RunInputError(f"--seed must be >= 1 (sacrebleu treats 0 as unseeded), got {seed}")
    runs_a = [load_generations(path) for path in a]
    runs_b = [load_generations(path) for path in b]
    runs = runs_a + runs_b
    check_same_items(runs)
    name = resolve_suite(runs, suite)
    try:
        names = resolve_metrics(name, metrics)
    except ValueError as error:
        raise RunInputError(f"{error} (repeat --metric NAME, and give the runs before it)") from error
    per_run = run_statistics(runs, name, names)
    stats_a, stats_b = per_run[: len(runs_a)], per_run[len(runs_a) :]
    single = len(runs_a) == 1 and len(runs_b) == 1
    results: dict[str, Any] = {}
    if single:
        samples = n_samples or DEFAULT_SAMPLES[test]
        method = (
            "paired bootstrap over test items"
            if test == "bootstrap"
            else "approximate randomization over test items"
        )
        for metric in names:
            result = paired_test(stats_a[0][metric], stats_b[0][metric], test, samples, seed)
            if metric == "BLEU" and name == "e2e":
                p_value, signature = sacrebleu_bleu_p_value(
                    runs_a[0].outputs,
                    runs_b[0].outputs,
                    runs_a[0].references,
                    test,
                    samples,
                    seed,
                )
                result = _replace(result, sacrebleu_p_value=p_value, signature=signature)
            results[metric] = result
    else:
        if test != "bootstrap":
            raise RunInputError(
                "with several runs on a side the test is the multi-bootstrap over seeds and items; "
                "approximate randomization needs one run per side (drop --test randomization)"
            )
        samples = n_samples or 1000
        if paired_seeds and len(runs_a) != len(runs_b):
            raise RunInputError(
                f"--paired-seeds needs as many runs on both sides (A: {len(runs_a)}, B: {len(runs_b)})"
            )
        method = "multi-bootstrap over seeds and test items (" + (
            "seeds paired)" if paired_seeds else "seeds drawn independently for A and B)"
        )
        for metric in names:
            results[metric] = multi_bootstrap(
                [s[metric] for s in stats_a], [s[metric] for s in stats_b], samples, seed, paired_seeds
            )
    return Comparison(
        a=[str(run.path) for run in runs_a],
        b=[str(run.path) for run in runs_b],
        suite=name,
        method=method,
        n_items=len(runs[0]),
        n_samples=samples,
        seed=seed,
        paired_seeds=paired_seeds and not single,
        results=results,
        warnings=_stored_warnings(runs, per_run),
    )


def _replace(result: Any, **changes: Any) -> Any:
    import dataclasses

    return dataclasses.replace(result, **changes)


def _number(value: float, signed: bool = False) -> str:
    text = f"{value:+.4f}" if signed else f"{value:.4f}"
    return text


def _cell(interval: Any, signed: bool = False) -> str:
    return f"{_number(interval.estimate, signed)} [{_number(interval.low, signed)}, {_number(interval.high, signed)}]"


def _p(value: float) -> str:
    return f"{value:.4g}"


def format_text(comparison: Comparison) -> str:
    """The human-readable table `prefixlab compare` prints."""
    from prefixlab.stats.itemstats import EXACT

    def side(paths: list[str]) -> str:
        if len(paths) == 1:
            return paths[0]
        return f"{len(paths)} runs (seeds, score = mean over them): " + ", ".join(paths)

    lines = [
        f"A: {side(comparison.a)}",
        f"B: {side(comparison.b)}",
        f"{comparison.n_items} test items, {comparison.suite} metrics (scale of metrics.json); {comparison.method}, "
        f"{comparison.n_samples:,} samples, seed {comparison.seed}; 95% percentile intervals",
        "",
    ]
    marks = {}
    rows = [("metric", "A [95% CI]", "B [95% CI]", "A - B [95% CI]", "p")]
    for metric, result in comparison.results.items():
        mark = "" if result.resampling == EXACT else "*"
        if mark:
            marks[metric] = result.note
        rows.append(
            (
                metric + mark,
                _cell(result.a),
                _cell(result.b),
                _cell(result.difference, signed=True),
                _p(result.p_value),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    lines.append("")
    for metric, result in comparison.results.items():
        signature = getattr(result, "signature", None)
        if signature:
            statistic = "Moses statistic, " if result.test == "bootstrap" else ""
            lines.append(
                f"{metric}: sacrebleu's own PairedTest on the same draws: p = {_p(result.sacrebleu_p_value)} "
                f"({statistic}ties not counted; {signature})"
            )
    for metric, note in marks.items():
        lines.append(f"* {metric}: {note}")
    for warning in comparison.warnings:
        lines.append(f"warning: {warning}")
    return "\n".join(lines).rstrip() + "\n"


def _comma_list(value: str) -> list[str]:
    return [part for part in value.split(",") if part]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `prefixlab compare`."""
    parser.add_argument(
        "runs",
        nargs="*",
        metavar="RUN",
        help="A and B: two run folders or generations.jsonl files (same items)",
    )
    parser.add_argument(
        "--a", dest="a", action="extend", nargs="+", metavar="RUN", default=[],
        help="runs of setting A (several: seeds, compared by the seeds x items multi-bootstrap)",
    )  # fmt: skip
    parser.add_argument(
        "--b", dest="b", action="extend", nargs="+", metavar="RUN", default=[], help="runs of setting B"
    )
    parser.add_argument(
        "--metric", action="extend", type=_comma_list, default=[], metavar="NAME",
        help="metric(s) to compare, repeatable or comma-separated (default: the suite's reported metrics)",
    )  # fmt: skip
    parser.add_argument(
        "--test", choices=("bootstrap", "randomization"), default="bootstrap",
        help="one run a side: paired bootstrap (default) or approximate randomization",
    )  # fmt: skip
    parser.add_argument(
        "--samples", type=int, default=None,
        help="resamples (default: 1000 for bootstrap, 10000 randomization trials)",
    )  # fmt: skip
    parser.add_argument(
        "--seed", type=int, default=DEFAULT_SEED, help=f"resampling seed (default {DEFAULT_SEED})"
    )
    parser.add_argument("--suite", choices=("e2e", "rouge"), default=None, help="metric suite for bare files")
    parser.add_argument(
        "--paired-seeds", action="store_true", help="several runs a side: seed i of A goes with seed i of B"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")


def run_command(args: argparse.Namespace) -> int:
    """Run `prefixlab compare` from parsed arguments; input errors print one line and return 2."""
    from prefixlab.stats.runs import RunInputError

    try:
        if args.runs and (args.a or args.b):
            raise RunInputError("give A and B either as two positional runs or with --a/--b, not both")
        if args.runs:
            if len(args.runs) != 2:
                raise RunInputError(f"expected two runs (A B), got {len(args.runs)}: {' '.join(args.runs)}")
            a, b = [args.runs[0]], [args.runs[1]]
        else:
            a, b = args.a, args.b
            if not a or not b:
                raise RunInputError("give two runs (prefixlab compare A B) or --a RUN... --b RUN...")
        comparison = compare(
            a, b, args.metric or None, args.test, args.samples, args.seed, args.suite, args.paired_seeds
        )
    except RunInputError as error:
        print(f"prefixlab compare: {error}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(comparison.to_dict(), indent=2))
    else:
        print(format_text(comparison), end="")
    return 0
