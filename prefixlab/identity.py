"""Run identity: a fingerprint of the resolved config that determines a run's results.

`identity(run_config)` is the flat `{key: value}` view of the typed config (defaults filled in, so two
spellings of one config agree) without the keys that do not change what a run computes: where things are
written (`paths`, `task.data_dir`), how it is tracked (`logger`), where and how fast it runs (`trainer.device`,
`trainer.num_threads`, `trainer.activation_checkpointing`, `trainer.checkpoint_every`, `eval.batch_size`), and
names (`study`, `label`, `budget`, `recompute`, `eval.samples_to_log`). `fingerprint` hashes it.

A run folder records both in `identity.json` when it starts. Relaunching a job (`check_folder`):
complete with the same fingerprint, skip; complete or partial with a different one, `StaleRunError` before
any model loads, listing the differing keys and the ways out; partial with the same one, resume. A study's
`.fingerprints/` index claims each fingerprint for one folder, so two spellings of the same config in one
study (a `variant=` and the equivalent `method.*` overrides) run once. `recompute=true` moves an old folder to
`<study>/.replaced/` (never deleted). Torch-free.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from prefixlab.atomic import write_json_atomic

IDENTITY_FILE = "identity.json"
FINGERPRINTS_DIR = ".fingerprints"
REPLACED_DIR = ".replaced"

#: Config keys (or key prefixes) that never change what a run computes.
EXCLUDED = (
    "paths", "logger", "study", "label", "budget", "recompute", "task.data_dir", "trainer.device",
    "trainer.num_threads", "trainer.activation_checkpointing", "trainer.checkpoint_every", "eval.batch_size",
    "eval.samples_to_log",
)  # fmt: skip


class StaleRunError(RuntimeError):
    """A run folder holds results (or a checkpoint) of a different config than the one launched now."""


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(_flat(item, f"{prefix}{key}."))
        return out
    if isinstance(value, tuple):
        value = list(value)
    return {prefix[:-1]: value}


def _excluded(key: str) -> bool:
    return any(key == e or key.startswith(f"{e}.") for e in EXCLUDED)


def identity(run_config: Any) -> dict[str, Any]:
    """The flat, sorted config that determines a run's results (see the module docstring)."""
    typed = {
        "model": run_config.model,
        "task": dataclasses.asdict(run_config.task),
        "method": {"kind": run_config.method_spec.kind, **dataclasses.asdict(run_config.method)},
        "trainer": dataclasses.asdict(run_config.trainer),
        "eval": dataclasses.asdict(run_config.eval),
        "seed": run_config.seed,
    }
    flat = _flat(typed)
    return {key: flat[key] for key in sorted(flat) if not _excluded(key)}


def fingerprint(ident: Mapping[str, Any]) -> str:
    """A short stable hash of an identity."""
    text = json.dumps(ident, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def read_identity(run_dir: Path) -> dict[str, Any] | None:
    """The identity a run folder recorded, or None (no identity.json)."""
    path = Path(run_dir) / IDENTITY_FILE
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def write_identity(run_dir: Path, ident: Mapping[str, Any], commit: str) -> None:
    """Record the run's identity and fingerprint (atomically) before it computes anything."""
    write_json_atomic(
        Path(run_dir) / IDENTITY_FILE,
        {"fingerprint": fingerprint(ident), "git_commit": commit, "identity": ident},
    )


def differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[tuple[str, Any, Any]]:
    """(key, old value, new value) for every key whose value differs (absent keys shown as <absent>)."""
    missing = "<absent>"
    return [
        (key, old.get(key, missing), new.get(key, missing))
        for key in sorted(set(old) | set(new))
        if old.get(key, missing) != new.get(key, missing)
    ]


def stale_message(run_dir: Path, complete: bool, diffs: list[tuple[str, Any, Any]]) -> str:
    """The error of a relaunch whose config differs from what the folder holds, with the ways out."""
    what = "complete results" if complete else "a partial run (a checkpoint)"
    lines = [f"{run_dir} holds {what} of a different config; nothing was run. Differences (old -> new):"]
    lines += [f"  {key}: {old!r} -> {new!r}" for key, old, new in diffs[:40]]
    if len(diffs) > 40:
        lines.append(f"  ... and {len(diffs) - 40} more")
    lines.append(
        "Ways out: run it as another study (study=<new name>), or recompute it here with recompute=true, which "
        f"moves the old folder to {run_dir.parent / REPLACED_DIR}/ (nothing is deleted)."
    )
    return "\n".join(lines)


def has_content(run_dir: Path) -> bool:
    """Whether a run folder holds anything a job wrote (results, checkpoints, an identity)."""
    return run_dir.is_dir() and any(
        (run_dir / name).exists() for name in (IDENTITY_FILE, "metrics.json", "checkpoint", "config.yaml")
    )


def check_folder(run_dir: Path, ident: Mapping[str, Any], complete: bool, legacy: Mapping | None) -> str:
    """What to do with an existing run folder: "fresh", "resume" or "skip"; `StaleRunError` if it differs.

    `legacy` is the identity of a folder written before identity.json existed (from its config), or None.
    """
    if not has_content(run_dir):
        return "fresh"
    stored = read_identity(run_dir)
    old = stored["identity"] if stored else legacy
    if old is None:
        if complete:
            raise StaleRunError(
                f"{run_dir} holds complete results whose config cannot be read back, so they cannot be checked "
                "against this launch; nothing was run. Ways out: another study (study=<new name>), or "
                f"recompute=true (moves the folder to {run_dir.parent / REPLACED_DIR}/)."
            )
        return "fresh"
    diffs = differences(old, ident)
    if diffs:
        raise StaleRunError(stale_message(run_dir, complete, diffs))
    return "skip" if complete else "resume"


def move_aside(run_dir: Path) -> Path:
    """Move a run folder to `<study>/.replaced/<name>@<UTC time>` (never deleted); returns the new path."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    target = run_dir.parent / REPLACED_DIR / f"{run_dir.name}@{stamp}"
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(run_dir, target)
    return target


def claim(run_dir: Path, fp: str) -> Path | None:
    """Claim fingerprint `fp` for `run_dir` in its study; returns the other folder that holds it, or None.

    A claim whose folder is gone, or no longer records that fingerprint, is taken over.
    """
    index = run_dir.parent / FINGERPRINTS_DIR
    index.mkdir(parents=True, exist_ok=True)
    marker = index / fp
    for _ in range(2):
        try:
            with open(marker, "x", encoding="utf-8") as handle:
                handle.write(run_dir.name)
            return None
        except FileExistsError:
            holder = run_dir.parent / marker.read_text(encoding="utf-8").strip()
            if holder.resolve() == run_dir.resolve():
                return None
            recorded = read_identity(holder)
            if holder.is_dir() and (recorded is None or recorded.get("fingerprint") == fp):
                return holder
            marker.unlink(missing_ok=True)
    return None
