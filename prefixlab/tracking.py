"""Experiment tracking: one Weights & Biases run per Hydra job, or nothing (`logger=none`).

The W&B run gets the resolved config, the study as `group`, the job's overrides as `name`, the swept values as
`tags`, training curves, final metrics, a table of sample generations and the exported prefix as an artifact.
Without credentials it runs offline (files under `<run>/wandb`, upload later with `wandb sync`). Its id is a
hash of the run folder, so a resumed job continues the same W&B run. prefixlab's own `metrics.json` stays the
record of results: offline W&B files are binary.
"""

from __future__ import annotations

import hashlib
import netrc
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


class NullTracker:
    """Tracking turned off: every call does nothing."""

    mode = "disabled"

    def log(self, metrics: Mapping[str, float], step: int) -> None:
        """Record training curves (ignored)."""

    def summary(self, metrics: Mapping[str, Any]) -> None:
        """Record final metrics (ignored)."""

    def table(self, name: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        """Record a table (ignored)."""

    def artifact(self, path: Path, name: str, kind: str) -> None:
        """Record a file or folder (ignored)."""

    def finish(self, exit_code: int = 0) -> None:
        """Close the run (nothing to close)."""


def has_wandb_credentials() -> bool:
    """An API key in the environment or in ~/.netrc (what `wandb login` writes)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


def resolve_mode(mode: str) -> str:
    """ "auto" means online with credentials, else offline; WANDB_MODE in the environment wins."""
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    if mode == "auto":
        return "online" if has_wandb_credentials() else "offline"
    if mode not in ("online", "offline", "disabled"):
        raise ValueError(f"logger.mode={mode!r} is not allowed; choose auto, online, offline or disabled.")
    return mode


def run_id(run_dir: Path) -> str:
    """A stable W&B id for a run folder, so a re-launched job resumes its W&B run."""
    return hashlib.sha1(str(run_dir.resolve()).encode()).hexdigest()[:16]


class WandbTracker:
    """A W&B run bound to one job's folder."""

    def __init__(
        self,
        run_dir: Path,
        config: Mapping[str, Any],
        *,
        project: str,
        entity: str | None,
        group: str,
        name: str,
        job_type: str,
        tags: Sequence[str],
        mode: str = "auto",
    ) -> None:
        import wandb

        self.mode = resolve_mode(mode)
        run_dir.mkdir(parents=True, exist_ok=True)
        self._wandb = wandb
        self.run = wandb.init(
            project=project,
            entity=entity,
            group=group,
            name=name,
            job_type=job_type,
            tags=[t[:64] for t in tags],
            config=dict(config),
            dir=str(run_dir),
            id=run_id(run_dir),
            resume="allow",
            mode=self.mode,
            reinit="finish_previous",
            settings=wandb.Settings(silent=True, console="off"),
        )

    def log(self, metrics: Mapping[str, float], step: int) -> None:
        """Training curves and validation metrics at an optimizer step."""
        self.run.log(dict(metrics), step=step)

    def summary(self, metrics: Mapping[str, Any]) -> None:
        """Final metrics of the run."""
        for key, value in metrics.items():
            self.run.summary[key] = value

    def table(self, name: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        """A table, e.g. sample generations."""
        self.run.log({name: self._wandb.Table(columns=list(columns), data=[list(r) for r in rows])})

    def artifact(self, path: Path, name: str, kind: str) -> None:
        """Upload a file or folder (e.g. the exported prefix) as an artifact."""
        artifact = self._wandb.Artifact(name=name, type=kind)
        if path.is_dir():
            artifact.add_dir(str(path))
        else:
            artifact.add_file(str(path))
        self.run.log_artifact(artifact)

    def finish(self, exit_code: int = 0) -> None:
        """Close the run (always, also after a failure)."""
        self.run.finish(exit_code=exit_code)


def make_tracker(logger_cfg: Mapping[str, Any], run_dir: Path, config: Mapping[str, Any], **identity: Any):
    """A tracker from the `logger` config group: WandbTracker for kind "wandb", NullTracker for "none"."""
    kind = logger_cfg.get("kind", "none")
    if kind == "none":
        return NullTracker()
    if kind != "wandb":
        raise ValueError(f"logger.kind={kind!r} is not allowed; choose wandb or none.")
    tags = list(identity.pop("tags", [])) + list(logger_cfg.get("tags") or [])
    return WandbTracker(
        run_dir,
        config,
        project=logger_cfg.get("project", "prefixlab"),
        entity=logger_cfg.get("entity"),
        mode=logger_cfg.get("mode", "auto"),
        tags=tags,
        **identity,
    )
