"""`prefixlab wandb-report`: a W&B Report that compares a study's ablations, built with `wandb-workspaces`.

    prefixlab wandb-report runs/ablation_placement_depth_cpu       # with credentials: saves it, prints the URL
    prefixlab wandb-report runs/e2e_length_cpu --offline           # only the specification (JSON)
    wandb sync runs/e2e_length_cpu/*/wandb/offline-run-*           # later, with an API key: upload the runs ...
    prefixlab wandb-report --publish runs/e2e_length_cpu/wandb_report.json    # ... and publish the report

The study's runs are read from disk (`prefixlab.report.collect`: the folders with a complete `metrics.json`), so
the swept settings, the metric suite and the rows are known without a server. The report (`wandb_workspaces.
reports.v2`) filters the W&B project to the study's group and finished runs, and holds:

- a text block with the paper's numbers for the study's experiment (`experiments/<name>/paper*.csv`, see
  `prefixlab.report.paper`) beside ours (mean ± std over seeds, from disk);
- the length-vs-metric line plot: x = `setting/method_length`, y = the primary metric on the paper's scale,
  runs at one length averaged (mean, band = std over seeds), one line per setting of the other swept keys;
- a bar chart per metric with one bar per ablation row (`row`: PREFIX-5, EMB-1, ...), mean ± std over seeds,
  beside the runs table (settings, paper-scale metrics, stored parameters; interval columns with
  `--intervals`);
- a parallel-coordinates panel over the swept keys and the metrics;
- training curves (validation and training loss) per row, mean and band over seeds;
- the generations table (the `generations` W&B table of each run).

It addresses the flat ablation keys and the `paper/` and `setting/` metrics that `prefixlab.tracking` logs.

The specification (`wandb_report.json`, written beside the runs unless `--out`) is plain JSON: the tree of
`wandb_workspaces.reports.v2` objects, each `{"type": <class name>, <its arguments>}`, with the runsets'
entity and project left to publishing time. `build_report(spec)` turns it into a `wr.Report`, `publish` saves
it. Online means `prefixlab.tracking.resolve_mode("auto") == "online"` (credentials, and WANDB_MODE unset).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from prefixlab.atomic import write_text_atomic
from prefixlab.report.artifacts import EXPERIMENTS, experiment_of
from prefixlab.report.collect import (
    METRICS_FILE,
    SEED_COLUMNS,
    Collection,
    collect_runs,
    setting_columns,
)
from prefixlab.report.figures import is_function_of
from prefixlab.report.style import SUITE_METRICS, display_name
from prefixlab.tracking import (
    INTERVAL_SUFFIXES,
    PAPER_PREFIX,
    ROW_KEY,
    SETTING_PREFIX,
    ablation_keys,
    flat_name,
    has_wandb_credentials,
    resolve_mode,
)

SPEC_FORMAT = "prefixlab.wandb-report/1"
SPEC_FILE = "wandb_report.json"
LENGTH_COLUMN = "method.length"
GENERATIONS_TABLE = "generations"
STORED_PARAMETERS = "parameters/stored_parameters"
#: The band of every aggregated panel: sample std over the runs of a group (the seeds), as the disk report.
AGGREGATE = {"groupby_aggfunc": "mean", "groupby_rangefunc": "stddev"}
#: `wandb_workspaces.reports.v2` classes a specification may name.
SPEC_TYPES = frozenset(
    {
        "H1",
        "H2",
        "H3",
        "P",
        "MarkdownBlock",
        "PanelGrid",
        "Runset",
        "OrderBy",
        "Layout",
        "LinePlot",
        "BarPlot",
        "ScalarChart",
        "ParallelCoordinatesPlot",
        "ParallelCoordinatesPlotColumn",
        "WeavePanelSummaryTable",
        "Config",
        "SummaryMetric",
        "Metric",
    }
)


# ------------------------------------------------------------------------------------------ spec nodes
def node(kind: str, **fields: Any) -> dict[str, Any]:
    """One specification node: a `wr.<kind>(**fields)` call as JSON (None fields left out)."""
    if kind not in SPEC_TYPES:
        raise ValueError(f"{kind!r} is not a report type this specification allows ({sorted(SPEC_TYPES)})")
    return {"type": kind, **{key: value for key, value in fields.items() if value is not None}}


def config_ref(name: str) -> dict[str, Any]:
    """A config key (`wr.Config`): flat (`method_length`) or nested and dotted (`trainer.lr`)."""
    return node("Config", name=name)


def summary_ref(name: str) -> dict[str, Any]:
    """A summary metric (`wr.SummaryMetric`), e.g. `paper/BLEU`."""
    return node("SummaryMetric", name=name)


def config_column(name: str) -> str:
    """The runs-table accessor of a config key: `config:method_length.value`, `config:trainer.value.lr`."""
    head, *rest = name.split(".")
    return f"config:{head}.value" + "".join(f".{part}" for part in rest)


def layout(w: int, h: int, x: int = 0, y: int = 0) -> dict[str, Any]:
    """A panel's place in its grid (24 units wide)."""
    return node("Layout", x=x, y=y, w=w, h=h)


# ------------------------------------------------------------------------------------------ the study
def read_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The `metrics.json` record of every run in the frame (for configs and overrides as logged)."""
    records = []
    for run_dir in frame.get("run_dir", []):
        path = Path(str(run_dir)) / METRICS_FILE
        if path.is_file():
            records.append(json.loads(path.read_text(encoding="utf-8")))
    return records


def flat_keys_of(records: Sequence[Mapping[str, Any]]) -> set[str]:
    """The flat ablation keys every run's W&B config carries (as `prefixlab.tracking` derives them)."""
    keys: set[str] | None = None
    for record in records:
        found = set(ablation_keys(record.get("config") or {}, record.get("overrides") or []))
        keys = found if keys is None else keys & found
    return keys or set()


def wandb_key(column: str, flat: set[str]) -> str:
    """The W&B config key of a report column: `label` -> `row`, `method.length` -> `method_length` (when
    logged flat), else the column itself (a top-level or nested config key)."""
    if column == "label":
        return ROW_KEY
    column = column.removeprefix("config.")
    return flat_name(column) if flat_name(column) in flat else column


def _suite(frame: pd.DataFrame) -> str | None:
    suites = frame["metric_suite"].dropna().unique() if "metric_suite" in frame else []
    return str(suites[0]) if len(suites) else None


def _metrics(frame: pd.DataFrame, suite: str | None) -> list[str]:
    """The suite's metrics the runs have, in the paper's column order (else every test metric)."""
    found = [
        c.removeprefix("test.") for c in frame.columns if c.startswith("test.") and frame[c].notna().any()
    ]
    ordered = [m for m in SUITE_METRICS.get(suite or "", ()) if m in found]
    return ordered or found


def _history_keys(records: Sequence[Mapping[str, Any]]) -> list[str]:
    """Curve names the runs logged (validation first), from their training history."""
    keys: dict[str, None] = {}
    for record in records:
        for row in (record.get("training") or {}).get("history") or []:
            keys |= dict.fromkeys(k for k in row if k != "step")
    return sorted(keys, key=lambda k: (not k.startswith("val_"), k != "val_loss", k))


# ------------------------------------------------------------------------------------------ text
def paper_text(frame: pd.DataFrame, experiment: str | None) -> str:
    """Markdown: the paper's numbers for the experiment beside ours (mean ± std over seeds), and its marks.

    The hook for interval columns from `prefixlab.stats`: this is the one place that formats "ours"; swap
    `comparison_table`'s mean ± std for the 95% intervals when they exist.
    """
    from prefixlab.report import tables
    from prefixlab.report.paper import load_marks, load_paper_table

    builders = {
        "ablation": tables.ablation_table,
        "e2e_main": tables.e2e_main_table,
        "xsum_main": tables.xsum_main_table,
    }
    parts: list[str] = []
    built = [builders[kind](frame) for kind in EXPERIMENTS.get(experiment or "", ()) if kind in builders]
    paper = load_paper_table(experiment) if experiment else None
    if not built and paper is not None:
        built = [
            tables.comparison_table(
                frame, name=experiment, title=f"{experiment}: ours vs the paper", paper=paper
            )
        ]
    marks = load_marks()
    marks = (
        marks[marks["experiment"] == experiment] if experiment and "experiment" in marks else marks.iloc[:0]
    )
    if experiment:
        parts.append(
            f"Paper numbers (Li & Liang 2021) for the experiment `{experiment}` "
            f"(`experiments/{experiment}/`), beside ours from the run folders."
        )
    else:
        parts.append("This study reproduces no paper experiment (see `experiments/`): our numbers only.")
    for table in built:
        parts.append(table.to_markdown())
    for mark in marks.to_dict("records"):
        parts.append(
            f"- **{mark['label']}** ({mark['source']}, {mark['version']}; `{mark['column']}` = {mark['value']} "
            f"on {mark['task']}): {mark.get('note', '')}"
        )
    if not built:
        if experiment:
            parts.append(f"`experiments/{experiment}/` has no `paper.csv`: no table of the paper's numbers.")
        parts.append(tables.summary_table(frame, title="Ours: every setting").to_markdown())
    return "\n\n".join(parts)


# ------------------------------------------------------------------------------------------ the spec
@dataclass
class StudyRuns:
    """What the report needs to know about a study's runs on disk."""

    study: str
    experiment: str | None
    frame: pd.DataFrame
    records: list[dict[str, Any]]
    suite: str | None
    metrics: list[str]
    primary: str
    swept: list[str]
    keys: dict[str, str]
    source: str

    @property
    def filters(self) -> str:
        """The runsets' filter: the study's W&B group, finished runs."""
        return f"Metric('Group') = {self.study!r} and Metric('State') = 'finished'"

    @property
    def paper_metrics(self) -> list[str]:
        """The summary keys of the metrics on the paper's scale (`paper/BLEU`, ...)."""
        return [f"{PAPER_PREFIX}{m}" for m in self.metrics]

    def runset(self, name: str, groupby: Sequence[str] = (), **columns: Any) -> dict[str, Any]:
        """A runset of the study's runs (project and entity filled in when the report is built)."""
        return node("Runset", name=name, filters=self.filters, groupby=list(groupby) or None, **columns)


def study_runs(collection: Collection, study: str | None = None, experiment: str | None = None) -> StudyRuns:
    """The study's runs, metric suite, swept settings and their W&B keys, from a collection of run folders."""
    frame = collection.frame
    if frame.empty:
        raise ValueError(f"no complete runs in {collection.source}")
    studies = [str(s) for s in dict.fromkeys(frame["study"].dropna())] if "study" in frame else []
    if study is None:
        if len(studies) != 1:
            raise ValueError(f"{collection.source} holds the studies {studies}; name one with --study-name")
        study = studies[0]
    if "study" in frame:
        frame = frame[frame["study"] == study].reset_index(drop=True)
    if frame.empty:
        raise ValueError(f"no complete runs of the study {study!r} in {collection.source}")
    records = read_records(frame)
    flat = flat_keys_of(records)
    suite = _suite(frame)
    metrics = _metrics(frame, suite)
    primaries = frame["primary_metric"].dropna() if "primary_metric" in frame else pd.Series(dtype=object)
    swept = [c for c in setting_columns(frame) if c not in SEED_COLUMNS]
    return StudyRuns(
        study=study,
        experiment=experiment or experiment_of(study),
        frame=frame,
        records=records,
        suite=suite,
        metrics=metrics,
        primary=str(primaries.iloc[0]) if len(primaries) else metrics[0],
        swept=swept,
        keys={column: wandb_key(column, flat) for column in swept},
        source=collection.source,
    )


def length_section(runs: StudyRuns) -> list[dict[str, Any]]:
    """Prefix length vs each metric: x = `setting/method_length`, one line per setting of the other swept keys
    (or one for the study), the runs at one length averaged (mean, band = std over seeds). Empty when the
    length does not vary."""
    frame, keys = runs.frame, runs.keys
    if LENGTH_COLUMN not in frame or pd.to_numeric(frame[LENGTH_COLUMN], errors="coerce").nunique() < 2:
        return []
    others = [c for c in runs.swept if c not in (LENGTH_COLUMN, "label")]
    if "label" in runs.swept and not is_function_of(frame, "label", [*others, LENGTH_COLUMN]):
        others.append("label")
    groupby = [f"config.{keys[c]}" for c in others] or ["group"]
    # One series key: the panel groups by it too (a panel's own grouping takes one key); several: the runset's
    # grouping alone.
    series = (config_ref(keys[others[0]]) if len(others) == 1 else None) if others else "Group"
    ordered = [runs.primary, *[m for m in runs.metrics if m != runs.primary]]
    lines = [
        node(
            "LinePlot",
            title=f"prefix length vs {display_name(m, runs.suite)}",
            x=f"{SETTING_PREFIX}{flat_name(LENGTH_COLUMN)}",
            y=[f"{PAPER_PREFIX}{m}"],
            title_x="prefix length",
            title_y=display_name(m, runs.suite),
            groupby=series,
            layout=layout(24, 8) if i == 0 else layout(12, 7, x=12 * ((i - 1) % 2), y=8 + 7 * ((i - 1) // 2)),
            **AGGREGATE,
        )
        for i, m in enumerate(ordered)
    ]
    per = ", ".join(keys[c] for c in others) or "study"
    return [
        node("H2", text=f"Prefix length vs {display_name(runs.primary, runs.suite)}"),
        node(
            "P",
            text="x: prefix length; the runs at one length are averaged: the line is their mean, the band "
            f"their std over seeds; one line per {per}.",
        ),
        node(
            "PanelGrid", runsets=[runs.runset(f"{runs.study} by {', '.join(groupby)}", groupby)], panels=lines
        ),
    ]


def rows_section(runs: StudyRuns, intervals: bool = False) -> list[dict[str, Any]]:
    """A bar chart per metric with a bar per ablation row (mean, band = std over seeds), and the runs table."""
    keys, paper = runs.keys, runs.paper_metrics
    visible = [config_column(keys[c]) for c in runs.swept if keys[c] != ROW_KEY] + [config_column("seed")]
    visible += [f"summary:{m}" for m in paper] + [f"summary:{STORED_PARAMETERS}"]
    if intervals:
        visible += [f"summary:{m}{suffix}" for m in paper for suffix in INTERVAL_SUFFIXES]
    rows = max(1, runs.frame["label"].nunique()) if "label" in runs.frame else None
    bars = [
        node(
            "BarPlot",
            title=f"{display_name(m, runs.suite)} by row",
            metrics=[f"{PAPER_PREFIX}{m}"],
            groupby=config_ref(ROW_KEY),
            orientation="v",
            max_bars_to_show=rows,
            layout=layout(8, 6, x=8 * (i % 3), y=6 * (i // 3)),
            **AGGREGATE,
        )
        for i, m in enumerate(runs.metrics)
    ]
    table = runs.runset(
        f"{runs.study}: runs",
        pinned_columns=["run:displayName", config_column(ROW_KEY)],
        visible_columns=visible,
        lock_columns=True,
    )
    return [
        node("H2", text="Ablation rows"),
        node(
            "P",
            text=f"One bar per row (`{ROW_KEY}`): the mean over its seeds, the band their std. The runs table "
            "lists every run's settings, paper-scale metrics and stored parameters.",
        ),
        node("PanelGrid", runsets=[table], panels=bars),
    ]


def parallel_section(runs: StudyRuns) -> list[dict[str, Any]]:
    """A parallel-coordinates panel over the swept keys (the row when nothing is swept) and the metrics."""
    axes = [config_ref(runs.keys[c]) for c in runs.swept] or [config_ref(ROW_KEY)]
    columns = [node("ParallelCoordinatesPlotColumn", metric=axis) for axis in axes]
    columns += [
        node("ParallelCoordinatesPlotColumn", metric=summary_ref(m), display_name=m)
        for m in runs.paper_metrics
    ]
    panel = node(
        "ParallelCoordinatesPlot",
        title=f"{runs.study}: swept settings vs metrics",
        columns=columns,
        layout=layout(24, 9),
    )
    return [
        node("H2", text="Swept settings"),
        node("PanelGrid", runsets=[runs.runset(f"{runs.study}: swept settings")], panels=[panel]),
    ]


def curves_section(runs: StudyRuns) -> list[dict[str, Any]]:
    """Validation (and training) loss over steps per row, mean and band over seeds; empty without training."""
    logged = _history_keys(runs.records)
    keys = [k for k in logged if k in ("val_loss", f"val_{runs.primary}")] or logged[:1]
    if any((r.get("training") or {}).get("trained") for r in runs.records):
        keys.append("train_loss")  # logged every `logger.log_every` steps, not kept in metrics.json
    if not keys:
        return []
    panels = [
        node(
            "LinePlot",
            title=f"{key} by row",
            x="Step",
            y=[key],
            groupby=config_ref(ROW_KEY),
            layout=layout(12, 7, x=12 * (i % 2), y=7 * (i // 2)),
            **AGGREGATE,
        )
        for i, key in enumerate(keys)
    ]
    return [
        node("H2", text="Training curves"),
        node("PanelGrid", runsets=[runs.runset(f"{runs.study}: curves")], panels=panels),
    ]


def generations_section(runs: StudyRuns) -> list[dict[str, Any]]:
    """The `generations` table each run logged (source, output, first reference)."""
    table = node("WeavePanelSummaryTable", table_name=GENERATIONS_TABLE, layout=layout(24, 12))
    return [
        node("H2", text="Generations"),
        node("P", text="Sample test generations of each run: source, output, first reference."),
        node("PanelGrid", runsets=[runs.runset(f"{runs.study}: generations")], panels=[table]),
    ]


def report_spec(
    collection: Collection,
    *,
    study: str | None = None,
    experiment: str | None = None,
    entity: str | None = None,
    project: str | None = None,
    title: str | None = None,
    intervals: bool = False,
) -> dict[str, Any]:
    """The report's specification for one study's runs (see the module docstring).

    `entity`/`project`: default the runs' `logger.entity`/`logger.project` (the entity may stay None: the
    logged-in user's default at publishing). `intervals`: add the `*_ci95_low|high` columns that an interval
    hook (`prefixlab.tracking.register_interval_hook`) logs to the runs table.
    """
    runs = study_runs(collection, study, experiment)
    logged = [(r.get("config") or {}).get("logger") or {} for r in runs.records]
    project = project or next((str(x["project"]) for x in logged if x.get("project")), "prefixlab")
    entity = entity or next((str(x["entity"]) for x in logged if x.get("entity")), None)
    blocks = [
        node("P", text=_description(runs)),
        node("H2", text="Paper numbers"),
        node("MarkdownBlock", text=paper_text(runs.frame, runs.experiment)),
        *length_section(runs),
        *rows_section(runs, intervals),
        *parallel_section(runs),
        *curves_section(runs),
        *generations_section(runs),
    ]
    return {
        "format": SPEC_FORMAT,
        "study": runs.study,
        "experiment": runs.experiment,
        "entity": entity,
        "project": project,
        "title": (title or f"prefixlab: {runs.study}")[:128],
        "description": f"{len(runs.frame)} runs of the study {runs.study!r}"
        + (f", reproducing the paper experiment {runs.experiment!r}" if runs.experiment else ""),
        "width": "fluid",
        "swept": dict(runs.keys),
        "metrics": runs.paper_metrics,
        "filters": runs.filters,
        "runs": sorted(str(p) for p in runs.frame.get("run_dir", [])),
        "blocks": blocks,
    }


def _description(runs: StudyRuns) -> str:
    """The report's opening paragraph: what ran, what was swept, where the numbers come from."""
    frame = runs.frame
    seeds = sorted(frame["seed"].dropna().unique().tolist()) if "seed" in frame else []
    values = {c: sorted(map(str, frame[c].dropna().unique().tolist())) for c in runs.swept}
    sweep = "; ".join(f"{c} = {', '.join(v)}" for c, v in values.items()) or "nothing"
    return (
        f"Study {runs.study}: {len(frame)} complete runs from {runs.source}. Swept: {sweep}. Seeds: "
        f"{', '.join(map(str, seeds)) or 'n/a'}. The panels show the W&B runs of group {runs.study} that "
        "finished; metrics on the paper's scale (`paper/*`: E2E BLEU, METEOR and ROUGE-L x100)."
        + (
            f" Paper experiment: {runs.experiment} (experiments/{runs.experiment}/)."
            if runs.experiment
            else ""
        )
    )


# ------------------------------------------------------------------------------------------ spec -> W&B
def _decode(value: Any, wr: Any) -> Any:
    """Specification JSON -> `wandb_workspaces.reports.v2` objects."""
    if isinstance(value, list):
        return [_decode(item, wr) for item in value]
    if isinstance(value, Mapping) and "type" in value:
        kind = value["type"]
        if kind not in SPEC_TYPES:
            raise ValueError(f"the report specification names {kind!r}, not one of {sorted(SPEC_TYPES)}")
        fields = {key: _decode(item, wr) for key, item in value.items() if key != "type"}
        return getattr(wr, kind)(**fields)
    if isinstance(value, Mapping):
        return {key: _decode(item, wr) for key, item in value.items()}
    return value


def _default_entity() -> str:
    from wandb_workspaces.reports.v2 import interface

    return str(interface._get_api().default_entity)


def build_report(spec: Mapping[str, Any], *, entity: str | None = None, project: str | None = None) -> Any:
    """A `wandb_workspaces.reports.v2.Report` from a specification; every runset gets the report's project.

    The entity: `entity`, else the specification's, else the logged-in user's default (needs the W&B API).
    """
    import wandb_workspaces.reports.v2 as wr

    if spec.get("format") != SPEC_FORMAT:
        raise ValueError(f"not a prefixlab W&B report specification (format {spec.get('format')!r})")
    project = project or spec.get("project") or "prefixlab"
    entity = entity or spec.get("entity") or _default_entity()
    blocks = _decode(list(spec["blocks"]), wr)
    for block in blocks:
        for runset in getattr(block, "runsets", None) or []:
            runset.entity, runset.project = runset.entity or entity, runset.project or project
    return wr.Report(
        project=project,
        entity=entity,
        title=spec.get("title", "prefixlab"),
        description=spec.get("description", ""),
        width=spec.get("width", "readable"),
        blocks=blocks,
    )


def publish(spec: Mapping[str, Any], *, entity: str | None = None, project: str | None = None) -> str:
    """Save the report to W&B (needs credentials and the runs uploaded); returns its URL."""
    report = build_report(spec, entity=entity, project=project)
    report.save()
    return str(report.url)


def check_spec(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The W&B payload the specification gives, built without a server (runsets without a project)."""
    import wandb_workspaces.reports.v2 as wr

    report = wr.Report(
        project=spec.get("project") or "prefixlab",
        entity=spec.get("entity") or "-",
        title=spec.get("title", "prefixlab"),
        blocks=_decode(list(spec["blocks"]), wr),
    )
    return report._to_model().model_dump(by_alias=True, exclude_none=True)


# ------------------------------------------------------------------------------------------ CLI
def study_folder(study: str) -> Path:
    """The run folder tree of a study: a path, else `$PREFIXLAB_RUNS/<study>`, else `runs/<study>`."""
    candidates = [Path(study), Path(os.environ.get("PREFIXLAB_RUNS", "runs")) / study, Path("runs") / study]
    for path in candidates:
        if path.is_dir():
            return path
    raise FileNotFoundError(
        f"no run folders at {study} (also looked in {', '.join(map(str, candidates[1:]))})"
    )


def unsynced_runs(folder: Path) -> list[Path]:
    """Offline W&B runs under `folder` that `wandb sync` has not marked as uploaded."""
    return sorted(
        path for path in folder.glob("*/wandb/offline-run-*") if not any(path.glob("*.wandb.synced"))
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `prefixlab wandb-report`."""
    parser = argparse.ArgumentParser(
        prog="prefixlab wandb-report",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("study", nargs="?", help="the study's run folder tree (runs/<study>), or its name")
    parser.add_argument("--publish", metavar="SPEC", help="publish a specification written earlier")
    parser.add_argument("--offline", action="store_true", help="only write the specification")
    parser.add_argument("--out", help=f"the specification's path (default: <study folder>/{SPEC_FILE})")
    parser.add_argument("--entity", help="W&B entity (default: the runs' logger.entity, else your default)")
    parser.add_argument("--project", help="W&B project (default: the runs' logger.project)")
    parser.add_argument(
        "--experiment", choices=sorted(EXPERIMENTS), help="paper experiment (default: from the study)"
    )
    parser.add_argument("--study-name", help="the study (W&B group) when the folder holds several")
    parser.add_argument("--title", help="report title (default: prefixlab: <study>)")
    parser.add_argument(
        "--intervals", action="store_true", help="add the *_ci95_low/high columns to the runs table"
    )
    return parser


def _online() -> bool:
    return resolve_mode("auto") == "online"


def _offline_reason() -> str:
    if os.environ.get("WANDB_MODE") and os.environ["WANDB_MODE"] != "online":
        return f"WANDB_MODE={os.environ['WANDB_MODE']}"
    return "no W&B credentials (WANDB_API_KEY or `wandb login`)"


def main(argv: list[str] | None = None) -> int:
    """Entry point of `prefixlab wandb-report`; returns the exit status."""
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    if args.publish:
        if not _online():
            print(
                f"prefixlab wandb-report: --publish needs W&B online: {_offline_reason()}.", file=sys.stderr
            )
            return 2
        try:
            spec = json.loads(Path(args.publish).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as error:
            print(f"prefixlab wandb-report: cannot read {args.publish}: {error}", file=sys.stderr)
            return 2
        if not isinstance(spec, dict) or spec.get("format") != SPEC_FORMAT:
            print(
                f"prefixlab wandb-report: {args.publish} is not a {SPEC_FORMAT} specification",
                file=sys.stderr,
            )
            return 2
        return _save(spec, args, Path(args.publish))
    if not args.study:
        print(
            "prefixlab wandb-report: give a study's run folder (runs/<study>) or --publish SPEC",
            file=sys.stderr,
        )
        return 2
    try:
        folder = study_folder(args.study)
        collection = collect_runs(folder)
        spec = report_spec(
            collection,
            study=args.study_name,
            experiment=args.experiment,
            entity=args.entity,
            project=args.project,
            title=args.title,
            intervals=args.intervals,
        )
    except (FileNotFoundError, ValueError) as error:
        print(f"prefixlab wandb-report: {error}", file=sys.stderr)
        return 2
    collection.print_incomplete()
    out = Path(args.out) if args.out else folder / SPEC_FILE
    write_text_atomic(out, json.dumps(spec, indent=1) + "\n")
    panels = sum(len(b.get("panels", [])) for b in spec["blocks"])
    print(f"prefixlab wandb-report: {spec['study']}: {len(spec['runs'])} runs, {panels} panels -> {out}")
    pending = unsynced_runs(folder)
    if args.offline or not _online():
        why = "--offline" if args.offline else _offline_reason()
        print(
            f"prefixlab wandb-report: {why}: wrote the specification only. To publish it later:\n"
            + ("  wandb login\n" if not has_wandb_credentials() else "")
            + f"  wandb sync {folder}/*/wandb/offline-run-*\n  prefixlab wandb-report --publish {out}"
        )
        return 0
    if pending:
        print(
            f"prefixlab wandb-report: {len(pending)} offline run(s) not uploaded yet (e.g. {pending[0]}): "
            f"`wandb sync {folder}/*/wandb/offline-run-*`, or the report shows no data for them."
        )
    return _save(spec, args, out)


def _save(spec: Mapping[str, Any], args: argparse.Namespace, path: Path) -> int:
    try:
        url = publish(spec, entity=args.entity, project=args.project)
    except Exception as error:  # network, permissions, unknown project: keep the spec, say what to do
        print(
            f"prefixlab wandb-report: saving to W&B failed ({type(error).__name__}: {error}); the "
            f"specification is kept: prefixlab wandb-report --publish {path}",
            file=sys.stderr,
        )
        return 1
    print(f"prefixlab wandb-report: saved the W&B report: {url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
