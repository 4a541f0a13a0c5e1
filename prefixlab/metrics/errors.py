"""Exceptions raised by the metrics layer."""

from __future__ import annotations

__all__ = ["MetricBackendError", "MetricInputError"]


class MetricInputError(ValueError):
    """The outputs or references handed to a metric are malformed (counts, types, emptiness)."""


class MetricBackendError(RuntimeError):
    """An external scorer (the Java METEOR jar or the Stanford PTB tokenizer) could not run."""
