"""Tables: our mean ± std over seeds beside the paper's numbers from experiments/<name>/paper.csv."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_report_support import fake_record, prefix_method, synthetic_study

from prefixlab.report.collect import collect_runs, frame_from_rows, record_to_row
from prefixlab.report.paper import experiments_dir, load_marks, load_paper_table
from prefixlab.report.tables import NOT_RUN, ablation_table, e2e_main_table, summary_table, xsum_main_table

NOTES = Path("/work/shared/notes/paper.md")


@pytest.fixture
def frame(tmp_path: Path) -> pd.DataFrame:
    synthetic_study(tmp_path)
    return collect_runs(tmp_path).frame


def test_ablation_means_are_the_runs_means_x100(frame):
    table = ablation_table(frame)
    numeric = table.numeric.set_index("row")
    for label, n in (("PREFIX-5", 3), ("EMB-1", 2), ("INFIX-1", 2), ("PREFIX-1", 2), ("zero-shot", 2)):
        runs = frame[frame["label"] == label]
        assert numeric.loc[label, "n"] == n
        for metric, scale in (("BLEU", 100), ("METEOR", 100), ("ROUGE_L", 100), ("NIST", 1), ("CIDEr", 1)):
            assert numeric.loc[label, f"{metric} mean"] == pytest.approx(
                runs[f"test.{metric}"].mean() * scale
            )
            assert numeric.loc[label, f"{metric} std"] == pytest.approx(
                runs[f"test.{metric}"].std(ddof=1) * scale
            )
    # The Markdown cell shows the same numbers at the paper's precision.
    row = table.display.set_index("row").loc["PREFIX-5"]
    bleu = frame[frame["label"] == "PREFIX-5"]["test.BLEU"] * 100
    assert row["BLEU"] == f"{bleu.mean():.1f} ± {bleu.std(ddof=1):.1f}"
    assert row["n"] == "3"


def test_ablation_paper_columns_come_from_the_data_file(frame):
    paper = load_paper_table("ablation_placement_depth")
    table = ablation_table(frame)
    numeric = table.numeric
    assert paper is not None and paper.versions == ("ACL 2021",)
    for record in numeric.itertuples():
        row = record._2  # "paper row"
        for metric in paper.metrics:
            value = numeric.loc[record.Index, f"{metric} paper ACL 2021"]
            if isinstance(row, str):
                assert value == paper.value(row, metric, "ACL 2021")
            else:
                assert np.isnan(value)
    matched = dict(zip(numeric["row"], numeric["paper row"], strict=True))
    assert matched["PREFIX-5"] == "PREFIX" and matched["EMB-1"] == "EMB-1" and matched["INFIX-1"] == "INFIX-1"
    assert pd.isna(matched["PREFIX-1"]) and pd.isna(matched["zero-shot"])  # run, not in the paper: "—"
    shown = table.display.set_index("row")
    assert shown.loc["PREFIX-5", "BLEU [ACL 2021]"] == "70.3"
    assert shown.loc["PREFIX-1", "BLEU [ACL 2021]"] == "—"
    assert shown.loc["EMB-1", "CIDEr [ACL 2021]"] == "1.10"
    # Paper rows nobody ran are listed as not run, in the paper's order, or left out.
    not_run = table.display[table.display["row"] == NOT_RUN]["paper row"].tolist()
    assert not_run == ["EMB-10", "EMB-20", "INFIX-10", "INFIX-20"]
    assert table.display["paper row"].tolist()[:7] == list(paper.rows)
    assert NOT_RUN not in ablation_table(frame, missing="omit").display["row"].tolist()


def test_markdown_and_latex(frame, tmp_path: Path):
    table = ablation_table(frame)
    markdown = table.to_markdown()
    assert markdown.startswith("### ") and "| PREFIX-5" in markdown and "70.3" in markdown
    assert "x100" in markdown and "paper.csv" in markdown
    latex = table.to_latex()
    assert "\\begin{tabular}" in latex and "\\label{tab:ablation_placement_depth}" in latex
    assert "ROUGE-L [ACL 2021]" in latex and "INFIX-1" in latex
    paths = table.write(tmp_path / "t")
    assert [p.suffix for p in paths] == [".md", ".tex"] and all(p.stat().st_size for p in paths)


def test_e2e_main_keeps_both_paper_versions(tmp_path: Path):
    rows = []
    for seed in (0, 1):
        for label, method in (
            ("fine-tune", {"kind": "finetune", "trainable": "all"}),
            (None, prefix_method(10)),
        ):
            rows.append(
                record_to_row(fake_record(label=label, seed=seed, method=method, model="gpt2-medium"))
            )
    rows.append(record_to_row(fake_record(label=None, seed=0, method=prefix_method(10), model="gpt2-large")))
    frame = frame_from_rows(rows)
    table = e2e_main_table(frame)
    shown = table.display.set_index("row")
    # gpt2-medium prefix runs compare with the Medium row, gpt2-large with the Large row (more specific).
    assert shown.loc["PREFIX-10, gpt2-medium", "paper row"] == "prefix (0.1%)"
    assert shown.loc["PREFIX-10, gpt2-large", "paper row"] == "prefix (GPT-2 Large)"
    assert shown.loc["PREFIX-10, gpt2-medium", "BLEU [ACL 2021]"] == "70.3"
    assert shown.loc["PREFIX-10, gpt2-medium", "BLEU [arXiv v1]"] == "69.7"
    assert shown.loc["fine-tune, gpt2-medium", "BLEU [ACL 2021]"] == "68.8"
    assert shown.loc["fine-tune, gpt2-medium", "BLEU [arXiv v1]"] == "68.2"
    assert shown.loc["PREFIX-10, gpt2-large", "BLEU [arXiv v1]"] == "—"  # not transcribed for v1
    assert "adapter (3%)" in table.display[table.display["row"] == NOT_RUN]["paper row"].tolist()


def test_xsum_table_uses_rouge_without_rescaling():
    rows = [
        record_to_row(
            fake_record(label=None, seed=s, method=prefix_method(100), task="xsum", model="bart-large")
        )
        for s in (0, 1)
    ]
    table = xsum_main_table(frame_from_rows(rows))
    numeric = table.numeric.set_index("row")
    assert numeric.loc["PREFIX-100", "paper row"] == "prefix (2%)"
    assert numeric.loc["PREFIX-100", "ROUGE_2 mean"] == pytest.approx(
        np.mean([5.0 + 5 + s / 2 for s in (0, 1)])
    )
    assert numeric.loc["PREFIX-100", "ROUGE_1 paper ACL 2021"] == 43.80
    assert table.scale == {"ROUGE_1": 1.0, "ROUGE_2": 1.0, "ROUGE_L": 1.0}


def test_summary_table_splits_rows_by_settings_that_vary_within_a_label():
    rows = [
        record_to_row(fake_record(label=None, seed=s, method=prefix_method(5, reparam=r), study="reparam"))
        for r in ("mlp", "none")
        for s in (0, 1)
    ]
    table = summary_table(frame_from_rows(rows), name="reparam")
    assert table.display["row"].tolist() == ["PREFIX-5, reparam=mlp", "PREFIX-5, reparam=none"]
    assert {"stored params", "train s"} <= set(table.display.columns)
    assert "paper row" not in table.display


def test_paper_files_hold_the_notes_numbers():
    """Spot checks against /work/shared/notes/paper.md; both versions kept where they differ."""
    main = load_paper_table("e2e_main")
    assert main.value("prefix (0.1%)", "BLEU", "ACL 2021") == 70.3
    assert main.value("prefix (0.1%)", "BLEU", "arXiv v1") == 69.7
    assert main.value("fine-tune", "BLEU", "ACL 2021") == 68.8
    assert main.value("fine-tune", "BLEU", "arXiv v1") == 68.2
    assert main.value("fine-tune", "CIDEr", "arXiv v1") == 2.47
    assert main.sources() == {"ACL 2021": "Table 2", "arXiv v1": "Table 1"}
    xsum = load_paper_table("xsum_main")
    assert xsum.value("prefix (0.1%)", "ROUGE_L", "ACL 2021") == 35.05
    ablation = load_paper_table("ablation_placement_depth")
    assert ablation.value("EMB-20", "NIST", "ACL 2021") == 7.11
    if NOTES.is_file():  # every number in the data files appears, as written, in the notes
        notes = NOTES.read_text()
        for paper in (main, xsum, ablation):
            text = pd.read_csv(paper.path, dtype=str)
            for record in text.to_dict("records"):
                for metric in paper.metrics:
                    assert record[metric] in notes, (paper.name, record["row"], metric, record[metric])


def test_figure_4_has_only_the_threshold_as_data():
    marks = load_marks()
    assert sorted(zip(marks["task"], marks["value"], strict=True)) == [("e2e", 10), ("xsum", 200)]
    assert set(marks["column"]) == {"method.length"}
    for name in ("e2e_length", "xsum_length"):
        assert not (experiments_dir() / name / "paper.csv").exists()  # per-point values are not published


def test_every_experiment_folder_documents_its_command():
    for name in (
        "e2e_length",
        "xsum_length",
        "ablation_placement_depth",
        "reparam",
        "reparam_init",
        "init_lowdata",
        "lowdata",
        "e2e_main",
        "xsum_main",
        "demo",
    ):
        readme = (experiments_dir() / name / "README.md").read_text()
        assert f"experiment={name}" in readme, name
        assert "prefixlab report" in readme, name
        if name != "demo":
            assert re.search(rf"experiment={name} budget=cpu(_\w+)?\b", readme), name
