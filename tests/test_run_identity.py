"""Run identity: a relaunch with a changed config stops with the differences instead of reusing stale results,
a partial run of another config never resumes, recompute moves the old folder aside, two spellings of one
config run once, and per-job peak memory is the job's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from test_tasks_support import require_data

from prefixlab.identity import (
    FINGERPRINTS_DIR,
    REPLACED_DIR,
    StaleRunError,
    differences,
    fingerprint,
    identity,
    write_identity,
)
from prefixlab.provenance import REPO_ROOT
from prefixlab.resources import CONF_DIR
from prefixlab.run_config import parse_run_config
from prefixlab.train import run_job

FAST = [
    "model=tiny-gpt2", "logger=none", "trainer.batch_size=4", "trainer.eval_max_examples=8", "eval.max_groups=3",
    "task.decoding.num_beams=1", "task.decoding.max_new_tokens=6", "method.mlp_hidden=16", "trainer.max_steps=2",
]  # fmt: skip


def compose_cfg(*overrides: str):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("train", overrides=list(overrides))


def train_cli(*args: str, runs: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PREFIXLAB_RUNS": str(runs), "WANDB_SILENT": "true"}
    return subprocess.run(
        [sys.executable, "-m", "prefixlab.train", *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip


# ------------------------------------------------------------------------------------------ identity
def test_identity_ignores_what_does_not_change_results_and_fills_defaults():
    base = identity(parse_run_config(compose_cfg(*FAST)))
    same = identity(
        parse_run_config(
            compose_cfg(*FAST, "trainer.num_threads=1", "eval.batch_size=3", "study=other", "trainer.device=cpu",
                        "logger=wandb", "paths.runs=/elsewhere", "label=mine", "trainer.activation_checkpointing=true")
        )
    )  # fmt: skip
    assert same == base and fingerprint(same) == fingerprint(base)
    changed = identity(parse_run_config(compose_cfg(*FAST, "trainer.lr=0.5")))
    assert differences(base, changed) == [("trainer.lr", 8e-05, 0.5)]
    # a variant and the equivalent method.* overrides are one config
    variant = identity(parse_run_config(compose_cfg(*FAST, "variant=PREFIX-5")))
    spelled = identity(parse_run_config(compose_cfg(*FAST, "method.length=5")))
    assert fingerprint(variant) == fingerprint(spelled)


# ------------------------------------------------------------------------------------------ relaunching
def test_a_relaunch_with_a_changed_preset_stops_before_loading_and_recompute_moves_the_old_runs_aside(
    tmp_path,
):
    """The issue's case end to end: a user preset (via Hydra's search path) swept over two lengths, its lr
    changed, the same multirun relaunched."""
    require_data("e2e/devset.csv", "e2e/testset_w_refs.csv")
    user_conf = tmp_path / "my_conf"
    (user_conf / "experiment").mkdir(parents=True)
    preset = user_conf / "experiment" / "mine.yaml"
    preset.write_text("# @package _global_\nstudy: mine\ntrainer:\n  lr: 1.0e-3\n")
    runs = tmp_path / "runs"
    args = ["-m", "experiment=mine", f"hydra.searchpath=[file://{user_conf}]", *FAST, "method.length=2,3"]
    first = train_cli(*args, runs=runs)
    assert first.returncode == 0, first.stderr[-3000:]
    folders = sorted(p.parent for p in (runs / "mine").glob("*/metrics.json"))
    assert len(folders) == 2 and [
        "method.length=2" in folders[0].name,
        "method.length=3" in folders[1].name,
    ] == [
        True,
        True,
    ]
    before = {p: (p / "metrics.json").read_bytes() for p in folders}

    preset.write_text("# @package _global_\nstudy: mine\ntrainer:\n  lr: 5.0e-1\n")
    stale = train_cli(*args, runs=runs)
    assert stale.returncode != 0
    assert "holds complete results of a different config" in stale.stderr
    assert "trainer.lr: 0.001 -> 0.5" in stale.stderr
    assert "study=<new name>" in stale.stderr and "recompute=true" in stale.stderr
    assert before == {p: (p / "metrics.json").read_bytes() for p in folders}  # nothing overwritten

    again = train_cli(*args, "recompute=true", runs=runs)
    assert again.returncode == 0, again.stderr[-3000:]
    for folder in folders:
        record = json.loads((folder / "metrics.json").read_text())
        assert record["config"]["trainer"]["lr"] == 0.5
    replaced = sorted((runs / "mine" / REPLACED_DIR).iterdir())
    assert len(replaced) == 2  # the old runs, kept
    assert {json.loads((p / "metrics.json").read_text())["config"]["trainer"]["lr"] for p in replaced} == {
        1e-3
    }
    # and an unchanged relaunch skips
    skip = train_cli(*args, runs=runs)
    assert skip.returncode == 0 and (skip.stdout + skip.stderr).count("complete results of this config") == 2


def test_a_partial_run_of_another_config_never_resumes(tmp_path, monkeypatch):
    import prefixlab.models

    def no_loading(*args, **kwargs):
        raise AssertionError("a model was loaded before the run folder was checked")

    monkeypatch.setattr(prefixlab.models, "load_model", no_loading)
    cfg = compose_cfg(*FAST, "trainer.lr=0.5")
    run = tmp_path / "study" / "run"
    (run / "checkpoint").mkdir(parents=True)
    (run / "checkpoint" / "state.pt").write_bytes(b"a checkpoint of another config")
    old = identity(parse_run_config(compose_cfg(*FAST)))
    write_identity(run, old, "abc")
    with pytest.raises(StaleRunError, match="holds a partial run") as error:
        run_job(cfg, run, progress=False)
    assert "trainer.lr: 8e-05 -> 0.5" in str(error.value)
    assert (run / "checkpoint" / "state.pt").read_bytes() == b"a checkpoint of another config"


def test_two_spellings_of_one_config_in_a_study_run_once(tmp_path, capsys):
    require_data("e2e/devset.csv", "e2e/testset_w_refs.csv")
    study = tmp_path / "study"
    first = run_job(compose_cfg(*FAST, "variant=PREFIX-5"), study / "variant=PREFIX-5", progress=False)
    second = run_job(compose_cfg(*FAST, "method.length=5"), study / "method.length=5", progress=False)
    assert second == first  # the record of the folder that already holds this config
    assert not (study / "method.length=5").exists()
    assert "same config as" in capsys.readouterr().out
    assert len(list((study / FINGERPRINTS_DIR).iterdir())) == 1
    assert (
        first["fingerprint"]
        == json.loads((study / "variant=PREFIX-5" / "identity.json").read_text())["fingerprint"]
    )
    assert first["label"] == "PREFIX-5"


# ------------------------------------------------------------------------------------------ memory
def test_peak_memory_is_measured_per_job_not_per_process():
    """In a fresh process (so that the allocator's state is known): a 400 MiB peak before the job (an earlier
    job of the same worker) is not the job's; a 200 MiB allocation during the job is."""
    code = """
import json, torch
from prefixlab.memory import JobMemory
big = bytearray(400 * 2**20); big[::4096] = b"x" * len(big[::4096]); del big
memory = JobMemory(torch.device("cpu"))
before = memory.report()
small = bytearray(200 * 2**20); small[::4096] = b"y" * len(small[::4096])
print(json.dumps({"before": before, "after": memory.report()}))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    reports = json.loads(result.stdout.strip().splitlines()[-1])
    before, after = reports["before"], reports["after"]
    assert "since the job started" in before["peak_memory_measure"]
    assert (
        before["peak_memory_bytes"] - before["start_bytes"] < 100 * 2**20
    )  # the earlier 400 MiB peak is gone
    assert after["peak_memory_bytes"] - before["start_bytes"] >= 190 * 2**20
