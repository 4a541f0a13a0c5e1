"""Fair model selection: each method gets its own learning rate, chosen on the validation split.

When a row (a method setting, by `label`) ran at several learning rates, `select_on_validation` keeps only the
runs at the rate whose mean validation metric over seeds is best (the metric each run selected its best
checkpoint by, `training.best_metric`: a loss is minimized, anything else maximized); the test scores of the
others never enter a table. It returns the kept runs and one line per row saying what won and why. Torch-free.
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

    def describe(self) -> str:
        """One line for a table's notes."""
        others = ", ".join(f"{lr:g}: {v:.4g}" for lr, v in sorted(self.candidates.items()))
        return f"{self.label}: lr {self.lr:g} chosen on mean {self.metric} over seeds ({others})"


def _metric_of(part: pd.DataFrame) -> str:
    names = part["training.best_metric"].dropna().unique() if "training.best_metric" in part else []
    return str(names[0]) if len(names) == 1 else "val_loss"


def select_on_validation(frame: pd.DataFrame, column: str = LR_COLUMN) -> tuple[pd.DataFrame, list[Choice]]:
    """The runs to report (per label, only the best learning rate on validation) and the choices made."""
    if frame.empty or column not in frame or "label" not in frame:
        return frame, []
    keep, choices = [], []
    for label, part in frame.groupby("label", sort=False):
        rates = part[column].dropna().unique()
        if len(rates) < 2:
            keep.append(part)
            continue
        metric = _metric_of(part)
        values = pd.to_numeric(part.get(f"validation.{metric}"), errors="coerce")
        means = {float(lr): float(values[part[column] == lr].mean()) for lr in rates}
        finite = {lr: v for lr, v in means.items() if np.isfinite(v)}
        if not finite:
            keep.append(part)
            continue
        lower = metric.endswith("loss")
        best = min(finite, key=finite.get) if lower else max(finite, key=finite.get)
        keep.append(part[part[column] == best])
        choices.append(Choice(str(label), best, metric, finite[best], means))
    return pd.concat(keep).sort_index(), choices
