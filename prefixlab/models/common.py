"""Helpers shared by the loaders: dtypes, auto classes, pad tokens and the final eval/device step."""

from __future__ import annotations

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoModelForSeq2SeqLM,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from prefixlab.models.errors import InvalidModelConfigError
from prefixlab.models.registry import DTYPES

DEFAULT_DTYPE = "float32"
DEFAULT_ATTN_IMPLEMENTATION = "sdpa"

# A tokenizer whose model_max_length is at least this holds transformers' "no limit" placeholder.
_NO_MAX_LENGTH = int(1e29)


def resolve_dtype(dtype: str | torch.dtype | None) -> torch.dtype:
    """Return the torch dtype for a name (``float32``, ``bfloat16``, ``float16``), a dtype, or None (float32)."""
    if dtype is None:
        dtype = DEFAULT_DTYPE
    if isinstance(dtype, torch.dtype):
        if str(dtype).removeprefix("torch.") not in DTYPES:
            raise InvalidModelConfigError(f"dtype {dtype} is not supported; use one of {', '.join(DTYPES)}.")
        return dtype
    if dtype not in DTYPES:
        raise InvalidModelConfigError(f"dtype {dtype!r} is not supported; use one of {', '.join(DTYPES)}.")
    return getattr(torch, dtype)


def auto_model_class(family: str) -> type:
    """Return the transformers auto class for a model family (``decoder_only`` or ``encoder_decoder``)."""
    if family == "decoder_only":
        return AutoModelForCausalLM
    if family == "encoder_decoder":
        return AutoModelForSeq2SeqLM
    raise InvalidModelConfigError(f"Unknown model family {family!r}.")


def ensure_pad_token(tokenizer: PreTrainedTokenizerBase) -> None:
    """Give ``tokenizer`` a pad token if it has none: its eos token (as for GPT-2), else its unk token.

    No token is ever added, so the vocabulary (and the model's embedding matrix) keeps its size.
    """
    if tokenizer.pad_token is not None:
        return
    fallback = tokenizer.eos_token if tokenizer.eos_token is not None else tokenizer.unk_token
    if fallback is None:
        raise InvalidModelConfigError("The tokenizer has no pad, eos or unk token to pad with.")
    tokenizer.pad_token = fallback


def sync_special_token_ids(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> None:
    """Copy the tokenizer's pad token id to the model config and generation config where they lack one."""
    if getattr(model.config, "pad_token_id", None) is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    generation_config = getattr(model, "generation_config", None)
    if generation_config is not None and generation_config.pad_token_id is None:
        generation_config.pad_token_id = tokenizer.pad_token_id


def cap_model_max_length(tokenizer: PreTrainedTokenizerBase, model: PreTrainedModel) -> None:
    """Set ``tokenizer.model_max_length`` to the model's context size where the tokenizer sets no limit."""
    limit = getattr(model.config, "max_position_embeddings", None) or getattr(
        model.config, "n_positions", None
    )
    if limit and tokenizer.model_max_length >= _NO_MAX_LENGTH:
        tokenizer.model_max_length = int(limit)


def finalize(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    device: str | torch.device,
    dtype: torch.dtype,
    placed: bool = False,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Set the pad token, move ``model`` to ``device`` and ``dtype`` and switch it to eval mode.

    ``placed``: the loader already put the weights on their devices (a ``device_map``), so they stay there.
    Parameters are left trainable (``requires_grad`` untouched): freezing is the caller's job.
    """
    ensure_pad_token(tokenizer)
    sync_special_token_ids(model, tokenizer)
    cap_model_max_length(tokenizer, model)
    if not placed:
        model.to(device=torch.device(device), dtype=dtype)
    model.eval()
    return model, tokenizer
