"""Tables from the runs' DataFrame: our mean and 95% interval beside the paper's numbers (Markdown, LaTeX).

    from prefixlab.report.tables import ablation_table
    table = ablation_table(runs.frame)       # paper Table 5 (placement x depth), E2E
    print(table.to_markdown()); table.numeric  # the numbers behind the cells

One row per setting (the run's label, plus any other setting that varies within a label), averaged over
seeds (`seed`, `task.subset_seed`). With `intervals` (`prefixlab.report.intervals`, from the runs'
generations) a cell is "mean [low, high]", the 95% interval over seeds x test items, and `n` is "runs x
items"; without, "mean ± std" and `n` the number of runs averaged. Paper columns come from
`experiments/<name>/paper.csv` (every paper version in the file gets its own column); a row we ran that the
paper lacks shows "—" there, and a paper row we did not run is listed as "not run" (or left out).
E2E BLEU, METEOR and ROUGE-L are shown x100, like the paper.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from prefixlab.report.collect import setting_columns
from prefixlab.report.figures import group_name, is_function_of, suite_of, task_metrics
from prefixlab.report.intervals import CellIntervals
from prefixlab.report.paper import PaperTable, load_paper_table
from prefixlab.report.selection import select_on_validation
from prefixlab.report.style import decimals, display_name, metric_name, scale_for

DASH = "—"
TEXT_COLUMNS = ("row", "paper row", "model")
NOT_RUN = "not run"
# Extra columns of the summary table: column -> (header, decimals).
COST_COLUMNS = {
    "parameters.stored_parameters": ("stored params", 0),
    "parameters.stored_percent": ("stored %", 3),
    "training.train_seconds": ("train s", 1),
    "evaluation.decode_seconds": ("decode s", 1),
}
# Cost columns of the methods tables (Table 2 and 3): the training step time and the job's peak memory.
METHOD_COST_COLUMNS = {
    "parameters.stored_percent": ("stored %", 3),
    "training.seconds_per_step": ("s / step", 2),
    "system.peak_memory_mib": ("peak MiB", 0),
}


@dataclass
class Table:
    """A results table: display cells, the numbers behind them, a title and notes."""

    name: str
    title: str
    display: pd.DataFrame
    numeric: pd.DataFrame
    notes: list[str] = field(default_factory=list)
    scale: dict[str, float] = field(default_factory=dict)

    def to_markdown(self) -> str:
        """A Markdown section: title, table, notes."""
        align = tuple("left" if c in TEXT_COLUMNS else "right" for c in self.display.columns)
        body = (
            self.display.to_markdown(index=False, disable_numparse=True, colalign=align)
            if not self.display.empty
            else "(no runs)"
        )
        notes = "".join(f"\n- {note}" for note in self.notes)
        return f"### {self.title}\n\n{body}\n{notes}\n"

    def to_latex(self) -> str:
        """A LaTeX `table` environment (booktabs) with the notes in the caption."""
        caption = self.title + (
            ". " + " ".join(n.rstrip(".") + "." for n in self.notes) if self.notes else ""
        )
        align = "".join("l" if c in TEXT_COLUMNS else "r" for c in self.display.columns)
        return self.display.to_latex(
            index=False, escape=True, caption=caption, label=f"tab:{self.name}", column_format=align
        )

    def write(self, stem: Path) -> list[Path]:
        """`<stem>.md` and `<stem>.tex`; returns the paths."""
        stem.parent.mkdir(parents=True, exist_ok=True)
        md, tex = stem.parent / f"{stem.name}.md", stem.parent / f"{stem.name}.tex"
        md.write_text(self.to_markdown(), encoding="utf-8")
        tex.write_text(self.to_latex(), encoding="utf-8")
        return [md, tex]


def natural_key(text: str) -> list[Any]:
    """Sort key with numbers compared as numbers: PREFIX-5 < PREFIX-10."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def row_keys(frame: pd.DataFrame) -> list[str]:
    """`label` plus the fewest other varying settings that separate runs beyond seeds."""
    keys = ["label"]
    for column in setting_columns(frame):
        if column != "label" and not is_function_of(frame, column, keys):
            keys.append(column)
    return keys


def format_cell(mean: float, std: float, n: int, places: int) -> str:
    """ "12.3 ± 0.4" (std only with two or more runs); "—" without a value."""
    if n == 0 or mean is None or not np.isfinite(mean):
        return DASH
    if n >= 2 and std is not None and np.isfinite(std):
        return f"{mean:.{places}f} ± {std:.{places}f}"
    return f"{mean:.{places}f}"


def format_interval(mean: float, low: float, high: float, places: int) -> str:
    """ "12.3 [11.8, 12.9]": a mean and its 95% interval."""
    return f"{mean:.{places}f} [{low:.{places}f}, {high:.{places}f}]"


def format_value(value: float | None, places: int) -> str:
    """A paper number at the paper's precision, or "—"."""
    return DASH if value is None or not np.isfinite(value) else f"{value:.{places}f}"


def _numeric(part: pd.DataFrame, column: str) -> pd.Series:
    """A column's numeric values (none when the column is absent)."""
    return pd.to_numeric(part[column], errors="coerce").dropna() if column in part else pd.Series(dtype=float)


def _mean_std(part: pd.DataFrame, column: str) -> tuple[float, float, int]:
    """Mean, sample std (NaN below two values) and count of a column's numeric values."""
    data = _numeric(part, column)
    n = len(data)
    return (float(data.mean()) if n else np.nan, float(data.std(ddof=1)) if n > 1 else np.nan, n)


def _median(part: pd.DataFrame, column: str) -> float:
    """Median of a column's numeric values (NaN without any): the cost columns' summary, since one run slowed
    by other load on a shared machine would pull a mean of timings."""
    data = _numeric(part, column)
    return float(data.median()) if len(data) else np.nan


def _paper_values(
    paper: PaperTable | None, row: str | None, metric: str, versions: Sequence[str]
) -> dict[str, float]:
    """`{"<metric> paper <version>": value or NaN}` for one paper row."""
    out = {}
    for version in versions:
        value = paper.value(row, metric, version) if paper is not None and row else None
        out[f"{metric} paper {version}"] = np.nan if value is None else value
    return out


def _records(
    frame: pd.DataFrame,
    keys: list[str],
    paper: PaperTable | None,
    metrics: list[str],
    versions: list[str],
    scale: dict[str, float],
    extra: dict[str, tuple[str, int]],
    intervals: CellIntervals | None = None,
) -> list[dict[str, Any]]:
    """One numeric record per group of runs: row name, matched paper row, n, mean/std (and interval) per metric."""
    records: list[dict[str, Any]] = []
    for values, part in frame.groupby(keys, dropna=False, sort=False) if not frame.empty else []:
        values = values if isinstance(values, tuple) else (values,)
        first = part.iloc[0].to_dict()
        paper_row = paper.match_row(first.get("label"), first) if paper is not None else None
        models = sorted(map(str, part["model.name"].dropna().unique())) if "model.name" in part else []
        record = {"row": group_name(keys, values), "paper row": paper_row, "model": ", ".join(models) or None}
        record["n"] = len(part)
        record["items"] = np.nan
        for metric in metrics:
            mean, std, n = _mean_std(part, f"test.{metric}")
            record |= {f"{metric} mean": mean * scale[metric], f"{metric} std": std * scale[metric]}
            record[f"{metric} n"] = n
            cell = intervals.get(part, metric) if intervals is not None and n == len(part) else None
            low, high = (cell.low * scale[metric], cell.high * scale[metric]) if cell else (np.nan, np.nan)
            record |= {f"{metric} low": low, f"{metric} high": high}
            if cell:
                record["items"] = cell.items
            record |= _paper_values(paper, paper_row, metric, versions)
        for column in extra:
            record[column] = _median(part, column)
        records.append(record)
    return records


def _not_run_records(
    paper: PaperTable,
    ran: set[str],
    metrics: list[str],
    versions: list[str],
    extra: dict[str, tuple[str, int]],
) -> list[dict[str, Any]]:
    """The paper rows that no group of runs matched, with the paper's numbers only."""
    records = []
    for row in paper.rows:
        if row in ran:
            continue
        record: dict[str, Any] = {"row": NOT_RUN, "paper row": row, "model": None, "n": 0, "items": np.nan}
        for metric in metrics:
            record |= {f"{metric} mean": np.nan, f"{metric} std": np.nan, f"{metric} n": 0}
            record |= {f"{metric} low": np.nan, f"{metric} high": np.nan}
            record |= _paper_values(paper, row, metric, versions)
        records.append(record | dict.fromkeys(extra, np.nan))
    return records


def _display(
    records: list[dict[str, Any]],
    with_paper: bool,
    metrics: list[str],
    versions: list[str],
    suite: str | None,
    extra: dict[str, tuple[str, int]],
) -> pd.DataFrame:
    """Text cells: "mean ± std" for ours, the paper's numbers at its precision, "—" and "not run"."""
    rows = []
    for record in records:
        cells: dict[str, Any] = {"row": record["row"]}
        if with_paper:
            cells["paper row"] = record["paper row"] or DASH
        cells["model"] = record["model"] or DASH
        items = record.get("items")
        with_items = items is not None and np.isfinite(items)
        cells["n"] = (
            (f"{record['n']} × {int(items)}" if with_items else str(record["n"])) if record["n"] else NOT_RUN
        )
        for metric in metrics:
            places, header = decimals(metric, suite), display_name(metric)
            mean, std, n = record[f"{metric} mean"], record[f"{metric} std"], record[f"{metric} n"]
            low, high = record.get(f"{metric} low", np.nan), record.get(f"{metric} high", np.nan)
            if not record["n"]:
                cells[header] = NOT_RUN
            elif np.isfinite(low) and np.isfinite(high) and np.isfinite(mean):
                cells[header] = format_interval(mean, low, high, places)
            else:
                cells[header] = format_cell(mean, std, n, places)
            for version in versions:
                cells[f"{header} [{version}]"] = format_value(record[f"{metric} paper {version}"], places)
        for column, (header, places) in extra.items():
            cells[header] = format_value(record[column], places) if record["n"] else NOT_RUN
        rows.append(cells)
    display = pd.DataFrame(rows)
    if "model" in display and (display["model"] == DASH).all():
        display = display.drop(columns="model")
    return display


def _notes(
    frame: pd.DataFrame,
    paper: PaperTable | None,
    metrics: list[str],
    scale: dict[str, float],
    missing_paper: str | None,
    records: list[dict[str, Any]] | None = None,
    intervals: CellIntervals | None = None,
) -> list[str]:
    """What the numbers are: averaging, scale, where the paper's numbers come from."""
    subsets = "task.subset_seed" in frame and frame["task.subset_seed"].nunique() > 1
    over = f"seeds{', data subsets' if subsets else ''}"
    ran = [r for r in records or [] if r["n"]]
    with_interval = [r for r in ran if np.isfinite(r.get("items", np.nan))]
    notes = []
    if with_interval:
        samples = intervals.n_samples if intervals is not None else "?"
        notes.append(
            f"ours: mean over the runs of each row ({over}) [95% interval over runs x test items: multi-bootstrap, "
            f"{samples} resamples]; n = runs × test items"
        )
    if len(with_interval) < len(ran):
        notes.append(
            f"ours{' (rows without an interval)' if with_interval else ''}: mean ± sample std over the n runs "
            f"of each row ({over}); no interval without the runs' generations"
        )
    scaled = [display_name(m) for m in metrics if scale[m] == 100.0]
    if scaled:
        notes.append(f"{', '.join(scaled)} x100 (the paper's scale)")
    if paper is None and missing_paper:
        notes.append(f"paper numbers unavailable: no {missing_paper} (set $PREFIXLAB_EXPERIMENTS_DIR)")
    if paper is not None:
        notes.append(paper.describe())
        if "model" in paper.frame:
            models = ", ".join(dict.fromkeys(paper.frame["model"].dropna().astype(str)))
            notes.append(f"paper model(s): {models}; ours: the model column")
        notes.append(
            f'"{DASH}" in a paper column: the paper has no such row; "{NOT_RUN}": a paper row not run here'
        )
    return notes


def comparison_table(
    frame: pd.DataFrame,
    *,
    name: str,
    title: str,
    paper: PaperTable | None = None,
    metrics: Sequence[str] | None = None,
    keys: Sequence[str] | None = None,
    versions: Sequence[str] | None = None,
    missing: Literal["mark", "omit"] = "mark",
    extra: dict[str, tuple[str, int]] | None = None,
    missing_paper: str | None = None,
    intervals: CellIntervals | None = None,
) -> Table:
    """Our rows (mean and interval, or ± std, over seeds) with the paper's numbers in adjacent columns.

    `metrics`: bare names (BLEU) or columns (test.BLEU); default: the paper's metrics, else the suite's.
    `keys`: columns that define a row (default: `row_keys`). `versions`: paper versions to show (default:
    all in the file). `missing`: list the paper rows nobody ran as "not run" ("mark") or drop them ("omit").
    `extra`: cost columns, the median over a row's runs, column -> (header, decimals). `missing_paper`: the paper file that was
    expected but not found (said in the notes). `intervals`: the cells' 95% intervals (see the module).
    """
    suite = suite_of(frame)
    if metrics is None:
        metrics = paper.metrics if paper is not None else [metric_name(c) for c in task_metrics(frame)]
    metrics = [metric_name(m) for m in metrics]
    versions = list(versions or (paper.versions if paper is not None else ()))
    keys = list(keys or (row_keys(frame) if not frame.empty else ["label"]))
    extra = extra or {}
    scale = {m: scale_for(m, suite) for m in metrics}

    records = _records(frame, keys, paper, metrics, versions, scale, extra, intervals)
    if paper is not None and missing == "mark":
        ran = {r["paper row"] for r in records if r["paper row"]}
        records += _not_run_records(paper, ran, metrics, versions, extra)
    order = {row: i for i, row in enumerate(paper.rows)} if paper is not None else {}
    records.sort(key=lambda r: (order.get(r["paper row"], len(order)), natural_key(str(r["row"]))))
    notes = _notes(frame, paper, metrics, scale, missing_paper, records, intervals)
    if extra:
        notes.append(f"{', '.join(header for header, _ in extra.values())}: the median over each row's runs")
    return Table(
        name=name,
        title=title,
        display=_display(records, paper is not None, metrics, versions, suite, extra),
        numeric=pd.DataFrame(records),
        notes=notes,
        scale=scale,
    )


def _task(frame: pd.DataFrame, task: str) -> pd.DataFrame:
    return frame[frame["task.name"] == task] if "task.name" in frame else frame


def ablation_table(
    frame: pd.DataFrame, missing: Literal["mark", "omit"] = "mark", intervals: CellIntervals | None = None
) -> Table:
    """Paper Table 5: PREFIX vs embedding-only (EMB-n) vs infix (INFIX-n) on E2E."""
    return comparison_table(
        _task(frame, "e2e"),
        name="ablation_placement_depth",
        paper=load_paper_table("ablation_placement_depth"),
        missing_paper="experiments/ablation_placement_depth/paper.csv",
        title="Prefix placement and depth ablation, E2E (paper Table 5)",
        missing=missing,
        intervals=intervals,
    )


def methods_table(
    frame: pd.DataFrame,
    *,
    name: str,
    title: str,
    missing: Literal["mark", "omit"] = "mark",
    intervals: CellIntervals | None = None,
) -> Table:
    """A comparison of methods beside the paper: each row at its own learning rate, chosen on validation
    (`prefixlab.report.selection`), with its stored %, training step time and peak memory."""
    frame, choices = select_on_validation(frame)
    if "system.peak_memory_bytes" in frame:
        frame = frame.assign(
            **{"system.peak_memory_mib": pd.to_numeric(frame["system.peak_memory_bytes"]) / 2**20}
        )
    extra = {c: spec for c, spec in METHOD_COST_COLUMNS.items() if c in frame and frame[c].notna().any()}
    table = comparison_table(
        frame, name=name, paper=load_paper_table(name), missing_paper=f"experiments/{name}/paper.csv", title=title,
        missing=missing, extra=extra, intervals=intervals,
    )  # fmt: skip
    table.notes += [choice.describe() for choice in choices]
    if "system.peak_memory_mib" in extra:
        table.notes.append(
            "peak MiB: the job's peak memory (system.peak_memory_measure in each metrics.json)"
        )
    return table


def e2e_main_table(
    frame: pd.DataFrame, missing: Literal["mark", "omit"] = "mark", intervals: CellIntervals | None = None
) -> Table:
    """Paper Table 2 (E2E columns; arXiv v1 Table 1): fine-tuning, FT-top2, adapters, LoRA, prefix-tuning."""
    return methods_table(
        _task(frame, "e2e"), name="e2e_main", missing=missing, intervals=intervals,
        title="E2E: prefix-tuning vs fine-tuning (paper Table 2; arXiv v1 Table 1)",
    )  # fmt: skip


def xsum_main_table(
    frame: pd.DataFrame, missing: Literal["mark", "omit"] = "mark", intervals: CellIntervals | None = None
) -> Table:
    """Paper Table 3: XSum ROUGE-1/2/L of fine-tuning and prefix-tuning (2% and 0.1%), and the baselines."""
    return methods_table(
        _task(frame, "xsum"), name="xsum_main", missing=missing, intervals=intervals,
        title="XSum: prefix-tuning vs fine-tuning (paper Table 3)",
    )  # fmt: skip


def summary_table(
    frame: pd.DataFrame,
    name: str = "summary",
    title: str | None = None,
    intervals: CellIntervals | None = None,
) -> Table:
    """Every setting of the runs with all test metrics, stored parameters and time (no paper columns)."""
    extra = {c: spec for c, spec in COST_COLUMNS.items() if c in frame and frame[c].notna().any()}
    return comparison_table(
        frame, name=name, title=title or f"{name}: all settings", extra=extra, intervals=intervals
    )
