"""A run folder: where one job writes its results, checkpoints and prefix, always atomically.

Layout of `<run>/`:
    config.yaml          the resolved config (written at start)
    metrics.json         results; written last, so it doubles as the completion marker (status "complete")
    generations.jsonl    one line per decoded source: source, output, references
    prefix/              the exported prefix (or fine-tuned weights)
    checkpoint/          the last resumable training state (trainable weights, optimizer, schedule, RNG)
    best/                the trainable weights of the best validation evaluation
    wandb/               the W&B run files (offline runs sync later with `wandb sync`)
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from prefixlab.atomic import atomic_path

METRICS_FILE = "metrics.json"
GENERATIONS_FILE = "generations.jsonl"
STATUS_COMPLETE = "complete"


def torch_save_atomic(obj: Any, path: Path) -> None:
    """`torch.save` to a temporary name, then rename."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


class RunFolder:
    """Paths and completion state of one run's folder."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    @property
    def metrics(self) -> Path:
        """The results file, written last."""
        return self.path / METRICS_FILE

    @property
    def generations(self) -> Path:
        """Decoded test outputs with sources and references."""
        return self.path / GENERATIONS_FILE

    @property
    def checkpoint(self) -> Path:
        """The resumable training state."""
        return self.path / "checkpoint" / "state.pt"

    @property
    def best(self) -> Path:
        """Trainable weights of the best validation evaluation."""
        return self.path / "best" / "trainable.pt"

    @property
    def prefix(self) -> Path:
        """The exported prefix (or fine-tuned weights) folder."""
        return self.path / "prefix"

    def is_complete(self) -> bool:
        """True when metrics.json exists and says the run finished."""
        if not self.metrics.exists():
            return False
        try:
            return json.loads(self.metrics.read_text()).get("status") == STATUS_COMPLETE
        except (json.JSONDecodeError, OSError):
            return False


def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The trainable parameters of `model` by name (a prefix, or the weights a baseline fine-tunes)."""
    return {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}


def load_trainable_state(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Copy saved trainable parameters back into `model` (names must match exactly)."""
    params = dict(model.named_parameters())
    missing = [name for name in state if name not in params]
    if missing:
        raise ValueError(f"checkpoint has parameters this model lacks: {missing[:5]}")
    with torch.no_grad():
        for name, value in state.items():
            params[name].copy_(value.to(params[name].device))


def rng_state() -> dict[str, Any]:
    """Every random generator's state, for exact resumption."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore the generators saved by `rng_state`."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
