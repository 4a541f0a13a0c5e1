"""`prefixlab report` on synthetic run folders: files, README, incomplete runs, --from-csv, W&B, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from test_report_support import REPO_ROOT, cached_pull, fake_record, prefix_method, synthetic_study, write_run

from prefixlab.cli import main as prefixlab_main
from prefixlab.report.cli import main

REPORT_DIR = REPO_ROOT / "prefixlab" / "report"


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    synthetic_study(tmp_path / "runs")
    return tmp_path / "runs"


def test_report_writes_summary_figures_tables_and_readme(runs: Path, tmp_path: Path, capsys):
    out = tmp_path / "out"
    assert main([str(runs), "--out", str(out)]) == 0
    printed = capsys.readouterr()
    assert "3 incomplete run(s) left out" in printed.err and "label=EMB-10,seed=0" in printed.err
    assert f"-> {out}/" in printed.out
    names = {p.name for p in out.iterdir()}
    assert {
        "runs.csv",
        "runs.parquet",
        "incomplete.csv",
        "README.md",
        "table_summary.md",
        "table_summary.tex",
        "table_ablation_placement_depth.md",
        "table_ablation_placement_depth.tex",
    } <= names
    assert {f"length_e2e_{m}.{e}" for m in ("BLEU", "CIDEr") for e in ("png", "pdf")} <= names
    frame = pd.read_csv(out / "runs.csv")
    assert len(frame) == 11 and set(frame["status"]) == {"complete"}
    incomplete = pd.read_csv(out / "incomplete.csv")
    assert sorted(Path(p).name for p in incomplete["path"]) == [
        "label=EMB-10,seed=0",
        "label=EMB-20,seed=0",
        "label=INFIX-10,seed=0",
    ]
    readme = (out / "README.md").read_text()
    assert f"prefixlab report {runs} --out {out}" in readme and "at commit `" in readme
    assert "## Incomplete runs (left out)" in readme and "label=INFIX-10,seed=0" in readme
    for name in names - {"README.md"}:
        assert f"]({name})" in readme, name  # every file is listed
    assert "`variant` = EMB-1, INFIX-1, PREFIX-1, PREFIX-5, zero-shot" in readme
    assert json.loads(frame["task.decoding.bad_words"].iloc[0]) == [
        "\n",
        "\n\n",
    ]  # a list stays one JSON cell


def test_readme_names_the_learning_rate_each_row_kept(tmp_path: Path):
    # a grid on seed 0 for one label, one rate for the other: only the first is a choice
    for label, lrs in (("PREFIX-5", {1e-4: 2.0, 1e-3: 1.0, 1e-2: 3.0}), ("PREFIX-1", {1e-3: 1.5})):
        for lr, val in lrs.items():
            record = fake_record(label=label, seed=0, method=prefix_method(int(label[-1])), study="grid")
            record["config"]["trainer"]["lr"] = lr
            record["metrics"]["validation"]["val_loss"] = val
            write_run(tmp_path / "runs", record, name=f"label={label},lr={lr}")
    out = tmp_path / "out"
    assert main([str(tmp_path / "runs" / "grid"), "--out", str(out), "--formats", "png"]) == 0
    readme = (out / "README.md").read_text()
    section = readme.split("## Learning rates chosen on validation", 1)[1]
    assert (
        "- PREFIX-5: lr 0.001 chosen on mean val_loss over seed 0 (0.0001: 2, 0.001: 1, 0.01: 3)" in section
    )
    assert "PREFIX-1:" not in section


def test_from_csv_regenerates_the_same_tables_offline(runs: Path, tmp_path: Path):
    first, second = tmp_path / "first", tmp_path / "second"
    assert main([str(runs), "--out", str(first), "--formats", "png"]) == 0
    assert main(["--from-csv", str(first / "runs.csv"), "--out", str(second), "--formats", "pdf"]) == 0
    for name in (
        "table_ablation_placement_depth.md",
        "table_summary.md",
        "table_ablation_placement_depth.tex",
    ):
        assert (first / name).read_text() == (second / name).read_text(), name
    assert (second / "length_e2e_BLEU.pdf").is_file() and (second / "incomplete.csv").is_file()
    # In place (make figures): the summary it reads is kept as is.
    before = (first / "runs.csv").read_bytes()
    (first / "claims.md").write_text("# claims\n")  # as a report from run folders with generations writes it
    assert main(["--from-csv", str(first / "runs.csv"), "--out", str(first), "--formats", "png"]) == 0
    assert (first / "runs.csv").read_bytes() == before
    readme = (first / "README.md").read_text()
    assert "--from-csv" in readme
    # ... and still lists what the report from the run folders wrote beside it (a summary cannot recompute it)
    assert "[runs.parquet](runs.parquet)" in readme and "[claims.md](claims.md)" in readme


def test_generic_figure_from_the_command_line(runs: Path, tmp_path: Path):
    out = tmp_path / "out"
    assert (
        main(
            [
                str(runs),
                "--out",
                str(out),
                "--x",
                "method.length",
                "--metric",
                "test.BLEU",
                "--metric",
                "validation.val_loss",
                "--group",
                "label",
                "--baseline",
                "zero-shot",
                "--formats",
                "png,pdf",
            ]
        )
        == 0
    )
    assert (out / "BLEU_vs_method.length_by_label.png").is_file()
    assert (out / "validation.val_loss_vs_method.length_by_label.pdf").is_file()


def test_experiment_choice_and_per_study_folders(runs: Path, tmp_path: Path):
    write_run(
        runs, fake_record(label=None, seed=0, method=prefix_method(5), study="e2e_length_cpu"), "length=5"
    )
    write_run(
        runs, fake_record(label=None, seed=0, method=prefix_method(10), study="e2e_length_cpu"), "length=10"
    )
    out = tmp_path / "out"
    assert main([str(runs), "--out", str(out), "--formats", "png", "--no-parquet"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["e2e_length_cpu", "synthetic"]
    # e2e_length_cpu is the CPU twin of e2e_length: its figures, not the ablation table.
    names = {p.name for p in (out / "e2e_length_cpu").iterdir()}
    assert "length_e2e_BLEU.png" in names and "length_e2e_BLEU.pdf" not in names
    assert "table_ablation_placement_depth.md" not in names and "runs.parquet" not in names
    assert len(pd.read_csv(out / "e2e_length_cpu" / "runs.csv")) == 2
    # --experiment forces one experiment's artifacts; --study keeps one study.
    forced = tmp_path / "forced"
    assert (
        main(
            [
                str(runs),
                "--out",
                str(forced),
                "--study",
                "synthetic",
                "--experiment",
                "e2e_main",
                "--formats",
                "png",
            ]
        )
        == 0
    )
    assert (forced / "table_e2e_main.md").is_file() and not (forced / "length_e2e_BLEU.png").exists()
    # --per-study: OUT/<study>/ even for one study (what `make figures` uses).
    per = tmp_path / "per"
    assert (
        main([str(runs), "--out", str(per), "--study", "synthetic", "--per-study", "--formats", "png"]) == 0
    )
    assert (per / "synthetic" / "runs.csv").is_file()


def test_wandb_source_from_a_cached_pull(tmp_path: Path):
    cache = cached_pull(tmp_path / "wandb_runs.json")
    out = tmp_path / "out"
    assert (
        main(
            [
                "--wandb",
                "me/prefixlab",
                "--wandb-group",
                "e2e_length",
                "--wandb-cache",
                str(cache),
                "--out",
                str(out),
                "--formats",
                "png",
            ]
        )
        == 0
    )
    frame = pd.read_csv(out / "runs.csv")
    assert sorted(frame["method.length"]) == [1, 1, 5, 5]
    assert "cached pull" in (out / "README.md").read_text()


def test_errors_and_the_top_level_command(runs: Path, tmp_path: Path, capsys):
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path)])  # no source
    assert main([str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main([str(empty), "--out", str(tmp_path / "o")]) == 1
    assert prefixlab_main(["report", str(runs), "--out", str(tmp_path / "top"), "--columns"]) == 0
    printed = capsys.readouterr().out
    assert "settings that vary:" in printed and "test.BLEU" in printed


def test_report_modules_never_import_torch_or_the_training_stack():
    """The report path stays fast: importing every report module loads neither torch nor transformers."""
    import subprocess
    import sys

    modules = ", ".join(
        f"prefixlab.report.{p.stem}" for p in sorted(REPORT_DIR.glob("*.py")) if p.stem != "__main__"
    )
    code = f"import sys, {modules}; print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
