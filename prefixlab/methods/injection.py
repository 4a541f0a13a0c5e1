"""Inject virtual-token keys/values into a frozen transformers model at the attention-function level.

transformers models call their attention kernel through `ALL_ATTENTION_FUNCTIONS[config._attn_implementation]`
with the per-head query, key and value (keys after RoPE, before GQA repetition) and the 4D mask. prefixlab
registers its own implementation that inserts the virtual tokens' keys/values at a column of the key
sequence and extends the mask (and T5's relative position bias), then calls the original kernel (sdpa or
eager). Because the insertion happens at every call, the same mechanism serves training, cached decoding and
beam search (the batch is read from the query), decoder-only and encoder-decoder models, and no cache object is
touched. The virtual keys/values are moved to the device and dtype of the key tensor each layer gets, so a model
spread over several devices (`device_map`) or held in bfloat16 works with a float32 prefix on one device.

Each attention module gets a *slot*: (set name, layer index). Sets are "decoder" for decoder-only models,
and "encoder", "decoder" and "cross" for encoder-decoder models; they are found by one dry run.

Semantics (the method's definition, Li & Liang 2021): a prefix is visible to every query in every layer; an
infix to every query from the source's last token on. This holds in sliding-window layers too (Mistral,
Gemma 2, Gemma 3): the window limits which *real* tokens a query sees, never the virtual ones. A
cache-based prefix (PEFT's past key/values) instead behaves like real tokens at positions 0..L-1: a sliding
window hides it from queries more than a window away, and the sliding cache drops it. Inside the window both
are the same. Relative position bias (T5 family): the virtual columns get no bias by default (the virtual tokens
have no position, as the real tokens' positions start at 0 without a prefix, like BART's default); with
`position_offset` they get the bias that real tokens at positions 0..L-1 before the sequence would get.

Wrapping is local: `attach` gives the model private copies of its configs before switching their
`_attn_implementation`, so other models built from the same config object keep their own kernel; a module
without prefixlab state (never the case after `attach`) simply runs the plain kernel.
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from transformers import AttentionInterface, AttentionMaskInterface, PreTrainedConfig
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import eager_mask, sdpa_mask

SUPPORTED_KERNELS = ("sdpa", "eager")
ENCODER_DECODER_SETS = ("encoder", "decoder", "cross")
# Model types whose attention adds ALiBi, a bias computed from each key's position (Falcon and MPT say so in
# their configs instead: `alibi`, `attn_config.alibi`).
ALIBI_MODEL_TYPES = ("bloom",)
_STATE_ATTRIBUTES = ("_prefixlab_state", "_prefixlab_slot", "_prefixlab_bias_owner")


class UnsupportedModelError(ValueError):
    """The model does not route attention through transformers' attention interface in a supported way."""


@dataclass
class SetLayout:
    """Shape of one prefix set: how many attention layers, key/value heads and the head size."""

    layers: int
    kv_heads: int
    head_dim: int

    @property
    def width(self) -> int:
        """Numbers stored per virtual token for this set (layers x 2 x kv_heads x head_dim)."""
        return self.layers * 2 * self.kv_heads * self.head_dim


@dataclass
class _Call:
    """One attention call seen during the dry run."""

    module: nn.Module
    key_shape: torch.Size
    causal: bool
    bias_columns: int | None


@dataclass
class InjectionState:
    """What the attention wrapper inserts right now; shared by every wrapped attention module of a model.

    `kv[set_name]` holds one (key, value) pair of shape (kv_heads, length, head_dim) per layer, or None when that
    set is inactive; `injecting` splits the (layers, 2, kv_heads, length, head_dim) tensor once per block, because
    indexing it per layer would make every layer's backward zero-fill and sum a gradient of the whole prefix.
    `insert_at` is the key column where the virtual tokens go (0 for a prefix; for an infix the column of the
    source's last token). `position_shift` is the prefix length when the real tokens' positions start after the
    virtual tokens in an encoder-decoder model (`position_offset`): it is added to learned position embeddings
    (BART) and places the virtual tokens at 0..L-1 for a relative position bias (T5). With `capture` set to a
    dict, the wrapper records each slot's keys/values instead.
    """

    kernel: str = "sdpa"
    kv: dict[str, list[tuple[torch.Tensor, torch.Tensor]] | None] = field(default_factory=dict)
    insert_at: int = 0
    infix: bool = False
    position_shift: int = 0
    capture: dict[tuple[str, int], tuple[torch.Tensor, torch.Tensor]] | None = None
    calls: list[_Call] | None = None
    layouts: dict[str, SetLayout] = field(default_factory=dict)


def _kernel_for(module: nn.Module, kernel: str) -> Callable[..., Any]:
    if kernel == "sdpa":
        return sdpa_attention_forward
    eager = getattr(sys.modules[type(module).__module__], "eager_attention_forward", None)
    if eager is None:
        raise UnsupportedModelError(f"{type(module).__name__} has no eager_attention_forward; use sdpa.")
    return eager


def _causal(module: nn.Module, kwargs: dict) -> bool:
    flag = kwargs.get("is_causal")
    return bool(getattr(module, "is_causal", True) if flag is None else flag)


def _as_mask(visible: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """A boolean visibility tensor as a mask of `dtype`: itself for bool; else additive (0 where visible, the
    dtype's minimum elsewhere), as eager kernels take it."""
    if dtype == torch.bool:
        return visible
    return torch.where(visible, torch.zeros((), dtype=dtype, device=visible.device), torch.finfo(dtype).min)


def _full_mask(query: torch.Tensor, key: torch.Tensor, causal: bool, additive: bool) -> torch.Tensor:
    """The mask (1, 1, Q, K) that a `None` mask stands for (queries are the last Q key columns): boolean for
    sdpa, additive in the query's dtype for eager kernels."""
    q_len, k_len = query.shape[2], key.shape[2]
    rows = torch.arange(k_len - q_len, k_len, device=query.device)[:, None]
    cols = torch.arange(k_len, device=query.device)[None, :]
    visible = (cols <= rows) if causal else torch.ones(q_len, k_len, dtype=torch.bool, device=query.device)
    return _as_mask(visible[None, None], query.dtype if additive else torch.bool)


def _insert(tensor: torch.Tensor, extra: torch.Tensor, at: int, dim: int) -> torch.Tensor:
    return torch.cat(
        [tensor.narrow(dim, 0, at), extra, tensor.narrow(dim, at, tensor.shape[dim] - at)], dim=dim
    )


def _extend_mask(
    mask: torch.Tensor, query_len: int, key_len: int, length: int, at: int, infix: bool
) -> torch.Tensor:
    """Mask columns for the virtual tokens, inserted at column `at`: a prefix is visible to every query; an infix
    to every query at or after the source's last token (column `at`), so the rest of the source never sees it.
    No sliding window applies to them. A cached step (fewer queries than keys) decodes targets, which all come
    after the source."""
    if infix and query_len == key_len:
        rows = torch.arange(query_len, device=mask.device)[:, None] >= at
        visible = rows.expand(*mask.shape[:-2], query_len, length)
    else:
        visible = torch.ones(*mask.shape[:-1], length, dtype=torch.bool, device=mask.device)
    return _insert(mask, _as_mask(visible, mask.dtype), at, dim=-1)


def _extend_bias(
    module: nn.Module, state: InjectionState, bias: torch.Tensor, query_len: int, key_len: int, length: int
) -> torch.Tensor:
    """Relative position bias (T5 family) for the virtual columns, inserted before the real ones: none by
    default; with `position_offset` the bias real tokens at positions 0..L-1 would get, the sequence's own
    tokens then sitting at L.. (a relative bias is the same for them either way)."""
    owner = getattr(module, "_prefixlab_bias_owner", None)
    if owner is None or not state.position_shift:
        extra = torch.zeros(*bias.shape[:-1], length, dtype=bias.dtype, device=bias.device)
    else:
        full = owner.compute_bias(
            query_len,
            length + key_len,
            device=owner.relative_attention_bias.weight.device,
            past_seen_tokens=length + key_len - query_len,
        )
        extra = full[..., :length].to(device=bias.device, dtype=bias.dtype).expand(*bias.shape[:-1], length)
    return _insert(bias, extra, 0, dim=-1)


def _attention(kernel_name: str) -> Callable[..., Any]:
    """The attention implementation registered as `prefixlab_<kernel_name>`."""

    def prefix_attention(module: nn.Module, query, key, value, attention_mask, **kwargs):
        """Insert this module's virtual keys/values (if any are active), then attend with the plain kernel."""
        kernel = _kernel_for(module, kernel_name)
        state: InjectionState | None = getattr(module, "_prefixlab_state", None)
        if state is None:
            return kernel(module, query, key, value, attention_mask, **kwargs)
        bias = kwargs.get("position_bias")
        if state.calls is not None:
            columns = None if bias is None else bias.shape[-1]
            state.calls.append(_Call(module, key.shape, _causal(module, kwargs), columns))
        slot = getattr(module, "_prefixlab_slot", None)
        if state.capture is not None and slot is not None:
            state.capture[slot] = (key.detach(), value.detach())
        pairs = state.kv.get(slot[0]) if slot is not None else None
        if pairs is not None:
            batch, query_len, key_len = query.shape[0], query.shape[2], key.shape[2]
            layer_k, layer_v = pairs[slot[1]]
            length = layer_k.shape[1]
            virtual_k = layer_k.to(device=key.device, dtype=key.dtype).unsqueeze(0).expand(batch, -1, -1, -1)
            virtual_v = (
                layer_v.to(device=value.device, dtype=value.dtype).unsqueeze(0).expand(batch, -1, -1, -1)
            )
            at = state.insert_at if state.infix else 0
            causal = _causal(module, kwargs)
            if attention_mask is None and (state.infix or causal):
                attention_mask = _full_mask(query, key, causal, additive=kernel_name == "eager")
            if attention_mask is not None:
                attention_mask = _extend_mask(attention_mask, query_len, key_len, length, at, state.infix)
            if bias is not None:
                kwargs["position_bias"] = _extend_bias(module, state, bias, query_len, key_len, length)
            key = _insert(key, virtual_k, at, dim=2)
            value = _insert(value, virtual_v, at, dim=2)
            kwargs.pop("is_causal", None)
        return kernel(module, query, key, value, attention_mask, **kwargs)

    prefix_attention.__name__ = f"prefixlab_{kernel_name}"
    return prefix_attention


for _kernel in SUPPORTED_KERNELS:
    AttentionInterface.register(f"prefixlab_{_kernel}", _attention(_kernel))
AttentionMaskInterface.register("prefixlab_sdpa", sdpa_mask)
AttentionMaskInterface.register("prefixlab_eager", eager_mask)


def _dry_run_inputs(model: nn.Module) -> dict[str, torch.Tensor]:
    device = next(model.parameters()).device
    ids = torch.ones(1, 2, dtype=torch.long, device=device)
    if model.config.is_encoder_decoder:
        return {"input_ids": ids, "decoder_input_ids": ids}
    return {"input_ids": ids}


def unsupported_reason(model: nn.Module) -> str | None:
    """Why prefixlab cannot reach `model`'s attention, known from its class and config alone; None if it may.

    ALiBi models (BLOOM, MPT, Falcon with `alibi=True`) add a bias computed from every key's position, outside
    the attention interface, and virtual tokens have no position. Models whose modeling code computes attention
    itself instead of calling transformers' attention interface (e.g. Falcon) never hand their keys to prefixlab.
    """
    config = model.config
    name = type(model).__name__
    attn_config = getattr(config, "attn_config", None)
    if (
        config.model_type in ALIBI_MODEL_TYPES
        or getattr(config, "alibi", False) is True
        or getattr(attn_config, "alibi", False) is True
    ):
        return (
            f"{name} uses ALiBi attention biases: the bias depends on every key's position and is built outside "
            "transformers' attention interface, and virtual tokens have no position, so prefixlab cannot insert "
            "them. Use a model with rotary, learned or relative (T5) positions."
        )
    can_set = getattr(type(model), "_can_set_attn_implementation", None)
    if can_set is not None and not can_set():
        return (
            f"{name} computes attention in its own code instead of calling transformers' attention interface "
            "(ALL_ATTENTION_FUNCTIONS), so prefixlab cannot reach its keys/values."
        )
    return None


def _own_configs(model: nn.Module) -> None:
    """Give `model` private copies of the config objects its modules hold (shared ones stay shared, sub-configs
    stay nested), so that switching its attention implementation never touches another model's config."""
    memo: dict[int, Any] = {}
    for module in model.modules():
        config = module.__dict__.get("config")
        if isinstance(config, PreTrainedConfig):
            module.config = copy.deepcopy(config, memo)


def _detach(model: nn.Module, kernel: str) -> None:
    """Undo a failed `attach`: the plain kernel again and no prefixlab attributes."""
    model.set_attn_implementation(kernel)
    for module in model.modules():
        for name in _STATE_ATTRIBUTES:
            module.__dict__.pop(name, None)


def attach(model: nn.Module) -> tuple[InjectionState, dict[str, SetLayout]]:
    """Route `model`'s attention through prefixlab and find its prefix sets with one dry run.

    Returns the shared injection state and the layout of each set ("decoder"; or "encoder", "decoder",
    "cross" for encoder-decoder models). Raises `UnsupportedModelError`, leaving the model as it was, for
    models whose keys/values cannot be reached (see `unsupported_reason`; also attention layers that never call
    the interface, or a position bias prefixlab cannot extend). A model that is already attached (another
    PrefixModel wraps it) keeps its state, so several wrappers can share one base. Other models built from the
    same config object are never affected.
    """
    existing = getattr(model, "_prefixlab_state", None)
    if existing is not None:
        return existing, existing.layouts
    reason = unsupported_reason(model)
    if reason is not None:
        raise UnsupportedModelError(reason)
    kernel = model.config._attn_implementation or "sdpa"
    kernel = kernel.removeprefix("prefixlab_")
    if kernel not in SUPPORTED_KERNELS:
        raise UnsupportedModelError(
            f"attention implementation {kernel!r} is not supported; load the model with "
            f"attn_implementation='sdpa' or 'eager'."
        )
    _own_configs(model)
    state = InjectionState(kernel=kernel, calls=[])
    for module in model.modules():
        module._prefixlab_state = state
    model.set_attn_implementation(f"prefixlab_{kernel}")
    try:
        with torch.no_grad():
            model(**_dry_run_inputs(model), use_cache=False)
        state.layouts = _assign_slots(model, state.calls)
    except BaseException:
        _detach(model, kernel)
        raise
    finally:
        state.calls = None
    for embed_positions in shiftable_position_embeddings(model):
        embed_positions.register_forward_pre_hook(
            lambda module, args, kwargs: _shift_positions(state, args, kwargs), with_kwargs=True
        )
    return state, state.layouts


def _assign_slots(model: nn.Module, calls: list[_Call]) -> dict[str, SetLayout]:
    """Name each attention module's slot from the dry run's calls and return the layout of each set."""
    name_of_model = type(model).__name__
    if not calls:
        raise UnsupportedModelError(
            f"{name_of_model} never called transformers' attention interface; prefixlab cannot inject prefixes "
            "into it (its attention is custom code)."
        )
    layouts: dict[str, SetLayout] = {}
    bias_owner: dict[str, nn.Module | None] = {}
    seen_causal = False
    for call in calls:
        module = call.module
        if model.config.is_encoder_decoder:
            seen_causal = seen_causal or call.causal
            name = "decoder" if call.causal else ("cross" if seen_causal else "encoder")
        else:
            name = "decoder"
        previous = layouts.get(name)
        index = previous.layers if previous is not None else 0
        module._prefixlab_slot = (name, index)
        layout = SetLayout(layers=index + 1, kv_heads=call.key_shape[1], head_dim=call.key_shape[3])
        if previous is not None and (previous.kv_heads, previous.head_dim) != (
            layout.kv_heads,
            layout.head_dim,
        ):
            raise UnsupportedModelError(f"attention layers of set {name!r} differ in key/value shape.")
        layouts[name] = layout
        if isinstance(getattr(module, "relative_attention_bias", None), nn.Embedding):
            bias_owner[name] = (
                module  # T5: the first layer computes the bias every later layer of its stack reuses
            )
        if call.bias_columns is not None:
            owner = bias_owner.get(name)
            if call.bias_columns != call.key_shape[2] or (
                owner is not None and not hasattr(owner, "compute_bias")
            ):
                raise UnsupportedModelError(
                    f"{type(module).__name__} passes a position bias that prefixlab cannot extend to virtual tokens "
                    "(only T5-style relative position biases, one column per key, are supported)."
                )
            module.__dict__["_prefixlab_bias_owner"] = owner  # not a submodule: no cycle in modules()
    if model.config.is_encoder_decoder:
        missing = [name for name in ENCODER_DECODER_SETS if name not in layouts]
        if missing:
            raise UnsupportedModelError(
                f"{name_of_model}: the {', '.join(missing)} attention never called transformers' attention "
                "interface (custom attention code, e.g. LongT5's local attention), so prefixlab cannot place all "
                "three prefix sets."
            )
    return layouts


def relative_position_bias(model: nn.Module) -> bool:
    """Whether `model` has a T5-style relative position bias (a `relative_attention_bias` embedding)."""
    return any(isinstance(getattr(m, "relative_attention_bias", None), nn.Embedding) for m in model.modules())


def shiftable_position_embeddings(model: nn.Module) -> list[nn.Module]:
    """The learned position embeddings of an encoder-decoder model whose forward takes `cache_length` (BART
    family); empty when the model has none."""
    if not model.config.is_encoder_decoder:
        return []
    modules = [
        getattr(stack, "embed_positions", None) for stack in (model.get_encoder(), model.get_decoder())
    ]
    if any(m is None or "cache_length" not in inspect.signature(m.forward).parameters for m in modules):
        return []
    return modules


def _shift_positions(state: InjectionState, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    """Forward pre-hook of BART-style position embeddings: add `state.position_shift` to the positions."""
    shift = state.position_shift
    if not shift:
        return args, kwargs
    args = list(args)
    if kwargs.get("position_ids") is not None:
        kwargs["position_ids"] = kwargs["position_ids"] + shift
    elif len(args) > 2 and args[2] is not None:
        args[2] = args[2] + shift
    elif len(args) > 1:
        args[1] = args[1] + shift
    else:
        kwargs["cache_length"] = kwargs.get("cache_length", 0) + shift
    return tuple(args), kwargs


def snapshot(state: InjectionState) -> tuple:
    """What `state` injects right now, for `restored` (activation checkpointing replays a layer later)."""
    return (state.kv, state.infix, state.insert_at, state.position_shift)


@contextlib.contextmanager
def restored(state: InjectionState, saved: tuple) -> Iterator[None]:
    """Within the block, `state` injects what it injected when `snapshot` returned `saved`."""
    previous = snapshot(state)
    state.kv, state.infix, state.insert_at, state.position_shift = saved
    try:
        yield
    finally:
        state.kv, state.infix, state.insert_at, state.position_shift = previous


def injecting(
    state: InjectionState,
    kv: dict[str, torch.Tensor],
    *,
    infix: bool = False,
    insert_at: int = 0,
    position_shift: int = 0,
) -> contextlib.AbstractContextManager[None]:
    """Within the block, the wrapped model attends to the virtual keys/values `kv`, one
    (layers, 2, kv_heads, length, head_dim) tensor (or None) per set (see InjectionState)."""
    pairs = {
        name: None if t is None else [layer.unbind(0) for layer in t.unbind(0)] for name, t in kv.items()
    }
    return restored(state, (pairs, infix, insert_at, position_shift))


@contextlib.contextmanager
def capturing(state: InjectionState) -> Iterator[dict[tuple[str, int], tuple[torch.Tensor, torch.Tensor]]]:
    """Within the block, record each attention slot's keys/values of the last call (for real-token init
    and for tests that compare virtual tokens with real ones)."""
    state.capture = {}
    try:
        yield state.capture
    finally:
        state.capture = None


def stack_captured(
    captured: dict[tuple[str, int], tuple[torch.Tensor, torch.Tensor]],
    layouts: dict[str, SetLayout],
    columns: slice,
    batch_index: int = 0,
) -> dict[str, torch.Tensor]:
    """Turn captured keys/values into prefix tensors (layers, 2, kv_heads, length, head_dim) per set,
    taking the key columns `columns` of one batch row."""
    out = {}
    for name, layout in layouts.items():
        per_layer = []
        for layer in range(layout.layers):
            key, value = captured[(name, layer)]
            per_layer.append(torch.stack([key[batch_index, :, columns], value[batch_index, :, columns]]))
        out[name] = torch.stack(per_layer)
    return out
