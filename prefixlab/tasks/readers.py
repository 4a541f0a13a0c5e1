"""Read a local CSV or JSONL file into validated `Example`s (pandas does the parsing)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from prefixlab.tasks.errors import DataFormatError
from prefixlab.tasks.examples import Example


def detect_format(path: Path, file_format: str = "auto") -> str:
    """`csv` or `jsonl`: the configured format, or guessed from the file extension when `auto`."""
    if file_format != "auto":
        return file_format
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        return "csv"
    if suffix in (".jsonl", ".json", ".ndjson"):
        return "jsonl"
    raise DataFormatError(
        f"{path}: cannot tell the format from the extension; set task.file_format to csv or jsonl"
    )


def read_table(path: str | Path, file_format: str = "auto") -> pd.DataFrame:
    """Read a CSV (header row, all fields as strings) or JSONL file; an empty file is a `DataFormatError`."""
    path = Path(path)
    fmt = detect_format(path, file_format)
    with path.open("rb") as handle:
        head = handle.read(1 << 16)
    if not head.strip() and path.stat().st_size <= len(head):
        raise DataFormatError(f"{path}: the file is empty")
    try:
        if fmt == "csv":
            sep = "\t" if path.suffix.lower() == ".tsv" else ","
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, sep=sep)
        else:
            frame = pd.read_json(path, lines=True, dtype=False)
    except (ValueError, UnicodeDecodeError) as err:  # pandas' ParserError and EmptyDataError are ValueErrors
        raise DataFormatError(f"{path}: cannot parse as {fmt}: {err}") from err
    if frame.empty:
        raise DataFormatError(f"{path}: no data rows (columns found: {list(frame.columns)})")
    return frame


def _row_label(path: Path, fmt: str, index: int) -> str:
    """Human row number: CSV rows count the header as row 1; JSONL names the (non-blank) line."""
    if fmt == "csv":
        return f"row {index + 2} (counting the header as row 1)"
    with path.open(encoding="utf-8") as handle:
        lines = [number for number, line in enumerate(handle, start=1) if line.strip()]
    return f"line {lines[index]}" if index < len(lines) else f"record {index + 1}"


def _as_text(value: object) -> str:
    return "" if value is None or (isinstance(value, float) and pd.isna(value)) else str(value).strip()


def frame_to_examples(
    frame: pd.DataFrame,
    source_column: str,
    target_column: str,
    group_column: str | None = None,
    origin: str = "<data>",
    path: Path | None = None,
    file_format: str = "csv",
) -> list[Example]:
    """Turn a table into `Example`s, checking columns and non-empty fields; the group defaults to the source."""
    expected = [source_column, target_column] + ([group_column] if group_column else [])
    missing = [c for c in expected if c not in frame.columns]
    if missing:
        raise DataFormatError(
            f"{origin}: missing column(s) {missing}; columns found: {list(frame.columns)}; "
            f"expected: {expected} (set task.source_column / task.target_column / task.group_column)"
        )
    sources = [_as_text(v) for v in frame[source_column].tolist()]
    targets = [_as_text(v) for v in frame[target_column].tolist()]
    groups = [_as_text(v) for v in frame[group_column].tolist()] if group_column else sources
    for column, values in ((source_column, sources), (target_column, targets), (group_column, groups)):
        if column is None:
            continue
        for index, value in enumerate(values):
            if not value:
                where = _row_label(path, file_format, index) if path is not None else f"row {index}"
                raise DataFormatError(f"{origin}: {where} has an empty {column!r}")
    return [Example(s, t, g) for s, t, g in zip(sources, targets, groups, strict=True)]


def read_examples(
    path: str | Path,
    source_column: str,
    target_column: str,
    group_column: str | None = None,
    file_format: str = "auto",
) -> list[Example]:
    """Read and validate one local file into `Example`s, in file order."""
    path = Path(path)
    fmt = detect_format(path, file_format)
    frame = read_table(path, fmt)
    return frame_to_examples(frame, source_column, target_column, group_column, str(path), path, fmt)
