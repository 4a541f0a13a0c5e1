"""Figures from the runs' DataFrame: mean over seeds with its 95% interval band, runs per point in the legend.

    from prefixlab.report.figures import figure, length_figures
    fig = figure(runs.frame, x="method.length", metric="test.BLEU", group="model.name", baseline="zero-shot")
    figs = length_figures(runs.frame)          # paper Figure 4: {(task, metric): Figure}

Every function returns a `matplotlib.figure.Figure` (no pyplot state; save with `style.save_figure`).
Plotted artists carry a gid for inspection: `series:<name>` (lines), `bars:<name>`, `band:<name>`,
`baseline:<label>` (horizontal reference), `mark:<label>` (a value the paper reports, read from
`experiments/*/paper_marks.csv`). A numeric x gives lines on the values actually run (log scale when they
span a factor of 8 or more); a text x gives grouped bars. With `intervals` (`prefixlab.report.intervals`)
bands and error bars are each point's 95% interval over seeds x test items and the legend gives runs x
items; without (a summary lacking the runs' generations), ±1 std over seeds.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from prefixlab.report.collect import SEED_COLUMNS, is_nuisance, setting_columns
from prefixlab.report.intervals import CellIntervals
from prefixlab.report.paper import load_marks, normalize
from prefixlab.report.style import FIGURE_SIZE, SUITE_METRICS, display_name, figure_style, scale_for

# Preferred series keys when several settings vary: the row name first.
GROUP_PREFERENCE = ("label", "model.name", "task.name", "method.kind")


# ------------------------------------------------------------------------------------------ aggregation
def suite_of(frame: pd.DataFrame) -> str | None:
    """The metric suite of the runs (e2e or rouge) when they share one."""
    if "metric_suite" not in frame:
        return None
    suites = frame["metric_suite"].dropna().unique()
    return str(suites[0]) if len(suites) == 1 else None


def is_function_of(frame: pd.DataFrame, column: str, keys: Sequence[str]) -> bool:
    """True when `column` takes one value within each group of `keys` (it adds nothing to them)."""
    if not keys:
        return frame[column].nunique(dropna=False) <= 1
    return bool((frame.groupby(list(keys), dropna=False)[column].nunique(dropna=False) <= 1).all())


def auto_group(frame: pd.DataFrame, x: str | None = None, exclude: Sequence[str] = ()) -> list[str]:
    """The fewest varying settings that separate runs beyond `x` and seeds (label first), for series keys."""
    base = [x] if x else []
    candidates = [
        c
        for c in setting_columns(frame)
        if c != x and c not in exclude and not (base and is_function_of(frame, c, base))
    ]
    candidates.sort(
        key=lambda c: GROUP_PREFERENCE.index(c) if c in GROUP_PREFERENCE else len(GROUP_PREFERENCE)
    )
    keys: list[str] = []
    for column in candidates:
        if not is_function_of(frame, column, base + keys):
            keys.append(column)
    return keys


def unaccounted(frame: pd.DataFrame, keys: Sequence[str]) -> list[str]:
    """Settings that still vary within a group of `keys` (averaging over them mixes settings)."""
    return [
        c
        for c in setting_columns(frame)
        if c not in keys
        and c not in SEED_COLUMNS
        and not is_nuisance(c)
        and not is_function_of(frame, c, keys)
    ]


def aggregate(
    frame: pd.DataFrame, metric: str, by: Sequence[str], intervals: CellIntervals | None = None
) -> pd.DataFrame:
    """Mean, sample std and count of `metric` per group of `by` (rows without a value are dropped), and with
    `intervals` each group's 95% interval (`low`, `high`, NaN where it has none) and test items."""
    data = frame.dropna(subset=[metric])
    data = data.assign(**{metric: pd.to_numeric(data[metric], errors="coerce")})
    groups = data.groupby(list(by), dropna=False, sort=False)
    out = groups[metric].agg(["mean", "std", "count"]).reset_index().rename(columns={"count": "n"})
    cells = [intervals.get(part, metric) if intervals is not None else None for _, part in groups]
    return out.assign(
        low=[c.low if c else np.nan for c in cells],
        high=[c.high if c else np.nan for c in cells],
        items=[c.items if c else np.nan for c in cells],
    )


def _spread(stats: pd.DataFrame, scale: float) -> tuple[np.ndarray, np.ndarray, str]:
    """Each point's lower and upper bar (interval where all points have one, else ±1 std) and its name."""
    mean = stats["mean"].to_numpy(float) * scale
    if len(stats) and stats["low"].notna().all() and stats["high"].notna().all():
        return stats["low"].to_numpy(float) * scale, stats["high"].to_numpy(float) * scale, "95% interval"
    std = np.nan_to_num(stats["std"].to_numpy(float)) * scale
    return mean - std, mean + std, "±1 std"


def _count(stats: pd.DataFrame, unit: str) -> str:
    """ "3 seeds × 200 items" (or "2 seeds" without item counts)."""
    text = count_label(stats["n"], unit)
    items = stats["items"].dropna() if "items" in stats else pd.Series(dtype=float)
    if len(items) == len(stats) and len(items):
        low, high = int(items.min()), int(items.max())
        text += f" × {low} items" if low == high else f" × {low}–{high} items"
    return text


def repeat_unit(frame: pd.DataFrame) -> str:
    """What repeats a point: "seed" when only the seed varies, "run" when data subsets vary too."""
    varies = "task.subset_seed" in frame and frame["task.subset_seed"].nunique() > 1
    return "run" if varies else "seed"


def count_label(counts: Sequence[int] | np.ndarray, unit: str = "seed") -> str:
    """Repeats per point for a legend: "2 seeds", "1 seed", or "1–2 seeds" when points differ."""
    low, high = int(np.min(counts)), int(np.max(counts))
    plural = unit if high == 1 else f"{unit}s"
    return f"{low} {plural}" if low == high else f"{low}–{high} {plural}"


def group_name(keys: Sequence[str], values: Sequence[Any]) -> str:
    """A legend name for a series: the label as is, other settings as `name=value`."""
    parts = []
    for key, value in zip(keys, values, strict=True):
        text = normalize(value) or "none"
        parts.append(text if key in ("label", "model.name", "task.name") else f"{key.split('.')[-1]}={text}")
    return ", ".join(parts) if parts else "all runs"


def _as_list(group: str | Sequence[str] | None) -> list[str] | None:
    if group is None:
        return None
    if isinstance(group, str):
        return [g for g in group.split(",") if g]
    return list(group)


def _new_figure(size: tuple[float, float] = FIGURE_SIZE) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=size, layout="constrained")


def _numeric(series: pd.Series) -> bool:
    values = pd.to_numeric(series.dropna(), errors="coerce")
    return len(values) > 0 and bool(values.notna().all())


# ------------------------------------------------------------------------------------------ generic figures
def figure(
    frame: pd.DataFrame,
    x: str,
    metric: str,
    group: str | Sequence[str] | None = None,
    *,
    baseline: str | None = None,
    marks: pd.DataFrame | None = None,
    title: str | None = None,
    logx: bool | None = None,
    intervals: CellIntervals | None = None,
) -> Any:
    """Metric against `x`, one series per `group` value (default: the settings that vary beyond x).

    `baseline`: a label whose runs become a dashed horizontal line (e.g. "zero-shot") instead of a series.
    `marks`: rows of a `paper_marks.csv` with `column == x`, drawn as dotted vertical lines.
    Numeric x gives lines with a band; text x gives grouped bars with error bars: the 95% interval over
    seeds x items with `intervals`, else ±1 std.
    """
    if x not in frame:
        raise KeyError(f"no column {x!r} in the runs; available: {', '.join(frame.columns)}")
    if metric not in frame:
        raise KeyError(
            f"no column {metric!r} in the runs; metric columns: {[c for c in frame if c.startswith('test.')]}"
        )
    reference = pd.DataFrame()
    if baseline is not None and "label" in frame:
        reference = frame[frame["label"] == baseline]
        frame = frame[frame["label"] != baseline]
    frame = frame.dropna(subset=[metric])
    keys = _as_list(group)
    if keys is None:
        keys = auto_group(frame, x)
    if not keys and "model.name" in frame and frame["model.name"].nunique() == 1:
        keys = ["model.name"]  # one series, named after its model
    mixed = [c for c in unaccounted(frame, [*keys, x]) if c != x]
    if mixed:
        warnings.warn(
            f"figure {metric} vs {x}: averaging over runs that differ in {mixed}; add them to the group.",
            stacklevel=2,
        )
    if _numeric(frame[x]):
        fig = _line_figure(frame, x, metric, keys, logx=logx, intervals=intervals)
    else:
        fig = _bar_figure(frame, x, metric, keys, intervals=intervals)
    ax = fig.axes[0]
    suite = suite_of(frame)
    with figure_style():
        if not reference.empty and reference[metric].notna().any():
            values = pd.to_numeric(reference[metric], errors="coerce").dropna() * scale_for(metric, suite)
            line = ax.axhline(
                values.mean(),
                ls="--",
                color="0.45",
                lw=1.0,
                label=f"{baseline} ({count_label([len(values)], repeat_unit(reference))})",
            )
            line.set_gid(f"baseline:{baseline}")
        for mark in (marks if marks is not None else pd.DataFrame()).itertuples():
            line = ax.axvline(float(mark.value), ls=":", color="0.3", lw=1.0, label=str(mark.label))
            line.set_gid(f"mark:{mark.label}")
        ax.set_ylabel(display_name(metric, suite))
        ax.set_xlabel(x)
        if title:
            ax.set_title(title)
        ax.legend(frameon=False, loc="best")
    return fig


def _line_figure(
    frame: pd.DataFrame,
    x: str,
    metric: str,
    keys: list[str],
    logx: bool | None,
    intervals: CellIntervals | None = None,
) -> Any:
    suite = suite_of(frame)
    scale = scale_for(metric, suite)
    data = frame.assign(**{x: pd.to_numeric(frame[x])})
    stats = aggregate(data, metric, [*keys, x], intervals)
    unit = repeat_unit(frame)
    xs_all = np.sort(stats[x].unique())
    if logx is None:
        logx = bool(len(xs_all) > 1 and xs_all.min() > 0 and xs_all.max() / xs_all.min() >= 8)
    with figure_style():
        fig = _new_figure()
        ax = fig.add_subplot()
        groups = stats.groupby(keys, dropna=False, sort=False) if keys else [((), stats)]
        for values, part in groups:
            values = values if isinstance(values, tuple) else (values,)
            part = part.sort_values(x)
            name = group_name(keys, values)
            xs, mean = part[x].to_numpy(float), part["mean"].to_numpy(float) * scale
            low, high, spread = _spread(part, scale)
            (line,) = ax.plot(xs, mean, marker="o", label=f"{name} ({_count(part, unit)}; {spread})")
            line.set_gid(f"series:{name}")
            if np.any(high > low):
                band = ax.fill_between(xs, low, high, color=line.get_color(), alpha=0.2, lw=0)
                band.set_gid(f"band:{name}")
        if logx:
            ax.set_xscale("log")
        ax.set_xticks(xs_all)
        # Close values on a log axis (200 and 300) would print their labels into each other: tilt them.
        crowded = logx and len(xs_all) > 1 and float(np.min(np.diff(np.log10(xs_all)))) < 0.25
        ax.set_xticklabels([normalize(v) for v in xs_all], rotation=45 if crowded else 0)
        ax.minorticks_off()
    return fig


def _bar_figure(
    frame: pd.DataFrame, x: str, metric: str, keys: list[str], intervals: CellIntervals | None = None
) -> Any:
    suite = suite_of(frame)
    scale = scale_for(metric, suite)
    stats = aggregate(frame, metric, [*keys, x], intervals)
    categories = list(dict.fromkeys(normalize(c) for c in frame[x]))
    stats = stats.assign(**{x: stats[x].map(normalize)})
    groups = list(stats.groupby(keys, dropna=False, sort=False)) if keys else [((), stats)]
    width = 0.8 / max(len(groups), 1)
    with figure_style():
        fig = _new_figure()
        ax = fig.add_subplot()
        for index, (values, part) in enumerate(groups):
            values = values if isinstance(values, tuple) else (values,)
            name = group_name(keys, values)
            part = part.set_index(x).reindex(categories).dropna(subset=["mean"])
            positions = (
                np.array([categories.index(c) for c in part.index]) + (index - (len(groups) - 1) / 2) * width
            )
            low, high, spread = _spread(part, scale)
            mean = part["mean"].to_numpy(float) * scale
            bars = ax.bar(
                positions,
                mean,
                width=width,
                yerr=np.vstack([mean - low, high - mean]),
                capsize=2,
                label=f"{name} ({_count(part, repeat_unit(frame))}; {spread})",
            )
            for patch in bars.patches:
                patch.set_gid(f"bars:{name}")
        ax.set_xticks(range(len(categories)))
        ax.set_xticklabels(categories)
        low, high = ax.get_ylim()
        ax.set_ylim(low, high + 0.25 * (high - low))  # room for the legend above the bars
    return fig


# ------------------------------------------------------------------------------------------ paper figures
def prefix_runs(frame: pd.DataFrame) -> pd.DataFrame:
    """Full prefix-tuning runs (every layer, before the source): the runs of the length figure."""
    keep = frame.get("method.kind", pd.Series(index=frame.index, dtype=object)) == "prefix"
    if "method.depth" in frame:
        keep &= frame["method.depth"].fillna("all") == "all"
    if "method.placement" in frame:
        keep &= frame["method.placement"].fillna("prefix") == "prefix"
    return frame[keep]


def task_metrics(frame: pd.DataFrame) -> list[str]:
    """The test metric columns of the runs' suite that hold values, in the paper's order."""
    suite = suite_of(frame)
    names = SUITE_METRICS.get(suite or "", ())
    columns = [f"test.{m}" for m in names if f"test.{m}" in frame and frame[f"test.{m}"].notna().any()]
    return columns or [c for c in frame.columns if c.startswith("test.") and frame[c].notna().any()]


def _by_task(frame: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    if "task.name" not in frame:
        return [("runs", frame)]
    return [(str(t), part) for t, part in frame.groupby("task.name", sort=False)]


def length_figures(
    frame: pd.DataFrame, metrics: Sequence[str] | None = None, intervals: CellIntervals | None = None
) -> dict[tuple[str, str], Any]:
    """Paper Figure 4: prefix length vs each metric, per task, with the paper's best length marked.

    Runs: full prefix-tuning at two or more lengths; a zero-shot row (if run) is the dashed baseline. The
    mark comes from `experiments/*/paper_marks.csv` (task, column method.length); the paper's per-length
    values are not published, so none are drawn.
    """
    figures: dict[tuple[str, str], Any] = {}
    for task, part in _by_task(frame):
        runs = prefix_runs(part)
        if "method.length" not in runs or runs["method.length"].nunique() < 2:
            continue
        baseline = part[part["label"] == "zero-shot"] if "label" in part else part.iloc[:0]
        data = pd.concat([runs, baseline])
        marks = load_marks(task=task, column="method.length")
        for metric in metrics or task_metrics(runs):
            keys = auto_group(runs, "method.length", exclude=("label",))
            figures[(task, metric)] = figure(
                data,
                "method.length",
                metric,
                keys,
                baseline="zero-shot" if not baseline.empty else None,
                marks=marks,
                title=f"{task}: prefix length",
                intervals=intervals,
            )
            figures[(task, metric)].axes[0].set_xlabel("prefix length")
    return figures


def lowdata_figures(
    frame: pd.DataFrame, metrics: Sequence[str] | None = None, intervals: CellIntervals | None = None
) -> dict[tuple[str, str], Any]:
    """Paper Figure 3: training-set size vs each metric, one series per method (mean over subsets, seeds).

    Where a method ran a learning-rate grid at a size, only the rate chosen on validation is drawn
    (`prefixlab.report.selection`), as in the tables."""
    from prefixlab.report.selection import select_on_validation

    figures: dict[tuple[str, str], Any] = {}
    for task, part in _by_task(frame):
        if "task.train_size" not in part or part["task.train_size"].nunique() < 2:
            continue
        part, _ = select_on_validation(part.dropna(subset=["task.train_size"]))
        for metric in metrics or task_metrics(part):
            fig = figure(part, "task.train_size", metric, title=f"{task}: low data", intervals=intervals)
            fig.axes[0].set_xlabel("training examples")
            figures[(task, metric)] = fig
    return figures


def init_description(row: pd.Series) -> str:
    """How a prefix was initialized: "random", or the words whose activations started it."""
    if normalize(row.get("method.init")) != "tokens":
        return normalize(row.get("method.init")) or "none"
    text = normalize(row.get("method.init_text"))
    return f'"{text}"' if text else "real tokens"


def init_figures(
    frame: pd.DataFrame, metrics: Sequence[str] | None = None, intervals: CellIntervals | None = None
) -> dict[tuple[str, str], Any]:
    """Paper Figure 5: prefix initialization (random vs real words) vs each metric, as grouped bars."""
    figures: dict[tuple[str, str], Any] = {}
    for task, part in _by_task(frame):
        part = prefix_runs(part)
        if "method.init" not in part or part.empty:
            continue
        part = part.assign(init=part.apply(init_description, axis=1))
        if part["init"].nunique() < 2:
            continue
        keys = auto_group(part, "init", exclude=("method.init", "method.init_text", "method.init_token_ids"))
        keys = [k for k in keys if k != "label"] if is_function_of(part, "label", ["init"]) else keys
        for metric in metrics or task_metrics(part):
            fig = figure(part, "init", metric, keys, title=f"{task}: initialization", intervals=intervals)
            fig.axes[0].set_xlabel("prefix initialization")
            figures[(task, metric)] = fig
    return figures


def reparam_figures(
    frame: pd.DataFrame, metrics: Sequence[str] | None = None, intervals: CellIntervals | None = None
) -> dict[tuple[str, str], Any]:
    """Section 4.3: MLP reparameterization on vs off, bars per `method.reparam` (mean ± std over seeds)."""
    figures: dict[tuple[str, str], Any] = {}
    for task, part in _by_task(frame):
        part = prefix_runs(part)
        if "method.reparam" not in part or part["method.reparam"].nunique() < 2:
            continue
        keys = [k for k in auto_group(part, "method.reparam") if k != "label"]
        for metric in metrics or task_metrics(part):
            fig = figure(
                part, "method.reparam", metric, keys, title=f"{task}: reparameterization", intervals=intervals
            )
            fig.axes[0].set_xlabel("prefix reparameterization")
            figures[(task, metric)] = fig
    return figures


def plotted_points(fig: Any) -> int:
    """Number of data points in a figure's series and bars (not baselines or marks)."""
    total = 0
    for ax in fig.axes:
        total += sum(len(line.get_xdata()) for line in ax.lines if str(line.get_gid()).startswith("series:"))
        total += sum(1 for patch in ax.patches if str(patch.get_gid()).startswith("bars:"))
    return total
