"""A study's finished runs as one small committed file, and its run folders rebuilt from that file.

Run folders live on the machine that ran them; `results/<study>/` keeps only summaries. So that a study can
grow on another machine (add `seed=2` and run only the new jobs) and its intervals and claims be recomputed
over all runs, `prefixlab report` also writes `outputs.jsonl.gz` beside `runs.csv`: per complete run its
`metrics.json`, `identity.json`, Hydra `config.yaml`/`overrides.yaml` and test outputs, but no data (no
sources, no references: only a hash of them) and no weights.

    prefixlab restore results/reparam_init_cpu            # -> $PREFIXLAB_RUNS/reparam_init_cpu/<run>/

`restore` rebuilds each run folder's `generations.jsonl` from the task's data (the split and number of test
sources the run recorded), checks the hash so outputs are never paired with other references, and writes
`metrics.json` last, so a relaunched sweep skips the restored jobs and `prefixlab report` reads them as if
they had run here. Folders that already hold a complete run are left alone. Torch-free.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prefixlab.atomic import atomic_path, write_json_atomic, write_jsonl_atomic, write_text_atomic
from prefixlab.identity import IDENTITY_FILE, claim
from prefixlab.jsonl import json_records
from prefixlab.stats.runs import GENERATIONS_FILE, METRICS_FILE, RunInputError, load_generations

ARCHIVE_FILE = "outputs.jsonl.gz"
FORMAT = 1
HYDRA_FILES = (".hydra/config.yaml", ".hydra/overrides.yaml")
#: metrics.json keys that say where a folder is (set again by restore), so a restored study archives the same.
LOCATION_KEYS = ("run_dir", "restored_from")


class ArchiveError(ValueError):
    """An archive is malformed, or its runs cannot be rebuilt from the data given."""


@dataclass
class Restored:
    """What `restore_archive` did: folders written, folders kept (already complete), and why any were kept."""

    written: list[Path] = field(default_factory=list)
    kept: list[tuple[Path, str]] = field(default_factory=list)


def items_hash(sources: Sequence[str], references: Sequence[Sequence[str]]) -> str:
    """A hash of the test items (each source and its references, in order) that outputs were scored on."""
    digest = hashlib.sha256()
    for source, refs in zip(sources, references, strict=True):
        digest.update(json.dumps([source, list(refs)], ensure_ascii=False).encode())
        digest.update(b"\n")
    return digest.hexdigest()


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def archive_record(run_dir: Path) -> dict[str, Any]:
    """One run folder's line of the archive (raises `ArchiveError` when it is not a finished run)."""
    metrics_path = run_dir / METRICS_FILE
    if not metrics_path.is_file():
        raise ArchiveError(
            f"{run_dir} is not a finished run folder (needs {METRICS_FILE} and {GENERATIONS_FILE})"
        )
    try:
        generations = load_generations(run_dir)
    except RunInputError as error:
        raise ArchiveError(str(error)) from error
    metrics = _read_json(metrics_path)
    identity = run_dir / IDENTITY_FILE
    return {
        "format": FORMAT,
        "folder": run_dir.name,
        "metrics": {k: v for k, v in metrics.items() if k not in LOCATION_KEYS},
        "identity": _read_json(identity) if identity.is_file() else None,
        "hydra": {
            name: (run_dir / name).read_text(encoding="utf-8")
            for name in HYDRA_FILES
            if (run_dir / name).is_file()
        },
        "outputs": generations.outputs,
        "items": items_hash(generations.sources, generations.references),
    }


def write_archive(run_dirs: Iterable[str | os.PathLike[str]], path: str | os.PathLike[str]) -> Path:
    """Write the archive of `run_dirs` (sorted by folder name; gzip without a timestamp, so reruns are equal)."""
    records = sorted((archive_record(Path(d)) for d in run_dirs), key=lambda r: r["folder"])
    text = "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in records)
    path = Path(path)
    with (
        atomic_path(path) as tmp,
        tmp.open("wb") as raw,
        gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as handle,
    ):
        handle.write(text.encode("utf-8"))
    return path


def read_archive(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The records of an archive file (or of `<folder>/outputs.jsonl.gz`), checked for the keys restore needs."""
    path = Path(path)
    if path.is_dir():
        path = path / ARCHIVE_FILE
    if not path.is_file():
        raise ArchiveError(
            f"no archive at {path}: `prefixlab report runs/<study> --out results/<study>` writes {ARCHIVE_FILE} "
            "(reports made before it existed have none; their runs must be rerun)"
        )
    try:
        lines = gzip.decompress(path.read_bytes()).decode("utf-8").splitlines()
    except (OSError, EOFError, UnicodeDecodeError) as error:
        raise ArchiveError(f"{path}: not a gzip-compressed JSON-lines archive ({error})") from error
    records = []
    for number, record in json_records(lines, path, ("folder", "metrics", "outputs", "items"), ArchiveError):
        if record.get("format", FORMAT) > FORMAT:
            raise ArchiveError(
                f"{path}:{number}: archive format {record['format']} is newer than this prefixlab reads ({FORMAT}); "
                "update prefixlab"
            )
        folder = str(record["folder"])
        if not folder or "/" in folder or folder.startswith("."):
            raise ArchiveError(f"{path}:{number}: folder {folder!r} is not a plain run folder name")
        records.append(record)
    return records


def scored_items(metrics: dict[str, Any], data_dir: str | None) -> tuple[list[str], list[list[str]]]:
    """The sources and references a run was scored on, from its recorded task config, split and size."""
    from prefixlab.tasks import load_task, load_task_config

    config = metrics.get("config") or {}
    task = dict(config.get("task") or {})
    if data_dir:
        task["data_dir"] = data_dir
    split = (config.get("eval") or {}).get("split", "test")
    groups = load_task(load_task_config(task)).grouped(split)
    n = (metrics.get("evaluation") or {}).get("sources_decoded", len(groups))
    groups = groups[:n]
    return [g.source for g in groups], [list(g.references) for g in groups]


def restore_archive(
    archive: str | os.PathLike[str], runs_root: str | os.PathLike[str], data_dir: str | None = None
) -> Restored:
    """Rebuild the archived run folders under `runs_root/<study>/` (complete folders there are kept)."""
    records = read_archive(archive)
    data_dir = data_dir or os.environ.get("PREFIXLAB_DATA_DIR") or None
    done = Restored()
    items: dict[str, tuple[list[str], list[list[str]]]] = {}
    for record in records:
        metrics = record["metrics"]
        config = metrics.get("config") or {}
        run_dir = Path(runs_root) / str(metrics.get("study") or "unknown") / record["folder"]
        if (run_dir / METRICS_FILE).is_file():
            done.kept.append((run_dir, "already holds a metrics.json"))
            continue
        n_scored = (metrics.get("evaluation") or {}).get("sources_decoded")
        task_key = json.dumps([config.get("task"), config.get("eval"), n_scored], sort_keys=True, default=str)
        if task_key not in items:
            items[task_key] = scored_items(metrics, data_dir)
        sources, references = items[task_key]
        outputs = record["outputs"]
        if len(outputs) != len(sources) or items_hash(sources, references) != record["items"]:
            where = data_dir or (config.get("task") or {}).get("data_dir") or "the default data folder"
            raise ArchiveError(
                f"{record['folder']}: the test items under {where} are not the ones this run was scored on "
                f"({len(outputs)} outputs, {len(sources)} sources here, or different sources/references). Point "
                "--data-dir (or PREFIXLAB_DATA_DIR) at the data the runs used; nothing was written for this run."
            )
        run_dir.mkdir(parents=True, exist_ok=True)
        for name, text in (record.get("hydra") or {}).items():
            if name in HYDRA_FILES:
                write_text_atomic(run_dir / name, text)
        if record.get("identity"):
            write_json_atomic(run_dir / IDENTITY_FILE, record["identity"])
        write_jsonl_atomic(
            run_dir / GENERATIONS_FILE,
            (
                {"source": s, "output": o, "references": r}
                for s, o, r in zip(sources, outputs, references, strict=True)
            ),
        )
        write_json_atomic(
            run_dir / METRICS_FILE, {**metrics, "run_dir": str(run_dir), "restored_from": str(archive)}
        )
        fp = (record.get("identity") or {}).get("fingerprint") or metrics.get("fingerprint")
        if fp:
            claim(run_dir, fp)
        done.written.append(run_dir)
    return done


def restore_command(argv: Sequence[str]) -> int:
    """`prefixlab restore ARCHIVE [--runs DIR] [--data-dir DIR]`: rebuild run folders from an archive."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="prefixlab restore", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("archive", help=f"an {ARCHIVE_FILE} file, or the results folder holding one")
    parser.add_argument("--runs", default=None, help="runs root (default: $PREFIXLAB_RUNS, then ./runs)")
    parser.add_argument(
        "--data-dir", default=None, help="data root (default: $PREFIXLAB_DATA_DIR, then ./data)"
    )
    args = parser.parse_args(list(argv))
    runs = args.runs or os.environ.get("PREFIXLAB_RUNS") or "runs"
    try:
        done = restore_archive(args.archive, runs, args.data_dir)
    except (ArchiveError, FileNotFoundError, ValueError) as error:
        print(f"prefixlab restore: {error}", file=sys.stderr)
        return 2
    for path in done.written:
        print(f"restored {path}")
    for path, why in done.kept:
        print(f"kept {path} ({why})")
    print(f"prefixlab restore: {len(done.written)} run folder(s) written, {len(done.kept)} kept")
    return 0
