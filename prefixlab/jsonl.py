"""Reading JSON-lines files record by record, with errors that name the file and line."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from typing import Any


def json_records(
    lines: Iterable[str], where: object, required: Sequence[str], error: type[Exception], needs: str = ""
) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line; `error` names `where:line` for a line that is no JSON
    object or lacks a `required` key (`needs`, when given, is said after the missing keys)."""
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as problem:
            raise error(f"{where}:{number}: not a JSON object ({problem})") from problem
        if not isinstance(record, dict):
            raise error(f"{where}:{number}: expected a JSON object, got {type(record).__name__}")
        missing = [key for key in required if key not in record]
        if missing:
            raise error(f"{where}:{number}: missing {', '.join(missing)}" + (f" ({needs})" if needs else ""))
        yield number, record
