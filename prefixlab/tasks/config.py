"""The task configuration (`conf/task/*.yaml`): a flat dataclass, its loader, and the data-folder lookup."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prefixlab.resources import CONF_DIR

DATA_DIR_ENV = "PREFIXLAB_DATA_DIR"
CONF_TASK_DIR = CONF_DIR / "task"
SOURCES = ("auto", "local", "hub")
FILE_FORMATS = ("auto", "csv", "jsonl")


def _default_format() -> dict[str, dict[str, Any]]:
    return {
        "decoder_only": {
            "source": " {source} {eos}",
            "target": " {target} {eos}",
            "add_special_tokens": False,
        },
        "encoder_decoder": {"source": "{source}", "target": "{target}", "add_special_tokens": True},
    }


@dataclass
class TaskConfig:
    """Everything the task layer needs to load, split and format one data set; see conf/task/*.yaml."""

    name: str
    # Where the data comes from.
    source: str = "auto"
    data_dir: str | None = None
    subdir: str | None = None
    # Local files (relative to the data folder); a missing split is derived as described in the yaml.
    file_format: str = "auto"
    train_file: str | None = None
    validation_file: str | None = None
    test_file: str | None = None
    single_file: str | None = None
    source_column: str = "source"
    target_column: str = "target"
    group_column: str | None = None
    # Derived splits (hash of the group key; groups never straddle two splits).
    allow_train_from_validation: bool = False
    validation_fraction: float = 0.1
    test_fraction: float = 0.1
    split_salt: str = "prefixlab"
    # The Hugging Face hub.
    hub_name: str | None = None
    hub_config: str | None = None
    hub_train_split: str | None = "train"
    hub_validation_split: str | None = "validation"
    hub_test_split: str | None = "test"
    hub_source_column: str | None = None
    hub_target_column: str | None = None
    hub_group_column: str | None = None
    # Low-data subsets (paper section 6.3); train_size null = the full training split.
    train_size: int | None = None
    subset_seed: int = 0
    lowdata_dev_fraction: float = 0.3
    # Encoding.
    max_source_tokens: int | None = None
    max_target_tokens: int | None = None
    format: dict[str, dict[str, Any]] = field(default_factory=_default_format)
    # Evaluation: the metric suite (e2e | rouge) and the paper's decoding settings for this task.
    metric: str = "e2e"
    decoding: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(f"task.source must be one of {SOURCES}, got {self.source!r}")
        if self.file_format not in FILE_FORMATS:
            raise ValueError(f"task.file_format must be one of {FILE_FORMATS}, got {self.file_format!r}")
        for key in ("validation_fraction", "test_fraction", "lowdata_dev_fraction"):
            value = getattr(self, key)
            if not 0.0 <= value < 1.0:
                raise ValueError(f"task.{key} must be in [0, 1), got {value}")
        if self.single_file and self.validation_fraction + self.test_fraction >= 1.0:
            raise ValueError("task.validation_fraction + task.test_fraction must be below 1")
        if self.train_size is not None and self.train_size < 1:
            raise ValueError(f"task.train_size must be positive or null, got {self.train_size}")
        for key in ("max_source_tokens", "max_target_tokens"):
            if getattr(self, key) is not None and getattr(self, key) < 1:
                raise ValueError(f"task.{key} must be positive or null, got {getattr(self, key)}")
        for family, spec in self.format.items():
            missing = {"source", "target"} - set(spec)
            if missing:
                raise ValueError(f"task.format.{family} lacks {sorted(missing)}")
            if "{source}" not in spec["source"] or "{target}" not in spec["target"]:
                raise ValueError(
                    f"task.format.{family}: the source template needs {{source}} and the target "
                    f"template needs {{target}}, got {spec['source']!r} / {spec['target']!r}"
                )

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> TaskConfig:
        """Build from a dict or an omegaconf DictConfig (e.g. Hydra's `cfg.task`); unknown keys are errors."""
        if not isinstance(values, dict):
            from omegaconf import OmegaConf

            values = OmegaConf.to_container(values, resolve=True)  # type: ignore[assignment]
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown task config keys {unknown}; known keys: {sorted(known)}")
        values = dict(values)
        if "format" in values:
            values["format"] = {k: dict(v) for k, v in values["format"].items()}
        if values.get("decoding") is not None:
            values["decoding"] = dict(values["decoding"])
        else:
            values.pop("decoding", None)
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of every setting (for run metadata)."""
        return dataclasses.asdict(self)


def load_task_config(spec: str | os.PathLike[str] | Mapping[str, Any], **overrides: Any) -> TaskConfig:
    """Load a task config from a preset name (`e2e`), a YAML path, or a mapping; keyword overrides win."""
    if isinstance(spec, Mapping) or not isinstance(spec, str | os.PathLike):
        values = spec
    else:
        from omegaconf import OmegaConf

        path = Path(spec)
        if not path.suffix and not path.exists():
            path = CONF_TASK_DIR / f"{spec}.yaml"
        if not path.is_file():
            presets = sorted(p.stem for p in CONF_TASK_DIR.glob("*.yaml"))
            raise FileNotFoundError(f"no task config {str(spec)!r} (looked at {path}); presets: {presets}")
        values = OmegaConf.load(path)
    if overrides:
        from omegaconf import OmegaConf

        values = OmegaConf.merge(OmegaConf.create(values), OmegaConf.create(overrides))
    return TaskConfig.from_mapping(values)


def resolve_data_dir(data_dir: str | os.PathLike[str] | None = None) -> tuple[Path, str]:
    """Data root and where it came from: `task.data_dir` > $PREFIXLAB_DATA_DIR > `./data`."""
    if data_dir:
        return Path(data_dir).expanduser(), "task.data_dir"
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        return Path(env).expanduser(), f"${DATA_DIR_ENV}"
    return Path.cwd() / "data", "./data (default)"
