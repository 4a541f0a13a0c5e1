"""From a sweep to a W&B report, offline: a two-job tiny sweep (prefix length 1 and 2) logs W&B runs whose
transaction logs carry the flat ablation keys, the paper-scale metrics, the settings row and the generations
table; `prefixlab wandb-report` on the sweep's folder writes the report's specification."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_tasks_support import require_data
from wandb_log import logged_table, summarize

from prefixlab.report.style import scale_for
from prefixlab.report.wandb_report import SPEC_FILE, check_spec

REPO = Path(__file__).resolve().parents[1]
STUDY = "wandb_sweep"
SWEEP = [
    "-m", f"study={STUDY}", "logger.mode=offline", "model=tiny-gpt2", "method.length=1,2", "trainer.max_steps=2",
    "eval.max_groups=4", "trainer.batch_size=4", "trainer.eval_max_examples=8", "task.decoding.num_beams=1",
    "task.decoding.max_new_tokens=8", "method.mlp_hidden=16", "trainer.num_threads=1",
]  # fmt: skip


def run(*args: str, runs: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "PREFIXLAB_RUNS": str(runs), "WANDB_SILENT": "true", "WANDB_MODE": "offline"}
    return subprocess.run(
        [sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    """The sweep's study folder (two complete runs with offline W&B runs)."""
    require_data("e2e/devset.csv", "e2e/testset_w_refs.csv")
    runs = tmp_path_factory.mktemp("runs")
    result = run("-m", "prefixlab.train", *SWEEP, runs=runs)
    assert result.returncode == 0, result.stderr[-3000:]
    return runs / STUDY


def _runs(study: Path) -> list[tuple[dict, Path]]:
    """(metrics.json record, the run's .wandb log) per run, by prefix length."""
    found = []
    for metrics in sorted(study.glob("*/metrics.json")):
        (log,) = metrics.parent.glob("wandb/offline-run-*/run-*.wandb")
        found.append((json.loads(metrics.read_text()), log))
    return sorted(found, key=lambda item: item[0]["config"]["method"]["length"])


def test_offline_runs_carry_flat_keys_beside_the_nested_config(sweep):
    runs = _runs(sweep)
    assert [record["config"]["method"]["length"] for record, _ in runs] == [1, 2]
    for record, log in runs:
        logged = summarize(log)
        config, length = logged["config"], record["config"]["method"]["length"]
        assert logged["run"]["group"] == STUDY
        assert config["method"] == record["config"]["method"]  # the nested config is kept
        for key, value in record["config"]["method"].items():  # every method key, flat
            assert config[f"method_{key}"] == value
        assert config["method_length"] == length and config["method_kind"] == "prefix"
        assert config["model_name"] == "tiny-gpt2" and config["task_name"] == "e2e"
        assert config["row"] == f"PREFIX-{length}" and config["seed"] == 0
        assert config["trainer_max_steps"] == 2  # an override of the sweep's command line
        assert "trainer_num_threads" not in config and "logger_mode" not in config  # infrastructure


def test_offline_runs_carry_paper_scale_metrics_settings_row_and_generations(sweep):
    for record, log in _runs(sweep):
        logged = summarize(log)
        summary, suite = logged["summary"], record["metric_suite"]
        for metric, value in record["metrics"]["test"].items():
            assert summary[f"test/{metric}"] == pytest.approx(value)
            assert summary[f"paper/{metric}"] == pytest.approx(value * scale_for(metric, suite))
        assert scale_for("BLEU", suite) == 100.0
        length = record["config"]["method"]["length"]
        (final,) = [row for row in logged["history"] if "setting/method_length" in row]
        assert final["setting/method_length"] == length and final["setting/seed"] == 0
        assert final["paper/BLEU"] == pytest.approx(100 * record["metrics"]["test"]["BLEU"])
        assert any("train_loss" in row for row in logged["history"])
        table = logged_table(log, "generations")
        assert table["columns"] == ["source", "output", "reference"]
        written = [
            json.loads(line) for line in (log.parents[2] / "generations.jsonl").read_text().splitlines()
        ]
        assert [row[:2] for row in table["data"]] == [[g["source"], g["output"]] for g in written]
        assert len(table["data"]) == 4


def test_wandb_report_on_the_sweep_writes_the_specification(sweep):
    result = run("-m", "prefixlab.cli", "wandb-report", str(sweep), runs=sweep.parent, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    spec_path = sweep / SPEC_FILE
    assert f"prefixlab wandb-report --publish {spec_path}" in result.stdout
    assert f"wandb sync {sweep}/*/wandb/offline-run-*" in result.stdout
    spec = json.loads(spec_path.read_text())
    assert spec["study"] == STUDY and spec["project"] == "prefixlab" and len(spec["runs"]) == 2
    assert spec["swept"] == {"label": "row", "method.length": "method_length"}
    assert spec["filters"] == f"Metric('Group') = '{STUDY}' and Metric('State') = 'finished'"
    grids = [b for b in spec["blocks"] if b["type"] == "PanelGrid"]
    panels: dict[str, dict] = {}
    for panel in (p for grid in grids for p in grid["panels"]):
        panels.setdefault(panel["type"], panel)  # the first of each type
    assert panels["LinePlot"]["x"] == "setting/method_length" and panels["LinePlot"]["y"] == ["paper/BLEU"]
    assert panels["LinePlot"]["groupby_rangefunc"] == "stddev"
    assert panels["BarPlot"]["groupby"] == {"type": "Config", "name": "row"}
    assert {"type": "Config", "name": "method_length"} in [
        c["metric"] for c in panels["ParallelCoordinatesPlot"]["columns"]
    ]
    assert panels["WeavePanelSummaryTable"]["table_name"] == "generations"
    curves = [
        p["y"] for grid in grids for p in grid["panels"] if p["type"] == "LinePlot" and p["x"] == "Step"
    ]
    assert curves == [["val_loss"], ["train_loss"]]
    # The flat keys the report groups by are the ones the runs logged.
    config = summarize(_runs(sweep)[0][1])["config"]
    assert {"row", "method_length"} <= set(config)
    assert check_spec(spec)["spec"]["blocks"]
