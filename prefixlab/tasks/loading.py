"""Load a task's train/validation/test splits from a local folder or the hub, derive missing splits, and
record how (`DataInfo`), so that a run can store where its data came from."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from prefixlab.tasks.config import TaskConfig, load_task_config, resolve_data_dir
from prefixlab.tasks.errors import DataFormatError, DataNotFoundError
from prefixlab.tasks.examples import Example, GroupedExample, count_groups, group_examples
from prefixlab.tasks.hub import hub_split_names, load_hub_splits
from prefixlab.tasks.lowdata import low_data_subset
from prefixlab.tasks.readers import read_examples
from prefixlab.tasks.splitting import split_by_group

log = logging.getLogger(__name__)
SPLITS = ("train", "validation", "test")


@dataclass
class DataInfo:
    """Where the data came from and how each split was made; `to_dict()` goes into the run's results."""

    task: str
    source: str
    location: str
    data_dir_from: str | None = None
    split_origin: dict[str, str] = field(default_factory=dict)
    split_pairs: dict[str, int] = field(default_factory=dict)
    split_groups: dict[str, int] = field(default_factory=dict)
    train_from: str = "train"
    holdout: dict[str, Any] = field(default_factory=dict)
    low_data: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """A plain, JSON-serialisable dict."""
        return asdict(self)


@dataclass
class TaskData:
    """The three splits of a task as `Example` lists, with their provenance."""

    config: TaskConfig
    train: list[Example]
    validation: list[Example]
    test: list[Example]
    info: DataInfo

    def split(self, name: str) -> list[Example]:
        """The pairs of split `name` (train, validation or test)."""
        if name not in SPLITS:
            raise KeyError(f"unknown split {name!r}; splits: {SPLITS}")
        return getattr(self, name)

    def grouped(self, name: str = "test") -> list[GroupedExample]:
        """Distinct sources of a split with all their references, in order of first appearance."""
        return group_examples(self.split(name))

    def metadata(self) -> dict[str, Any]:
        """`DataInfo` as a dict, for the run's results file."""
        return self.info.to_dict()


def _local_files(cfg: TaskConfig) -> dict[str, str]:
    if cfg.single_file:
        return {"all": cfg.single_file}
    files = {"train": cfg.train_file, "validation": cfg.validation_file, "test": cfg.test_file}
    return {split: name for split, name in files.items() if name}


def _usable(folder: Path, cfg: TaskConfig) -> bool:
    """A folder is usable when it has the single file, or the test file (if configured) and a training pool."""
    files = {split: folder / name for split, name in _local_files(cfg).items()}
    if "all" in files:
        return files["all"].is_file()
    if "test" in files and not files["test"].is_file():
        return False
    if "train" in files and files["train"].is_file():
        return True
    return cfg.allow_train_from_validation and "validation" in files and files["validation"].is_file()


def _expected_files(cfg: TaskConfig, folders: list[Path]) -> str:
    files = _local_files(cfg)
    if "all" in files:
        wanted = files["all"]
    else:
        parts = [f"{files['test']} (required)"] if "test" in files else []
        carve = (
            f"{files['validation']}, from which a training split is carved" if "validation" in files else ""
        )
        if "train" in files:
            pool = files["train"] + (f" (or {carve})" if carve and cfg.allow_train_from_validation else "")
        elif carve and cfg.allow_train_from_validation:
            pool = carve
        else:
            pool = "a training file (task.train_file is null"
            pool += (
                f"; or set task.allow_train_from_validation=true to carve one from {files['validation']})"
                if carve
                else ")"
            )
        parts.append(pool)
        if "validation" in files and not cfg.allow_train_from_validation:
            parts.append(f"{files['validation']} (optional)")
        wanted = ", ".join(parts)
    where = " or ".join(str(f) for f in folders)
    return f"Expected {wanted} in {where}"


def _candidate_folders(cfg: TaskConfig) -> tuple[list[Path], str]:
    root, origin = resolve_data_dir(cfg.data_dir)
    folders = [root / cfg.subdir, root] if cfg.subdir else [root]
    return folders, origin


def _read_local(cfg: TaskConfig, folder: Path) -> tuple[dict[str, list[Example]], dict[str, str]]:
    splits, origin = {}, {}
    for split, name in _local_files(cfg).items():
        path = folder / name
        if path.is_file():
            target = "train" if split == "all" else split
            splits[target] = read_examples(
                path, cfg.source_column, cfg.target_column, cfg.group_column, cfg.file_format
            )
            origin[target] = name
    return splits, origin


def derive_splits(
    available: Mapping[str, list[Example]], origin: Mapping[str, str], cfg: TaskConfig
) -> tuple[dict[str, list[Example]], dict[str, str], str, dict[str, Any]]:
    """Fill missing splits by holding out groups (hash of the group key) of the training pool.

    The pool is the train split; without one, the validation split when `allow_train_from_validation`.
    Returns the splits, a description of each split's origin, the pool's name and the holdout record.
    """
    splits, origin = dict(available), dict(origin)
    if "train" in splits:
        pool_name = "train"
    elif "validation" in splits and cfg.allow_train_from_validation:
        pool_name = "validation"
    else:
        raise DataNotFoundError(
            f"task {cfg.name!r}: no training split (found {sorted(splits)}); set task.train_file, or "
            f"task.allow_train_from_validation=true to train on part of the validation split"
        )
    fractions = {"validation": cfg.validation_fraction, "test": cfg.test_fraction}
    needed = [s for s in ("validation", "test") if s not in splits or s == pool_name]
    if not needed:
        return splits, origin, pool_name, {}
    pool_origin = origin[pool_name]
    parts = split_by_group(splits.pop(pool_name), {s: fractions[s] for s in needed}, cfg.split_salt, "train")
    splits.update(parts)
    key = cfg.group_column or cfg.source_column
    for split in needed:
        origin[split] = f"{pool_origin}: {fractions[split]:.0%} of its groups ({key}), held out by hash"
    origin["train"] = (
        f"{pool_origin}: the remaining groups"
        if pool_name == "train"
        else f"{pool_origin}: the groups not held out"
    )
    if pool_name == "validation":
        log.warning(
            "task %s: no training file; training on %s minus a held-out validation slice",
            cfg.name,
            pool_origin,
        )
    holdout = {
        "pool": pool_origin,
        "group_key": key,
        "method": "groups ranked by sha256(salt, group key); the first round(fraction * groups) held out",
        "salt": cfg.split_salt,
        "fractions": {s: fractions[s] for s in needed},
    }
    return splits, origin, pool_name, holdout


def _load_available(cfg: TaskConfig) -> tuple[dict[str, list[Example]], dict[str, str], DataInfo]:
    """The splits that exist as files or hub splits, their origins, and a `DataInfo` naming the source."""
    folders, dir_origin = _candidate_folders(cfg)
    folder = next((f for f in folders if _usable(f, cfg)), None) if cfg.source != "hub" else None
    expected = _expected_files(cfg, folders) + f" (data folder from {dir_origin})."
    if folder is not None:
        available, origin = _read_local(cfg, folder)
        return available, origin, DataInfo(cfg.name, "local", str(folder.resolve()), dir_origin)
    if cfg.source == "local":
        raise DataNotFoundError(
            f"task {cfg.name!r}: local data not found. {expected} Point the harness at the folder with "
            f"PREFIXLAB_DATA_DIR=/path or task.data_dir=/path."
        )
    available = load_hub_splits(cfg, expected_local=expected if cfg.source == "auto" else "")
    origin = {split: f"hub split {name!r}" for split, name in hub_split_names(cfg).items()}
    location = str(cfg.hub_name) + (f"/{cfg.hub_config}" if cfg.hub_config else "")
    return available, origin, DataInfo(cfg.name, "hub", location)


def _apply_low_data(
    cfg: TaskConfig, size: int, splits: dict[str, list[Example]], origin: dict[str, str]
) -> dict[str, Any]:
    """Replace train and validation by a low-data subset and its dev set; return the record for `DataInfo`."""
    train, dev = low_data_subset(splits["train"], size, cfg.subset_seed, cfg.lowdata_dev_fraction)
    record = {
        "train_size": size,
        "dev_size": len(dev),
        "subset_seed": cfg.subset_seed,
        "dev_fraction": cfg.lowdata_dev_fraction,
        "pool": origin["train"],
        "method": "numpy default_rng(subset_seed) permutation; dev skips training groups",
    }
    origin["train"] = f"low-data subset of {size} pairs from [{origin['train']}]"
    origin["validation"] = f"low-data dev of {len(dev)} pairs from the same pool"
    splits["train"], splits["validation"] = train, dev
    return record


def load_task(cfg: TaskConfig | Mapping[str, Any] | str) -> TaskData:
    """Load a task: local folder (`source: local`), the hub (`hub`), or local if present else hub (`auto`);
    derive missing splits, take a low-data subset when `train_size` is set, and record all of it."""
    if not isinstance(cfg, TaskConfig):
        cfg = load_task_config(cfg)
    available, available_origin, info = _load_available(cfg)
    splits, origin, pool_name, info.holdout = derive_splits(available, available_origin, cfg)
    if cfg.train_size is not None:
        info.low_data = _apply_low_data(cfg, cfg.train_size, splits, origin)
    for s in ("train", "test"):
        if not splits[s]:
            raise DataFormatError(f"task {cfg.name!r}: split {s!r} is empty ({origin[s]})")
    info.split_origin = {s: origin[s] for s in SPLITS}
    info.split_pairs = {s: len(splits[s]) for s in SPLITS}
    info.split_groups = {s: count_groups(splits[s]) for s in SPLITS}
    info.train_from = available_origin[pool_name]
    if pool_name == "validation":
        info.train_from += " (the validation split: no training split was found)"
    return TaskData(cfg, splits["train"], splits["validation"], splits["test"], info)
