"""`prefixlab report`: run folders (or W&B, or a saved summary) -> a CSV, figures, tables and a README.

    prefixlab report runs/ablation_placement_depth --out results/ablation_placement_depth
    prefixlab report runs/e2e_length_cpu --out results/e2e_length_cpu --experiment e2e_length
    prefixlab report runs/my_sweep --out results/my_sweep --x trainer.lr --metric test.BLEU --group label
    prefixlab report --from-csv results/*/runs.csv --out results --per-study      # offline, no run folders
    prefixlab report --wandb me/prefixlab --wandb-group e2e_length --out results/e2e_length
    python -m prefixlab.report ...                                                 # the same

Writes into OUT: `runs.csv` and `runs.parquet` (one row per complete run), `incomplete.csv` (runs left out,
also printed), the study's figures (PNG + PDF) and tables (Markdown + LaTeX), and `README.md` listing each
file with the command and git commit that produced it. With several studies, each gets `OUT/<study>/`.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

import pandas as pd

from prefixlab.archive import ARCHIVE_FILE, write_archive
from prefixlab.provenance import git_commit
from prefixlab.report.artifacts import (
    CPU_SUFFIX,
    EXPERIMENTS,
    Artifact,
    detect,
    experiment_of,
    write_artifacts,
    write_custom_figures,
)
from prefixlab.report.collect import (
    Collection,
    collect_runs,
    collect_wandb,
    config_columns,
    read_summary,
    setting_columns,
    swept_overrides,
    write_summary,
)
from prefixlab.report.intervals import INTERVALS_FILE, CellIntervals
from prefixlab.report.tables import row_keys
from prefixlab.stats.runs import GENERATIONS_FILE


def parse_value(text: str) -> object:
    """A command-line config value: JSON when it parses (5, 8e-5, true, null), else the text."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `prefixlab report`."""
    parser = argparse.ArgumentParser(
        prog="prefixlab report", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "runs", nargs="*", help="run folders: a Hydra multirun folder or any tree of run folders"
    )
    parser.add_argument("--out", required=True, help="output folder (one per study when there are several)")
    source = parser.add_argument_group("other sources")
    source.add_argument(
        "--from-csv",
        nargs="+",
        default=None,
        metavar="FILE",
        help="saved run summaries (runs.csv or runs.parquet) instead of run folders",
    )
    source.add_argument("--wandb", metavar="ENTITY/PROJECT", help="pull runs with wandb.Api() instead")
    source.add_argument("--wandb-group", help="W&B group (= the study)")
    source.add_argument("--wandb-tag", action="append", default=[], help="a tag every run must have (repeat)")
    source.add_argument(
        "--wandb-config",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a config value runs must have, e.g. method.length=5 (repeat)",
    )
    source.add_argument("--wandb-cache", help="cache file of the pull (default: OUT/wandb_runs.json)")
    source.add_argument("--refresh", action="store_true", help="pull from W&B again even if the cache exists")
    what = parser.add_argument_group("what to produce")
    what.add_argument(
        "--experiment",
        choices=sorted(EXPERIMENTS),
        help="produce this paper experiment's figures/tables (default: from the study name, "
        "else everything the runs support)",
    )
    what.add_argument("--study", action="append", default=[], help="only these studies (repeat)")
    what.add_argument("--per-study", action="store_true", help="OUT/<study>/ even for a single study")
    what.add_argument("--x", help="generic figure: the x-axis column, e.g. method.length or trainer.lr")
    what.add_argument(
        "--metric",
        action="append",
        default=[],
        help="generic figure: a metric column, e.g. test.BLEU (repeat; default: the primary metric)",
    )
    what.add_argument(
        "--group", help="generic figure: series columns, comma-separated (default: what varies)"
    )
    what.add_argument("--baseline", help="generic figure: a label drawn as a horizontal line, e.g. zero-shot")
    what.add_argument(
        "--missing",
        choices=["mark", "omit"],
        default="mark",
        help="paper rows nobody ran: list as 'not run' (default) or leave out",
    )
    what.add_argument("--formats", default="png,pdf", help="figure formats (default: png,pdf)")
    what.add_argument(
        "--interval-samples",
        type=int,
        default=1000,
        metavar="N",
        help="bootstrap resamples of each cell's 95%% interval over seeds x test items (default: 1000)",
    )
    what.add_argument(
        "--no-intervals",
        action="store_true",
        help="mean ± std instead of intervals (skips reading the runs' generations)",
    )
    what.add_argument("--no-parquet", action="store_true", help="write runs.csv only")
    what.add_argument("--columns", action="store_true", help="print the columns (settings, metrics) and exit")
    return parser


def load(args: argparse.Namespace) -> Collection:
    """The runs from folders, summaries or W&B, as the arguments say."""
    given = sum(bool(s) for s in (args.runs, args.from_csv, args.wandb))
    if given != 1:
        raise SystemExit(
            "prefixlab report: give run folders, or --from-csv FILE, or --wandb ENTITY/PROJECT (one)."
        )
    if args.from_csv:
        return read_summary(args.from_csv)
    if args.wandb:
        config = {}
        for item in args.wandb_config:
            key, sep, value = item.partition("=")
            if not sep:
                raise SystemExit(f"prefixlab report: --wandb-config {item!r} is not KEY=VALUE")
            config[key] = parse_value(value)
        return collect_wandb(
            args.wandb,
            group=args.wandb_group,
            tags=args.wandb_tag,
            config=config,
            refresh=args.refresh,
            cache=args.wandb_cache or Path(args.out) / "wandb_runs.json",
        )
    return collect_runs(*args.runs)


def mixed_commits_warning(study: str, commits: list[str]) -> str:
    """The warning for a study whose runs were made by different code (their numbers may not be comparable)."""
    return (
        f"Warning: the runs of {study} were made by {len(commits)} different commits; rows may differ because "
        "the code changed. Rerun the older runs at one commit (recompute=true) before comparing them."
    )


def write_readme(
    out: Path,
    study: str,
    collection: Collection,
    artifacts: list[Artifact],
    argv: list[str],
    intervals: CellIntervals | None = None,
) -> Path:
    """`OUT/README.md`: each file, what it shows, and the command and commit that produced it."""
    frame = collection.frame
    spread = (
        f"the mean over seeds [95% interval over seeds x test items, {intervals.n_samples} multi-bootstrap "
        "resamples]"
        if intervals is not None and intervals.known
        else "mean ± std over seeds"
    )
    commits = (
        sorted(map(str, frame["system.git_commit"].dropna().unique())) if "system.git_commit" in frame else []
    )
    sweep = swept_overrides(frame)
    rows = row_keys(frame) if not frame.empty else []
    lines = [
        f"# Report: {study}",
        "",
        f"Produced by `prefixlab report {shlex.join(argv)}` at commit `{git_commit()}`.",
        "",
        f"- Runs from: {collection.source}",
        f"- {len(frame)} complete run(s); {len(collection.incomplete)} incomplete run(s) left out"
        + (" (listed below and in `incomplete.csv`)" if collection.incomplete else ""),
        "- Swept: "
        + ("; ".join(f"`{k}` = {', '.join(v)}" for k, v in sweep.items()) or "n/a (no overrides recorded)"),
        f"- Table rows are settings of {', '.join(f'`{c}`' for c in rows)}; cells: {spread}"
        + (
            " and data subsets"
            if "task.subset_seed" in frame and frame["task.subset_seed"].nunique() > 1
            else ""
        ),
        f"- Runs made at commit(s): {', '.join(f'`{c}`' for c in commits) or 'unknown'}",
        *([f"- **{mixed_commits_warning(study, commits)}**"] if len(commits) > 1 else []),
        f"- Regenerate offline: `prefixlab report --from-csv {out / 'runs.csv'} --out {out}`",
        "",
        "| file | what it shows |",
        "|---|---|",
    ]
    grouped: dict[tuple[str, str], list[Path]] = {}
    for artifact in artifacts:
        stem = (
            artifact.path.stem
            if artifact.path.suffix in (".png", ".pdf", ".md", ".tex")
            else artifact.path.name
        )
        grouped.setdefault((stem, artifact.description), []).append(artifact.path)
    for (_, description), paths in grouped.items():
        links = " · ".join(f"[{p.name}]({p.name})" for p in paths)
        lines.append(f"| {links} | {description} |")
    from prefixlab.report.selection import select_on_validation

    _, choices = select_on_validation(frame)
    if choices:
        lines += ["", "## Learning rates chosen on validation", ""]
        lines += ["Only the chosen rate's runs of each row enter the tables, figures and claims:", ""]
        lines += [f"- {choice.describe()}" for choice in choices]
    if collection.incomplete:
        lines += ["", "## Incomplete runs (left out)", ""]
        lines += [f"- `{r.path}`: {r.reason}" for r in collection.incomplete]
    path = out / "README.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def report_study(
    collection: Collection, out: Path, study: str, args: argparse.Namespace, argv: list[str]
) -> list[Artifact]:
    """Everything for one study: summary files, figures, tables, README."""
    out.mkdir(parents=True, exist_ok=True)
    frame = collection.frame
    if "system.git_commit" in frame and frame["system.git_commit"].nunique() > 1:
        print(
            f"prefixlab report: {mixed_commits_warning(study, sorted(map(str, frame['system.git_commit'].dropna().unique())))}",
            file=sys.stderr,
        )
    artifacts: list[Artifact] = []
    same_file = args.from_csv and any(
        Path(p).resolve() == (out / "runs.csv").resolve() for p in args.from_csv
    )
    if not same_file:
        for path in write_summary(collection, out, parquet=not args.no_parquet):
            artifacts.append(Artifact(path, _SUMMARY_FILES.get(path.name, "")))
    else:
        artifacts.append(Artifact(out / "runs.csv", _SUMMARY_FILES["runs.csv"] + " (input of this report)"))
        if (out / "runs.parquet").is_file():
            artifacts.append(Artifact(out / "runs.parquet", _SUMMARY_FILES["runs.parquet"]))
    intervals = study_intervals(collection, out, args)
    experiment = args.experiment or experiment_of(study)
    kinds = list(EXPERIMENTS[experiment]) if experiment else detect(collection.frame)
    formats = tuple(f.strip() for f in args.formats.split(",") if f.strip())
    artifacts += write_artifacts(
        collection.frame, out, kinds, formats=formats, missing=args.missing, study=study, intervals=intervals
    )
    if args.x:
        metrics = args.metric or [f"test.{collection.frame['primary_metric'].dropna().iloc[0]}"]
        artifacts += write_custom_figures(
            collection.frame, out, args.x, metrics, args.group, baseline=args.baseline, formats=formats,
            intervals=intervals,
        )  # fmt: skip
    if not args.from_csv:
        from prefixlab.report.claims import write_claims
        from prefixlab.report.figures import suite_of
        from prefixlab.suites import SUITES

        suite = SUITES.get(suite_of(collection.frame) or "")
        # Claims come from experiments/<name>/claims.csv, also for a study that is no paper experiment (the demo).
        claims_of = experiment or study.removesuffix(CPU_SUFFIX)
        claims = write_claims(out, study, claims_of, collection.frame, dict(suite.scale) if suite else {})
        if claims is not None:
            artifacts.append(
                Artifact(claims, "the paper's claims (experiments/<name>/claims.csv) with computed verdicts")
            )
    if not args.from_csv and not args.wandb:
        archived = archive_runs(collection.frame, out)
        if archived is not None:
            artifacts.append(Artifact(archived, _SUMMARY_FILES[ARCHIVE_FILE]))
    if intervals is not None and intervals.known and not args.from_csv:
        path = intervals.save(out / INTERVALS_FILE)
        artifacts.append(
            Artifact(path, "each table cell's and figure point's 95% interval (read by --from-csv)")
        )
    elif args.from_csv:  # kept from the report that read the run folders: a summary cannot recompute them
        for name, what in (
            ("claims.md", "the paper's claims with computed verdicts"),
            (ARCHIVE_FILE, _SUMMARY_FILES[ARCHIVE_FILE].split(": ")[0]),
            (INTERVALS_FILE, "the 95% intervals"),
        ):
            if (out / name).is_file():
                artifacts.append(Artifact(out / name, f"{what}, from the report that read the run folders"))
    artifacts.append(Artifact(write_readme(out, study, collection, artifacts, argv, intervals), "this file"))
    return artifacts


def archive_runs(frame: pd.DataFrame, out: Path) -> Path | None:
    """`OUT/outputs.jsonl.gz` of the runs whose folders hold their generations (None when none do)."""
    folders = [
        Path(d) for d in frame.get("run_dir", pd.Series(dtype=object)).dropna()
        if (Path(d) / GENERATIONS_FILE).is_file()
    ]  # fmt: skip
    return write_archive(folders, out / ARCHIVE_FILE) if folders else None


def study_intervals(collection: Collection, out: Path, args: argparse.Namespace) -> CellIntervals | None:
    """The cells' intervals: from the run folders' generations, or (with --from-csv) the saved intervals.json
    beside the summary (or in OUT); None with --no-intervals or runs from W&B."""
    if args.no_intervals or args.wandb:
        return None
    if args.from_csv:
        folders = dict.fromkeys([*(Path(p).parent.resolve() for p in args.from_csv), out.resolve()])
        found = [CellIntervals.load(f / INTERVALS_FILE) for f in folders if (f / INTERVALS_FILE).is_file()]
        if not found:
            return None
        merged = found[0]
        for other in found[1:]:
            merged.known.update(other.known)
        return merged
    return CellIntervals.from_frame(collection.frame, n_samples=args.interval_samples)


_SUMMARY_FILES = {
    "runs.csv": "one row per complete run: settings, seed, label, parameter counts, every metric, timing",
    "runs.parquet": "the same as runs.csv, typed",
    "incomplete.csv": "runs found but left out (no complete metrics.json), with the reason",
    ARCHIVE_FILE: "every run's metrics, config and test outputs (no data, no weights): `prefixlab restore` "
    "rebuilds the run folders from it, to add seeds or recompute intervals on another machine",
}


def main(argv: list[str] | None = None) -> int:
    """Entry point of `prefixlab report` (and `python -m prefixlab.report`); returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    try:
        collection = load(args)
    except (FileNotFoundError, ValueError, RuntimeError) as error:
        print(f"prefixlab report: {error}", file=sys.stderr)
        return 2
    collection.print_incomplete()
    if args.study:
        keep = collection.frame["study"].isin(args.study)
        collection = Collection(
            collection.frame[keep].reset_index(drop=True),
            [r for r in collection.incomplete if r.study in args.study],
            collection.source,
        )
    if collection.frame.empty:
        print(f"prefixlab report: no complete runs in {collection.source}.", file=sys.stderr)
        return 1
    if args.columns:
        print("settings that vary:", ", ".join(setting_columns(collection.frame)) or "none")
        print("config columns:", ", ".join(config_columns(collection.frame)))
        print(
            "metric columns:",
            ", ".join(c for c in collection.frame if c.startswith(("test.", "validation."))),
        )
        return 0
    out = Path(args.out)
    studies = collection.studies()
    for study in studies:
        target = out / study if (len(studies) > 1 or args.per_study) else out
        part = collection.subset(study) if len(studies) > 1 else collection
        artifacts = report_study(part, target, study, args, argv)
        figures = sum(a.path.suffix == ".png" for a in artifacts)
        tables = sum(a.path.suffix == ".md" and a.path.name != "README.md" for a in artifacts)
        print(
            f"prefixlab report: {study}: {len(part.frame)} runs "
            f"({len(part.incomplete)} incomplete left out) -> "
            f"{target}/ ({figures} figures, {tables} tables, runs.csv, README.md)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
