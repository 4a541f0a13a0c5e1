"""Deterministic splits by a hash of the group key: no group (MR, article id) lands in two splits."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

from prefixlab.tasks.examples import Example


def hash_unit(key: str, salt: str = "prefixlab") -> float:
    """A number in [0, 1) fixed by sha256(salt, key): the same on every machine and Python version."""
    digest = hashlib.sha256(f"{salt}\x00{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split_by_group(
    examples: Sequence[Example],
    holdout: Mapping[str, float],
    salt: str = "prefixlab",
    rest: str = "train",
) -> dict[str, list[Example]]:
    """Rank the distinct groups by hash; hand out `round(fraction * groups)` of them to each held-out split
    in order, the remaining groups to `rest`. Pairs keep their file order within each split."""
    groups = list(dict.fromkeys(ex.group for ex in examples))
    ranked = sorted(groups, key=lambda g: (hash_unit(g, salt), g))
    assignment: dict[str, str] = {}
    start = 0
    for name, fraction in holdout.items():
        count = round(fraction * len(ranked))
        if fraction > 0 and count == 0 and len(ranked) - start > 1:
            count = 1
        for group in ranked[start : start + count]:
            assignment[group] = name
        start += count
    for group in ranked[start:]:
        assignment[group] = rest
    splits: dict[str, list[Example]] = {name: [] for name in (*holdout, rest)}
    for ex in examples:
        splits[assignment[ex.group]].append(ex)
    return splits
