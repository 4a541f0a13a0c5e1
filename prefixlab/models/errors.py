"""Exceptions raised by the model registry and its loaders."""

from __future__ import annotations


class ModelError(RuntimeError):
    """Base class of every error the model registry raises."""


class UnknownModelError(ModelError, ValueError):
    """A model name that has no YAML file in ``conf/model/``."""


class InvalidModelConfigError(ModelError, ValueError):
    """A model config that lacks a required key or holds an unsupported value."""


class ModelUnavailableError(ModelError):
    """A known model whose weights cannot be had here (no hub access, a missing package, ...)."""
