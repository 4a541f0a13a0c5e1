"""Tiny randomly initialized transformers models of each family, built from configs (no downloads).

A large initializer range makes their next-token distributions peaked and varied, so that equality tests on
generated tokens compare real sequences rather than one repeated token.
"""

from __future__ import annotations

import torch
from transformers import (
    BartConfig,
    BartForConditionalGeneration,
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    MistralConfig,
    MistralForCausalLM,
    Qwen2Config,
    Qwen2ForCausalLM,
)

VOCAB = 64
SPECIAL = {"bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0}


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


def mistral(seed: int = 0, attn: str = "sdpa") -> MistralForCausalLM:
    config = MistralConfig(num_key_value_heads=2, sliding_window=None, **LLAMA_STYLE)
    return _build(MistralForCausalLM, config, seed, attn)


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


DECODER_ONLY = {"gpt2": gpt2, "llama": llama, "qwen2": qwen2, "mistral": mistral}
