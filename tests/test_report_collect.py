"""Collecting runs into one DataFrame: run folders, incomplete runs, summaries on disk, W&B (a fake Api)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from test_report_support import (
    ABLATION_RUNS,
    ZEROSHOT,
    FakeApi,
    fake_record,
    prefix_method,
    synthetic_study,
    wandb_run,
    write_run,
)

from prefixlab.report.collect import (
    collect_runs,
    collect_wandb,
    derive_label,
    find_run_folders,
    flatten,
    read_summary,
    setting_columns,
    swept_overrides,
    wandb_filters,
    write_summary,
)


@pytest.fixture
def study(tmp_path: Path) -> tuple[Path, list[dict]]:
    """Synthetic run folders (11 complete, 3 incomplete)."""
    return tmp_path, synthetic_study(tmp_path)


def test_one_row_per_complete_run_with_flat_columns(study):
    root, records = study
    runs = collect_runs(root)
    frame = runs.frame
    assert len(frame) == len(records) == sum(len(seeds) for *_, seeds in ABLATION_RUNS)
    for column in (
        "study",
        "label",
        "seed",
        "run",
        "run_dir",
        "status",
        "method.length",
        "method.placement",
        "model.name",
        "task.name",
        "trainer.lr",
        "test.BLEU",
        "test.CIDEr",
        "validation.val_loss",
        "parameters.stored_parameters",
        "training.train_seconds",
        "evaluation.decode_seconds",
        "system.git_commit",
        "wall_seconds",
    ):
        assert column in frame, column
    assert "training.history" not in frame  # the curve is not a cell
    assert list(frame.columns[:3]) == ["study", "label", "seed"]
    assert set(frame["status"]) == {"complete"}
    # Values are the metrics.json values, untouched.
    row = frame[(frame["label"] == "PREFIX-5") & (frame["seed"] == 2)].iloc[0]
    record = next(r for r in records if r["config"]["label"] == "PREFIX-5" and r["config"]["seed"] == 2)
    assert row["test.BLEU"] == record["metrics"]["test"]["BLEU"]
    assert row["parameters.stored_parameters"] == record["parameters"]["stored_parameters"]
    assert row["method.length"] == 5


def test_incomplete_runs_are_listed_with_reasons_and_left_out(study, capsys):
    root, _ = study
    runs = collect_runs(root)
    reasons = {Path(r.path).name: r.reason for r in runs.incomplete}
    assert set(reasons) == {"label=EMB-10,seed=0", "label=EMB-20,seed=0", "label=INFIX-10,seed=0"}
    assert "no metrics.json" in reasons["label=EMB-10,seed=0"]
    assert "'failed'" in reasons["label=EMB-20,seed=0"]
    assert "unreadable" in reasons["label=INFIX-10,seed=0"]
    assert all(r.study == "synthetic" for r in runs.incomplete)
    assert not runs.frame["run"].isin(reasons).any()
    runs.print_incomplete()
    err = capsys.readouterr().err
    assert "3 incomplete run(s) left out" in err and "label=EMB-10,seed=0" in err


def test_run_folders_are_found_anywhere_but_not_inside_a_run(tmp_path: Path):
    record = fake_record(label="PREFIX-5", seed=0, method=prefix_method(5), study="deep")
    folder = write_run(tmp_path / "a" / "b", record)
    # W&B's offline folder inside a run has its own config.yaml: not a run.
    (folder / "wandb" / "offline-run-1" / "files").mkdir(parents=True)
    (folder / "wandb" / "offline-run-1" / "files" / "config.yaml").write_text("x: 1\n")
    assert find_run_folders(tmp_path) == [folder]
    assert find_run_folders(folder) == [folder]  # a single run folder works too
    assert len(collect_runs(tmp_path, folder).frame) == 1  # the same run twice counts once
    with pytest.raises(FileNotFoundError):
        find_run_folders(tmp_path / "missing")


def test_labels_derived_from_the_method_when_the_config_has_none():
    assert derive_label({"label": "PREFIX"}) == "PREFIX"
    assert derive_label({"method": prefix_method(10)}) == "PREFIX-10"
    assert derive_label({"method": prefix_method(10, depth="embedding")}) == "EMB-10"
    assert derive_label({"method": prefix_method(20, placement="infix")}) == "INFIX-20"
    assert derive_label({"method": {"kind": "finetune", "trainable": "all"}}) == "fine-tune"
    assert derive_label({"method": {"kind": "finetune", "trainable": "top2"}}) == "FT-top2"
    assert derive_label({"method": ZEROSHOT}) == "zero-shot"


def test_flatten_keeps_lists_as_json_text():
    flat = flatten({"a": {"b": 1, "c": [1, 2], "d": {"e": None}}})
    assert flat == {"a.b": 1, "a.c": "[1, 2]", "a.d.e": None}


def test_swept_settings_and_overrides(study):
    root, _ = study
    frame = collect_runs(root).frame
    swept = setting_columns(frame)
    assert "method.length" in swept and "label" in swept
    assert "seed" not in swept and "paths.runs" not in swept and "trainer.device" not in swept
    assert swept_overrides(frame) == {
        "variant": ["EMB-1", "INFIX-1", "PREFIX-1", "PREFIX-5", "zero-shot"],
        "seed": ["0", "1", "2"],
    }


def test_summary_round_trips_through_csv_and_parquet(study, tmp_path: Path):
    root, _ = study
    runs = collect_runs(root)
    written = write_summary(runs, tmp_path / "out")
    assert [p.name for p in written] == ["runs.csv", "runs.parquet", "incomplete.csv"]
    for name in ("runs.csv", "runs.parquet"):
        again = read_summary([tmp_path / "out" / name])
        assert len(again.frame) == len(runs.frame)
        assert list(again.frame.columns) == list(runs.frame.columns)
        pd.testing.assert_series_equal(again.frame["test.BLEU"], runs.frame["test.BLEU"], check_dtype=False)
        assert len(again.incomplete) == 3  # incomplete.csv beside the summary is read back


# ------------------------------------------------------------------------------------------ W&B
def test_wandb_filters_build_a_mongo_query():
    assert wandb_filters() == {}
    assert wandb_filters(group="g") == {"group": "g"}
    assert wandb_filters(group="g", tags=["a", "b"], config={"method.length": 5}) == {
        "$and": [
            {"group": "g"},
            {"tags": {"$in": ["a"]}},
            {"tags": {"$in": ["b"]}},
            {"config.method.length": 5},
        ]
    }


def test_wandb_pull_is_filtered_cached_and_reused_offline(tmp_path: Path):
    records = [
        fake_record(label="PREFIX-5", seed=s, method=prefix_method(5), study="e2e_length") for s in (0, 1)
    ] + [fake_record(label="PREFIX-1", seed=0, method=prefix_method(1), study="e2e_length")]
    runs = [wandb_run(r) for r in records]
    runs.append(
        wandb_run(
            fake_record(label="PREFIX-1", seed=1, method=prefix_method(1), study="e2e_length"),
            state="crashed",
        )
    )
    api = FakeApi(runs)
    cache = tmp_path / "wandb_runs.json"
    pulled = collect_wandb(
        "me/prefixlab",
        group="e2e_length",
        tags=["variant=x"],
        config={"method.length": 5},
        cache=cache,
        api=api,
    )
    assert api.calls == [("me/prefixlab", wandb_filters("e2e_length", ["variant=x"], {"method.length": 5}))]
    # The server applies the filters; they are applied again locally (also to cached pulls).
    assert sorted(pulled.frame["seed"]) == [0, 1] and set(pulled.frame["method.length"]) == {5}
    frame = pulled.frame
    assert frame["test.BLEU"].tolist() == [r["metrics"]["test"]["BLEU"] for r in records[:2]]
    assert frame["parameters.stored_parameters"].tolist() == [1280, 1280]
    assert frame["validation.val_loss"].tolist() == [5.0, 5.0]
    assert frame["wall_seconds"].tolist() == [12.5, 12.5]
    assert frame["study"].tolist() == ["e2e_length"] * 2 and frame["label"].tolist() == ["PREFIX-5"] * 2
    assert "summary.generations" not in frame  # tables and media are skipped

    payload = json.loads(cache.read_text())
    assert payload["path"] == "me/prefixlab" and len(payload["runs"]) == 4

    class Offline:
        def runs(self, *args, **kwargs):
            raise AssertionError("the cache must be used, not the network")

    again = collect_wandb(
        "me/prefixlab",
        group="e2e_length",
        tags=["variant=x"],
        config={"method.length": 5},
        cache=cache,
        api=Offline(),
    )
    pd.testing.assert_frame_equal(again.frame, pulled.frame)
    assert "cached pull" in again.source

    everything = collect_wandb("me/prefixlab", cache=tmp_path / "all.json", api=FakeApi(runs))
    assert len(everything.frame) == 3
    assert [r.reason for r in everything.incomplete] == ["wandb state crashed, no test metrics"]
    with pytest.raises(ValueError, match="--refresh"):
        collect_wandb("me/prefixlab", group="other", cache=cache, api=Offline())
    refreshed = collect_wandb("me/prefixlab", group="other", cache=cache, api=FakeApi(runs), refresh=True)
    assert refreshed.frame.empty
