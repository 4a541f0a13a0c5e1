"""Load a task from the Hugging Face hub (`datasets.load_dataset`) and convert the hub schema to `Example`s."""

from __future__ import annotations

from typing import Any

from prefixlab.hub import offline_reason
from prefixlab.tasks.config import TaskConfig
from prefixlab.tasks.errors import DataNotFoundError
from prefixlab.tasks.examples import Example
from prefixlab.tasks.readers import frame_to_examples

SPLITS = ("train", "validation", "test")


def hub_split_names(cfg: TaskConfig) -> dict[str, str]:
    """Our split name -> the hub's split name, for the splits the hub provides (null in the config = absent)."""
    names = {"train": cfg.hub_train_split, "validation": cfg.hub_validation_split, "test": cfg.hub_test_split}
    return {ours: theirs for ours, theirs in names.items() if theirs}


def examples_from_hub(dataset: Any, cfg: TaskConfig, origin: str = "hub") -> list[Example]:
    """Convert one `datasets.Dataset` in the hub's schema; each `hub_*_column` defaults to its local twin."""
    source = cfg.hub_source_column or cfg.source_column
    target = cfg.hub_target_column or cfg.target_column
    group = cfg.hub_group_column or cfg.group_column
    return frame_to_examples(dataset.to_pandas(), source, target, group, origin=origin)


def splits_from_hub(datasets_by_split: Any, cfg: TaskConfig) -> dict[str, list[Example]]:
    """Convert a `datasets.DatasetDict` (or any mapping of hub split name -> Dataset) into our splits."""
    splits = {}
    for ours, theirs in hub_split_names(cfg).items():
        if theirs not in datasets_by_split:
            raise DataNotFoundError(
                f"hub data set {cfg.hub_name!r} has no split {theirs!r} (task.hub_{ours}_split); "
                f"splits found: {list(datasets_by_split)}"
            )
        splits[ours] = examples_from_hub(datasets_by_split[theirs], cfg, origin=f"{cfg.hub_name}[{theirs}]")
    return splits


def load_hub_splits(cfg: TaskConfig, expected_local: str = "") -> dict[str, list[Example]]:
    """Download the configured splits with `datasets.load_dataset(name, split=...)` and convert them."""
    hint = (
        f"{expected_local} Put the files there, or point the harness at them with PREFIXLAB_DATA_DIR=/path "
        f"or task.data_dir=/path."
    ).strip()
    if not cfg.hub_name:
        raise DataNotFoundError(f"task {cfg.name!r} has no hub data set (task.hub_name is null). {hint}")
    reason = offline_reason()
    if reason:
        raise DataNotFoundError(
            f"task {cfg.name!r}: the Hugging Face hub cannot be used ({reason}), so {cfg.hub_name!r} cannot be "
            f"downloaded. {hint}"
        )
    import datasets

    loaded = {}
    for theirs in hub_split_names(cfg).values():
        try:
            loaded[theirs] = datasets.load_dataset(cfg.hub_name, cfg.hub_config, split=theirs)
        except Exception as err:  # network, missing data set or split: all mean "not available here"
            raise DataNotFoundError(
                f"task {cfg.name!r}: could not load {cfg.hub_name!r} split {theirs!r} from the Hugging Face hub "
                f"({type(err).__name__}: {err}). {hint}"
            ) from err
    return splits_from_hub(loaded, cfg)
