"""Every experiment preset launches: its sweep is expanded, every grid point validates (also with each budget),
and each distinct grid point (seeds aside) runs one training step on a tiny model of the preset's family, so a
misspelt swept key or a broken preset fails here instead of hours into a study."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from test_tasks_support import require_data

from prefixlab.resources import CONF_DIR
from prefixlab.run_config import parse_run_config
from prefixlab.train import run_job

PRESETS = sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml"))
BUDGETS = sorted(p.stem for p in (CONF_DIR / "budget").glob("*.yaml"))
SEED_KEYS = ("seed", "task.subset_seed")  # points differing only in these run the same code
TINY = {"decoder_only": "tiny-gpt2", "encoder_decoder": "tiny-bart"}
ONE_STEP = [
    "logger=none", "trainer.max_steps=1", "trainer.batch_size=2", "trainer.eval_max_examples=2",
    "trainer.eval_every=1", "eval.max_groups=1", "eval.batch_size=1", "task.decoding.num_beams=1",
    "++task.decoding.max_new_tokens=2",
]  # fmt: skip


def _compose(overrides: list[str], hydra: bool = False):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("train", overrides=overrides, return_hydra_config=hydra)


def sweep_grid(preset: str) -> list[list[str]]:
    """The preset's Hydra sweep (`hydra.sweeper.params`, comma lists) as override lists, one per job."""
    params = OmegaConf.to_container(_compose([f"experiment={preset}"], hydra=True).hydra.sweeper.params) or {}
    axes = [[f"{key}={value.strip()}" for value in str(values).split(",")] for key, values in params.items()]
    return [list(point) for point in itertools.product(*axes)]


def _distinct(grid: list[list[str]]) -> list[list[str]]:
    seen, points = set(), []
    for point in grid:
        key = tuple(o for o in point if o.split("=")[0] not in SEED_KEYS)
        if key not in seen:
            seen.add(key)
            points.append(list(key))
    return points


@pytest.mark.parametrize("preset", PRESETS)
def test_every_grid_point_of_every_preset_validates_with_every_budget(preset):
    grid = sweep_grid(preset)
    assert grid, f"experiment={preset} sweeps nothing"
    for budget in [None, *BUDGETS]:
        for point in grid:
            overrides = [f"experiment={preset}", *point] + ([f"budget={budget}"] if budget else [])
            config = parse_run_config(_compose(overrides))
            assert config.study.startswith(preset)


@pytest.mark.slow
@pytest.mark.parametrize("preset", PRESETS)
def test_every_distinct_grid_point_runs_one_step_on_a_tiny_model(preset, tmp_path: Path):
    require_data("e2e/devset.csv", "e2e/testset_w_refs.csv", "xsum/xsum-1000.jsonl")
    for point in _distinct(sweep_grid(preset)):
        family = parse_run_config(_compose([f"experiment={preset}", *point])).family
        overrides = [f"experiment={preset}", *point, f"model={TINY[family]}", "task.source=auto", *ONE_STEP]
        cfg = _compose(overrides)
        if cfg.method.get("init_text"):
            cfg.method.init_text = (
                "x" * cfg.method.length
            )  # one byte token each in the tiny models' tokenizer
        if cfg.method.get("percent") is not None:
            cfg.method.percent = max(cfg.method.percent, 3.0)  # a tiny model has no room for 0.1% adapters
        if cfg.task.max_source_tokens:
            cfg.task.max_source_tokens = (
                32  # the tiny models' positions; the preset's value is validated above
            )
        record = run_job(cfg, tmp_path / preset / ",".join(point), progress=False)
        assert record["status"] == "complete", point
        assert record["evaluation"]["sources_decoded"] == 1
        assert record["training"]["trained"] == (record["parameters"]["trainable_parameters"] > 0)
