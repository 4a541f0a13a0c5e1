"""End to end on real runs: tiny-GPT-2 Hydra multiruns (5 jobs + 1 incomplete folder), then the report.

Needs the E2E data under `$PREFIXLAB_DATA_DIR` and Java (METEOR): fails under CI when missing, else skips.
The sweep runs once per session (~1 minute on 2 CPU cores) and is shared with the notebook test.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_report_support import (
    INCOMPLETE_NAME,
    REPO_ROOT,
    TINY_JOBS,
    TINY_STUDY,
    build_tiny_sweep,
    metrics_of,
)

from prefixlab.report.cli import main
from prefixlab.report.collect import collect_runs
from prefixlab.report.figures import length_figures, plotted_points
from prefixlab.report.intervals import INTERVALS_FILE, CellIntervals
from prefixlab.report.paper import load_paper_table
from prefixlab.report.tables import ablation_table

pytestmark = [pytest.mark.data, pytest.mark.slow]


@pytest.fixture(scope="module")
def runs_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_sweep(tmp_path_factory)


@pytest.fixture(scope="module")
def report(
    runs_root: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, subprocess.CompletedProcess]:
    """`python -m prefixlab.report` on the Hydra multirun folder, as a user runs it."""
    out = tmp_path_factory.mktemp("report")
    command = [sys.executable, "-m", "prefixlab.report", str(runs_root / TINY_STUDY), "--out", str(out)]
    result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return out, result


def complete_runs(runs_root: Path) -> list[Path]:
    return sorted(p for p in (runs_root / TINY_STUDY).iterdir() if (p / "metrics.json").is_file())


def test_collect_one_row_per_complete_run(runs_root: Path):
    runs = collect_runs(runs_root)
    frame = runs.frame
    assert len(frame) == TINY_JOBS
    assert sorted(frame.groupby("label").size().items()) == [
        ("EMB-1", 1),
        ("INFIX-1", 1),
        ("PREFIX-1", 1),
        ("PREFIX-5", 2),
    ]
    for path in complete_runs(runs_root):
        record = metrics_of(path)
        row = frame[frame["run_dir"] == str(path)].iloc[0]
        assert row["run"] == path.name
        assert row["method.kind"] == record["config"]["method"]["kind"]
        assert row["model.name"] == "tiny-gpt2" and row["task.name"] == "e2e"
        for metric, value in record["metrics"]["test"].items():
            assert row[f"test.{metric}"] == value
        assert row["parameters.stored_parameters"] == record["parameters"]["stored_parameters"]
        assert row["wall_seconds"] == record["wall_seconds"]
    assert [Path(r.path).name for r in runs.incomplete] == [INCOMPLETE_NAME]
    assert runs.incomplete[0].study == TINY_STUDY and "no metrics.json" in runs.incomplete[0].reason


def test_report_outputs_and_incomplete_listing(report, runs_root: Path):
    out, result = report
    assert INCOMPLETE_NAME in result.stderr and "1 incomplete run(s) left out" in result.stderr
    assert f"{TINY_STUDY}: {TINY_JOBS} runs (1 incomplete left out) -> {out}/" in result.stdout
    frame = pd.read_csv(out / "runs.csv")
    assert len(frame) == TINY_JOBS and INCOMPLETE_NAME not in set(frame["run"])
    assert len(pd.read_parquet(out / "runs.parquet")) == TINY_JOBS
    assert Path(pd.read_csv(out / "incomplete.csv")["path"].iloc[0]).name == INCOMPLETE_NAME
    readme = (out / "README.md").read_text()
    assert "at commit `" in readme and INCOMPLETE_NAME in readme and "runs.csv" in readme
    for metric in ("BLEU", "NIST", "METEOR", "ROUGE_L", "CIDEr"):
        assert (out / f"length_e2e_{metric}.png").read_bytes()[:4] == b"\x89PNG"
        assert (out / f"length_e2e_{metric}.pdf").read_bytes()[:5] == b"%PDF-"


def test_ablation_table_means_equal_the_metrics_json_means(report, runs_root: Path):
    out, _ = report
    frame = collect_runs(runs_root).frame
    table = ablation_table(frame, intervals=CellIntervals.load(out / INTERVALS_FILE))
    numeric = table.numeric.set_index("row")
    by_label: dict[str, list[dict]] = {}
    for path in complete_runs(runs_root):
        record = metrics_of(path)
        by_label.setdefault(record["config"]["label"], []).append(record["metrics"]["test"])
    for label, tests in by_label.items():
        assert numeric.loc[label, "n"] == len(tests)
        for metric in ("BLEU", "NIST", "METEOR", "ROUGE_L", "CIDEr"):
            scale = 100 if metric in ("BLEU", "METEOR", "ROUGE_L") else 1
            expected = np.mean([t[metric] for t in tests]) * scale
            assert numeric.loc[label, f"{metric} mean"] == pytest.approx(expected)
    # Paper columns hold the data file's numbers; rows the paper lacks are "—".
    paper = load_paper_table("ablation_placement_depth")
    markdown = (out / "table_ablation_placement_depth.md").read_text()
    assert markdown == table.to_markdown()
    shown = table.display.set_index("row")
    for label, row in (("PREFIX-5", "PREFIX"), ("EMB-1", "EMB-1"), ("INFIX-1", "INFIX-1")):
        assert shown.loc[label, "paper row"] == row
        assert shown.loc[label, "BLEU [ACL 2021]"] == f"{paper.value(row, 'BLEU', 'ACL 2021'):.1f}"
        assert shown.loc[label, "NIST [ACL 2021]"] == f"{paper.value(row, 'NIST', 'ACL 2021'):.2f}"
    assert shown.loc["PREFIX-1", "BLEU [ACL 2021]"] == "—" and shown.loc["PREFIX-1", "paper row"] == "—"
    # Cells: mean [95% interval over seeds x test items] around the metrics.json mean; n = runs x items.
    items = int(numeric.loc["PREFIX-5", "items"])
    assert shown.loc["PREFIX-5", "n"] == f"2 × {items}" and items > 0
    mean, low, high = (numeric.loc["PREFIX-5", f"BLEU {k}"] for k in ("mean", "low", "high"))
    assert low <= mean <= high and shown.loc["PREFIX-5", "BLEU"] == f"{mean:.1f} [{low:.1f}, {high:.1f}]"
    assert "| not run" in markdown and "EMB-10" in markdown
    assert "\\begin{tabular}" in (out / "table_ablation_placement_depth.tex").read_text()


def test_length_figure_has_one_point_per_length_run(runs_root: Path):
    frame = collect_runs(runs_root).frame
    fig = length_figures(frame)[("e2e", "test.BLEU")]
    assert plotted_points(fig) == 2  # lengths 1 and 5 (EMB-1 and INFIX-1 are not points of the curve)
    (series,) = [line for line in fig.axes[0].lines if str(line.get_gid()).startswith("series:")]
    assert series.get_xdata().tolist() == [1, 5] and series.get_label() == "tiny-gpt2 (1–2 seeds; ±1 std)"
    bleu = {n: [] for n in (1, 5)}
    for path in complete_runs(runs_root):
        record = metrics_of(path)
        method = record["config"]["method"]
        if method["kind"] == "prefix" and method["depth"] == "all" and method["placement"] == "prefix":
            bleu[method["length"]].append(record["metrics"]["test"]["BLEU"] * 100)
    np.testing.assert_allclose(series.get_ydata(), [np.mean(bleu[1]), np.mean(bleu[5])])
    marks = [line for line in fig.axes[0].lines if str(line.get_gid()).startswith("mark:")]
    assert [m.get_xdata()[0] for m in marks] == [10]  # the paper's threshold, from paper_marks.csv


def test_from_csv_regenerates_without_run_folders(report, tmp_path: Path):
    out, _ = report
    again = tmp_path / "again"
    assert main(["--from-csv", str(out / "runs.csv"), "--out", str(again), "--formats", "png"]) == 0
    for name in ("table_ablation_placement_depth.md", "table_summary.md"):
        assert (again / name).read_text() == (out / name).read_text()
    assert (again / "length_e2e_BLEU.png").is_file()
    assert json.loads(pd.read_csv(again / "runs.csv")["overrides"].iloc[0])  # the overrides survive as JSON
