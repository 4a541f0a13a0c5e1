"""Helpers shared by the report tests (no tests here): synthetic run folders and a real tiny-model sweep.

Synthetic runs are `metrics.json` files with the schema `prefixlab.train.run_job` writes and known metric
values, so aggregation can be checked exactly in milliseconds. `build_tiny_sweep` runs the real Hydra app on
the tiny GPT-2 (5 jobs, ~1 minute on 2 CPU cores) once per test session, plus one incomplete run folder.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
E2E_FILES = ("e2e/devset.csv", "e2e/testset_w_refs.csv")
TINY_STUDY = "report_tiny"
# Cheap jobs: 2 optimizer steps, 4 test MRs, beam 2, 8 new tokens.
TINY_OVERRIDES = (
    "logger=none",
    f"study={TINY_STUDY}",
    "model=tiny-gpt2",
    "trainer.max_steps=2",
    "trainer.batch_size=4",
    "trainer.eval_max_examples=8",
    "eval.max_groups=4",
    "task.decoding.num_beams=2",
    "task.decoding.max_new_tokens=8",
)
# Two Hydra multiruns into one study folder (5 jobs, ~10-20 s each on 2 busy cores): the Table 5 rows
# PREFIX(-5), EMB-1, INFIX-1 and a second length (PREFIX-1) at seed 0, and PREFIX-5 at a second seed.
TINY_SWEEPS = (("variant=PREFIX-1,PREFIX-5,EMB-1,INFIX-1", "seed=0"), ("variant=PREFIX-5", "seed=1"))
TINY_JOBS = 5
INCOMPLETE_NAME = "seed=7,variant=EMB-1"


# ------------------------------------------------------------------------------------------ synthetic runs
def e2e_scores(length: int, seed: int, offset: float = 0.0) -> dict[str, float]:
    """Distinct, known E2E scores (BLEU/METEOR/ROUGE_L on 0..1 like the E2E script)."""
    base = 0.30 + 0.01 * length + 0.02 * seed + offset
    return {"BLEU": base, "NIST": 4.0 + base, "METEOR": base / 2, "ROUGE_L": base + 0.1, "CIDEr": 1.0 + base}


def fake_record(
    *,
    label: str | None,
    seed: int,
    method: dict[str, Any],
    study: str = "synthetic",
    task: str = "e2e",
    model: str = "tiny-gpt2",
    scores: dict[str, float] | None = None,
    task_extra: dict[str, Any] | None = None,
    status: str = "complete",
) -> dict[str, Any]:
    """A `metrics.json` record shaped like `prefixlab.train.run_job`'s."""
    suite = "e2e" if task == "e2e" else "rouge"
    length = int(method.get("length") or 0)
    if scores is None:
        scores = (
            e2e_scores(length, seed)
            if suite == "e2e"
            else {
                "ROUGE_1": 20.0 + length / 10 + seed,
                "ROUGE_2": 5.0 + length / 20 + seed / 2,
                "ROUGE_L": 15.0 + length / 10 + seed,
                "ROUGE_Lsum": 15.5 + length / 10 + seed,
            }
        )
    name = f"label={label},seed={seed}"
    config = {
        "study": study,
        "seed": seed,
        "label": label,
        "method": method,
        "model": {"name": model, "family": "decoder_only"},
        "task": {
            "name": task,
            "metric": suite,
            "train_size": None,
            "subset_seed": 0,
            "decoding": {"num_beams": 5, "bad_words": ["\n", "\n\n"]},
        }
        | (task_extra or {}),
        "trainer": {"lr": 8e-5, "max_steps": 4, "batch_size": 4, "device": "auto", "num_threads": None},
        "eval": {"split": "test", "max_groups": 6, "batch_size": 16},
        "logger": {"kind": "none"},
        "paths": {"runs": "/somewhere"},
    }
    return {
        "status": status,
        "study": study,
        "run_dir": f"/somewhere/{study}/{name}",
        "overrides": [f"variant={label}", f"seed={seed}", "logger=none"],
        "config": config,
        "metric_suite": suite,
        "primary_metric": "BLEU" if suite == "e2e" else "ROUGE_2",
        "metrics": {"test": scores, "validation": {"val_loss": 5.0 - 0.1 * seed}},
        "parameters": {
            "stored_parameters": 256 * length,
            "trainable_parameters": 256 * length,
            "stored_percent": 0.17 * length,
            "base_parameters": 149568,
        },
        "training": {
            "steps": 4,
            "train_seconds": 1.5 + seed,
            "tokens_per_second": 1000.0,
            "history": [{"step": 4, "val_loss": 5.0}],
            "trained": bool(length),
        },
        "evaluation": {"sources_decoded": 6, "decode_seconds": 0.5, "decoding": {"num_beams": 5}},
        "data": {"task": task, "split_pairs": {"test": 4693}},
        "system": {"device": "cpu", "git_commit": "0123abc", "torch": "2.x"},
        "wall_seconds": 10.0 + seed,
    }


def prefix_method(length: int, placement: str = "prefix", depth: str = "all", **extra: Any) -> dict[str, Any]:
    """A prefix method config."""
    return {
        "kind": "prefix",
        "length": length,
        "placement": placement,
        "depth": depth,
        "reparam": "mlp",
        "init": "random",
        "init_text": None,
    } | extra


ZEROSHOT = {"kind": "finetune", "trainable": "none"}


def write_run(root: Path, record: dict[str, Any], name: str | None = None) -> Path:
    """A run folder as the training app writes it: config.yaml, .hydra/, metrics.json."""
    folder = root / record["study"] / (name or Path(record["run_dir"]).name)
    (folder / ".hydra").mkdir(parents=True, exist_ok=True)
    (folder / "config.yaml").write_text(f"study: {record['study']}\nseed: {record['config']['seed']}\n")
    (folder / "metrics.json").write_text(json.dumps(record, indent=2))
    return folder


def write_incomplete(root: Path, study: str, name: str, metrics: str | None = None) -> Path:
    """A run folder without a complete metrics.json (crashed, killed, or corrupt)."""
    folder = root / study / name
    (folder / ".hydra").mkdir(parents=True, exist_ok=True)
    (folder / "config.yaml").write_text(f"study: {study}\nseed: 9\n")
    if metrics is not None:
        (folder / "metrics.json").write_text(metrics)
    return folder


ABLATION_RUNS = (
    ("PREFIX-5", prefix_method(5), (0, 1, 2)),
    ("PREFIX-1", prefix_method(1), (0, 1)),
    ("EMB-1", prefix_method(1, depth="embedding"), (0, 1)),
    ("INFIX-1", prefix_method(1, placement="infix"), (0, 1)),
    ("zero-shot", ZEROSHOT, (0, 1)),
)


def synthetic_study(root: Path, study: str = "synthetic") -> list[dict[str, Any]]:
    """The demo sweep's shape with known values (PREFIX-5 has three seeds), plus three incomplete folders."""
    records = []
    for label, method, seeds in ABLATION_RUNS:
        for seed in seeds:
            record = fake_record(label=label, seed=seed, method=method, study=study)
            write_run(root, record)
            records.append(record)
    write_incomplete(root, study, "label=EMB-10,seed=0")  # killed before metrics.json
    write_incomplete(root, study, "label=EMB-20,seed=0", json.dumps({"status": "failed"}))
    write_incomplete(root, study, "label=INFIX-10,seed=0", "{not json")
    return records


# ------------------------------------------------------------------------------------------ real tiny sweep
def require_e2e_data() -> Path:
    """The data folder (`$PREFIXLAB_DATA_DIR`) and Java for METEOR; fail under CI when missing, else skip."""
    root = os.environ.get("PREFIXLAB_DATA_DIR")
    missing = list(E2E_FILES) if not root else [f for f in E2E_FILES if not (Path(root) / f).is_file()]
    problems = []
    if missing:
        problems.append(
            f"E2E data under $PREFIXLAB_DATA_DIR (currently {root!r}); missing: {', '.join(missing)}"
        )
    if shutil.which("java") is None:
        problems.append("Java (METEOR scoring)")
    if not problems:
        return Path(root)  # type: ignore[arg-type]
    message = "the tiny-model report sweep needs " + " and ".join(problems)
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def build_tiny_sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Run the tiny sweep once per session (reused by every module); return the runs root.

    Layout: `<root>/report_tiny/<override_dirname>/` for 5 complete jobs and one incomplete folder.
    """
    require_e2e_data()
    root = tmp_path_factory.getbasetemp() / "report_tiny_runs"
    done = root / "SWEEP_DONE"
    if done.is_file():
        return root
    env = dict(os.environ, HF_HUB_OFFLINE="1", WANDB_MODE="disabled")
    for sweep in TINY_SWEEPS:
        command = [
            sys.executable,
            "-m",
            "prefixlab.train",
            "-m",
            *TINY_OVERRIDES,
            f"paths.runs={root}",
            *sweep,
        ]
        result = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, (
            f"{' '.join(command)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
    study = root / TINY_STUDY
    complete = [p for p in study.iterdir() if (p / "metrics.json").is_file()]
    assert len(complete) == TINY_JOBS, sorted(p.name for p in study.iterdir())
    # A job killed after writing its config, before metrics.json: found, listed, never mixed in.
    incomplete = study / INCOMPLETE_NAME
    (incomplete / ".hydra").mkdir(parents=True)
    shutil.copy(complete[0] / "config.yaml", incomplete / "config.yaml")
    done.write_text("ok\n")
    return root


def metrics_of(run_dir: Path) -> dict[str, Any]:
    """A run folder's metrics.json."""
    return json.loads((run_dir / "metrics.json").read_text())


# ------------------------------------------------------------------------------------------ W&B stand-ins
class FakeRun(SimpleNamespace):
    """The attributes of `wandb.apis.public.Run` that collect_wandb reads."""


class FakeApi:
    """Records the query and returns fixed runs, like `wandb.Api()` would."""

    def __init__(self, runs: list[FakeRun]) -> None:
        self._runs = runs
        self.calls: list[tuple[str, dict | None]] = []

    def runs(self, path: str, filters: dict | None = None, **_: object) -> list[FakeRun]:
        self.calls.append((path, filters))
        return self._runs


def wandb_run(record: dict, state: str = "finished", tags: tuple[str, ...] = ("variant=x",)) -> FakeRun:
    """A W&B run as the training app's tracker logs it: nested config; `test/*`, `parameters/*` summary."""
    summary = {f"test/{k}": v for k, v in record["metrics"]["test"].items()}
    summary |= {f"parameters/{k}": v for k, v in record["parameters"].items()}
    summary |= {
        "train_loss": 3.2,
        "val_loss": 5.0,
        "_runtime": 12.5,
        "_step": 4,
        "generations": {"_type": "table"},
    }
    if state != "finished":
        summary = {"train_loss": 3.2, "_step": 2}
    name = Path(record["run_dir"]).name
    return FakeRun(
        config=record["config"],
        summary_metrics=summary,
        state=state,
        name=name,
        group=record["study"],
        tags=list(tags),
        id=name[:8],
        url=f"https://wandb.ai/me/prefixlab/runs/{name}",
        job_type="e2e",
    )


def cached_pull(cache: Path) -> Path:
    """A W&B pull of a length sweep (4 finished runs, 1 crashed) saved to `cache` by `collect_wandb`."""
    from prefixlab.report.collect import collect_wandb

    records = [
        fake_record(label=None, seed=s, method=prefix_method(n), study="e2e_length")
        for n in (1, 5)
        for s in (0, 1)
    ]
    runs = [wandb_run(r) for r in records]
    runs.append(
        wandb_run(
            fake_record(label=None, seed=2, method=prefix_method(1), study="e2e_length"), state="crashed"
        )
    )
    collect_wandb("me/prefixlab", group="e2e_length", cache=cache, api=FakeApi(runs))
    return cache


SUMMARY_WORDS = [
    "the",
    "council",
    "said",
    "a",
    "new",
    "plan",
    "for",
    "the",
    "city",
    "centre",
    "would",
    "bring",
    "jobs",
    "homes",
    "and",
    "shops",
    "to",
    "the",
    "area",
]  # noqa: SIM905


def summary_references(n: int, words: int) -> list[str]:
    """`n` reproducible one-reference summaries of `words` words each (synthetic ROUGE test items)."""
    rng = random.Random(0)
    return [" ".join(rng.choice(SUMMARY_WORDS) for _ in range(words)) for _ in range(n)]
