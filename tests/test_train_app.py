"""The Hydra app end to end on a tiny model: config checks, a two-job multirun with W&B offline, skipping of
finished jobs, resumption of a killed job, the submitit launcher, NaN handling, and `prefixlab score`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from test_tasks_support import require_data
from wandb_log import summarize

from prefixlab.provenance import REPO_ROOT
from prefixlab.resources import CONF_DIR
from prefixlab.train import RunConfigError, check_config, run_job
from prefixlab.training import NonFiniteLossError

CONF = CONF_DIR
FAST = [
    "model=tiny-gpt2",
    "trainer.batch_size=4",
    "trainer.eval_max_examples=8",
    "eval.max_groups=3",
    "task.decoding.num_beams=2",
    "task.decoding.max_new_tokens=8",
    "method.mlp_hidden=16",
]


def compose_cfg(*overrides: str):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("train", overrides=list(overrides))


def train_cli(*args: str, runs: Path, timeout: float = 600, **popen) -> subprocess.CompletedProcess:
    env = {**os.environ, "PREFIXLAB_RUNS": str(runs), "WANDB_SILENT": "true"}
    return subprocess.run(
        [sys.executable, "-m", "prefixlab.train", *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
        timeout=timeout, **popen,
    )  # fmt: skip


# ------------------------------------------------------------------------------------------ config checks
def _experiments() -> list[str]:
    return sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))


@pytest.mark.parametrize("name", _experiments())
def test_every_experiment_preset_composes_and_validates(name):
    cfg = compose_cfg(f"experiment={name}")
    check_config(cfg)
    assert cfg.study == name


@pytest.mark.parametrize("variant", sorted(p.stem for p in (CONF / "variant").glob("*.yaml")))
def test_every_variant_composes_and_validates(variant):
    cfg = compose_cfg(f"variant={variant}")
    check_config(cfg)
    assert cfg.label


def test_a_variant_wins_over_the_experiment_it_is_swept_in():
    """experiment=demo sweeps variant=zeroshot,...: the zero-shot job must not train a prefix."""
    zeroshot = compose_cfg("experiment=demo", "variant=zeroshot")
    assert (zeroshot.method.kind, zeroshot.method.trainable, zeroshot.label) == (
        "finetune",
        "none",
        "zero-shot",
    )
    infix = compose_cfg("experiment=ablation_placement_depth", "budget=cpu", "variant=INFIX-10")
    budget_steps = OmegaConf.load(
        CONF / "budget" / "cpu.yaml"
    ).trainer.max_steps  # not the paper preset's epochs
    assert (infix.method.placement, infix.method.length, infix.trainer.max_steps) == (
        "infix",
        10,
        budget_steps,
    )


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["method.length=0"], "method.length=0: input should be greater than or equal to 1"),
        (["method.placement=middle"], "method.placement='middle': input should be 'prefix' or 'infix'"),
        (
            ["model=tiny-bart", "method.placement=infix"],
            "method.placement='infix' is undefined for an encoder-decoder",
        ),
        (["trainer.loss_reduction=mean"], "trainer.loss_reduction='mean'"),
        (["trainer.lr=abc"], "trainer.lr='abc': input should be a valid number"),
        (["eval.max_groups=-3"], "eval.max_groups=-3: input should be greater than or equal to 1"),
        (
            ["+trainer.learning_rate=0.1"],
            "trainer.learning_rate is not a known key; known keys of trainer: lr,",
        ),
        (["+method.rank=4"], "method.rank is not a known key"),
        (
            ["method=finetune", "method.trainable=top3"],
            "method.trainable='top3': input should be 'all', 'top2' or 'none'",
        ),
        (["task.metric=bleurt"], "task.metric='bleurt' is not allowed; choose one of"),
        (["+task.decoding.top_k=5"], "unknown decoding settings \\['top_k'\\]"),
        (["seed=-1"], "seed=-1: input should be greater than or equal to 0"),
        (["+lr=0.1"], "unknown top-level keys \\['lr'\\]"),
    ],
)
def test_bad_overrides_fail_before_any_model_loads(overrides, message, monkeypatch, tmp_path):
    import prefixlab.models

    def no_loading(*args, **kwargs):
        raise AssertionError("a model was loaded before the config was checked")

    monkeypatch.setattr(prefixlab.models, "load_model", no_loading)
    cfg = compose_cfg(*overrides)
    with pytest.raises((RunConfigError, ValueError), match=message):
        run_job(cfg, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_unknown_model_names_the_available_ones():
    with pytest.raises(Exception, match="gpt5") as error:
        compose_cfg("model=gpt5")
    assert "smollm2-135m" in str(error.value)


# ------------------------------------------------------------------------------------------ end to end
@pytest.fixture(scope="module")
def multirun(tmp_path_factory):
    """A two-job multirun (prefix lengths 1 and 2) with W&B offline."""
    require_data("e2e/devset.csv", "e2e/testset_w_refs.csv")
    runs = tmp_path_factory.mktemp("runs")
    args = ["-m", "study=app", "logger.mode=offline", *FAST, "trainer.max_steps=3", "method.length=1,2"]
    result = train_cli(*args, runs=runs)
    assert result.returncode == 0, result.stderr[-3000:]
    return runs / "app", args, result


def _run_dirs(study: Path) -> list[Path]:
    return sorted(p.parent for p in study.glob("*/metrics.json"))


def test_multirun_writes_complete_run_folders(multirun):
    study, _, result = multirun
    runs = _run_dirs(study)
    assert [p.name.split("method.length=")[1].split(",")[0] for p in runs] == ["1", "2"]
    for run in runs:
        record = json.loads((run / "metrics.json").read_text())
        length = record["config"]["method"]["length"]
        assert record["status"] == "complete"
        assert set(record["metrics"]["test"]) == {"BLEU", "NIST", "METEOR", "ROUGE_L", "CIDEr"}
        assert record["parameters"]["stored_parameters"] == length * 2 * 2 * 64  # layers x (k, v) x hidden
        assert record["training"]["steps"] == 3 and record["training"]["tokens_per_second"] > 0
        assert record["evaluation"]["sources_decoded"] == 3
        assert record["data"]["split_groups"]["test"] == 630 and "train_from" in record["data"]
        assert record["system"]["git_commit"] and record["system"]["peak_memory_bytes"] > 0
        lines = (run / "generations.jsonl").read_text().splitlines()
        assert len(lines) == 3 and {"source", "output", "references"} <= set(json.loads(lines[0]))
        assert (run / "prefix" / "prefix.safetensors").is_file()
        assert (run / "config.yaml").is_file()
        assert f"test BLEU {record['metrics']['test']['BLEU']:.4f}" in result.stdout


def test_exported_prefix_reloads_with_the_same_outputs(multirun):
    from prefixlab import PrefixModel
    from prefixlab.models import load_model

    run = _run_dirs(multirun[0])[0]
    base, tokenizer = load_model("tiny-gpt2")
    model = PrefixModel.load(base, run / "prefix")
    assert model.prefix.exported and model.config.length == 1
    source = torch.tensor([tokenizer(" name[Aromi] <s>")["input_ids"]])
    out = model.generate(
        source_ids=source, source_mask=torch.ones_like(source), max_new_tokens=4, do_sample=False
    )
    assert out.shape == (1, 4)


def test_wandb_offline_run_records_config_and_metrics(multirun):
    for run in _run_dirs(multirun[0]):
        record = json.loads((run / "metrics.json").read_text())
        logs = list(run.glob("wandb/offline-run-*/run-*.wandb"))
        assert len(logs) == 1, "one W&B run per job"
        recorded = summarize(logs[0])
        length = record["config"]["method"]["length"]
        assert recorded["run"]["group"] == "app"
        assert recorded["run"]["name"] == run.name
        assert f"method.length={length}" in recorded["run"]["tags"]
        assert recorded["config"]["method"]["length"] == length
        assert recorded["config"]["model"]["name"] == "tiny-gpt2"
        for key, value in record["metrics"]["test"].items():
            assert recorded["summary"][f"test/{key}"] == pytest.approx(value)
        assert (
            recorded["summary"]["parameters/stored_parameters"] == record["parameters"]["stored_parameters"]
        )
        assert any("train_loss" in row for row in recorded["history"])
        assert any("val_loss" in row for row in recorded["history"])
        # the tested weights' validation value, as in metrics.json (not W&B's last logged one)
        for key, value in record["metrics"]["validation"].items():
            assert recorded["summary"][key] == pytest.approx(value)


def test_relaunching_the_sweep_skips_complete_jobs(multirun):
    study, args, _ = multirun
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in study.glob("*/metrics.json")}
    result = train_cli(*args, runs=study.parent)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stderr.count("holds complete results") + result.stdout.count("holds complete results") == 2
    assert before == {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in study.glob("*/metrics.json")}


def test_a_killed_job_resumes_from_its_checkpoint(tmp_path):
    require_data("e2e/devset.csv", "e2e/testset_w_refs.csv")
    args = ["study=resume", "logger=none", *FAST, "trainer.max_steps=150", "trainer.checkpoint_every=1",
            "trainer.eval_every=1000"]  # fmt: skip
    env = {**os.environ, "PREFIXLAB_RUNS": str(tmp_path)}
    process = subprocess.Popen(
        [sys.executable, "-m", "prefixlab.train", *args], cwd=REPO_ROOT, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    checkpoint = None
    deadline = time.time() + 120
    while time.time() < deadline and checkpoint is None:
        found = list(tmp_path.glob("resume/*/checkpoint/state.pt"))
        checkpoint = found[0] if found else None
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert checkpoint is not None, "no checkpoint appeared"
    run = checkpoint.parent.parent
    assert not (run / "metrics.json").exists()
    killed_at = torch.load(checkpoint, weights_only=False)["state"]["step"]
    assert 0 < killed_at < 150
    result = train_cli(*args, runs=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads((run / "metrics.json").read_text())
    assert record["training"]["resumed_from_step"] >= killed_at
    assert record["training"]["steps"] == 150


def test_submitit_local_launcher_runs_jobs_in_parallel_processes(tmp_path):
    require_data("e2e/devset.csv", "e2e/testset_w_refs.csv")
    result = train_cli(
        "-m", "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10", "hydra.launcher.cpus_per_task=1",
        "study=submitit", "logger=none", *FAST, "trainer.max_steps=2", "seed=0,1", runs=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    records = [json.loads(p.read_text()) for p in sorted(tmp_path.glob("submitit/*/metrics.json"))]
    assert [r["config"]["seed"] for r in records] == [0, 1]
    assert all(r["status"] == "complete" for r in records)


def test_nan_loss_stops_with_a_clear_message_and_keeps_the_checkpoint(tmp_path, monkeypatch):
    require_data("e2e/devset.csv", "e2e/testset_w_refs.csv")
    from prefixlab.methods.prefix_model import PrefixModel

    original = PrefixModel.forward
    calls = {"n": 0}

    def forward(self, *args, **kwargs):
        out = original(self, *args, **kwargs)
        calls["n"] += 1
        if calls["n"] > 3 and self.training:
            out.loss = out.loss * float("nan")
        return out

    monkeypatch.setattr(PrefixModel, "forward", forward)
    cfg = compose_cfg("logger=none", *FAST, "trainer.max_steps=10", "trainer.checkpoint_every=1")
    with pytest.raises(NonFiniteLossError, match="training loss is nan at step 3") as error:
        run_job(cfg, tmp_path / "run", progress=False)
    assert "last good checkpoint is kept" in str(error.value)
    state = torch.load(tmp_path / "run" / "checkpoint" / "state.pt", weights_only=False)
    assert state["state"]["step"] == 3
    assert not (tmp_path / "run" / "metrics.json").exists()


# ------------------------------------------------------------------------------------------ prefixlab score
def test_score_command_reproduces_the_official_scores_of_a_file(tmp_path):
    data = require_data("e2e/testset_w_refs.csv", "e2e/golden/template630.txt", "e2e/devset.csv")
    from prefixlab.cli import main

    result = subprocess.run(
        [sys.executable, "-m", "prefixlab.cli", "score", "--task", "e2e", str(data / "e2e/golden/template630.txt")],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    scores = json.loads(result.stdout)
    official = json.loads((data / "e2e/golden/official_scores.json").read_text())["template630"]
    for key in ("BLEU", "NIST", "METEOR", "ROUGE_L", "CIDEr"):
        assert scores[key] == pytest.approx(official[key], abs=1e-4)
    empty = tmp_path / "empty.txt"
    empty.write_text("\n")
    with pytest.raises(SystemExit, match="is empty"):
        main(["score", str(empty)])
    short = tmp_path / "short.txt"
    short.write_text("one output\n")
    with pytest.raises(SystemExit, match="has 1 lines but the e2e test split has 630 distinct sources"):
        main(["score", str(short)])
    with pytest.raises(SystemExit, match="no outputs file"):
        main(["score", str(tmp_path / "missing.txt")])


# ------------------------------------------------------------------------------------------ archive / restore
def _without_location(record: dict) -> dict:
    return {k: v for k, v in record.items() if k not in ("run_dir", "restored_from")}


def test_a_report_archive_restores_run_folders_that_a_relaunch_skips(multirun, tmp_path):
    from prefixlab.archive import ARCHIVE_FILE, restore_archive
    from prefixlab.report.cli import main as report_main

    study, args, _ = multirun
    out = tmp_path / "results"
    assert report_main([str(study), "--out", str(out), "--no-intervals", "--formats", "png"]) == 0
    assert ARCHIVE_FILE in (out / "README.md").read_text()
    archive = out / ARCHIVE_FILE
    first = archive.read_bytes()
    assert report_main([str(study), "--out", str(out), "--no-intervals", "--formats", "png"]) == 0
    assert archive.read_bytes() == first, "the archive of the same runs is byte-identical"

    restored_root = tmp_path / "restored"
    done = restore_archive(archive, restored_root)
    assert sorted(p.name for p in done.written) == [p.name for p in _run_dirs(study)] and not done.kept
    for original in _run_dirs(study):
        copy = restored_root / "app" / original.name
        for name in ("generations.jsonl", "identity.json", ".hydra/config.yaml", ".hydra/overrides.yaml"):
            assert (copy / name).read_text() == (original / name).read_text(), name
        old, new = (json.loads((d / "metrics.json").read_text()) for d in (original, copy))
        assert _without_location(new) == _without_location(old) and new["run_dir"] == str(copy)
        assert not (copy / "prefix").exists(), "weights are not archived"

    before = {p: p.read_bytes() for p in restored_root.glob("app/*/metrics.json")}
    result = train_cli(*args, runs=restored_root)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stderr.count("holds complete results") + result.stdout.count("holds complete results") == 2
    assert before == {p: p.read_bytes() for p in restored_root.glob("app/*/metrics.json")}
    again = restore_archive(archive, restored_root)
    assert not again.written and len(again.kept) == 2
    rearchived = tmp_path / "again"
    assert (
        report_main(
            [str(restored_root / "app"), "--out", str(rearchived), "--no-intervals", "--formats", "png"]
        )
        == 0
    )
    assert (rearchived / ARCHIVE_FILE).read_bytes() == first, "a restored study archives byte-identically"


def test_restore_refuses_other_data_and_malformed_archives(multirun, tmp_path):
    import gzip
    import shutil

    from prefixlab.archive import ArchiveError, read_archive, restore_archive, write_archive

    study = multirun[0]
    archive = write_archive(_run_dirs(study), tmp_path / "outputs.jsonl.gz")
    data = tmp_path / "data"
    shutil.copytree(
        Path(os.environ["PREFIXLAB_DATA_DIR"]) / "e2e", data / "e2e", ignore=shutil.ignore_patterns("golden")
    )
    test_file = data / "e2e" / "testset_w_refs.csv"
    lines = test_file.read_text(encoding="utf-8").splitlines(keepends=True)
    changed = lines[1].replace("called Blue Spice.", "called Blue Spice!")
    assert changed != lines[1]
    test_file.write_text("".join([lines[0], changed, *lines[2:]]), encoding="utf-8")
    with pytest.raises(ArchiveError, match="not the ones this run was scored on.*--data-dir"):
        restore_archive(archive, tmp_path / "runs", data_dir=str(data))
    assert not list((tmp_path / "runs").glob("*/*/metrics.json")), "nothing is written for a mismatched run"

    broken = tmp_path / "broken.jsonl.gz"
    broken.write_bytes(gzip.compress(b'{"folder": "a", "metrics": {}}\nnot json\n'))
    with pytest.raises(ArchiveError, match=r"broken.jsonl.gz:1: missing outputs, items"):
        read_archive(broken)
    with pytest.raises(ArchiveError, match="no archive at .*prefixlab report"):
        read_archive(tmp_path / "nowhere")
