"""The one home of metric-suite facts: names, headline metric, display scale, direction, scorer.

Used by evaluation (which scorer, which headline metric), the app (validation), the report and its styles
(column order, the paper's scale), and the statistics. Torch-free and light: the scorers are imported only when
`score` is called.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class MetricSuite:
    """A task's metric suite.

    `metrics`: the names `score` returns that the paper reports, in its column order. `primary`: the headline
    metric (sweeps, early stopping, the front-page figure). `scale`: multipliers from the values in
    `metrics.json` to the paper's scale (the official E2E script reports BLEU, METEOR and ROUGE-L on 0..1; the
    paper x100). `higher_is_better`: the direction of every metric of the suite. `scorer`: "module:function"
    taking (outputs, references per output) and returning {metric: value}.
    """

    name: str
    metrics: tuple[str, ...]
    primary: str
    scorer: str
    scale: Mapping[str, float] = field(default_factory=dict)
    higher_is_better: bool = True

    def score(self, outputs: list[str], references: list[list[str]]) -> dict[str, float]:
        """Score outputs against their references with this suite's scorer."""
        module, _, function = self.scorer.partition(":")
        scorer: Callable[[list[str], list[list[str]]], dict[str, float]] = getattr(
            importlib.import_module(module), function
        )
        return scorer(outputs, references)

    def scale_of(self, metric: str) -> float:
        """The multiplier from `metrics.json` to the paper's scale for `metric` (1 when unchanged)."""
        return float(self.scale.get(metric, 1.0))


SUITES: dict[str, MetricSuite] = {
    "e2e": MetricSuite(
        name="e2e",
        metrics=("BLEU", "NIST", "METEOR", "ROUGE_L", "CIDEr"),
        primary="BLEU",
        scorer="prefixlab.metrics.e2e:score_e2e",
        scale={"BLEU": 100.0, "METEOR": 100.0, "ROUGE_L": 100.0},
    ),
    "rouge": MetricSuite(
        name="rouge",
        metrics=("ROUGE_1", "ROUGE_2", "ROUGE_L"),
        primary="ROUGE_2",
        scorer="prefixlab.metrics.rouge:score_rouge",
    ),
}


def suite(name: str) -> MetricSuite:
    """The suite called `name`; a clear error naming the known ones."""
    if name not in SUITES:
        raise ValueError(f"unknown metric suite {name!r}; choose one of {sorted(SUITES)}.")
    return SUITES[name]
