"""``load_model``: resolve a model name or config and dispatch it to its loader."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from omegaconf import DictConfig
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from prefixlab.models.common import DEFAULT_ATTN_IMPLEMENTATION, finalize, resolve_dtype
from prefixlab.models.gguf import load_gguf
from prefixlab.models.hub import load_hub
from prefixlab.models.registry import resolve_model_spec
from prefixlab.models.tiny import load_tiny

Loader = Callable[[dict[str, Any], torch.dtype, str], tuple[PreTrainedModel, PreTrainedTokenizerBase]]

LOADERS: dict[str, Loader] = {"hub": load_hub, "gguf": load_gguf, "tiny": load_tiny}


def load_model(
    cfg_or_name: str | Mapping[str, Any] | DictConfig,
    device: str | torch.device = "cpu",
    dtype: str | torch.dtype | None = None,
    attn_implementation: str | None = None,
    device_map: str | Mapping[str, Any] | None = None,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a model and its tokenizer by registry name or config.

    Args:
        cfg_or_name: a name from :func:`available_models`, or a dict / ``DictConfig`` (a full spec with a
            ``loader`` key, or ``{"name": ..., <overrides>}`` on top of a registered model).
        device: where to put the model.
        dtype: ``float32``, ``bfloat16`` or ``float16`` (a name or a torch dtype); None uses the config's
            ``dtype``, default float32.
        attn_implementation: None uses the config's ``attn_implementation``, default ``sdpa``.
        device_map: None uses the config's ``device_map`` (default none: the whole model on ``device``);
            ``"auto"`` (or any ``from_pretrained`` device map) spreads the layers over the visible GPUs (then
            CPU) as they are loaded, and ``device`` is ignored. Hub and gguf loaders only.

    Returns:
        ``(model, tokenizer)``: the model in eval mode on ``device`` and ``dtype``, parameters not frozen;
        the tokenizer with a pad token (its eos token where it had none).

    Raises:
        UnknownModelError: an unknown name; the message lists the available ones.
        ModelUnavailableError: the weights cannot be had here (hub unreachable, package missing).
    """
    spec = resolve_model_spec(cfg_or_name)
    if device_map is not None:
        spec = resolve_model_spec({**spec, "device_map": device_map})
    torch_dtype = resolve_dtype(dtype if dtype is not None else spec.get("dtype"))
    attn = attn_implementation or spec.get("attn_implementation") or DEFAULT_ATTN_IMPLEMENTATION
    model, tokenizer = LOADERS[spec["loader"]](spec, torch_dtype, attn)
    return finalize(model, tokenizer, device, torch_dtype, placed=spec.get("device_map") is not None)
