"""Fair model selection: each method gets its own learning rate, chosen on the validation split.

When a row (a method setting: its `label` and any other swept setting but the rate, e.g. `method.reparam` among
runs that share a label) ran at several learning rates, `select_on_validation` keeps only the
runs at the rate whose mean validation metric is best (the metric each run selected its best checkpoint by,
`training.best_metric`: a loss is minimized, anything else maximized); the test scores of the others never
enter a table. A run's value is that of the weights it tested, its best checkpoint (`training.best_value`),
not its last evaluation: a run that stops early has evaluated past its best, and a run recorded before
`metrics.json` kept the best evaluation in `validation` has only the last one there. Rates are compared on
the seeds every one of them ran, so that a grid searched on seed 0 and
then run at more seeds for the winner only (the cheap design on a CPU) is compared seed for seed; without
a shared seed, on each rate's mean over its own seeds. Where a row's runs also differ in their sampled
training subset (`task.subset_seed`, the low-data study), a seed is the pair (seed, subset): a grid on
subset 0 is compared on subset 0 only, not against the winner's mean over subsets it alone ran. It returns
the kept runs and one line per row saying what won and why. Torch-free.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

LR_COLUMN = "trainer.lr"


@dataclass(frozen=True)
class Choice:
    """The learning rate a row kept: its mean validation value and the candidates it beat."""

    label: str
    lr: float
    metric: str
    value: float
    candidates: dict[float, float]
    seeds: tuple = ()  # the shared seeds compared: ints, or tuples of `over`'s values
    over: tuple[str, ...] = ("seed",)

    def describe(self) -> str:
        """One line for a table's notes."""
        others = ", ".join(f"{lr:g}: {v:.4g}" for lr, v in sorted(self.candidates.items()))
        if not self.seeds:
            over = "seeds"
        elif self.over == ("seed",):
            over = f"seed{'s' if len(self.seeds) > 1 else ''} {', '.join(map(str, self.seeds))}"
        else:
            names = ", ".join(c.rsplit(".", 1)[-1] for c in self.over)
            over = f"({names}) " + ", ".join("(" + ", ".join(map(str, key)) + ")" for key in self.seeds)
        return f"{self.label}: lr {self.lr:g} chosen on mean {self.metric} over {over} ({others})"


def _replicate_columns(part: pd.DataFrame) -> tuple[str, ...]:
    """What tells a row's runs of one setting apart: the seed, and the training subset where that varies."""
    from prefixlab.report.collect import SEED_COLUMNS

    return tuple(c for c in SEED_COLUMNS if c in part and (c == "seed" or part[c].nunique() > 1))


def _replicate_keys(part: pd.DataFrame, over: tuple[str, ...]) -> pd.Series:
    """Each run's replicate: its seed, or its (seed, subset) tuple."""
    if len(over) == 1:
        return part[over[0]]
    return pd.Series(list(part[list(over)].itertuples(index=False, name=None)), index=part.index)


def _shared_seeds(part: pd.DataFrame, column: str, rates: np.ndarray, over: tuple[str, ...]) -> list:
    """The replicates that every learning rate of a row ran (empty when there is no seed column or none is
    shared)."""
    if "seed" not in over:
        return []
    keys = _replicate_keys(part, over)
    sets = [set(keys[(part[column] == lr).to_numpy()].dropna()) for lr in rates]
    shared = set.intersection(*sets) if sets else set()
    return sorted(
        tuple(int(v) for v in k) if isinstance(k, tuple) else int(k)
        for k in shared
        if not (isinstance(k, tuple) and any(pd.isna(v) for v in k))
    )


def _tested_values(part: pd.DataFrame, metric: str) -> pd.Series:
    """Each run's validation `metric` at its best checkpoint (the weights its test scores come from):
    `training.best_value` where the run selected by `metric`, else `validation.<metric>` (W&B runs, runs
    without validation during training)."""
    recorded = pd.to_numeric(part.get(f"validation.{metric}"), errors="coerce")
    if "training.best_value" not in part or "training.best_metric" not in part:
        return recorded
    best = pd.to_numeric(part["training.best_value"], errors="coerce")
    return best.where((part["training.best_metric"] == metric) & best.notna(), recorded)


def _metric_of(part: pd.DataFrame) -> str:
    names = part["training.best_metric"].dropna().unique() if "training.best_metric" in part else []
    return str(names[0]) if len(names) == 1 else "val_loss"


def _rows(frame: pd.DataFrame, settings: list[str]) -> list[tuple[str, pd.DataFrame]]:
    """The rows: runs by label, split further by the settings that differ within a label (named then as
    `label (setting=value, ...)`)."""
    rows = []
    for label, part in frame.groupby("label", sort=False):
        within = [c for c in settings if part[c].nunique(dropna=False) > 1]
        if not within:
            rows.append((str(label), part))
            continue
        for key, row in part.groupby(within, sort=False, dropna=False):
            values = key if isinstance(key, tuple) else (key,)
            named = ", ".join(f"{c}={v}" for c, v in zip(within, values, strict=True))
            rows.append((f"{label} ({named})", row))
    return rows


def select_on_validation(frame: pd.DataFrame, column: str = LR_COLUMN) -> tuple[pd.DataFrame, list[Choice]]:
    """The runs to report (per label, only the best learning rate on validation) and the choices made."""
    if frame.empty or column not in frame or "label" not in frame:
        return frame, []
    from prefixlab.report.collect import setting_columns

    keep, choices = [], []
    for label, part in _rows(frame, [c for c in setting_columns(frame) if c not in (column, "label")]):
        rates = part[column].dropna().unique()
        if len(rates) < 2:
            keep.append(part)
            continue
        metric = _metric_of(part)
        values = _tested_values(part, metric)
        over = _replicate_columns(part)
        seeds = _shared_seeds(part, column, rates, over)
        compared = _replicate_keys(part, over).isin(seeds) if seeds else pd.Series(True, index=part.index)
        means = {float(lr): float(values[(part[column] == lr) & compared].mean()) for lr in rates}
        finite = {lr: v for lr, v in means.items() if np.isfinite(v)}
        if not finite:
            keep.append(part)
            continue
        lower = metric.endswith("loss")
        best = min(finite, key=finite.get) if lower else max(finite, key=finite.get)
        keep.append(part[part[column] == best])
        choices.append(Choice(str(label), best, metric, finite[best], means, tuple(seeds), over))
    return pd.concat(keep).sort_index(), choices
