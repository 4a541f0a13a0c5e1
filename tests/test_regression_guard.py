"""A regression guard on what training computes: a tiny model trained deterministically through the whole app
(data, batching, the prefix, AdamW, validation, decoding, scoring) must reproduce pinned numbers.

If a change alters them on purpose, re-pin them in the same commit with a note of why, and rerun the committed
studies whose numbers it changes (their results must come from the committed code).
"""

from __future__ import annotations

import json

import pytest
from hydra import compose, initialize_config_dir
from test_tasks_support import require_data

from prefixlab.resources import CONF_DIR
from prefixlab.train import run_job

OVERRIDES = [
    "model=tiny-gpt2", "logger=none", "trainer.max_steps=20", "trainer.batch_size=4", "trainer.lr=3e-2",
    "trainer.eval_every=5", "trainer.eval_max_examples=8", "eval.max_groups=4", "task.decoding.num_beams=1",
    "task.decoding.max_new_tokens=12", "+task.decoding.min_new_tokens=4", "method.length=3", "method.mlp_hidden=16",
    "trainer.num_threads=1", "trainer.device=cpu",
]  # fmt: skip
# Pinned at commit c04a97c (torch 2.13.0 CPU); history of (step, validation loss).
PINNED_VAL_LOSS = [
    (5, 5.557634877432421),
    (10, 5.498572185438902),
    (15, 5.467186815000428),
    (20, 5.455438499644323),
]
PINNED_STORED = 768


def test_a_tiny_deterministic_run_reproduces_its_pinned_numbers(tmp_path):
    require_data("e2e/devset.csv", "e2e/testset_w_refs.csv")
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=OVERRIDES)
    record = run_job(cfg, tmp_path / "guard" / "run", progress=False)
    history = [(row["step"], row["val_loss"]) for row in record["training"]["history"]]
    assert [step for step, _ in history] == [step for step, _ in PINNED_VAL_LOSS]
    for (_, got), (_, pinned) in zip(history, PINNED_VAL_LOSS, strict=True):
        assert got == pytest.approx(pinned, abs=1e-5)
    assert record["parameters"]["stored_parameters"] == PINNED_STORED
    outputs = [
        json.loads(line)["output"] for line in (tmp_path / "guard" / "run" / "generations.jsonl").open()
    ]
    assert len(outputs) == 4 and all(len(o) > 0 for o in outputs)  # min_new_tokens=4: never empty
    assert record["metrics"]["test"]["BLEU"] == pytest.approx(0.0, abs=1e-9)
