"""Read an offline W&B run's transaction log (`run-<id>.wandb`) in tests: what W&B would upload on sync,
and the tables it logged (`logged_table`).

The file is a LevelDB-style log: a 7-byte header (":W&B", magic 0xBEE1, version 0), then 32 KiB blocks of
records, each with a 7-byte header (crc32 4 bytes, little-endian length 2 bytes, type 1 byte: full, first,
middle, last) and a chunk of a serialized `wandb_internal_pb2.Record`.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

from wandb.proto import wandb_internal_pb2 as pb

BLOCK = 32 * 1024
HEADER = 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def records(path: Path) -> list[pb.Record]:
    """Every record of the log, in order."""
    data = path.read_bytes()
    if data[:4] != b":W&B":
        raise ValueError(f"{path} is not a W&B transaction log")
    out, pending, pos = [], b"", HEADER
    while pos + HEADER <= len(data):
        left_in_block = BLOCK - pos % BLOCK
        if left_in_block < HEADER:
            pos += left_in_block
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + HEADER])
        chunk = data[pos + HEADER : pos + HEADER + length]
        pos += HEADER + length
        if kind == 0 and length == 0:
            continue
        pending = chunk if kind in (FULL, FIRST) else pending + chunk
        if kind in (FULL, LAST):
            record = pb.Record()
            record.ParseFromString(pending)
            out.append(record)
    return out


def summarize(path: Path) -> dict[str, Any]:
    """The run's identity, config, history rows and final summary as plain Python values."""
    run: dict[str, Any] = {}
    config: dict[str, Any] = {}
    history: list[dict[str, Any]] = []
    summary: dict[str, Any] = {}
    for record in records(path):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run = {"group": record.run.run_group, "name": record.run.display_name, "tags": list(record.run.tags),
                   "job_type": record.run.job_type, "id": record.run.run_id}  # fmt: skip
            config |= {item.key: json.loads(item.value_json) for item in record.run.config.update}
        elif kind == "config":
            config |= {item.key: json.loads(item.value_json) for item in record.config.update}
        elif kind == "history":
            history.append(
                {
                    (item.key or "/".join(item.nested_key)): json.loads(item.value_json)
                    for item in record.history.item
                }
            )
        elif kind == "summary":
            summary |= {
                (item.key or "/".join(item.nested_key)): json.loads(item.value_json)
                for item in record.summary.update
            }
    return {"run": run, "config": config, "history": history, "summary": summary}


def logged_table(path: Path, name: str) -> dict[str, Any]:
    """A `wandb.Table` the run logged under `name`, read from the offline run's files (columns, data).

    The summary (and the history row) holds a `table-file` reference whose `path` is relative to the offline
    run's `files/` folder, beside the `.wandb` log.
    """
    summary = summarize(path)["summary"]
    if summary.get(f"{name}/_type") != "table-file":
        raise KeyError(f"{path} logged no table {name!r} (summary keys: {sorted(summary)})")
    return json.loads((path.parent / "files" / summary[f"{name}/path"]).read_text(encoding="utf-8"))
