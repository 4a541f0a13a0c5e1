"""Tiny randomly initialized transformers models of each family, built from configs (no downloads).

A large initializer range makes their next-token distributions peaked and varied, so that equality tests on
generated tokens compare real sequences rather than one repeated token.

`SUPPORTED` lists every family the exactness suite covers (the README's list of supported families is checked
against it); `UNSUPPORTED` the families that must fail at wrap time, with the reason their error names.
"""

from __future__ import annotations

import torch
from transformers import (
    BartConfig,
    BartForConditionalGeneration,
    BloomConfig,
    BloomForCausalLM,
    FalconConfig,
    FalconForCausalLM,
    Gemma2Config,
    Gemma2ForCausalLM,
    Gemma3ForCausalLM,
    Gemma3TextConfig,
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    LongT5Config,
    LongT5ForConditionalGeneration,
    MistralConfig,
    MistralForCausalLM,
    MptConfig,
    MptForCausalLM,
    MT5Config,
    MT5ForConditionalGeneration,
    Qwen2Config,
    Qwen2ForCausalLM,
    T5Config,
    T5ForConditionalGeneration,
)

VOCAB = 64
SPECIAL = {"bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0}
# Wide enough for every sequence of the exactness suite: sliding-window families behave as full attention
# there; the sliding-window tests pass a small `window`.
WIDE_WINDOW = 64


def max_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """Largest absolute difference, relative to the expected values' scale when that exceeds 1 (float32
    rounding grows with the logits' magnitude)."""
    return (actual - expected).abs().max().item() / max(1.0, expected.abs().max().item())


def _build(cls, config, seed: int, attn: str):
    torch.manual_seed(seed)
    config._attn_implementation = attn
    return cls(config).eval()


def gpt2(seed: int = 0, attn: str = "sdpa") -> GPT2LMHeadModel:
    config = GPT2Config(
        n_layer=2, n_head=2, n_embd=32, n_positions=128, vocab_size=VOCAB, initializer_range=0.4, **SPECIAL
    )
    return _build(GPT2LMHeadModel, config, seed, attn)


# Llama-style decoders with grouped-query attention; they differ only in class and key/value heads.
LLAMA_STYLE = dict(
    num_hidden_layers=2,
    num_attention_heads=4,
    hidden_size=32,
    intermediate_size=64,
    vocab_size=VOCAB,
    max_position_embeddings=128,
    initializer_range=0.4,
    **SPECIAL,
)


def llama(seed: int = 0, attn: str = "sdpa") -> LlamaForCausalLM:
    """Grouped-query attention: 4 query heads share 2 key/value heads."""
    return _build(LlamaForCausalLM, LlamaConfig(num_key_value_heads=2, **LLAMA_STYLE), seed, attn)


def qwen2(seed: int = 0, attn: str = "sdpa") -> Qwen2ForCausalLM:
    """Multi-query attention: 4 query heads share 1 key/value head."""
    return _build(Qwen2ForCausalLM, Qwen2Config(num_key_value_heads=1, **LLAMA_STYLE), seed, attn)


def mistral(seed: int = 0, attn: str = "sdpa", window: int | None = None) -> MistralForCausalLM:
    """Every layer slides when `window` is set (Mistral 7B v0.1: 4096)."""
    config = MistralConfig(num_key_value_heads=2, sliding_window=window, **LLAMA_STYLE)
    return _build(MistralForCausalLM, config, seed, attn)


def gemma2(seed: int = 0, attn: str = "eager", window: int = WIDE_WINDOW) -> Gemma2ForCausalLM:
    """Layer 0 slides over `window` tokens, layer 1 attends to everything; attention logits are soft-capped
    (which only eager kernels implement, hence eager by default, as for real Gemma 2 checkpoints)."""
    config = Gemma2Config(
        num_key_value_heads=2,
        head_dim=8,
        query_pre_attn_scalar=8,
        sliding_window=window,
        attn_logit_softcapping=50.0 if attn == "eager" else None,
        final_logit_softcapping=30.0,
        tie_word_embeddings=False,  # tied, the scaled embeddings make a random model repeat its last token
        **LLAMA_STYLE,
    )
    return _build(Gemma2ForCausalLM, config, seed, attn)


def gemma3(seed: int = 0, attn: str = "sdpa", window: int = WIDE_WINDOW) -> Gemma3ForCausalLM:
    """Gemma 3 text (the 1B model's architecture): query/key norms, sliding then full layers."""
    config = Gemma3TextConfig(
        num_key_value_heads=1,
        head_dim=8,
        query_pre_attn_scalar=8,
        sliding_window=window,
        layer_types=["sliding_attention", "full_attention"],
        tie_word_embeddings=False,
        **LLAMA_STYLE,
    )
    return _build(Gemma3ForCausalLM, config, seed, attn)


def bart(seed: int = 0, attn: str = "sdpa") -> BartForConditionalGeneration:
    config = BartConfig(
        encoder_layers=2,
        decoder_layers=2,
        d_model=32,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        vocab_size=VOCAB,
        max_position_embeddings=128,
        init_std=0.4,
        forced_bos_token_id=None,
        forced_eos_token_id=None,
        decoder_start_token_id=2,
        **SPECIAL,
    )
    return _build(BartForConditionalGeneration, config, seed, attn)


# T5-style encoder-decoders: relative position bias (computed by each stack's first layer), no query scaling,
# decoding starts from the pad token. Few buckets and a short max distance so that the tiny sequences span
# exact and logarithmic buckets. initializer_factor 2 with token embeddings 4x smaller than T5's init keeps
# attention (and with it the virtual tokens and their position bias) a large part of the residual stream and
# makes greedy decoding vary its tokens; the logits reach ~60, hence `max_error`'s scaling.
T5_STYLE = dict(
    d_model=32,
    d_kv=8,
    d_ff=64,
    num_layers=2,
    num_decoder_layers=2,
    num_heads=4,
    relative_attention_num_buckets=8,
    relative_attention_max_distance=16,
    initializer_factor=2.0,
    vocab_size=VOCAB,
    decoder_start_token_id=0,
    **SPECIAL,
)


def _build_t5(cls, config, seed: int, attn: str):
    model = _build(cls, config, seed, attn)
    with torch.no_grad():
        model.shared.weight.mul_(0.25)
    return model


def t5(seed: int = 0, attn: str = "sdpa") -> T5ForConditionalGeneration:
    """The original T5 (t5-base): ReLU MLP, tied input/output embeddings."""
    return _build_t5(T5ForConditionalGeneration, T5Config(feed_forward_proj="relu", **T5_STYLE), seed, attn)


def flan_t5(seed: int = 0, attn: str = "sdpa") -> T5ForConditionalGeneration:
    """T5 v1.1 / Flan-T5: gated-GELU MLP, untied embeddings."""
    config = T5Config(feed_forward_proj="gated-gelu", tie_word_embeddings=False, **T5_STYLE)
    return _build_t5(T5ForConditionalGeneration, config, seed, attn)


def mt5(seed: int = 0, attn: str = "sdpa") -> MT5ForConditionalGeneration:
    """mT5: its own model class (a copy of T5's), gated-GELU, untied."""
    config = MT5Config(feed_forward_proj="gated-gelu", tie_word_embeddings=False, **T5_STYLE)
    return _build_t5(MT5ForConditionalGeneration, config, seed, attn)


def ul2(seed: int = 0, attn: str = "sdpa") -> T5ForConditionalGeneration:
    """UL2 (google/ul2): the T5 class with a gated-SiLU MLP and untied embeddings."""
    config = T5Config(feed_forward_proj="gated-silu", tie_word_embeddings=False, **T5_STYLE)
    return _build_t5(T5ForConditionalGeneration, config, seed, attn)


DECODER_ONLY = {
    "gpt2": gpt2,
    "llama": llama,
    "qwen2": qwen2,
    "mistral": mistral,
    "gemma2": gemma2,
    "gemma3": gemma3,
}
ENCODER_DECODER = {"bart": bart, "t5": t5, "flan-t5": flan_t5, "mt5": mt5, "ul2": ul2}
T5_FAMILY = {name: ENCODER_DECODER[name] for name in ("t5", "flan-t5", "mt5", "ul2")}
# Sliding-window families, built with a window of `window` tokens.
SLIDING_WINDOW = {"mistral": mistral, "gemma2": gemma2, "gemma3": gemma3}
SUPPORTED = {**DECODER_ONLY, **ENCODER_DECODER}

SMALL = dict(vocab_size=VOCAB, hidden_size=32, num_attention_heads=4, **SPECIAL)


#: Falcon (without ALiBi) calls transformers' attention interface from transformers 5.25 on; earlier 5.x releases
#: compute its attention in their own code, where prefixlab cannot reach it.
FALCON_ON_INTERFACE = FalconForCausalLM._can_set_attn_implementation()


def falcon() -> FalconForCausalLM:
    """Falcon with rotary positions (test_prefix_families: refused or exact, by the installed transformers)."""
    return _build(FalconForCausalLM, FalconConfig(num_hidden_layers=2, alibi=False, **SMALL), 0, "sdpa")


def falcon_alibi() -> FalconForCausalLM:
    return _build(FalconForCausalLM, FalconConfig(num_hidden_layers=2, alibi=True, **SMALL), 0, "sdpa")


def bloom() -> BloomForCausalLM:
    config = BloomConfig(
        n_layer=2, n_head=4, **{k: v for k, v in SMALL.items() if k != "num_attention_heads"}
    )
    return _build(BloomForCausalLM, config, 0, "eager")


def mpt() -> MptForCausalLM:
    config = MptConfig(n_layers=2, n_heads=4, d_model=32, vocab_size=VOCAB)
    return _build(MptForCausalLM, config, 0, "eager")


def longt5() -> LongT5ForConditionalGeneration:
    """LongT5's encoder runs local attention in its own code; only its decoder uses the interface."""
    config = LongT5Config(**{**T5_STYLE, "initializer_factor": 1.0})
    return _build(LongT5ForConditionalGeneration, config, 0, "eager")


# name -> (builder, a phrase the wrap-time error must contain)
UNSUPPORTED = {
    "falcon-alibi": (falcon_alibi, "ALiBi"),
    "bloom": (bloom, "ALiBi"),
    "mpt": (mpt, "ALiBi"),
    "longt5": (longt5, "encoder attention never called"),
}
