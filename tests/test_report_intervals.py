"""Table cells and figure bands carry the 95% interval over seeds x test items, from the runs' generations;
`intervals.json` makes `--from-csv` regenerate the same cells offline; without generations: mean ± std."""

from __future__ import annotations

import json
import random

import numpy as np
from test_report_support import summary_references

from prefixlab.archive import ARCHIVE_FILE
from prefixlab.report.cli import main as report_main
from prefixlab.report.collect import collect_runs
from prefixlab.report.figures import figure
from prefixlab.report.intervals import INTERVALS_FILE, CellIntervals
from prefixlab.report.tables import summary_table
from prefixlab.stats.runs import cell_intervals


def references(n: int = 30) -> list[str]:
    return summary_references(n, 10)


def degrade(text: str, rng: random.Random, keep: float) -> str:
    return " ".join(w if rng.random() < keep else "zzz" for w in text.split())


def write_run(root, length, seed, outputs, refs, generations=True):
    run = root / f"method.length={length},seed={seed}"
    run.mkdir(parents=True)
    if generations:
        (run / "generations.jsonl").write_text(
            "".join(
                json.dumps({"source": f"doc {i}", "output": o, "references": [r]}) + "\n"
                for i, (o, r) in enumerate(zip(outputs, refs, strict=True))
            )  # fmt: skip
        )
    stored = cell_intervals([run], suite="rouge")["ROUGE_2"].estimate if generations else 0.5
    record = {"status": "complete", "study": "toy_length", "label": f"PREFIX-{length}",
              "fingerprint": f"fp-{length}-{seed}", "metric_suite": "rouge", "primary_metric": "ROUGE_2",
              "config": {"seed": seed, "task": {"name": "xsum"}, "model": {"name": "tiny"},
                         "method": {"kind": "prefix", "length": length}},
              "metrics": {"test": {"ROUGE_2": stored}}}  # fmt: skip
    (run / "metrics.json").write_text(json.dumps(record))


def study(tmp_path, keeps=((1, 0.3), (5, 0.6), (10, 0.9)), seeds=(0, 1, 2)):
    refs = references()
    rng = random.Random(1)
    for length, keep in keeps:
        for seed in seeds:
            write_run(tmp_path, length, seed, [degrade(r, rng, keep) for r in refs], refs)
    return tmp_path


def test_cells_show_the_interval_over_seeds_and_items_and_n(tmp_path):
    frame = collect_runs(study(tmp_path / "runs")).frame
    intervals = CellIntervals.from_frame(frame, n_samples=300)
    table = summary_table(frame, intervals=intervals)
    rows = table.numeric.set_index("row")
    for row in ("PREFIX-1", "PREFIX-5", "PREFIX-10"):
        low, mean, high = (rows.at[row, f"ROUGE_2 {k}"]
                           for k in ("low", "mean", "high"))  # fmt: skip
        assert low < mean < high and rows.at[row, "items"] == 30
    display = table.display.set_index("row")
    assert display.at["PREFIX-5", "n"] == "3 × 30"
    cell = display.at["PREFIX-5", "ROUGE-2"]
    assert cell.count("[") == 1 and cell.endswith("]")
    assert any("95% interval over runs x test items" in note for note in table.notes)
    # the better settings are clearly apart: their intervals do not overlap
    assert rows.at["PREFIX-1", "ROUGE_2 high"] < rows.at["PREFIX-10", "ROUGE_2 low"]


def test_a_perfect_system_has_a_degenerate_interval_and_noise_widens_it(tmp_path):
    frame = collect_runs(study(tmp_path / "runs", keeps=((1, 1.0), (5, 0.5)))).frame
    intervals = CellIntervals.from_frame(frame, n_samples=300)
    perfect = intervals.get(frame[frame["method.length"] == 1], "ROUGE_2")
    noisy = intervals.get(frame[frame["method.length"] == 5], "ROUGE_2")
    assert perfect.low == perfect.high == perfect.estimate
    assert noisy.high - noisy.low > 1.0 and perfect.runs == noisy.runs == 3


def test_figure_bands_are_the_intervals(tmp_path):
    frame = collect_runs(study(tmp_path / "runs")).frame
    intervals = CellIntervals.from_frame(frame, n_samples=300)
    fig = figure(frame, "method.length", "test.ROUGE_2", [], intervals=intervals)
    ax = fig.axes[0]
    (band,) = [c for c in ax.collections if str(c.get_gid()).startswith("band:")]
    ys = band.get_paths()[0].vertices[:, 1]
    expected = [intervals.get(frame[frame["method.length"] == n], "ROUGE_2") for n in (1, 5, 10)]
    assert np.isclose(ys.min(), min(c.low for c in expected))
    assert np.isclose(ys.max(), max(c.high for c in expected))
    (line,) = [ln for ln in ax.lines if str(ln.get_gid()).startswith("series:")]
    assert "3 seeds × 30 items; 95% interval" in line.get_label()


def test_without_generations_cells_fall_back_to_std_and_say_so(tmp_path):
    refs = references()
    for seed in (0, 1):
        write_run(tmp_path / "runs", 1, seed, refs, refs, generations=False)
    frame = collect_runs(tmp_path / "runs").frame
    table = summary_table(frame, intervals=CellIntervals.from_frame(frame))
    assert "[" not in table.display.iloc[0]["ROUGE-2"] and table.display.iloc[0]["n"] == "2"
    assert any("no interval without the runs' generations" in note for note in table.notes)


def test_the_report_saves_intervals_and_from_csv_regenerates_the_same_tables(tmp_path):
    runs = study(tmp_path / "runs")
    out = tmp_path / "out"
    assert report_main([str(runs), "--out", str(out), "--interval-samples", "200"]) == 0
    first = (out / "table_summary.md").read_text()
    assert "[" in first and (out / INTERVALS_FILE).is_file()
    assert (
        "95% interval over seeds x test items, 200 multi-bootstrap resamples"
        in (out / "README.md").read_text()
    )
    again = tmp_path / "again"
    assert report_main(["--from-csv", str(out / "runs.csv"), "--out", str(again)]) == 0
    assert (again / "table_summary.md").read_text() == first
    # regenerating in place (make figures) keeps listing what only the run folders could give
    assert report_main(["--from-csv", str(out / "runs.csv"), "--out", str(out)]) == 0
    readme = (out / "README.md").read_text()
    assert f"[{ARCHIVE_FILE}]({ARCHIVE_FILE})" in readme and f"[{INTERVALS_FILE}]({INTERVALS_FILE})" in readme
    # --no-intervals: the old mean ± std cells
    plain = tmp_path / "plain"
    assert report_main([str(runs), "--out", str(plain), "--no-intervals"]) == 0
    assert "±" in (plain / "table_summary.md").read_text() and not (plain / INTERVALS_FILE).exists()


def test_a_malformed_intervals_file_names_the_fix(tmp_path):
    path = tmp_path / INTERVALS_FILE
    path.write_text('{"cells": [{"runs": 3}]}')
    try:
        CellIntervals.load(path)
    except ValueError as error:
        assert "regenerate it with `prefixlab report <run folders>`" in str(error)
    else:
        raise AssertionError("a malformed intervals.json must be refused")
