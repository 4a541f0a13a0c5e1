"""Input checks shared by the metric entry points; every failure raises `MetricInputError`."""

from __future__ import annotations

from collections.abc import Sequence

from prefixlab.metrics.errors import MetricInputError

__all__ = ["check_multi_references", "check_outputs", "check_single_or_multi_references"]


def _is_sequence(value: object) -> bool:
    """True for lists and tuples (and other sequences), False for strings and bytes."""
    return isinstance(value, Sequence) and not isinstance(value, str | bytes)


def check_outputs(outputs: object) -> list[str]:
    """Check that ``outputs`` is a non-empty sequence of strings and return it as a list."""
    if not _is_sequence(outputs):
        raise MetricInputError(f"outputs must be a list of strings, got {type(outputs).__name__}")
    outputs = list(outputs)  # type: ignore[arg-type]
    if not outputs:
        raise MetricInputError("outputs is empty: nothing to score")
    for i, out in enumerate(outputs):
        if not isinstance(out, str):
            raise MetricInputError(f"outputs[{i}] must be a string, got {type(out).__name__}: {out!r}")
    return outputs


def _check_count(references: list[object], n_outputs: int) -> None:
    if len(references) != n_outputs:
        raise MetricInputError(
            f"outputs and references have different counts: {n_outputs} outputs but "
            f"{len(references)} reference entries (one entry, a list of references, per output)"
        )


def _check_ref_group(group: object, i: int) -> list[str]:
    if not _is_sequence(group):
        raise MetricInputError(
            f"references[{i}] must be a list of reference strings, got {type(group).__name__}: {group!r}"
        )
    group = list(group)  # type: ignore[arg-type]
    if not group:
        raise MetricInputError(f"references[{i}] is empty: every output (MR) needs at least one reference")
    for j, ref in enumerate(group):
        if not isinstance(ref, str):
            raise MetricInputError(
                f"references[{i}][{j}] must be a string, got {type(ref).__name__}: {ref!r}"
            )
        if not ref.strip():
            raise MetricInputError(
                f"references[{i}][{j}] is an empty string: drop it (an empty reference is not a reference)"
            )
    return group


def check_multi_references(references: object, n_outputs: int) -> list[list[str]]:
    """Check multi-reference input: one non-empty list of non-empty strings per output."""
    if not _is_sequence(references):
        raise MetricInputError(
            f"references must be a list of lists of strings, got {type(references).__name__}"
        )
    references = list(references)  # type: ignore[arg-type]
    _check_count(references, n_outputs)
    return [_check_ref_group(group, i) for i, group in enumerate(references)]


def check_single_or_multi_references(references: object, n_outputs: int) -> list[list[str]]:
    """Accept one string per output or one list of strings per output; return the list-of-lists form."""
    if not _is_sequence(references):
        raise MetricInputError(
            f"references must be a list of strings or of lists of strings, got {type(references).__name__}"
        )
    references = list(references)  # type: ignore[arg-type]
    _check_count(references, n_outputs)
    groups: list[list[str]] = []
    for i, entry in enumerate(references):
        if isinstance(entry, str) and not entry.strip():
            raise MetricInputError(f"references[{i}] is an empty string: every output needs a reference")
        groups.append(_check_ref_group([entry] if isinstance(entry, str) else entry, i))
    return groups
