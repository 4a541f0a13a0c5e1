"""`prefixlab wandb-report` without a server: the report's specification from run folders on disk, the
`wandb_workspaces` report built from it (its panels, groupings, filters and text), and publishing with the
W&B API replaced as the package's own tests do (`wandb_workspaces.reports.v2.interface._get_api`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from wandb_workspaces.reports.v2 import interface

from prefixlab.report.collect import collect_runs
from prefixlab.report.wandb_report import SPEC_FILE, build_report, check_spec, main, publish, report_spec

E2E = ("BLEU", "NIST", "METEOR", "ROUGE_L", "CIDEr")


def write_run(root: Path, study: str, method: dict[str, Any], seed: int, bleu: float, **top: Any) -> Path:
    """A complete run folder (metrics.json only) as the app writes it."""
    overrides = [f"method.{k}={v}" for k, v in method.items() if k != "kind"] + [f"seed={seed}"]
    run = root / study / ",".join(overrides)
    run.mkdir(parents=True)
    config = {
        "model": {"name": "gpt2-medium"},
        "task": {"name": "e2e", "metric": "e2e", "train_size": None, "subset_seed": 0},
        "method": method,
        "trainer": {"lr": 8e-5, "max_steps": 100},
        "eval": {"max_groups": None},
        "logger": {"kind": "wandb", "project": "ablations", "entity": None},
        "seed": seed,
        "study": study,
        "label": None,
        **top,
    }
    record = {
        "status": "complete",
        "study": study,
        "run_dir": str(run),
        "overrides": overrides,
        "config": config,
        "metric_suite": "e2e",
        "primary_metric": "BLEU",
        "metrics": {"test": {"BLEU": bleu, "NIST": 8.0, "METEOR": 0.45, "ROUGE_L": 0.7, "CIDEr": 2.4}},
        "parameters": {"stored_parameters": 1000 * method.get("length", 1)},
        "training": {"trained": True, "history": [{"step": 100, "val_loss": 1.5}]},
    }
    (run / "metrics.json").write_text(json.dumps(record))
    return run


def prefix(length: int, placement: str = "prefix", depth: str = "all") -> dict[str, Any]:
    return {"kind": "prefix", "length": length, "placement": placement, "depth": depth, "reparam": "mlp"}


@pytest.fixture
def ablation(tmp_path) -> Path:
    """Table 5 at CPU scale: PREFIX-5, EMB-1, INFIX-1 and INFIX-5, two seeds each."""
    study = "ablation_placement_depth_cpu"
    for seed in (0, 1):
        write_run(tmp_path, study, prefix(5), seed, 0.60 + seed / 100)
        write_run(tmp_path, study, prefix(1, depth="embedding"), seed, 0.40 + seed / 100)
        write_run(tmp_path, study, prefix(1, placement="infix"), seed, 0.55)
        write_run(tmp_path, study, prefix(5, placement="infix"), seed, 0.57)
    return tmp_path / study


@pytest.fixture
def lengths(tmp_path) -> Path:
    """The length sweep: PREFIX-1/5/10, two seeds."""
    for length in (1, 5, 10):
        for seed in (0, 1):
            write_run(tmp_path, "e2e_length_cpu", prefix(length), seed, 0.3 + length / 100 + seed / 100)
    return tmp_path / "e2e_length_cpu"


def panels(spec: dict[str, Any], kind: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(panel, its grid) of every panel of one type in the specification."""
    return [
        (p, b) for b in spec["blocks"] if b["type"] == "PanelGrid" for p in b["panels"] if p["type"] == kind
    ]


def text(spec: dict[str, Any]) -> str:
    return "\n".join(b.get("text", "") for b in spec["blocks"] if b["type"] in ("P", "H2", "MarkdownBlock"))


# ------------------------------------------------------------------------------------------ the spec
def test_length_study_spec_plots_length_vs_metric_with_mean_and_band_over_seeds(lengths):
    spec = report_spec(collect_runs(lengths))
    assert spec["study"] == "e2e_length_cpu" and spec["experiment"] == "e2e_length"
    assert spec["project"] == "ablations" and spec["entity"] is None  # from the runs' logger config
    assert spec["swept"] == {"label": "row", "method.length": "method_length"}
    lines = panels(spec, "LinePlot")
    plot, grid = lines[0]
    assert plot["x"] == "setting/method_length" and plot["y"] == ["paper/BLEU"]
    assert plot["groupby_aggfunc"] == "mean" and plot["groupby_rangefunc"] == "stddev"
    assert plot["groupby"] == "Group"  # nothing else swept: one line for the study, averaged per length
    assert grid["runsets"][0]["groupby"] == ["group"]
    assert {p["y"][0] for p, _ in lines} >= {f"paper/{m}" for m in E2E}
    # The paper's mark for this experiment (Figure 4 has no per-point values).
    assert "paper: best length 10" in text(spec) and "Figure 4" in text(spec)


def test_ablation_spec_has_bars_per_row_runs_table_parallel_coordinates_and_generations(ablation):
    spec = report_spec(collect_runs(ablation))
    assert spec["experiment"] == "ablation_placement_depth"
    assert spec["swept"] == {
        "label": "row", "method.depth": "method_depth", "method.length": "method_length",
        "method.placement": "method_placement",
    }  # fmt: skip
    for grid in (b for b in spec["blocks"] if b["type"] == "PanelGrid"):
        (runset,) = grid["runsets"]
        assert (
            runset["filters"]
            == "Metric('Group') = 'ablation_placement_depth_cpu' and Metric('State') = 'finished'"
        )
    bars = panels(spec, "BarPlot")
    assert [p["metrics"] for p, _ in bars] == [[f"paper/{m}"] for m in E2E]
    for bar, _ in bars:
        assert bar["groupby"] == {"type": "Config", "name": "row"} and bar["max_bars_to_show"] == 4
        assert bar["groupby_aggfunc"] == "mean" and bar["groupby_rangefunc"] == "stddev"
    table = bars[0][1]["runsets"][0]
    assert table["pinned_columns"] == ["run:displayName", "config:row.value"] and table["lock_columns"]
    assert {"config:method_depth.value", "config:method_placement.value", "config:method_length.value",
            "config:seed.value", "summary:paper/BLEU", "summary:parameters/stored_parameters"} <= set(
        table["visible_columns"])  # fmt: skip
    assert not any("ci95" in c for c in table["visible_columns"])
    ((parallel, _),) = panels(spec, "ParallelCoordinatesPlot")
    axes = [c["metric"] for c in parallel["columns"]]
    assert {"type": "Config", "name": "method_placement"} in axes
    assert {"type": "Config", "name": "row"} in axes
    assert {"type": "SummaryMetric", "name": "paper/BLEU"} in axes
    ((generations, _),) = panels(spec, "WeavePanelSummaryTable")
    assert generations["table_name"] == "generations"
    # Length varies within placement x depth: one line per (depth, placement), grouped at the runset.
    plot, grid = panels(spec, "LinePlot")[0]
    assert sorted(grid["runsets"][0]["groupby"]) == ["config.method_depth", "config.method_placement"]
    assert "groupby" not in plot


def test_text_block_holds_the_papers_table_5_beside_ours(ablation):
    spec = report_spec(collect_runs(ablation))
    (markdown,) = [b["text"] for b in spec["blocks"] if b["type"] == "MarkdownBlock"]
    assert "Table 5" in markdown and "ablation_placement_depth/paper.csv" in markdown
    lines = {line.split("|")[1].strip(): line for line in markdown.splitlines() if line.startswith("| ")}
    assert "70.3" in lines["PREFIX-5"]  # the paper's PREFIX row (ACL 2021), beside ours
    assert "60.5 ± 0.7" in lines["PREFIX-5"]  # ours: BLEU x100, mean ± std over the two seeds
    assert "48.1" in lines["EMB-1"] and "67.9" in lines["INFIX-1"]
    assert "not run" in markdown  # paper rows nobody ran (EMB-10, ...) are listed


def test_intervals_flag_adds_the_hook_columns_to_the_runs_table(ablation):
    spec = report_spec(collect_runs(ablation), intervals=True, title="T", project="p", entity="e")
    table = panels(spec, "BarPlot")[0][1]["runsets"][0]
    assert {"summary:paper/BLEU_ci95_low", "summary:paper/BLEU_ci95_high"} <= set(table["visible_columns"])
    assert (spec["title"], spec["project"], spec["entity"]) == ("T", "p", "e")


def test_a_study_without_paper_numbers_and_a_new_method_kind(tmp_path):
    for rank in (4, 8):
        for seed in (0, 1):
            write_run(tmp_path, "lora_rank", {"kind": "lora", "rank": rank}, seed, 0.5, label=f"LoRA-{rank}")
    spec = report_spec(collect_runs(tmp_path / "lora_rank"))
    assert spec["experiment"] is None and spec["swept"] == {"label": "row", "method.rank": "method_rank"}
    assert all(plot["x"] == "Step" for plot, _ in panels(spec, "LinePlot"))  # curves only: no length plot
    assert "reproduces no paper experiment" in text(spec) and "LoRA-4" in text(spec)


# ------------------------------------------------------------------------------------------ the W&B report
class FakeServiceApi:
    """The GraphQL transport of `wandb.Api()` (wandb >= 0.29), answering what a report save asks."""

    app_url = "https://wandb.test"

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def execute_graphql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        variables = dict(variables or {})
        self.calls.append((query, variables))
        if "upsertView" in query:
            view = {key: variables[key] for key in ("name", "displayName", "description", "spec")}
            project = {"name": variables["projectName"], "entityName": variables["entityName"]}
            return {"upsertView": {"view": view | {"id": "report42", "project": project}, "inserted": True}}
        if "internalId" in query:
            return {"project": {"id": "p", "internalId": f"internal-{variables['projectName']}"}}
        raise AssertionError(f"unexpected GraphQL query: {query[:80]}")


class FakeApi:
    default_entity = "me"

    def __init__(self) -> None:
        self._service_api = FakeServiceApi()
        self.created: list[tuple[str, str]] = []

    def projects(self, entity: str) -> list[Any]:
        return []

    def create_project(self, project: str, entity: str) -> None:
        self.created.append((project, entity))


@pytest.fixture
def api(monkeypatch) -> FakeApi:
    fake = FakeApi()
    monkeypatch.setattr(interface, "_get_api", lambda: fake)
    return fake


def _grid_models(model: dict[str, Any]) -> list[dict[str, Any]]:
    return [b["metadata"] for b in model["spec"]["blocks"] if b["type"] == "panel-grid"]


def test_the_spec_builds_a_wandb_report_with_the_groupings_and_filters(ablation, api):
    spec = json.loads(json.dumps(report_spec(collect_runs(ablation))))  # as read back from the file
    report = build_report(spec)
    assert report.entity == "me" and report.project == "ablations"  # the default entity, from the API
    model = report._to_model().model_dump(by_alias=True, exclude_none=True)
    grids = _grid_models(model)
    for grid in grids:
        (runset,) = grid["runSets"]
        assert runset["project"] == {"entityName": "me", "name": "ablations", "id": "internal-ablations"}
        leaves = {(f["key"]["name"], f["op"], f["value"]) for f in runset["filters"]["filters"]}
        assert leaves == {("group", "=", "ablation_placement_depth_cpu"), ("state", "=", "finished")}
    by_type = [p for g in grids for p in g["panelBankSectionConfig"]["panels"]]
    bars = [p["config"] for p in by_type if p["viewType"] == "Bar Chart"]
    assert (
        bars[0]["groupBy"] == "row.value"
        and bars[0]["groupAgg"] == "mean"
        and bars[0]["groupArea"] == "stddev"
    )
    length = next(p["config"] for p in by_type if p["viewType"] == "Run History Line Plot")
    assert length["xAxis"] == "setting/method_length" and length["metrics"] == ["paper/BLEU"]
    grouping = {(key["section"], key["name"]) for key in grids[0]["runSets"][0]["grouping"]}
    assert grouping == {("config", "method_depth.value"), ("config", "method_placement.value")}
    parallel = next(p["config"] for p in by_type if p["viewType"] == "Parallel Coordinates Plot")
    assert "config:method_placement.value" in [c["accessor"] for c in parallel["columns"]]
    assert any(p["viewType"] == "Weave" and "generations" in json.dumps(p) for p in by_type)
    markdown = next(b["content"] for b in model["spec"]["blocks"] if b["type"] == "markdown-block")
    assert "70.3" in markdown
    assert check_spec(spec)["spec"]["blocks"]  # the server-free build used offline


def test_publish_saves_the_report_and_returns_its_url(ablation, api):
    spec = report_spec(collect_runs(ablation))
    url = publish(spec, entity="team")
    assert url.startswith("https://wandb.test/team/ablations/reports/") and url.endswith("--report42")
    assert api.created == [("ablations", "team")]
    ((query, saved),) = [(q, v) for q, v in api._service_api.calls if "upsertView" in q]
    assert saved["entityName"] == "team" and saved["projectName"] == "ablations" and saved["type"] == "runs"
    assert saved["displayName"] == "prefixlab: ablation_placement_depth_cpu"
    sent = json.loads(saved["spec"])
    assert sum(b["type"] == "panel-grid" for b in sent["blocks"]) == 5


def test_a_spec_of_another_format_is_refused():
    with pytest.raises(ValueError, match="not a prefixlab W&B report specification"):
        build_report({"format": "other", "blocks": []}, entity="e")
    with pytest.raises(ValueError, match="not one of"):
        build_report({"format": "prefixlab.wandb-report/1", "blocks": [{"type": "Report"}]}, entity="e")


# ------------------------------------------------------------------------------------------ the command
def test_command_offline_writes_the_spec_and_says_how_to_publish(ablation, monkeypatch, capsys):
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert main([str(ablation)]) == 0
    out = capsys.readouterr().out
    spec_path = ablation / SPEC_FILE
    assert json.loads(spec_path.read_text())["study"] == "ablation_placement_depth_cpu"
    assert "WANDB_MODE=offline" in out and f"wandb sync {ablation}/*/wandb/offline-run-*" in out
    assert f"prefixlab wandb-report --publish {spec_path}" in out
    # Publishing needs W&B online.
    assert main(["--publish", str(spec_path)]) == 2
    assert "needs W&B online" in capsys.readouterr().err


def test_command_online_saves_and_prints_the_address(ablation, api, monkeypatch, capsys, tmp_path):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    out_spec = tmp_path / "spec.json"
    assert main([str(ablation), "--out", str(out_spec), "--entity", "team"]) == 0
    out = capsys.readouterr().out
    assert "saved the W&B report: https://wandb.test/team/ablations/reports/" in out and out_spec.is_file()
    assert main(["--publish", str(out_spec), "--project", "other"]) == 0
    assert "https://wandb.test/team/other/reports/" in capsys.readouterr().out


def test_command_errors_are_clear(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    (tmp_path / "other.json").write_text('{"format": "something else"}')
    assert main(["--publish", str(tmp_path / "other.json")]) == 2
    assert "is not a prefixlab.wandb-report/1 specification" in capsys.readouterr().err
    assert main(["--publish", str(tmp_path / "missing.json")]) == 2
    assert "cannot read" in capsys.readouterr().err
    assert main([str(tmp_path / "nope")]) == 2
    assert "no run folders at" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main([str(tmp_path / "empty")]) == 2
    assert "no complete runs" in capsys.readouterr().err
