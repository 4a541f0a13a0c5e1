"""Gather runs into one tidy DataFrame: one row per run, from run folders, a W&B project or a saved summary.

    from prefixlab.report import collect_runs
    runs = collect_runs("runs/ablation_placement_depth")  # any folder tree of run folders
    runs.frame[["label", "seed", "method.length", "test.BLEU"]]
    runs.incomplete                                       # folders without a complete metrics.json

Columns: identity (`study`, `label`, `seed`, `run`, `run_dir`, `fingerprint` (of the run's config,
`prefixlab.identity`), `status`, `metric_suite`, `primary_metric`),
the resolved config flattened with dotted names (`method.length`, `model.name`, `trainer.lr`, ...), every
metric (`test.BLEU`, `validation.val_loss`), `parameters.*`, `training.*` (timing, tokens; not the history),
`evaluation.*`, `data.*`, `system.*` and `wall_seconds`. Values are raw, as in `metrics.json` (E2E BLEU
on 0..1).

A run folder is a folder holding `metrics.json`, `config.yaml` or `.hydra/`. It counts only when
`metrics.json` parses and says `"status": "complete"`; every other run folder is listed in `incomplete`
with the reason, and never mixed into the frame.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

import pandas as pd

from prefixlab.atomic import write_text_atomic
from prefixlab.suites import SUITES

METRICS_FILE = "metrics.json"  # prefixlab.runs.METRICS_FILE (not imported: that module imports torch)
STATUS_COMPLETE = "complete"
RUN_MARKERS = (METRICS_FILE, "config.yaml", ".hydra")
PRIMARY_METRIC = {name: s.primary for name, s in SUITES.items()}

IDENTITY_COLUMNS = ("study", "label", "seed", "run", "status", "metric_suite", "primary_metric")
# Top-level names owned by the run record: a config key with one of these names gets a `config.` prefix.
RECORD_COLUMNS = frozenset(
    {
        "run",
        "run_dir",
        "fingerprint",
        "status",
        "metric_suite",
        "primary_metric",
        "overrides",
        "wall_seconds",
        "source",
        "test",
        "validation",
        "parameters",
        "training",
        "evaluation",
        "data",
        "system",
        "wandb",
        "summary",
        "config",
    }
)
RECORD_GROUPS = ("parameters", "training", "evaluation", "data", "system", "summary", "wandb")
SKIPPED_FIELDS = frozenset({"training.history"})
# Repeats of one setting: averaged over in figures and tables.
SEED_COLUMNS = ("seed", "task.subset_seed")
# Config values that never change results: not settings to group by.
NUISANCE_PREFIXES = ("paths.", "logger.", "task.data_dir", "task.source")
NUISANCE_COLUMNS = frozenset(
    {
        "eval.batch_size",
        "eval.samples_to_log",
        "trainer.device",
        "trainer.num_threads",
        "trainer.activation_checkpointing",
        "trainer.checkpoint_every",
        "run",
        "run_dir",
    }
)


@dataclass(frozen=True)
class IncompleteRun:
    """A run that was found but left out, and why."""

    path: str
    reason: str
    study: str | None = None


@dataclass
class Collection:
    """The runs' DataFrame, the runs left out, and where they came from."""

    frame: pd.DataFrame
    incomplete: list[IncompleteRun] = field(default_factory=list)
    source: str = ""

    def incomplete_frame(self) -> pd.DataFrame:
        """The left-out runs as a DataFrame (path, reason, study)."""
        return pd.DataFrame([asdict(r) for r in self.incomplete], columns=["path", "reason", "study"])

    def print_incomplete(self, file: TextIO | None = None) -> None:
        """List the left-out runs (default: on stderr)."""
        file = file or sys.stderr
        if not self.incomplete:
            return
        print(f"prefixlab report: {len(self.incomplete)} incomplete run(s) left out:", file=file)
        for run in self.incomplete:
            print(f"  {run.path}: {run.reason}", file=file)

    def studies(self) -> list[str]:
        """The studies present, in order of appearance."""
        if "study" not in self.frame:
            return []
        return [str(s) for s in dict.fromkeys(self.frame["study"].fillna("unknown"))]

    def subset(self, study: str) -> Collection:
        """The runs (and incomplete runs) of one study."""
        frame = self.frame[self.frame["study"].fillna("unknown") == study].reset_index(drop=True)
        incomplete = [r for r in self.incomplete if r.study in (study, None)]
        return Collection(frame=frame, incomplete=incomplete, source=self.source)


# ------------------------------------------------------------------------------------------ records -> rows
def flatten(value: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts -> dotted keys; lists and other containers -> JSON text (one hashable cell)."""
    out: dict[str, Any] = {}
    for key, item in value.items():
        name = f"{prefix}{key}"
        if isinstance(item, Mapping):
            out.update(flatten(item, f"{name}."))
        elif isinstance(item, list | tuple | set):
            out[name] = json.dumps(list(item), default=str)
        else:
            out[name] = item
    return out


def derive_label(config: Mapping[str, Any], recorded: str | None = None) -> str:
    """The row name of a run: the label its job recorded, else `config.label`, else the method's own label
    (`prefixlab.methods.registry.method_label`: PREFIX-n, EMB-n, INFIX-n, fine-tune, FT-top2, ...)."""
    if recorded:
        return str(recorded)
    if config.get("label"):
        return str(config["label"])
    method = config.get("method") or {}
    from prefixlab.methods.registry import method_label
    from prefixlab.settings import SettingsError

    try:
        return method_label(method)
    except SettingsError:
        return str(method.get("kind") or "run")


def record_to_row(record: Mapping[str, Any], run_dir: str | None = None) -> dict[str, Any]:
    """One flat row from a `metrics.json` record (or a W&B run converted to that shape)."""
    config = dict(record.get("config") or {})
    run_dir = run_dir or str(record.get("run_dir", ""))
    row: dict[str, Any] = {
        "study": record.get("study") or config.get("study"),
        "label": derive_label(config, record.get("label")),
        "seed": config.get("seed"),
        "run": Path(run_dir).name if run_dir else None,
        "run_dir": run_dir,
        "fingerprint": record.get("fingerprint"),
        "status": record.get("status"),
        "metric_suite": record.get("metric_suite"),
        "primary_metric": record.get("primary_metric"),
        "overrides": json.dumps(record.get("overrides") or []),
    }
    for key, value in flatten(
        {k: v for k, v in config.items() if k not in ("study", "label", "seed")}
    ).items():
        row[f"config.{key}" if key.split(".")[0] in RECORD_COLUMNS else key] = value
    for split, values in (record.get("metrics") or {}).items():
        for metric, value in (values or {}).items():
            row[f"{split}.{metric}"] = value
    for group in RECORD_GROUPS:
        for key, value in flatten(record.get(group) or {}, f"{group}.").items():
            if key not in SKIPPED_FIELDS:
                row[key] = value
    row["wall_seconds"] = record.get("wall_seconds")
    return row


def order_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """Identity first, then config, metrics, parameters, training, evaluation, timing, the rest."""
    rank = {"test": 2, "validation": 3, "parameters": 4, "training": 5, "evaluation": 6, "wall_seconds": 7}
    rank |= {
        "data": 8,
        "system": 9,
        "summary": 10,
        "wandb": 11,
        "run_dir": 12,
        "fingerprint": 12,
        "overrides": 12,
    }

    def key(column: str) -> tuple[int, int]:
        if column in IDENTITY_COLUMNS:
            return (0, IDENTITY_COLUMNS.index(column))
        head = column.split(".")[0]
        return (rank.get(head, 1), 0)

    return frame[sorted(frame.columns, key=key)]  # sorted() is stable: file order within a block


def frame_from_rows(rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """A DataFrame from flat rows, sorted by study, label and seed, columns ordered."""
    frame = pd.DataFrame(list(rows))
    if frame.empty:
        return frame
    frame = order_columns(frame)
    sort = [c for c in ("study", "label", "seed", "run") if c in frame]
    return frame.sort_values(sort, kind="stable", na_position="last").reset_index(drop=True)


# ------------------------------------------------------------------------------------------ run folders
def find_run_folders(root: str | os.PathLike) -> list[Path]:
    """Every run folder under `root` (the root itself may be one); never descends into a run folder."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"no runs folder at {root}")
    found: list[Path] = []
    for current, dirs, files in os.walk(root):
        names = set(files) | set(dirs)
        if any(marker in names for marker in RUN_MARKERS):
            found.append(Path(current))
            dirs[:] = []  # a run's own subfolders (wandb/, checkpoint/) hold no other runs
            continue
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d != "wandb")
    return found


def read_run_folder(path: Path) -> dict[str, Any] | IncompleteRun:
    """The record of a complete run, or an IncompleteRun saying what is wrong."""
    metrics = path / METRICS_FILE
    study = path.parent.name
    if not metrics.is_file():
        resumable = (path / "checkpoint" / "state.pt").is_file()
        reason = "no metrics.json (crashed, killed or still running)"
        return IncompleteRun(
            str(path), reason + ("; a checkpoint exists: re-launch resumes it" if resumable else ""), study
        )
    try:
        record = json.loads(metrics.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        return IncompleteRun(str(path), f"metrics.json unreadable: {error}", study)
    if not isinstance(record, dict) or record.get("status") != STATUS_COMPLETE:
        status = record.get("status") if isinstance(record, dict) else None
        return IncompleteRun(str(path), f"metrics.json status is {status!r}, not {STATUS_COMPLETE!r}", study)
    return record


def collect_runs(*roots: str | os.PathLike) -> Collection:
    """All runs under the given folders (Hydra multirun folders or any tree of run folders)."""
    rows, incomplete, seen = [], [], set()
    for root in roots:
        for path in find_run_folders(root):
            if path.resolve() in seen:
                continue
            seen.add(path.resolve())
            result = read_run_folder(path)
            if isinstance(result, IncompleteRun):
                incomplete.append(result)
            else:
                rows.append(record_to_row(result, str(path)))
    incomplete = [
        IncompleteRun(r.path, r.reason, _study_of(Path(r.path), rows) or r.study) for r in incomplete
    ]
    return Collection(frame_from_rows(rows), incomplete, source=", ".join(str(r) for r in roots))


def _study_of(path: Path, rows: Sequence[Mapping[str, Any]]) -> str | None:
    """The study of an incomplete run: its config.yaml's `study`, else a complete sibling's."""
    config = path / "config.yaml"
    if config.is_file():
        for line in config.read_text(encoding="utf-8").splitlines():
            if line.startswith("study:"):
                return line.split(":", 1)[1].strip().strip("'\"") or None
    for row in rows:
        if row.get("run_dir") and Path(row["run_dir"]).parent == path.parent:
            return row.get("study")
    return None


# ------------------------------------------------------------------------------------------ W&B
def wandb_filters(
    group: str | None = None, tags: Sequence[str] = (), config: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """A `wandb.Api().runs(filters=...)` query: group equals, every tag present, config values equal."""
    clauses: list[dict[str, Any]] = []
    if group:
        clauses.append({"group": group})
    clauses += [{"tags": {"$in": [tag]}} for tag in tags]
    clauses += [{f"config.{key}": value} for key, value in (config or {}).items()]
    if not clauses:
        return {}
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}


def wandb_record(run: Any) -> dict[str, Any]:
    """A W&B public-API run as a `metrics.json`-shaped record (config, test metrics, parameters, state)."""
    config = {k: v for k, v in dict(run.config or {}).items() if not str(k).startswith("_")}
    summary = getattr(run, "summary_metrics", None)
    if not isinstance(summary, Mapping):
        summary = dict(getattr(run, "summary", {}) or {})
    metrics: dict[str, dict[str, Any]] = {"test": {}, "validation": {}}
    parameters: dict[str, Any] = {}
    other: dict[str, Any] = {}
    for key, value in summary.items():
        if str(key).startswith("_") or isinstance(value, Mapping | list):
            continue  # W&B internals, tables and media
        if key.startswith("test/"):
            metrics["test"][key.split("/", 1)[1]] = value
        elif key.startswith("parameters/"):
            parameters[key.split("/", 1)[1]] = value
        elif key.startswith("val_"):
            metrics["validation"][key] = value
        else:
            other[key.replace("/", ".")] = value
    state = str(getattr(run, "state", "unknown"))
    complete = state == "finished" and bool(metrics["test"])
    suite = (config.get("task") or {}).get("metric")
    tags = list(getattr(run, "tags", None) or [])
    return {
        "status": STATUS_COMPLETE
        if complete
        else f"wandb state {state}" + ("" if metrics["test"] else ", no test metrics"),
        "study": getattr(run, "group", None) or config.get("study"),
        "run_dir": getattr(run, "url", None) or "/".join(getattr(run, "path", []) or []),
        "config": config,
        "metric_suite": suite,
        "primary_metric": PRIMARY_METRIC.get(suite or ""),
        "metrics": {k: v for k, v in metrics.items() if v},
        "parameters": parameters,
        "summary": other,
        "wandb": {
            "id": getattr(run, "id", None),
            "name": getattr(run, "name", None),
            "group": getattr(run, "group", None),
            "job_type": getattr(run, "job_type", None),
            "state": state,
            "tags": tags,
        },
        "wall_seconds": summary.get("_runtime"),
    }


def _record_passes(
    record: Mapping[str, Any], group: str | None, tags: Sequence[str], config: Mapping[str, Any]
) -> bool:
    """The same filters, applied locally (to cached pulls, and in case the server ignores one)."""
    from prefixlab.report.paper import normalize

    info = record.get("wandb") or {}
    if group and info.get("group", record.get("study")) != group:
        return False
    if any(tag not in (info.get("tags") or []) for tag in tags):
        return False
    flat = flatten(record.get("config") or {})
    return all(normalize(flat.get(key)) == normalize(value) for key, value in config.items())


def collect_wandb(
    path: str,
    *,
    group: str | None = None,
    tags: Sequence[str] = (),
    config: Mapping[str, Any] | None = None,
    cache: str | os.PathLike | None = None,
    refresh: bool = False,
    api: Any = None,
) -> Collection:
    """Runs of the W&B project `entity/project` via `wandb.Api()`, filtered by group, tags and config values.

    The pull is saved to `cache` (JSON); later calls read it offline unless `refresh`. `api` replaces
    `wandb.Api()` (tests pass a fake). Runs that did not finish, or have no test metrics, are listed as
    incomplete.
    """
    config = dict(config or {})
    query = wandb_filters(group, tags, config)
    cache_path = Path(cache) if cache else None
    if cache_path is not None and cache_path.is_file() and not refresh:
        payload = json.loads(cache_path.read_text(encoding="utf-8"))
        if payload.get("path") != path or payload.get("filters") != json.loads(json.dumps(query)):
            raise ValueError(
                f"the W&B cache {cache_path} holds a pull of {payload.get('path')} with filters "
                f"{payload.get('filters')}, not {path} with {query}; pass --refresh (or another cache file)."
            )
        records = payload["runs"]
        source = f"W&B {path} (cached pull of {payload.get('pulled_at')}: {cache_path})"
    else:
        try:
            if api is None:
                import wandb

                api = wandb.Api()
            try:  # lazy=False: config and summary in the page queries, not one request per run
                found = list(api.runs(path, filters=query or None, per_page=200, lazy=False))
            except TypeError:  # wandb before the `lazy` argument
                found = list(api.runs(path, filters=query or None, per_page=200))
            records = [wandb_record(run) for run in found]
        except Exception as error:  # no network, no API key, unknown project: say what to do
            raise RuntimeError(
                f"W&B pull of {path} failed ({type(error).__name__}: {error}); check `wandb login` and the "
                "project path, or point --wandb-cache at an earlier pull to work offline."
            ) from error
        source = f"W&B {path} (pulled with filters {json.dumps(query)})"
        if cache_path is not None:
            payload = {
                "path": path,
                "filters": query,
                "pulled_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "runs": records,
            }
            write_text_atomic(cache_path, json.dumps(payload, indent=1, default=str) + "\n")
    rows, incomplete = [], []
    for record in records:
        if not _record_passes(record, group, tags, config):
            continue
        if record.get("status") == STATUS_COMPLETE:
            rows.append(record_to_row(record))
        else:
            incomplete.append(
                IncompleteRun(str(record.get("run_dir")), str(record.get("status")), record.get("study"))
            )
    return Collection(frame_from_rows(rows), incomplete, source=source)


# ------------------------------------------------------------------------------------------ summaries
def read_summary(paths: Iterable[str | os.PathLike]) -> Collection:
    """Saved run summaries (`runs.csv` or `runs.parquet`), with the `incomplete.csv` beside each if any."""
    frames, incomplete, names = [], [], []
    for path in map(Path, paths):
        if not path.is_file():
            raise FileNotFoundError(f"no run summary at {path}")
        frames.append(pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path))
        names.append(str(path))
        listed = path.parent / "incomplete.csv"
        if listed.is_file():
            for item in pd.read_csv(listed).to_dict("records"):
                study = item.get("study")
                incomplete.append(
                    IncompleteRun(
                        str(item["path"]), str(item["reason"]), None if _missing(study) else str(study)
                    )
                )
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return Collection(frame=frame, incomplete=incomplete, source=", ".join(names))


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _parquet_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """Object columns holding several types (e.g. numbers and text) -> text, which Parquet can store."""
    frame = frame.copy()
    for column in frame.columns:
        if frame[column].dtype == object:
            kinds = {type(v) for v in frame[column].dropna()}
            if len(kinds) > 1:
                frame[column] = frame[column].map(lambda v: None if _missing(v) else str(v))
    return frame


def write_summary(collection: Collection, out: str | os.PathLike, parquet: bool = True) -> list[Path]:
    """`runs.csv` (+ `runs.parquet`, + `incomplete.csv` when runs were left out) in `out`; the paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "runs.csv"]
    write_text_atomic(written[0], collection.frame.to_csv(index=False))
    if parquet:
        written.append(out / "runs.parquet")
        _parquet_safe(collection.frame).to_parquet(written[-1], index=False)
    listed = out / "incomplete.csv"
    if collection.incomplete:
        write_text_atomic(listed, collection.incomplete_frame().to_csv(index=False))
        written.append(listed)
    elif listed.exists():
        listed.unlink()
    return written


# ------------------------------------------------------------------------------------------ columns
def config_columns(frame: pd.DataFrame) -> list[str]:
    """Columns that come from the run's config (`study`, `label`, `seed`, `method.length`, ...)."""
    return [c for c in frame.columns if c.split(".")[0] not in RECORD_COLUMNS]


def metric_columns(frame: pd.DataFrame, split: str = "test") -> list[str]:
    """`test.*` (or another split's) metric columns holding at least one value."""
    return [c for c in frame.columns if c.startswith(f"{split}.") and frame[c].notna().any()]


def is_nuisance(column: str) -> bool:
    """True for config values that never change results (paths, logging, device, eval batch size)."""
    return column in NUISANCE_COLUMNS or column.startswith(NUISANCE_PREFIXES)


def setting_columns(frame: pd.DataFrame) -> list[str]:
    """Config columns whose value differs between runs, except seeds and nuisance values: what was swept."""
    return [
        c
        for c in config_columns(frame)
        if c not in SEED_COLUMNS and not is_nuisance(c) and frame[c].nunique(dropna=False) > 1
    ]


def swept_overrides(frame: pd.DataFrame) -> dict[str, list[str]]:
    """Command-line overrides whose value differs between runs (the sweep), e.g. {"seed": ["0", "1"]}."""
    values: dict[str, dict[str, None]] = {}
    for text in frame["overrides"].dropna() if "overrides" in frame else []:
        for item in json.loads(text):
            key, _, value = str(item).partition("=")
            values.setdefault(key, {})[value] = None
    return {key: list(found) for key, found in values.items() if len(found) > 1}
