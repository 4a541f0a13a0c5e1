"""Runs as the statistics read them: a run folder's (or a bare file's) generations, checked to share test items.

A run folder holds ``generations.jsonl`` (one JSON object per test item: ``source``, ``output``,
``references``) and ``metrics.json`` (``metric_suite``, ``metrics.test``); a bare ``generations.jsonl`` works
too, with the suite named by the caller. `run_statistics` decomposes runs into per-item statistics (one Java
start for all of them); `cell_intervals` gives a report's table cell (several seeds of one setting) its
mean-over-seeds score and 95% interval over seeds x items.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from prefixlab.jsonl import json_records
from prefixlab.stats.decompose import SUITE_METRICS, item_statistics
from prefixlab.stats.itemstats import ItemStatistics
from prefixlab.stats.multiboot import DEFAULT_SAMPLES, interval
from prefixlab.stats.resampling import DEFAULT_SEED, Interval

__all__ = [
    "GENERATIONS_FILE",
    "METRICS_FILE",
    "Generations",
    "RunInputError",
    "cell_intervals",
    "check_same_items",
    "load_generations",
    "resolve_suite",
    "run_statistics",
]

GENERATIONS_FILE = (
    "generations.jsonl"  # prefixlab.runs.GENERATIONS_FILE (not imported: that module imports torch)
)
METRICS_FILE = "metrics.json"


class RunInputError(ValueError):
    """A run folder or generations file is missing, malformed, or not on the same items as the others."""


@dataclass(frozen=True)
class Generations:
    """One run's test outputs: ``sources[i]``, ``outputs[i]`` and ``references[i]`` per test item."""

    path: Path
    sources: list[str]
    outputs: list[str]
    references: list[list[str]]
    suite: str | None = None
    stored_metrics: dict[str, float] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.outputs)


def _read_jsonl(path: Path) -> tuple[list[str], list[str], list[list[str]]]:
    sources: list[str] = []
    outputs: list[str] = []
    references: list[list[str]] = []
    with path.open(encoding="utf-8") as handle:
        needs = "needs source, output, references"
        for number, record in json_records(
            handle, path, ("source", "output", "references"), RunInputError, needs
        ):
            refs = record["references"]
            refs = [refs] if isinstance(refs, str) else refs
            if not isinstance(refs, list) or not all(isinstance(r, str) for r in refs):
                raise RunInputError(f"{path}:{number}: references must be a list of strings")
            if not isinstance(record["output"], str) or not isinstance(record["source"], str):
                raise RunInputError(f"{path}:{number}: source and output must be strings")
            sources.append(record["source"])
            outputs.append(record["output"])
            references.append(refs)
    if not outputs:
        raise RunInputError(f"{path} holds no generations (expected one JSON object per test item)")
    return sources, outputs, references


def load_generations(path: str | os.PathLike[str]) -> Generations:
    """Read a run folder (``generations.jsonl`` + ``metrics.json``) or a bare ``generations.jsonl`` file."""
    path = Path(path)
    suite: str | None = None
    stored: dict[str, float] = {}
    if path.is_dir():
        generations = path / GENERATIONS_FILE
        if not generations.is_file():
            raise RunInputError(f"{path} is a folder without {GENERATIONS_FILE}: not a (finished) run folder")
        metrics_path = path / METRICS_FILE
        if metrics_path.is_file():
            try:
                record = json.loads(metrics_path.read_text(encoding="utf-8"))
            except json.JSONDecodeError as error:
                raise RunInputError(f"{metrics_path}: not valid JSON ({error})") from error
            suite = record.get("metric_suite")
            test = (record.get("metrics") or {}).get("test") or {}
            stored = {k: float(v) for k, v in test.items() if isinstance(v, int | float)}
    elif path.is_file():
        generations = path
    else:
        raise RunInputError(f"no such run folder or generations file: {path}")
    sources, outputs, references = _read_jsonl(generations)
    return Generations(generations, sources, outputs, references, suite, stored)


def _describe(text: str, limit: int = 80) -> str:
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


def check_same_items(runs: Sequence[Generations]) -> None:
    """Raise `RunInputError` naming the first item where a run differs from the first run (source or references)."""
    first = runs[0]
    for other in runs[1:]:
        for i in range(min(len(first), len(other))):
            if first.sources[i] != other.sources[i]:
                raise RunInputError(
                    f"{other.path} and {first.path} are not on the same test items: item {i + 1} has source "
                    f"{_describe(other.sources[i])} in the first and {_describe(first.sources[i])} in the second"
                )
            if first.references[i] != other.references[i]:
                raise RunInputError(
                    f"{other.path} and {first.path} are not on the same test items: item {i + 1} "
                    f"({_describe(first.sources[i])}) has different references"
                )
        if len(first) != len(other):
            longer = first if len(first) > len(other) else other
            k = min(len(first), len(other))
            raise RunInputError(
                f"{other.path} has {len(other)} items but {first.path} has {len(first)}: not the same test items; "
                f"the first unmatched item is item {k + 1} of {longer.path} ({_describe(longer.sources[k])})"
            )


def resolve_suite(runs: Sequence[Generations], suite: str | None = None) -> str:
    """The metric suite: ``suite`` if given (it must agree with every metrics.json), else the runs' own."""
    recorded = {run.suite for run in runs if run.suite}
    if suite is not None:
        if suite not in SUITE_METRICS:
            raise RunInputError(f"unknown metric suite {suite!r}; choose one of {sorted(SUITE_METRICS)}")
        conflicting = sorted(recorded - {suite})
        if conflicting:
            raise RunInputError(f"--suite {suite} but the runs' metrics.json say {', '.join(conflicting)}")
        return suite
    if len(recorded) > 1:
        raise RunInputError(f"the runs use different metric suites: {sorted(recorded)}")
    if not recorded:
        raise RunInputError(
            f"no metrics.json names the metric suite of {runs[0].path}: pass --suite "
            f"({' or '.join(sorted(SUITE_METRICS))})"
        )
    found = recorded.pop()
    if found not in SUITE_METRICS:
        raise RunInputError(f"unknown metric suite {found!r} in metrics.json; known: {sorted(SUITE_METRICS)}")
    return found


def run_statistics(
    runs: Sequence[Generations], suite: str, metrics: Sequence[str] | None = None
) -> list[dict[str, ItemStatistics]]:
    """Per-item statistics of each run (which must share their test items), ``{metric: ItemStatistics}`` each."""
    check_same_items(runs)
    return item_statistics(suite, [run.outputs for run in runs], runs[0].references, metrics)


def cell_intervals(
    paths: Sequence[str | os.PathLike[str]],
    metrics: Sequence[str] | None = None,
    suite: str | None = None,
    n_samples: int = DEFAULT_SAMPLES,
    seed: int | None = DEFAULT_SEED,
) -> dict[str, Interval]:
    """A setting's score per metric, the mean over its runs (seeds), with the 95% interval over seeds x items.

    ``paths``: the setting's run folders (or generations files, then with ``suite``). Values on the scale of
    ``metrics.json``.
    """
    runs = [load_generations(path) for path in paths]
    name = resolve_suite(runs, suite)
    per_run = run_statistics(runs, name, metrics)
    return {metric: interval([stats[metric] for stats in per_run], n_samples, seed) for metric in per_run[0]}
