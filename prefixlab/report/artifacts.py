"""Which figures and tables a study gets, and writing them: the paper experiment's, or all that apply.

A study named after a paper experiment (`e2e_length`, `e2e_length_cpu`, ...; see `EXPERIMENTS`) gets that
experiment's figures and tables; any other study gets everything its runs support (`detect`): a length
figure when full prefixes ran at two or more lengths, the ablation table when embedding-only or infix
variants ran, the main tables when two or more trained methods ran on E2E or any XSum runs are present, low-data and
initialization and reparameterization figures when those settings vary. Every study gets the summary table.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from prefixlab.report import figures, tables
from prefixlab.report.intervals import CellIntervals
from prefixlab.report.style import save_figure

# Paper experiment (conf/experiment/<name>.yaml and experiments/<name>/) -> what it reproduces.
EXPERIMENTS: dict[str, tuple[str, ...]] = {
    "e2e_length": ("length",),
    "xsum_length": ("length",),
    "ablation_placement_depth": ("ablation",),
    "reparam": ("reparam",),
    "reparam_init": ("reparam", "init"),
    "init_lowdata": ("init",),
    "lowdata": ("lowdata",),
    "e2e_main": ("e2e_main",),
    "xsum_main": ("xsum_main",),
}
CPU_SUFFIX = "_cpu"


@dataclass(frozen=True)
class Artifact:
    """A written file and one line on what it shows."""

    path: Path
    description: str


def experiment_of(study: str | None) -> str | None:
    """The paper experiment a study reproduces (`e2e_length_cpu` -> `e2e_length`), or None."""
    if not study:
        return None
    name = study.removesuffix(CPU_SUFFIX)
    return name if name in EXPERIMENTS else None


def _has(frame: pd.DataFrame, column: str, values: Sequence[Any]) -> bool:
    return column in frame and bool(frame[column].isin(list(values)).any())


def detect(frame: pd.DataFrame) -> list[str]:
    """The artifact kinds the runs support (see the module docstring)."""
    kinds = []
    prefix = figures.prefix_runs(frame)
    by_task = prefix.groupby("task.name", dropna=False) if "task.name" in prefix else [(None, prefix)]
    if "method.length" in prefix and any(part["method.length"].nunique() >= 2 for _, part in by_task):
        kinds.append("length")
    e2e = frame[frame["task.name"] == "e2e"] if "task.name" in frame else frame.iloc[:0]
    if _has(e2e, "method.depth", ["embedding"]) or _has(e2e, "method.placement", ["infix"]):
        kinds.append("ablation")
    trained = (
        e2e[e2e["parameters.trainable_parameters"] > 0] if "parameters.trainable_parameters" in e2e else e2e
    )
    if "method.kind" in trained and trained["method.kind"].nunique() >= 2:  # a comparison of trained methods
        kinds.append("e2e_main")
    if _has(frame, "task.name", ["xsum"]):
        kinds.append("xsum_main")
    if "task.train_size" in frame and frame["task.train_size"].nunique() >= 2:
        kinds.append("lowdata")
    if "method.init" in prefix and prefix["method.init"].nunique() >= 2:
        kinds.append("init")
    if "method.reparam" in prefix and prefix["method.reparam"].nunique() >= 2:
        kinds.append("reparam")
    return kinds


def slug(text: str) -> str:
    """A file-name-safe form: `test.BLEU` -> `test.BLEU`, `a/b c` -> `a-b-c`."""
    return re.sub(r"[^A-Za-z0-9._=+-]+", "-", text).strip("-")


def _figure_set(
    build: Callable[..., dict[tuple[str, str], Any]],
    frame: pd.DataFrame,
    out: Path,
    prefix: str,
    what: str,
    formats: tuple[str, ...],
    intervals: CellIntervals | None = None,
) -> list[Artifact]:
    written = []
    for (task, metric), fig in build(frame, intervals=intervals).items():
        stem = out / f"{prefix}_{slug(task)}_{slug(metric.removeprefix('test.'))}"
        for path in save_figure(fig, stem, formats):
            written.append(Artifact(path, f"{what}: {metric} on {task}, {_spread(intervals)}"))
    return written


def _spread(intervals: CellIntervals | None) -> str:
    """What a figure's bands and a table's cells show."""
    if intervals is None:
        return "mean ± std over seeds"
    return "mean over seeds with its 95% interval over seeds x test items (± std where a cell has no generations)"


def write_artifacts(
    frame: pd.DataFrame,
    out: Path,
    kinds: Sequence[str],
    *,
    formats: tuple[str, ...] = ("png", "pdf"),
    missing: str = "mark",
    study: str = "runs",
    intervals: CellIntervals | None = None,
) -> list[Artifact]:
    """Write the figures and tables of `kinds` (plus the summary table) for `frame` into `out`.

    `intervals`: the cells' 95% intervals over seeds x items (`prefixlab.report.intervals`); None: ± std."""
    written: list[Artifact] = []
    figure_sets = {
        "length": (
            figures.length_figures,
            "paper Figure 4: prefix length vs performance (best length from experiments/*/paper_marks.csv)",
        ),
        "lowdata": (figures.lowdata_figures, "paper Figure 3: training-set size vs performance"),
        "init": (figures.init_figures, "paper Figure 5: prefix initialization"),
        "reparam": (figures.reparam_figures, "section 4.3: MLP reparameterization on vs off"),
    }
    for kind, (build, what) in figure_sets.items():
        if kind in kinds:
            written += _figure_set(build, frame, out, kind, what, formats, intervals)
    builders = {
        "ablation": (tables.ablation_table, "paper Table 5: placement x depth ablation vs the paper"),
        "e2e_main": (
            tables.e2e_main_table,
            "paper Table 2 (E2E): our rows vs the paper (ACL 2021, arXiv v1)",
        ),
        "xsum_main": (tables.xsum_main_table, "paper Table 3 (XSum): our rows vs the paper"),
    }
    for kind, (build, what) in builders.items():
        if kind in kinds:
            table = build(frame, missing=missing, intervals=intervals)
            written += [Artifact(p, what) for p in table.write(out / f"table_{table.name}")]
    summary = tables.summary_table(
        frame, name=study, title=f"{study}: every setting (no paper columns)", intervals=intervals
    )
    written += [
        Artifact(p, f"all settings: test metrics, stored parameters and time, {_spread(intervals)}")
        for p in summary.write(out / "table_summary")
    ]
    return written


def write_custom_figures(
    frame: pd.DataFrame,
    out: Path,
    x: str,
    metrics: Sequence[str],
    group: str | None,
    *,
    baseline: str | None = None,
    formats: tuple[str, ...] = ("png", "pdf"),
    intervals: CellIntervals | None = None,
) -> list[Artifact]:
    """The generic figure per metric: `metric` vs `x`, one series per `group` (comma-separated columns)."""
    written = []
    marks = None
    if "task.name" in frame and frame["task.name"].nunique() == 1:
        from prefixlab.report.paper import load_marks

        marks = load_marks(task=str(frame["task.name"].iloc[0]), column=x)
    for metric in metrics:
        column = metric if metric in frame or "." in metric else f"test.{metric}"
        fig = figures.figure(frame, x, column, group, baseline=baseline, marks=marks, intervals=intervals)
        stem = out / slug(f"{column.removeprefix('test.')}_vs_{x}" + (f"_by_{group}" if group else ""))
        for path in save_figure(fig, stem, formats):
            written.append(
                Artifact(
                    path, f"{column} vs {x}" + (f" by {group}" if group else "") + f", {_spread(intervals)}"
                )
            )
    return written
