"""Experiment tracking: one Weights & Biases run per Hydra job, or nothing (`logger=none`).

The W&B run gets the resolved config, the study as `group`, the job's overrides as `name`, the swept values as
`tags`, training curves, final metrics, a table of sample generations and the exported prefix as an artifact.
Without credentials it runs offline (files under `<run>/wandb`, upload later with `wandb sync`). Its id is a
hash of the run folder, so a resumed job continues the same W&B run. prefixlab's own `metrics.json` stays the
record of results: offline W&B files are binary.

For comparing ablations in the W&B UI (and `prefixlab wandb-report`), each run also carries:

- **flat ablation keys** in its config beside the nested one (`ablation_keys`): every key of the `method`
  group as `method_<key>` (`method_kind`, `method_length`, `method_placement`, ... whatever the method has),
  `model_name`, `task_name`, `task_train_size`, `task_subset_seed`, the `budget` keys as `budget_<key>`
  (`budget_name`), every overridden config value (`trainer.lr=...` -> `trainer_lr`; a choice such as
  `variant=EMB-5` that leaves no config key -> `variant`), and `row`, the report's row name (the label, e.g.
  `PREFIX-5`, `EMB-1`); `seed`, `label` and `study` are top-level config keys already;
- **paper-scale metrics** `paper/<metric>` beside the raw `test/<metric>` (E2E BLEU, METEOR and ROUGE-L x100,
  as `prefixlab.report.style` scales them), in the summary and in one final history row together with the
  numeric settings as `setting/<key>` (so a line plot can put e.g. `setting/method_length` on its x axis);
- **interval columns** from any registered interval hook (`register_interval_hook`; or "module:function" in
  `logger.interval_hook` where the logger config has that key): `test/<metric>_ci95_low|high` and
  `paper/<metric>_ci95_low|high`.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import logging
import netrc
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger("prefixlab")

#: Config groups flattened key by key into the flat ablation keys (`method_length`, `budget_name`).
FLAT_GROUPS = ("method", "budget")
#: Single nested config values that become flat keys (`model_name`, `task_name`, ...).
FLAT_FIELDS = ("model.name", "task.name", "task.train_size", "task.subset_seed")
#: Overrides that never become flat keys (identity, infrastructure).
SKIPPED_OVERRIDES = ("hydra", "paths.", "logger", "study", "recompute")
#: The flat key holding the report's row name (`prefixlab.report.collect.derive_label`).
ROW_KEY = "row"
#: Summary/history namespace of the test metrics on the paper's scale, beside the raw `test/`.
TEST_PREFIX = "test/"
PAPER_PREFIX = "paper/"
#: History namespace of the numeric flat settings, logged once with the final metrics (a line plot's x axis).
SETTING_PREFIX = "setting/"
#: Suffixes of the interval columns: `paper/BLEU_ci95_low`, `paper/BLEU_ci95_high` (95% intervals).
INTERVAL_SUFFIXES = ("_ci95_low", "_ci95_high")

#: An interval hook: (run folder, resolved config, raw test metrics {"BLEU": 0.31, ...}) ->
#: {metric: (low, high)} on the raw scale of `metrics.json`. The run folder already holds `generations.jsonl`.
IntervalHook = Callable[[Path, Mapping[str, Any], Mapping[str, float]], Mapping[str, tuple[float, float]]]
_INTERVAL_HOOKS: list[IntervalHook] = []


def register_interval_hook(hook: IntervalHook) -> IntervalHook:
    """Add a hook whose intervals every W&B run logs as `*_ci95_low|high` columns (usable as a decorator).

    The hook for `prefixlab.stats` (95% intervals per run, e.g. bootstrap over the test sources) plugs in here
    (`register_interval_hook(stats_function)` at import), or by name in `logger.interval_hook`. A hook that
    raises is logged and skipped: a report column never fails a job.
    """
    if hook not in _INTERVAL_HOOKS:
        _INTERVAL_HOOKS.append(hook)
    return hook


def interval_hooks(logger_cfg: Mapping[str, Any] | None = None) -> list[IntervalHook]:
    """The registered hooks plus the one named by `logger.interval_hook` ("module:function"), if any."""
    hooks = list(_INTERVAL_HOOKS)
    named = (logger_cfg or {}).get("interval_hook")
    if named:
        module, _, function = str(named).partition(":")
        hook = getattr(importlib.import_module(module), function)
        if hook not in hooks:
            hooks.append(hook)
    return hooks


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


# ------------------------------------------------------------------------------------------ flat keys
def flat_name(dotted: str) -> str:
    """The flat W&B config key of a dotted config path: `method.length` -> `method_length`."""
    return dotted.replace(".", "_").replace("/", "_")


def _cell(value: Any) -> Any:
    """A W&B-groupable value: scalars as they are, containers as JSON text."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Mapping | list | tuple):
        return json.dumps(value, sort_keys=True, default=str)
    return str(value)


def _lookup(config: Mapping[str, Any], dotted: str) -> tuple[bool, Any]:
    """(found, value) of a dotted path in a nested config."""
    value: Any = config
    for part in dotted.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return False, None
        value = value[part]
    return True, value


def _flatten(group: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in group.items():
        name = f"{prefix}_{key}"
        if isinstance(value, Mapping):
            out |= _flatten(value, name)
        else:
            out[name] = _cell(value)
    return out


def ablation_keys(config: Mapping[str, Any], overrides: Sequence[str] = ()) -> dict[str, Any]:
    """The flat ablation keys of a resolved config (see the module docstring), derived generically.

    Nothing here knows a method kind: every key of the `method` group is taken, so a new method (LoRA,
    adapters) gets its own `method_<key>` columns. `overrides` are the job's command-line overrides
    (`method.length=5`, `variant=EMB-5`); values are read from `config` where the path exists there (typed),
    else kept as the override's text.
    """
    from prefixlab.report.collect import derive_label, is_nuisance

    flat: dict[str, Any] = {}
    for group in FLAT_GROUPS:
        if isinstance(config.get(group), Mapping):
            flat |= _flatten(config[group], group)
    for dotted in FLAT_FIELDS:
        found, value = _lookup(config, dotted)
        if found and not isinstance(value, Mapping):
            flat[flat_name(dotted)] = _cell(value)
    for item in overrides:
        key, sep, text = str(item).partition("=")
        key = key.lstrip("+~")
        if not sep or not key or key.startswith(SKIPPED_OVERRIDES) or "/" in key:
            continue
        if is_nuisance(key):  # paths, logging, device, threads: never a setting to group by
            continue
        found, value = _lookup(config, key)
        if found:  # a top-level key or a group choice (`model=gpt2`) is there already
            if "." in key and not isinstance(value, Mapping):
                flat.setdefault(flat_name(key), _cell(value))
        elif flat_name(key) not in config:
            flat.setdefault(flat_name(key), text)  # a choice that leaves no config key: variant=, +budget=
    if ROW_KEY not in config:
        try:
            flat[ROW_KEY] = derive_label(config)
        except Exception:  # a method the label code cannot read: its kind names the row (never fail a job)
            flat[ROW_KEY] = str(config.get("label") or (config.get("method") or {}).get("kind") or "run")
    return {key: value for key, value in flat.items() if key not in config}


def setting_values(config: Mapping[str, Any], flat: Mapping[str, Any]) -> dict[str, float]:
    """`setting/<key>` for every numeric flat key and numeric top-level value (seed): line-plot x axes."""
    numeric = {k: v for k, v in config.items() if isinstance(v, int | float) and not isinstance(v, bool)}
    numeric |= {k: v for k, v in flat.items() if isinstance(v, int | float) and not isinstance(v, bool)}
    return {f"{SETTING_PREFIX}{key}": value for key, value in numeric.items()}


def paper_metrics(metrics: Mapping[str, Any], suite: str | None) -> dict[str, float]:
    """`paper/<m>` for every numeric `test/<m>`, on the paper's scale (`prefixlab.report.style.scale_for`)."""
    from prefixlab.report.style import scale_for

    out: dict[str, float] = {}
    for key, value in metrics.items():
        if key.startswith(TEST_PREFIX) and isinstance(value, int | float) and not isinstance(value, bool):
            name = key.removeprefix(TEST_PREFIX)
            out[f"{PAPER_PREFIX}{name}"] = float(value) * scale_for(name, suite)
    return out


def interval_columns(intervals: Mapping[str, tuple[float, float]], suite: str | None) -> dict[str, float]:
    """`test/<m>_ci95_low|high` (raw) and `paper/<m>_ci95_low|high` (paper scale) from {m: (low, high)}."""
    from prefixlab.report.style import scale_for

    out: dict[str, float] = {}
    for name, bounds in intervals.items():
        for suffix, bound in zip(INTERVAL_SUFFIXES, bounds, strict=True):
            out[f"{TEST_PREFIX}{name}{suffix}"] = float(bound)
            out[f"{PAPER_PREFIX}{name}{suffix}"] = float(bound) * scale_for(name, suite)
    return out


# ------------------------------------------------------------------------------------------ W&B
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
        overrides: Sequence[str] | None = None,
        hooks: Sequence[IntervalHook] = (),
    ) -> None:
        import wandb

        self.mode = resolve_mode(mode)
        run_dir.mkdir(parents=True, exist_ok=True)
        self._wandb = wandb
        self.run_dir = run_dir
        self.config = dict(config)
        self.suite = (self.config.get("task") or {}).get("metric")
        self.flat = ablation_keys(self.config, tags if overrides is None else overrides)
        self.hooks = list(hooks)
        self.run = wandb.init(
            project=project,
            entity=entity,
            group=group,
            name=name,
            job_type=job_type,
            tags=[t[:64] for t in tags],
            config=self.config | self.flat,
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
        """Final metrics of the run, plus their paper-scale twins, intervals and the numeric settings."""
        paper = paper_metrics(metrics, self.suite)
        extra = paper | self._intervals(metrics)
        if paper:  # one history row with settings and final metrics: what length-vs-metric line plots read
            self.run.log(setting_values(self.config, self.flat) | paper)
        for key, value in {**metrics, **extra}.items():
            self.run.summary[key] = value

    def _intervals(self, metrics: Mapping[str, Any]) -> dict[str, float]:
        """The interval columns of every hook; a failing hook is logged and skipped."""
        test = {k.removeprefix(TEST_PREFIX): v for k, v in metrics.items() if k.startswith(TEST_PREFIX)}
        out: dict[str, float] = {}
        for hook in self.hooks:
            try:
                out |= interval_columns(hook(self.run_dir, self.config, test), self.suite)
            except Exception as error:  # a report column never fails a job
                log.warning(
                    "interval hook %r failed (%s: %s); no columns from it", hook, type(error).__name__, error
                )
        return out

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
    """A tracker from the `logger` config group: WandbTracker for kind "wandb", NullTracker for "none".

    `identity`: `group`, `name`, `job_type`, `tags` (the job's overrides) and optionally `overrides` (else the
    tags stand for them when deriving the flat ablation keys); other keys are ignored.
    """
    kind = logger_cfg.get("kind", "none")
    if kind == "none":
        return NullTracker()
    if kind != "wandb":
        raise ValueError(f"logger.kind={kind!r} is not allowed; choose wandb or none.")
    job_tags = list(identity.get("tags", []))
    overrides = identity.get("overrides")
    return WandbTracker(
        run_dir,
        config,
        project=logger_cfg.get("project", "prefixlab"),
        entity=logger_cfg.get("entity"),
        mode=logger_cfg.get("mode", "auto"),
        tags=job_tags + list(logger_cfg.get("tags") or []),
        group=identity.get("group", "default"),
        name=identity.get("name", "run"),
        job_type=identity.get("job_type", "train"),
        overrides=job_tags if overrides is None else list(overrides),
        hooks=interval_hooks(logger_cfg),
    )
