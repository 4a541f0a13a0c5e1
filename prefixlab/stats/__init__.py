"""Evidence for prefixlab's comparisons: paired tests over test items, intervals over seeds x items.

Torch-free (numpy, sacrebleu and the metric packages only); names are imported on first use.

Per-item statistics (`itemstats`, `decompose`)
    ``item_statistics(suite, systems, references, metrics=None) -> list[dict[str, ItemStatistics]]``:
    each official metric (`prefixlab.metrics`, on its ``metrics.json`` scale) as additive per-item
    statistics and a score function. BLEU, METEOR, ROUGE: exact; NIST and CIDEr: exact decomposition with
    the full test set's information weights / document frequencies held fixed in resamples
    (``resampling == "fixed-weights"``, said in every output). ``mean_statistics(metric, per_item)`` for
    any per-item score (accuracy, a custom metric).

Two runs on the same items (`paired`)
    ``paired_bootstrap(a, b, n_samples=1000, seed=12345) -> PairedResult``
    ``paired_randomization(a, b, n_samples=10000, seed=12345, n_bootstrap=1000) -> PairedResult``
    ``paired_test(a, b, test="bootstrap"|"randomization", n_samples=None, seed=12345)``
    sacrebleu's paired tests on per-item statistics (same draws, same p-values on BLEU; ties counted);
    ``sacrebleu_bleu_p_value(outputs_a, outputs_b, references, test, n_samples, seed)`` runs sacrebleu's
    own ``PairedTest`` on E2E BLEU. ``PairedResult``: ``a``, ``b``, ``difference`` (`Interval`\\ s) and
    ``p_value``.

Seeds x items (`multiboot`, the MultiBERTs multi-bootstrap)
    ``multi_bootstrap(a_per_seed, b_per_seed, n_samples=1000, seed=12345, paired_seeds=False)
    -> MultiBootstrapResult`` (difference, its 95% interval, a two-sided p-value);
    ``interval(per_seed, n_samples=1000, seed=12345) -> Interval`` for one table cell: the mean over
    seeds with its 95% interval over seeds x items.

From run folders (`runs`, what a report calls)
    ``cell_intervals(run_dirs, metrics=None, suite=None, n_samples=1000, seed=12345)
    -> dict[str, Interval]``; ``load_generations(path)``, ``run_statistics(runs, suite, metrics)``,
    ``check_same_items(runs)``.

The command (`command`): ``compare(a_paths, b_paths, metrics, test, n_samples, seed, suite,
paired_seeds) -> Comparison`` behind ``prefixlab compare``.

`Interval` has ``estimate``, ``low``, ``high`` (95% percentile bootstrap interval) and ``bounds()``.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Interval": "resampling",
    "DEFAULT_SEED": "resampling",
    "bootstrap_counts": "resampling",
    "percentile_interval": "resampling",
    "ItemStatistics": "itemstats",
    "mean_statistics": "itemstats",
    "EXACT": "itemstats",
    "FIXED_WEIGHTS": "itemstats",
    "item_statistics": "decompose",
    "SUITE_METRICS": "decompose",
    "PairedResult": "paired",
    "paired_bootstrap": "paired",
    "paired_randomization": "paired",
    "paired_test": "paired",
    "sacrebleu_bleu_p_value": "paired",
    "MultiBootstrapResult": "multiboot",
    "multi_bootstrap": "multiboot",
    "interval": "multiboot",
    "Generations": "runs",
    "RunInputError": "runs",
    "cell_intervals": "runs",
    "check_same_items": "runs",
    "load_generations": "runs",
    "run_statistics": "runs",
    "Comparison": "command",
    "compare": "command",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'prefixlab.stats' has no attribute {name!r}")
    return getattr(importlib.import_module(f"prefixlab.stats.{module}"), name)
