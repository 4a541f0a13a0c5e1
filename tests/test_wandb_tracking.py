"""What each W&B run carries for comparing ablations: flat ablation keys derived generically from the resolved
config, paper-scale metrics beside the raw ones, one final history row with the numeric settings, and the
interval-hook columns. `wandb.init` is replaced by a recorder: no W&B process, no server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from prefixlab import tracking
from prefixlab.tracking import ablation_keys, make_tracker, paper_metrics, setting_values


def resolved(method: dict[str, Any], **top: Any) -> dict[str, Any]:
    """A resolved config shaped like the app's: nested groups, top-level seed/study/label."""
    return {
        "model": {"name": "tiny-gpt2", "family": "decoder_only"},
        "task": {
            "name": "e2e",
            "metric": "e2e",
            "train_size": None,
            "subset_seed": 0,
            "decoding": {"num_beams": 5},
        },
        "method": method,
        "trainer": {"lr": 8e-5, "max_steps": 100, "num_threads": 1, "device": "auto"},
        "eval": {"max_groups": None, "batch_size": 16},
        "logger": {"kind": "wandb", "project": "prefixlab"},
        "paths": {"runs": "runs"},
        "seed": 0,
        "study": "s",
        "label": None,
        **top,
    }


PREFIX = {
    "kind": "prefix",
    "length": 5,
    "placement": "infix",
    "depth": "all",
    "reparam": "mlp",
    "init": "random",
}


def test_every_method_key_becomes_a_flat_key_beside_model_task_and_row():
    flat = ablation_keys(resolved(PREFIX))
    assert {f"method_{k}": v for k, v in PREFIX.items()}.items() <= flat.items()
    assert flat["model_name"] == "tiny-gpt2" and flat["task_name"] == "e2e"
    assert flat["task_train_size"] is None and flat["task_subset_seed"] == 0
    assert flat["row"] == "INFIX-5"  # the report's row name (prefixlab.report.collect.derive_label)
    # Top-level keys (seed, study, label) are already flat in the config: never duplicated or shadowed.
    assert not {"seed", "study", "label", "method", "model", "task"} & set(flat)


def test_a_new_method_kind_gets_its_own_keys_without_code_changes():
    lora = {
        "kind": "lora",
        "rank": 8,
        "alpha": 16.0,
        "target_modules": ["c_attn", "c_proj"],
        "extra": {"a": 1},
    }
    flat = ablation_keys(resolved(lora, label="LoRA-8"))
    assert flat["method_kind"] == "lora" and flat["method_rank"] == 8 and flat["method_alpha"] == 16.0
    assert flat["method_target_modules"] == '["c_attn", "c_proj"]'  # containers as JSON text: groupable
    assert flat["method_extra_a"] == 1  # nested keys flattened with "_"
    assert flat["row"] == "LoRA-8"  # an explicit label names the row
    # A kind nobody registered yet still gets its keys, and its kind as the row name.
    unknown = ablation_keys(resolved({"kind": "ia3", "scale": 0.5}))
    assert unknown["row"] == "ia3" and unknown["method_scale"] == 0.5


def test_overrides_and_budget_become_flat_keys_but_infrastructure_does_not():
    config = resolved(PREFIX, budget={"name": "cpu", "suffix": "_cpu"})
    overrides = [
        "method.length=5", "trainer.lr=0.001", "variant=INFIX-5", "+experiment=ablation_placement_depth",
        "model=tiny-gpt2", "seed=1", "trainer.num_threads=1", "paths.runs=/tmp/x", "logger.mode=offline",
        "study=s", "hydra/launcher=joblib", "task.decoding.num_beams=5",
    ]  # fmt: skip
    flat = ablation_keys(config, overrides)
    assert flat["trainer_lr"] == 8e-5  # typed, from the resolved config (not the override's text)
    assert flat["task_decoding_num_beams"] == 5
    assert flat["variant"] == "INFIX-5" and flat["experiment"] == "ablation_placement_depth"
    assert flat["budget_name"] == "cpu" and flat["budget_suffix"] == "_cpu"
    for absent in ("trainer_num_threads", "paths_runs", "logger_mode", "hydra_launcher", "model", "seed"):
        assert absent not in flat
    # A group choice that leaves no config key behind (a `# @package _global_` group) is recorded by name.
    assert ablation_keys(resolved(PREFIX), ["+budget=cpu"])["budget"] == "cpu"


def test_paper_scale_metrics_and_settings_row():
    metrics = {
        "test/BLEU": 0.4321,
        "test/NIST": 5.5,
        "test/METEOR": 0.3,
        "test/ROUGE_L": 0.5,
        "test/CIDEr": 1.2,
    }
    paper = paper_metrics(metrics | {"parameters/stored_parameters": 7}, "e2e")
    assert paper == pytest.approx(
        {
            "paper/BLEU": 43.21,
            "paper/NIST": 5.5,
            "paper/METEOR": 30.0,
            "paper/ROUGE_L": 50.0,
            "paper/CIDEr": 1.2,
        }
    )
    assert paper_metrics({"test/ROUGE_2": 20.1}, "rouge") == {"paper/ROUGE_2": 20.1}  # already x100
    config = resolved(PREFIX)
    row = setting_values(config, ablation_keys(config))
    assert row["setting/method_length"] == 5 and row["setting/seed"] == 0
    assert "setting/method_placement" not in row  # text is no axis


class FakeRun:
    """Records what a tracker sends to `wandb.init`'s run."""

    def __init__(self, **init: Any) -> None:
        self.init, self.logged, self.summary, self.finished = init, [], {}, None

    def log(self, data: dict[str, Any], step: int | None = None) -> None:
        self.logged.append((dict(data), step))

    def finish(self, exit_code: int = 0) -> None:
        self.finished = exit_code


@pytest.fixture
def fake_wandb(monkeypatch):
    import wandb

    runs: list[FakeRun] = []

    def init(**kwargs: Any) -> FakeRun:
        runs.append(FakeRun(**kwargs))
        return runs[-1]

    monkeypatch.setattr(wandb, "init", init)
    monkeypatch.setattr(tracking, "_INTERVAL_HOOKS", [])
    return runs


def test_tracker_logs_flat_config_paper_metrics_final_row_and_intervals(fake_wandb, tmp_path):
    seen: list[tuple[Path, dict[str, float]]] = []

    @tracking.register_interval_hook
    def bootstrap(run_dir: Path, config: dict[str, Any], test: dict[str, float]) -> dict[str, tuple]:
        seen.append((run_dir, dict(test)))
        return {"BLEU": (test["BLEU"] - 0.01, test["BLEU"] + 0.02)}

    def broken(run_dir, config, test):
        raise RuntimeError("no per-example scores")

    tracking.register_interval_hook(broken)
    tags = ["method.length=5", "trainer.lr=0.001"]
    tracker = make_tracker(
        {"kind": "wandb", "mode": "offline", "tags": ["extra"]}, tmp_path, resolved(PREFIX),
        group="s", name="method.length=5", job_type="e2e", tags=tags, overrides=[*tags, "study=s"],
    )  # fmt: skip
    (run,) = fake_wandb
    assert run.init["config"]["method"]["length"] == 5  # the nested config stays
    assert run.init["config"]["method_length"] == 5 and run.init["config"]["row"] == "INFIX-5"
    assert run.init["config"]["trainer_lr"] == 8e-5 and run.init["tags"] == [*tags, "extra"]
    tracker.log({"train_loss": 2.0}, step=10)
    tracker.summary({"test/BLEU": 0.5, "test/NIST": 4.0, "parameters/stored_parameters": 100})
    tracker.finish(0)
    assert seen == [(tmp_path, {"BLEU": 0.5, "NIST": 4.0})]
    assert run.summary["test/BLEU"] == 0.5 and run.summary["paper/BLEU"] == pytest.approx(50.0)
    assert run.summary["paper/NIST"] == 4.0 and run.summary["parameters/stored_parameters"] == 100
    assert run.summary["paper/BLEU_ci95_low"] == pytest.approx(49.0)
    assert run.summary["paper/BLEU_ci95_high"] == pytest.approx(52.0)
    assert run.summary["test/BLEU_ci95_high"] == pytest.approx(0.52)
    final, step = run.logged[-1]  # after the curves: settings + paper metrics in one history row
    assert step is None and final["setting/method_length"] == 5 and final["paper/BLEU"] == pytest.approx(50.0)
    assert run.finished == 0


def test_interval_hook_named_in_the_logger_config(monkeypatch):
    monkeypatch.setattr(tracking, "_INTERVAL_HOOKS", [])
    hooks = tracking.interval_hooks({"interval_hook": "prefixlab.tracking:paper_metrics"})
    assert hooks == [paper_metrics]
    assert tracking.interval_hooks({}) == []


def test_logger_none_tracks_nothing(tmp_path):
    tracker = make_tracker({"kind": "none"}, tmp_path, resolved(PREFIX), group="s", name="n", tags=[])
    assert isinstance(tracker, tracking.NullTracker)
    tracker.summary({"test/BLEU": 1.0})
    assert not list(tmp_path.iterdir())
