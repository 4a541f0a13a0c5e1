"""95% intervals of table cells and figure points over seeds x test items, from the runs' generations.

A cell (a table row, a point of a figure) is a set of runs of one setting. `CellIntervals.get(part, metric)`
gives it the mean over its runs with the 95% interval of the multi-bootstrap over runs and test items
(`prefixlab.stats.cell_intervals`, on the scale of ``metrics.json``) and its n: runs and test items.

Intervals are computed from run folders (their ``generations.jsonl``) when a report reads them, and saved in
``intervals.json`` beside ``runs.csv`` so that ``prefixlab report --from-csv`` draws the same intervals
offline. A cell whose runs have no generations (a summary without its ``intervals.json``) has none: tables
then show mean ± std and say so.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

INTERVALS_FILE = "intervals.json"
DEFAULT_SAMPLES = 1000
DEFAULT_SEED = 12345


@dataclass(frozen=True)
class CellInterval:
    """A cell's score (mean over its runs), its 95% interval over runs x items, and its n."""

    estimate: float
    low: float
    high: float
    runs: int
    items: int


def run_ids(part: pd.DataFrame) -> frozenset[str]:
    """The runs of a cell: each run's fingerprint (its config), else its folder."""
    ids = []
    for _, row in part.iterrows():
        fingerprint = row.get("fingerprint")
        ident = fingerprint if isinstance(fingerprint, str) and fingerprint else row.get("run_dir")
        if isinstance(ident, str) and ident:
            ids.append(ident)
    return frozenset(ids) if len(ids) == len(part) else frozenset()


class CellIntervals:
    """Intervals per cell: computed from run folders on first use, or read from a saved `intervals.json`."""

    def __init__(
        self,
        folders: Mapping[str, Path] | None = None,
        known: Mapping[frozenset[str], dict[str, CellInterval]] | None = None,
        n_samples: int = DEFAULT_SAMPLES,
        seed: int = DEFAULT_SEED,
    ) -> None:
        self.folders = dict(folders or {})
        self.known = dict(known or {})
        self.n_samples = n_samples
        self.seed = seed

    @classmethod
    def from_frame(
        cls, frame: pd.DataFrame, n_samples: int = DEFAULT_SAMPLES, seed: int = DEFAULT_SEED
    ) -> CellIntervals:
        """Intervals for the runs of `frame` whose folders hold their generations."""
        from prefixlab.stats.runs import GENERATIONS_FILE

        folders = {}
        for index in frame.index:
            (ident,) = run_ids(frame.loc[[index]]) or (None,)
            run_dir = frame.at[index, "run_dir"] if "run_dir" in frame else None
            if ident and isinstance(run_dir, str) and (Path(run_dir) / GENERATIONS_FILE).is_file():
                folders[ident] = Path(run_dir)
        return cls(folders, n_samples=n_samples, seed=seed)

    def get(self, part: pd.DataFrame, metric: str) -> CellInterval | None:
        """The interval of `metric` (``BLEU`` or ``test.BLEU``) for the cell of runs `part`, or None."""
        ids = run_ids(part)
        if not ids:
            return None
        if ids not in self.known:
            if not all(i in self.folders for i in ids):
                return None
            self.known[ids] = self._compute(ids)
        return self.known[ids].get(metric.removeprefix("test."))

    def _compute(self, ids: frozenset[str]) -> dict[str, CellInterval]:
        from prefixlab.stats.runs import RunInputError, cell_intervals, load_generations

        paths = [self.folders[i] for i in sorted(ids)]
        try:
            items = len(load_generations(paths[0]))
            found = cell_intervals(paths, n_samples=self.n_samples, seed=self.seed)
        except RunInputError as error:
            warnings.warn(f"no interval for the cell of {len(paths)} run(s): {error}", stacklevel=3)
            return {}
        return {
            metric: CellInterval(value.estimate, value.low, value.high, len(paths), items)
            for metric, value in found.items()
        }

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write every interval computed or read so far (JSON: one entry per cell)."""
        cells = [
            {"runs": sorted(ids), "metrics": {m: asdict(v) for m, v in values.items()}}
            for ids, values in sorted(self.known.items(), key=lambda item: sorted(item[0]))
            if values
        ]
        path = Path(path)
        path.write_text(
            json.dumps(
                {"n_samples": self.n_samples, "seed": self.seed, "interval": "95% percentile, multi-bootstrap "
                 "over runs x test items", "cells": cells}, indent=1,
            ) + "\n",
            encoding="utf-8",
        )  # fmt: skip
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> CellIntervals:
        """Intervals saved by `save`; a missing file gives none (tables then fall back to mean ± std)."""
        path = Path(path)
        if not path.is_file():
            return cls()
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            known = {
                frozenset(cell["runs"]): {m: CellInterval(**v) for m, v in cell["metrics"].items()}
                for cell in data["cells"]
            }
        except (json.JSONDecodeError, KeyError, TypeError) as error:
            raise ValueError(
                f"{path} is not a prefixlab intervals file ({error}); delete it or regenerate it with "
                "`prefixlab report <run folders>`"
            ) from error
        return cls(
            known=known,
            n_samples=data.get("n_samples", DEFAULT_SAMPLES),
            seed=data.get("seed", DEFAULT_SEED),
        )
