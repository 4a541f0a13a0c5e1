"""Exceptions of the task layer: data that cannot be found, and data that cannot be read."""

from __future__ import annotations


class DataNotFoundError(FileNotFoundError):
    """The data of a task is neither in the local data folder nor reachable on the Hugging Face hub."""


class DataFormatError(ValueError):
    """A data file exists but cannot be used: missing columns, empty fields, no rows, bad syntax."""
