"""Inject virtual-token keys/values into a frozen transformers model at the attention-function level.

transformers models call their attention kernel through `ALL_ATTENTION_FUNCTIONS[config._attn_implementation]`
with the per-head query, key and value (keys after RoPE, before GQA repetition) and the 4D mask. prefixlab
registers its own implementation that inserts the virtual tokens' keys/values at a column of the key
sequence and extends the mask, then calls the original kernel (sdpa or eager). Because the insertion happens
at every call, the same mechanism serves training, cached decoding and beam search (the batch is read from
the query), decoder-only and encoder-decoder models, and no cache object is touched.

Each attention module gets a *slot*: (set name, layer index). Sets are "decoder" for decoder-only models,
and "encoder", "decoder" and "cross" for encoder-decoder models; they are found by one dry run.
"""

from __future__ import annotations

import contextlib
import inspect
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
from torch import nn
from transformers import AttentionInterface, AttentionMaskInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import eager_mask, sdpa_mask

SUPPORTED_KERNELS = ("sdpa", "eager")


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
class InjectionState:
    """What the attention wrapper inserts right now; shared by every wrapped attention module of a model.

    `kv[set_name]` holds one (key, value) pair of shape (kv_heads, length, head_dim) per layer, or None when that
    set is inactive; `injecting` splits the (layers, 2, kv_heads, length, head_dim) tensor once per block, because
    indexing it per layer would make every layer's backward zero-fill and sum a gradient of the whole prefix.
    `insert_at` is the key column where the virtual tokens go (0 for a prefix; for an infix the column of the
    source's last token). `position_shift` is added to the positions of encoder-decoder models with learned
    position embeddings (BART) while injecting. With `capture` set to a dict, the wrapper records each slot's keys/values instead.
    """

    kernel: str = "sdpa"
    kv: dict[str, list[tuple[torch.Tensor, torch.Tensor]] | None] = field(default_factory=dict)
    insert_at: int = 0
    infix: bool = False
    position_shift: int = 0
    capture: dict[tuple[str, int], tuple[torch.Tensor, torch.Tensor]] | None = None
    calls: list[tuple[nn.Module, torch.Size, bool]] | None = None
    layouts: dict[str, SetLayout] = field(default_factory=dict)


def _kernel_for(module: nn.Module, kernel: str):
    if kernel == "sdpa":
        return sdpa_attention_forward
    eager = getattr(sys.modules[type(module).__module__], "eager_attention_forward", None)
    if eager is None:
        raise UnsupportedModelError(f"{type(module).__name__} has no eager_attention_forward; use sdpa.")
    return eager


def _causal(module: nn.Module, kwargs: dict) -> bool:
    flag = kwargs.get("is_causal")
    return bool(getattr(module, "is_causal", True) if flag is None else flag)


def _full_mask(query: torch.Tensor, key: torch.Tensor, causal: bool) -> torch.Tensor:
    """The boolean mask (1, 1, Q, K) that a `None` mask stands for: queries are the last Q key columns."""
    q_len, k_len = query.shape[2], key.shape[2]
    if not causal:
        return torch.ones(1, 1, q_len, k_len, dtype=torch.bool, device=query.device)
    rows = torch.arange(k_len - q_len, k_len, device=query.device)[:, None]
    cols = torch.arange(k_len, device=query.device)[None, :]
    return (cols <= rows)[None, None]


def _insert(tensor: torch.Tensor, extra: torch.Tensor, at: int) -> torch.Tensor:
    return torch.cat([tensor[:, :, :at], extra, tensor[:, :, at:]], dim=2)


def _extend_mask(mask: torch.Tensor, length: int, at: int, infix: bool) -> torch.Tensor:
    """Mask columns for the virtual tokens: always visible for a prefix; for an infix, visible exactly to
    the queries that see the source's last token (column `at`), so the rest of the source never sees them."""
    if infix:
        new = mask[..., at : at + 1].expand(*mask.shape[:-1], length)
    elif mask.dtype == torch.bool:
        new = torch.ones(*mask.shape[:-1], length, dtype=torch.bool, device=mask.device)
    else:
        new = torch.zeros(*mask.shape[:-1], length, dtype=mask.dtype, device=mask.device)
    return torch.cat([mask[..., :at], new, mask[..., at:]], dim=-1)


def prefix_attention(module: nn.Module, query, key, value, attention_mask, **kwargs):
    """The registered attention implementation: insert this module's virtual keys/values, then attend."""
    state: InjectionState | None = getattr(module, "_prefixlab_state", None)
    if state is None:
        raise UnsupportedModelError(f"{type(module).__name__} uses prefixlab attention but was not wrapped.")
    kernel = _kernel_for(module, state.kernel)
    if state.calls is not None:
        state.calls.append((module, key.shape, _causal(module, kwargs)))
    slot = getattr(module, "_prefixlab_slot", None)
    if state.capture is not None and slot is not None:
        state.capture[slot] = (key.detach(), value.detach())
    pairs = state.kv.get(slot[0]) if slot is not None else None
    if pairs is not None:
        batch = query.shape[0]
        layer_k, layer_v = pairs[slot[1]]
        virtual_k = layer_k.to(key.dtype).unsqueeze(0).expand(batch, -1, -1, -1)
        virtual_v = layer_v.to(value.dtype).unsqueeze(0).expand(batch, -1, -1, -1)
        at = state.insert_at if state.infix else 0
        causal = _causal(module, kwargs)
        if attention_mask is None and (state.infix or causal):
            attention_mask = _full_mask(query, key, causal)
        if attention_mask is not None:
            attention_mask = _extend_mask(attention_mask, layer_k.shape[1], at, state.infix)
        key = _insert(key, virtual_k, at)
        value = _insert(value, virtual_v, at)
        kwargs.pop("is_causal", None)
    return kernel(module, query, key, value, attention_mask, **kwargs)


for _kernel in SUPPORTED_KERNELS:
    AttentionInterface.register(f"prefixlab_{_kernel}", prefix_attention)
AttentionMaskInterface.register("prefixlab_sdpa", sdpa_mask)
AttentionMaskInterface.register("prefixlab_eager", eager_mask)


def _dry_run_inputs(model: nn.Module) -> dict[str, torch.Tensor]:
    device = next(model.parameters()).device
    ids = torch.ones(1, 2, dtype=torch.long, device=device)
    if model.config.is_encoder_decoder:
        return {"input_ids": ids, "decoder_input_ids": ids}
    return {"input_ids": ids}


def attach(model: nn.Module) -> tuple[InjectionState, dict[str, SetLayout]]:
    """Route `model`'s attention through prefixlab and find its prefix sets with one dry run.

    Returns the shared injection state and the layout of each set ("decoder"; or "encoder", "decoder",
    "cross" for encoder-decoder models). Raises `UnsupportedModelError` for models whose attention does not
    go through transformers' attention interface (their keys/values cannot be reached). A model that is
    already attached (another PrefixModel wraps it) keeps its state, so several wrappers can share one base.
    """
    existing = getattr(model, "_prefixlab_state", None)
    if existing is not None:
        return existing, existing.layouts
    kernel = model.config._attn_implementation or "sdpa"
    kernel = kernel.removeprefix("prefixlab_")
    if kernel not in SUPPORTED_KERNELS:
        raise UnsupportedModelError(
            f"attention implementation {kernel!r} is not supported; load the model with "
            f"attn_implementation='sdpa' or 'eager'."
        )
    state = InjectionState(kernel=kernel, calls=[])
    for module in model.modules():
        module._prefixlab_state = state
    model.set_attn_implementation(f"prefixlab_{kernel}")
    try:
        with torch.no_grad():
            model(**_dry_run_inputs(model), use_cache=False)
        calls = state.calls
    finally:
        state.calls = None
    if not calls:
        raise UnsupportedModelError(
            f"{type(model).__name__} never called transformers' attention interface; prefixlab cannot inject "
            "prefixes into it (models with custom attention code, e.g. T5's relative-bias attention, are not "
            "supported)."
        )
    layouts: dict[str, SetLayout] = {}
    counts: dict[str, int] = {}
    seen_causal = False
    for module, key_shape, causal in calls:
        if model.config.is_encoder_decoder:
            seen_causal = seen_causal or causal
            name = "decoder" if causal else ("cross" if seen_causal else "encoder")
        else:
            name = "decoder"
        index = counts.get(name, 0)
        counts[name] = index + 1
        module._prefixlab_slot = (name, index)
        layout = SetLayout(layers=index + 1, kv_heads=key_shape[1], head_dim=key_shape[3])
        previous = layouts.get(name)
        if previous is not None and (previous.kv_heads, previous.head_dim) != (
            layout.kv_heads,
            layout.head_dim,
        ):
            raise UnsupportedModelError(f"attention layers of set {name!r} differ in key/value shape.")
        layouts[name] = layout
    state.layouts = layouts
    for embed_positions in shiftable_position_embeddings(model):
        embed_positions.register_forward_pre_hook(
            lambda module, args, kwargs: _shift_positions(state, args, kwargs), with_kwargs=True
        )
    return state, layouts


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
