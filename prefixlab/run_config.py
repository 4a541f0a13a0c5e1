"""The whole job config, typed and validated once: `parse_run_config(cfg)` -> `RunConfig`.

Every group of the composed Hydra config becomes a typed object (model spec, `TaskConfig`, the method's
settings through the method registry, `TrainerSettings`, `EvalSettings`, `LoggerSettings`); unknown keys and
bad values fail here, before any data or model loads, with one `RunConfigError` that lists every problem by
its full key, value and what is allowed. The rest of the app receives these objects and never re-parses.
Torch-free.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from omegaconf import DictConfig, OmegaConf
from pydantic import Field

from prefixlab.settings import SettingsError, validate

TOP_LEVEL_KEYS = (
    "model", "task", "method", "trainer", "eval", "logger", "paths", "study", "seed", "label", "budget",
    "recompute",
)  # fmt: skip


class RunConfigError(SettingsError):
    """A config value that cannot run, found before any model loads; names the key, value and what is allowed."""


@dataclass
class EvalSettings:
    """The `eval` group (conf/eval/default.yaml): which split is decoded and scored, and how much of it."""

    split: Literal["test", "validation"] = "test"
    max_groups: Annotated[int, Field(ge=1)] | None = None
    batch_size: Annotated[int, Field(ge=1)] = 16
    samples_to_log: Annotated[int, Field(ge=0)] = 20


@dataclass
class LoggerSettings:
    """The `logger` group (conf/logger/*.yaml): W&B or nothing."""

    kind: Literal["wandb", "none"] = "wandb"
    project: str = "prefixlab"
    entity: str | None = None
    mode: Literal["auto", "online", "offline", "disabled"] = "auto"
    tags: list[str] = field(default_factory=list)
    log_every: Annotated[int, Field(ge=1)] = 10
    log_artifact: bool = True


@dataclass
class BudgetSettings:
    """The compute budget a study runs at (conf/budget/*.yaml set it; `paper` when none is chosen).

    `suffix` is appended to the study names of the experiment presets (`e2e_length` + `_cpu`).
    """

    name: str = "paper"
    suffix: str = ""


@dataclass
class PathsSettings:
    """The `paths` group: where run folders go."""

    runs: str = "runs"


@dataclass
class RunConfig:
    """One job's config, every group typed (see the module docstring)."""

    model: dict[str, Any]
    task: Any
    method_spec: Any
    method: Any
    trainer: Any
    eval: EvalSettings
    logger: LoggerSettings
    paths: PathsSettings
    budget: BudgetSettings
    study: str
    seed: int
    label: str
    recompute: bool
    resolved: dict[str, Any]

    @property
    def family(self) -> str:
        """decoder_only or encoder_decoder."""
        return str(self.model["family"])


def to_container(cfg: DictConfig | Mapping[str, Any]) -> dict[str, Any]:
    """A plain, resolved dict of a Hydra config or a mapping."""
    if isinstance(cfg, DictConfig):
        return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
    return {k: (to_container(v) if isinstance(v, Mapping | DictConfig) else v) for k, v in cfg.items()}


def _group(resolved: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = resolved.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise RunConfigError(f"{key}={value!r} is not allowed; it must be a config group (a mapping).")
    return dict(value)


def parse_run_config(cfg: DictConfig | Mapping[str, Any]) -> RunConfig:
    """Validate a composed job config into a `RunConfig`; every problem is reported at once."""
    from prefixlab.methods.registry import method_settings
    from prefixlab.models import available_models
    from prefixlab.models.registry import resolve_model_spec
    from prefixlab.suites import SUITES
    from prefixlab.tasks import TaskConfig
    from prefixlab.training import TrainerSettings

    resolved = to_container(cfg)
    problems: list[str] = []
    unknown = sorted(set(resolved) - set(TOP_LEVEL_KEYS))
    if unknown:
        problems.append(f"unknown top-level keys {unknown}; known: {', '.join(TOP_LEVEL_KEYS)}")
    parsed: dict[str, Any] = {}

    def attempt(key: str, build: Any, store: bool = True) -> None:
        try:
            value = build()
            if store:
                parsed[key] = value
        except (SettingsError, ValueError, TypeError) as error:
            problems.append(str(error) if str(error).startswith(key) else f"{key}: {error}")

    def model() -> dict[str, Any]:
        name = _group(resolved, "model").get("name")
        if name not in available_models():
            raise RunConfigError(f"model={name!r} is unknown; available: {', '.join(available_models())}")
        return resolve_model_spec(_group(resolved, "model"))

    def task() -> Any:
        values = _group(resolved, "task")
        task = validate(TaskConfig, values, "task")
        if task.metric not in SUITES:
            raise RunConfigError(
                f"task.metric={task.metric!r} is not allowed; choose one of {sorted(SUITES)}"
            )
        from prefixlab.evaluate import check_decoding

        try:
            check_decoding(task.decoding)
        except ValueError as error:
            raise RunConfigError(f"task.decoding: {error}") from None
        return task

    attempt("model", model)
    attempt("task", task)
    attempt("method", lambda: method_settings(_group(resolved, "method")))
    attempt("trainer", lambda: validate(TrainerSettings, _group(resolved, "trainer"), "trainer"))
    attempt("eval", lambda: validate(EvalSettings, _group(resolved, "eval"), "eval"))
    attempt("logger", lambda: validate(LoggerSettings, _group(resolved, "logger"), "logger"))
    attempt("paths", lambda: validate(PathsSettings, _group(resolved, "paths"), "paths"))
    attempt("budget", lambda: validate(BudgetSettings, _group(resolved, "budget"), "budget"))
    attempt("top", lambda: validate(_TopLevel, {k: resolved[k] for k in _TOP_FIELDS if k in resolved}, ""))
    if "model" in parsed and "method" in parsed:
        spec, settings = parsed["method"]
        if spec.check is not None:
            attempt("method", lambda: spec.check(settings, parsed["model"]["family"]), store=False)
    if problems:
        raise RunConfigError("invalid config: " + "; ".join(p.removeprefix(".") for p in problems))
    spec, settings = parsed["method"]
    top = parsed["top"]
    return RunConfig(
        model=parsed["model"], task=parsed["task"], method_spec=spec, method=settings,
        trainer=parsed["trainer"], eval=parsed["eval"], logger=parsed["logger"], paths=parsed["paths"],
        budget=parsed["budget"], study=top.study, seed=top.seed, label=top.label or spec.label(settings),
        recompute=top.recompute, resolved=resolved,
    )  # fmt: skip


@dataclass
class _TopLevel:
    study: Annotated[str, Field(min_length=1)] = "default"
    seed: Annotated[int, Field(ge=0)] = 0
    label: str | None = None
    recompute: bool = False


_TOP_FIELDS = tuple(f.name for f in dataclasses.fields(_TopLevel))
