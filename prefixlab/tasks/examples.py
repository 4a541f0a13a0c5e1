"""Plain records for data: one (source, target) pair, and one source with all of its references."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Example:
    """One training or evaluation pair; `group` identifies the source (e.g. the MR or the article id)."""

    source: str
    target: str
    group: str


@dataclass(frozen=True)
class GroupedExample:
    """One distinct source with every reference written for it, in file order."""

    source: str
    references: list[str]
    group: str


def group_examples(examples: Iterable[Example]) -> list[GroupedExample]:
    """Group pairs by `group`, in order of first appearance; the source is the group's first source."""
    sources: dict[str, str] = {}
    references: dict[str, list[str]] = {}
    for ex in examples:
        if ex.group not in sources:
            sources[ex.group] = ex.source
            references[ex.group] = []
        references[ex.group].append(ex.target)
    return [GroupedExample(sources[g], references[g], g) for g in sources]


def count_groups(examples: Iterable[Example]) -> int:
    """Number of distinct groups (distinct sources) among `examples`."""
    return len({ex.group for ex in examples})
