"""Figures: points at the values run, means over seeds, seeds in the legend, the paper's mark, valid files."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from matplotlib.container import BarContainer
from test_report_support import ZEROSHOT, fake_record, prefix_method

from prefixlab.report.collect import frame_from_rows, record_to_row
from prefixlab.report.figures import (
    figure,
    init_figures,
    length_figures,
    lowdata_figures,
    plotted_points,
    reparam_figures,
)
from prefixlab.report.style import save_figure

LENGTHS = (1, 5, 20, 40)


def by_gid(fig, prefix: str) -> list:
    """Lines of a figure whose gid starts with `prefix`."""
    return [line for ax in fig.axes for line in ax.lines if str(line.get_gid()).startswith(prefix)]


@pytest.fixture
def length_frame():
    rows = [
        record_to_row(fake_record(label=None, seed=s, method=prefix_method(n), study="e2e_length"))
        for n in LENGTHS
        for s in ((0, 1, 2) if n == 40 else (0, 1))
    ]
    rows += [
        record_to_row(fake_record(label="zero-shot", seed=s, method=ZEROSHOT, study="e2e_length"))
        for s in (0, 1)
    ]
    rows.append(
        record_to_row(
            fake_record(label="EMB-5", seed=0, method=prefix_method(5, depth="embedding"), study="e2e_length")
        )
    )
    return frame_from_rows(rows)


def test_length_figure_points_means_band_legend_and_threshold(length_frame):
    figures = length_figures(length_frame)
    assert set(figures) == {("e2e", f"test.{m}") for m in ("BLEU", "NIST", "METEOR", "ROUGE_L", "CIDEr")}
    fig = figures[("e2e", "test.BLEU")]
    assert plotted_points(fig) == len(LENGTHS)  # EMB-5 and zero-shot are not points of the curve
    (series,) = by_gid(fig, "series:")
    assert series.get_xdata().tolist() == list(LENGTHS)
    prefix = length_frame[(length_frame["method.kind"] == "prefix") & (length_frame["method.depth"] == "all")]
    expected = [prefix[prefix["method.length"] == n]["test.BLEU"].mean() * 100 for n in LENGTHS]
    np.testing.assert_allclose(series.get_ydata(), expected)
    assert series.get_label() == "tiny-gpt2 (2–3 seeds; ±1 std)"
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and [t for t in ax.get_xticks()] == list(LENGTHS)
    assert [c.get_gid() for c in ax.collections] == ["band:tiny-gpt2"]
    (mark,) = by_gid(fig, "mark:")
    assert (
        mark.get_xdata()[0] == 10 and "10" in mark.get_label()
    )  # from experiments/e2e_length/paper_marks.csv
    (baseline,) = by_gid(fig, "baseline:")
    zero = length_frame[length_frame["label"] == "zero-shot"]["test.BLEU"].mean() * 100
    assert baseline.get_ydata()[0] == pytest.approx(zero) and baseline.get_label() == "zero-shot (2 seeds)"
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["tiny-gpt2 (2–3 seeds; ±1 std)", "zero-shot (2 seeds)", "paper: best length 10"]
    assert fig.get_size_inches()[0] == pytest.approx(3.3)


def test_png_and_pdf_are_valid_with_embedded_truetype_fonts(length_frame, tmp_path: Path):
    fig = length_figures(length_frame)[("e2e", "test.BLEU")]
    png, pdf = save_figure(fig, tmp_path / "length_BLEU")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF-") and data.rstrip().endswith(b"%%EOF")
    assert b"/FontFile2" in data and b"/Type3" not in data  # pdf.fonttype 42: TrueType, embedded
    assert b"/CreationDate" not in data  # reproducible bytes for committed results


def test_generic_figure_any_x_metric_and_grouping():
    rows = [
        record_to_row(fake_record(label=None, seed=s, method=prefix_method(n), model=m, study="mine"))
        for m in ("tiny-gpt2", "tiny-llama")
        for n in (2, 4, 6)
        for s in (0, 1)
    ]
    frame = frame_from_rows(rows)
    fig = figure(frame, x="method.length", metric="validation.val_loss", group="model.name")
    assert sorted(line.get_gid() for line in by_gid(fig, "series:")) == [
        "series:tiny-gpt2",
        "series:tiny-llama",
    ]
    assert plotted_points(fig) == 6 and fig.axes[0].get_xscale() == "linear"
    assert fig.axes[0].get_ylabel() == "val_loss"
    # Default grouping: the settings that vary beyond x (here the model).
    assert len(by_gid(figure(frame, x="method.length", metric="test.BLEU"), "series:")) == 2
    # Grouping that hides a varying setting warns that runs are mixed.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        figure(frame, x="method.length", metric="test.BLEU", group=[])
    assert any("model.name" in str(w.message) for w in caught)
    with pytest.raises(KeyError, match="no column"):
        figure(frame, x="trainer.nope", metric="test.BLEU")


def test_lowdata_curves_average_subsets_and_seeds():
    rows = []
    for size in (50, 100, 200, 500):
        for subset in (0, 1, 2):
            for seed in (0, 1):
                for label, method in (
                    ("PREFIX-6", prefix_method(6, init="tokens", init_text="table-to-text:")),
                    ("fine-tune", {"kind": "finetune", "trainable": "all"}),
                ):
                    record = fake_record(
                        label=label,
                        seed=seed,
                        method=method,
                        study="lowdata",
                        task_extra={"train_size": size, "subset_seed": subset},
                    )
                    record["metrics"]["test"]["BLEU"] = (
                        size / 1000 + subset / 100 + (0.05 if label == "fine-tune" else 0)
                    )
                    rows.append(record_to_row(record))
    fig = lowdata_figures(frame_from_rows(rows))[("e2e", "test.BLEU")]
    series = {line.get_gid(): line for line in by_gid(fig, "series:")}
    assert set(series) == {"series:PREFIX-6", "series:fine-tune"}
    assert series["series:PREFIX-6"].get_xdata().tolist() == [50, 100, 200, 500]
    np.testing.assert_allclose(
        series["series:PREFIX-6"].get_ydata(), [(s / 1000 + 0.01) * 100 for s in (50, 100, 200, 500)]
    )
    assert series["series:PREFIX-6"].get_label() == "PREFIX-6 (6 runs; ±1 std)"  # 3 subsets x 2 seeds
    assert fig.axes[0].get_xscale() == "log"


def test_lowdata_figure_draws_only_the_learning_rate_chosen_on_validation():
    # fine-tuning ran an lr grid on subset 0 at each size; 3e-4 would be best on test but is worst on
    # validation, so neither it nor 3e-5 may enter the curve (nor split it into series per rate)
    rows = []
    for size in (50, 100):
        runs = [(1e-4, s, 1.0 + s, 0.30) for s in (0, 1, 2)] + [(3e-5, 0, 1.5, 0.20), (3e-4, 0, 2.0, 0.90)]
        for lr, subset, val, bleu in runs:
            record = fake_record(label="fine-tune", seed=0, method={"kind": "finetune", "trainable": "all"},
                                 study="lowdata", task_extra={"train_size": size, "subset_seed": subset})  # fmt: skip
            record["config"]["trainer"]["lr"] = lr
            record["run_dir"] += f",lr={lr},size={size},subset={subset}"
            record["metrics"]["validation"]["val_loss"] = val
            record["metrics"]["test"]["BLEU"] = bleu
            rows.append(record_to_row(record))
    fig = lowdata_figures(frame_from_rows(rows))[("e2e", "test.BLEU")]
    (series,) = by_gid(fig, "series:")
    assert series.get_xdata().tolist() == [50, 100]
    np.testing.assert_allclose(series.get_ydata(), [30.0, 30.0])
    assert "3 runs" in series.get_label()


def test_init_figure_bars_per_initialization():
    rows = []
    for init, text in (("random", None), ("tokens", "table-to-text:"), ("tokens", "elephant")):
        for seed in (0, 1):
            method = prefix_method(6, init=init, init_text=text)
            rows.append(
                record_to_row(fake_record(label=None, seed=seed, method=method, study="init_lowdata"))
            )
    fig = init_figures(frame_from_rows(rows))[("e2e", "test.BLEU")]
    assert plotted_points(fig) == 3
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == [
        "random",
        '"table-to-text:"',
        '"elephant"',
    ]


def test_reparam_bars_per_setting():
    rows = [
        record_to_row(fake_record(label=None, seed=s, method=prefix_method(5, reparam=r), study="reparam"))
        for r in ("none", "mlp")
        for s in (0, 1, 2)
    ]
    fig = reparam_figures(frame_from_rows(rows))[("e2e", "test.METEOR")]
    assert plotted_points(fig) == 2
    (bars,) = [c for c in fig.axes[0].containers if isinstance(c, BarContainer)]
    assert bars.get_label() == "tiny-gpt2 (3 seeds; ±1 std)"
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["none", "mlp"]
