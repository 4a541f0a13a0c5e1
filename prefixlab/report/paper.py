"""The paper's reported numbers, read from data files under `experiments/<name>/` (never typed into code).

Two kinds of file:

`experiments/<name>/paper.csv`: one row per (table row, paper version), e.g. Table 5 of the ACL 2021 version::

    row,model,match,BLEU,NIST,METEOR,ROUGE_L,CIDEr,source,version,note
    EMB-1,GPT-2 Medium,method.kind=prefix&method.depth=embedding&method.length=1,48.1,...,Table 5,ACL 2021,

  `match` says which runs a row compares with: `column=value` conditions joined by `&` (a value may list
  alternatives with `|`); a run whose label equals `row` also matches. The most specific matching row wins.
  Every column that is not `row, model, match, source, version, note` is a metric, on the paper's scale.

`experiments/<name>/paper_marks.csv`: single reported values to mark on a figure, e.g. the prefix length
where performance peaks (Figure 4; its per-point values are not published, so only this mark exists)::

    task,column,value,label,source,version,note
    e2e,method.length,10,paper: best length 10,Figure 4 (table-to-text panel),ACL 2021,...
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from prefixlab.resources import EXPERIMENTS_DIR

EXPERIMENTS_ENV = "PREFIXLAB_EXPERIMENTS_DIR"
TABLE_FILE = "paper.csv"
MARKS_FILE = "paper_marks.csv"
NON_METRIC_COLUMNS = ("row", "model", "match", "source", "version", "note")


def experiments_dir() -> Path:
    """`$PREFIXLAB_EXPERIMENTS_DIR`, else the repository's `experiments/` folder."""
    if os.environ.get(EXPERIMENTS_ENV):
        return Path(os.environ[EXPERIMENTS_ENV])
    return EXPERIMENTS_DIR


def normalize(value: Any) -> str:
    """A comparable text form of a config value: 5, 5.0 and "5" -> "5"; None/NaN -> ""."""
    if value is None:
        return ""
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        if value.is_integer():
            return str(int(value))
    if isinstance(value, bool):
        return str(value).lower()
    try:
        if pd.isna(value):
            return ""
    except (TypeError, ValueError):
        pass
    return str(value)


def parse_match(text: Any) -> dict[str, tuple[str, ...]]:
    """`a=1&b=x|y` -> {"a": ("1",), "b": ("x", "y")}; an empty cell matches nothing."""
    conditions: dict[str, tuple[str, ...]] = {}
    for part in normalize(text).split("&"):
        if not part.strip():
            continue
        if "=" not in part:
            raise ValueError(f"paper match condition {part!r} is not column=value")
        column, values = part.split("=", 1)
        conditions[column.strip()] = tuple(normalize(v.strip()) for v in values.split("|"))
    return conditions


def matches(conditions: Mapping[str, tuple[str, ...]], values: Mapping[str, Any]) -> bool:
    """True when every condition holds for `values` (a run's flat config); no conditions: False."""
    if not conditions:
        return False
    return all(normalize(values.get(column)) in allowed for column, allowed in conditions.items())


@dataclass(frozen=True)
class PaperTable:
    """The rows of one `paper.csv`, with helpers to look up values and match runs."""

    name: str
    path: Path
    frame: pd.DataFrame

    @property
    def metrics(self) -> tuple[str, ...]:
        """Metric columns, in file order."""
        return tuple(c for c in self.frame.columns if c not in NON_METRIC_COLUMNS)

    @property
    def versions(self) -> tuple[str, ...]:
        """Paper versions present (e.g. "ACL 2021", "arXiv v1"), in file order."""
        return tuple(dict.fromkeys(self.frame["version"].astype(str)))

    @property
    def rows(self) -> tuple[str, ...]:
        """Row names, in file order."""
        return tuple(dict.fromkeys(self.frame["row"].astype(str)))

    def value(self, row: str, metric: str, version: str) -> float | None:
        """The reported value, or None when the paper version has no such row."""
        hit = self.frame[(self.frame["row"] == row) & (self.frame["version"] == version)]
        if hit.empty or pd.isna(hit.iloc[0][metric]):
            return None
        return float(hit.iloc[0][metric])

    def sources(self) -> dict[str, str]:
        """version -> the tables it comes from, e.g. {"ACL 2021": "Table 2", "arXiv v1": "Table 1"}."""
        out: dict[str, str] = {}
        for version, group in self.frame.groupby("version", sort=False):
            out[str(version)] = ", ".join(dict.fromkeys(group["source"].astype(str)))
        return out

    def conditions(self, row: str) -> dict[str, tuple[str, ...]]:
        """The `match` conditions of a row (the first version's)."""
        return parse_match(self.frame[self.frame["row"] == row].iloc[0]["match"])

    def match_row(self, label: str | None, values: Mapping[str, Any]) -> str | None:
        """The paper row that a group of runs compares with: the same label, else the most specific match."""
        if label is not None and label in self.rows:
            return label
        best, best_size = None, 0
        for row in self.rows:
            conditions = self.conditions(row)
            if matches(conditions, values) and len(conditions) > best_size:
                best, best_size = row, len(conditions)
        return best

    def describe(self) -> str:
        """One line on where the numbers come from, for table notes."""
        sources = "; ".join(f"{v}: {s}" for v, s in self.sources().items())
        return f"paper numbers from {self.path.parent.name}/{self.path.name} ({sources})"


def load_paper_table(name: str, root: Path | None = None) -> PaperTable | None:
    """`experiments/<name>/paper.csv`, or None when the experiment has no reported table."""
    path = (root or experiments_dir()) / name / TABLE_FILE
    if not path.is_file():
        return None
    frame = pd.read_csv(path, dtype={"row": str, "match": str, "version": str, "source": str})
    missing = {"row", "match", "version", "source"} - set(frame.columns)
    if missing:
        raise ValueError(f"{path} lacks the columns {sorted(missing)}")
    return PaperTable(name=name, path=path, frame=frame)


def load_marks(task: str | None = None, column: str | None = None, root: Path | None = None) -> pd.DataFrame:
    """Every `paper_marks.csv` under the experiments folder, filtered by task and column (x axis)."""
    frames = [
        pd.read_csv(path).assign(experiment=path.parent.name)
        for path in sorted((root or experiments_dir()).glob(f"*/{MARKS_FILE}"))
    ]
    if not frames:
        return pd.DataFrame(columns=["task", "column", "value", "label", "source", "version", "note"])
    marks = pd.concat(frames, ignore_index=True)
    if task is not None:
        marks = marks[marks["task"].astype(str) == str(task)]
    if column is not None:
        marks = marks[marks["column"].astype(str) == column]
    return marks.reset_index(drop=True)
