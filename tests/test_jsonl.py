"""JSON-lines records: blank lines skipped, and each bad line named by file and line number."""

from __future__ import annotations

import pytest

from prefixlab.jsonl import json_records


def test_records_with_their_line_numbers_and_blank_lines_skipped():
    lines = ['{"a": 1}', "", "  ", '{"a": 2, "b": 3}']
    assert list(json_records(lines, "f.jsonl", ("a",), ValueError)) == [(1, {"a": 1}), (4, {"a": 2, "b": 3})]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", r"f.jsonl:2: not a JSON object"),
        ("[1, 2]", r"f.jsonl:2: expected a JSON object, got list"),
        ('{"b": 1}', r"f.jsonl:2: missing a \(needs a\)"),
    ],
)
def test_a_bad_line_names_file_and_line(line, message):
    with pytest.raises(LookupError, match=message):
        list(json_records(['{"a": 0}', line], "f.jsonl", ("a",), LookupError, needs="needs a"))
