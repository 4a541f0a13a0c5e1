"""The `prefixlab` command: `train` (the Hydra app), `score` (metrics on a file of outputs), `report`, `restore`.

prefixlab train model=smollm2-135m method.length=5        # same as prefixlab-train / python -m prefixlab.train
prefixlab score --task e2e outputs.txt                    # one output per test source, in test-set order
prefixlab report runs/demo --out results/demo             # figures, tables and a CSV from run folders
prefixlab wandb-report runs/demo                          # a W&B Report of a study (or its JSON spec offline)
prefixlab compare RUN_A RUN_B [--json]                    # paired tests of two runs on the same test items
prefixlab restore results/demo                            # run folders rebuilt from a report's outputs.jsonl.gz
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def read_outputs(path: Path) -> list[str]:
    """One system output per line; a clear error for a missing or empty file."""
    if not path.is_file():
        raise SystemExit(f"prefixlab score: no outputs file at {path}.")
    lines = path.read_text(encoding="utf-8").splitlines()
    if not lines or not any(line.strip() for line in lines):
        raise SystemExit(f"prefixlab score: {path} is empty; expected one output per line.")
    return lines


def score_command(args: argparse.Namespace) -> int:
    """Score a file of outputs against the configured task's references."""
    from prefixlab.evaluate import score
    from prefixlab.tasks import load_task, load_task_config

    overrides = {"data_dir": args.data_dir} if args.data_dir else {}
    task = load_task_config(args.task, **overrides)
    outputs = read_outputs(Path(args.outputs))
    groups = load_task(task).grouped(args.split)
    if len(outputs) != len(groups):
        raise SystemExit(
            f"prefixlab score: {args.outputs} has {len(outputs)} lines but the {task.name} {args.split} split has "
            f"{len(groups)} distinct sources; write one output per source, in the order the sources first appear."
        )
    metrics = score(args.metric or task.metric, outputs, [g.references for g in groups])
    print(json.dumps(metrics, indent=2, sort_keys=True))
    return 0


def data_command(args: argparse.Namespace) -> int:
    """Load a task's data and print where it came from and the split sizes (fails fast with how to fix it)."""
    from prefixlab.tasks import load_task, load_task_config

    overrides = {"data_dir": args.data_dir} if args.data_dir else {}
    data = load_task(load_task_config(args.task, **overrides))
    print(json.dumps(data.metadata(), indent=2, sort_keys=True, default=str))
    return 0


def compare_command(args: argparse.Namespace) -> int:
    """Compare two runs (or two settings' seeds) on the same test items: intervals, differences, p-values."""
    from prefixlab.stats.command import run_command

    return run_command(args)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `prefixlab`."""
    parser = argparse.ArgumentParser(
        prog="prefixlab", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser(
        "train", help="run the Hydra training app (arguments are Hydra overrides)", add_help=False
    )
    scoring = commands.add_parser("score", help="score a file of outputs with the task's official metrics")
    scoring.add_argument("outputs", help="one output per distinct test source, in test-set order")
    scoring.add_argument("--task", default="e2e", help="task preset name or YAML path (default: e2e)")
    scoring.add_argument("--split", default="test", help="split whose references to use (default: test)")
    scoring.add_argument("--metric", default=None, help="metric suite: e2e or rouge (default: the task's)")
    scoring.add_argument(
        "--data-dir", default=None, help="data root (default: $PREFIXLAB_DATA_DIR, then ./data)"
    )
    data = commands.add_parser("data", help="check that a task's data is found; print its source and splits")
    data.add_argument("--task", default="e2e", help="task preset name or YAML path (default: e2e)")
    data.add_argument(
        "--data-dir", default=None, help="data root (default: $PREFIXLAB_DATA_DIR, then ./data)"
    )
    from prefixlab.stats.command import __doc__ as compare_doc
    from prefixlab.stats.command import add_arguments as add_compare_arguments

    comparing = commands.add_parser(
        "compare",
        help="paired bootstrap / randomization tests of two runs (or seeds x items) on the same test items",
        description=compare_doc,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_compare_arguments(comparing)
    commands.add_parser("report", help="figures, tables and a CSV from run folders or W&B", add_help=False)
    commands.add_parser(
        "restore", help="rebuild a study's run folders from its report's outputs.jsonl.gz", add_help=False
    )
    commands.add_parser(
        "wandb-report", help="a W&B Report comparing a study's ablations (spec JSON offline)", add_help=False
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `prefixlab` command."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "train":
        from prefixlab.train import main as train_main

        sys.argv = [sys.argv[0], *argv[1:]]
        train_main()
        return 0
    if argv and argv[0] == "report":
        from prefixlab.report.cli import main as report_main

        return report_main(argv[1:])
    if argv and argv[0] == "restore":
        from prefixlab.archive import restore_command

        return restore_command(argv[1:])
    if argv and argv[0] == "wandb-report":
        from prefixlab.report.wandb_report import main as wandb_report_main

        return wandb_report_main(argv[1:])
    args = build_parser().parse_args(argv)
    from prefixlab.metrics import MetricBackendError, MetricInputError
    from prefixlab.tasks import DataFormatError, DataNotFoundError

    command = {"score": score_command, "data": data_command, "compare": compare_command}[args.command]
    try:
        return command(args)
    except (DataNotFoundError, DataFormatError, MetricInputError, MetricBackendError) as error:
        print(f"prefixlab {args.command}: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
