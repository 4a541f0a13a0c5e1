"""Tiny random models (``loader: tiny``) for tests and the harness demo, with an offline byte-level tokenizer.

A tiny model is built from a small config (``model_type`` plus the ``config`` kwargs of its YAML) with a
fixed seed, so a given name always yields the same weights. Its tokenizer needs no download: a byte-level
BPE without merges, one token per UTF-8 byte (ids ``5 + byte``) after five special tokens
``<pad>``=0, ``<s>``=1 (bos), ``</s>``=2 (eos), ``<unk>``=3, ``<mask>``=4; any text round-trips exactly.
The model's ``vocab_size`` is the tokenizer's size (261).
"""

from __future__ import annotations

from typing import Any

import torch
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors
from transformers import AutoConfig, PreTrainedModel, PreTrainedTokenizerBase, PreTrainedTokenizerFast

from prefixlab.models.common import auto_model_class

PAD, BOS, EOS, UNK, MASK = "<pad>", "<s>", "</s>", "<unk>", "<mask>"
SPECIAL_TOKENS = (PAD, BOS, EOS, UNK, MASK)


def bytes_to_unicode() -> dict[int, str]:
    """Return GPT-2's map from each byte to a printable unicode character (the byte-level alphabet)."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    chars = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            chars.append(256 + extra)
            extra += 1
    return {byte: chr(char) for byte, char in zip(printable, chars, strict=True)}


def byte_level_tokenizer(add_bos_eos: bool = False) -> PreTrainedTokenizerFast:
    """Build the offline byte-level tokenizer (261 tokens).

    With ``add_bos_eos`` it wraps each text as ``<s> text </s>`` (as BART's tokenizer does); without, it adds
    nothing (as GPT-2's and SmolLM2's do).
    """
    vocab = {token: index for index, token in enumerate(SPECIAL_TOKENS)}
    byte_chars = bytes_to_unicode()
    for byte in range(256):
        vocab[byte_chars[byte]] = len(vocab)
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token=UNK))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    backend.decoder = decoders.ByteLevel()
    backend.add_special_tokens([AddedToken(token, special=True) for token in SPECIAL_TOKENS])
    if add_bos_eos:
        backend.post_processor = processors.TemplateProcessing(
            single=f"{BOS} $A {EOS}",
            pair=f"{BOS} $A {EOS} {EOS} $B {EOS}",
            special_tokens=[(BOS, vocab[BOS]), (EOS, vocab[EOS])],
        )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token=PAD, bos_token=BOS, eos_token=EOS, unk_token=UNK, mask_token=MASK
    )


def tiny_config(spec: dict[str, Any], tokenizer: PreTrainedTokenizerBase) -> Any:
    """Return the transformers config of the tiny model ``spec``, with the tokenizer's vocab size and ids."""
    config = AutoConfig.for_model(
        spec["model_type"],
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        **spec["config"],
    )
    if spec["family"] == "encoder_decoder" and "decoder_start_token_id" not in spec["config"]:
        config.decoder_start_token_id = (
            tokenizer.eos_token_id
        )  # BART's convention (T5's, pad, is set in its YAML)
        config.forced_eos_token_id = tokenizer.eos_token_id
    return config


def load_tiny(
    spec: dict[str, Any], dtype: torch.dtype, attn_implementation: str
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Build the tiny random model of ``spec`` and its tokenizer; the weights depend only on ``spec``.

    The weights are drawn in float32 under ``spec["seed"]`` (default 0) in a forked RNG, so the caller's
    random state is untouched, and then cast to ``dtype``.
    """
    tokenizer = byte_level_tokenizer(add_bos_eos=bool(spec.get("add_bos_eos", False)))
    config = tiny_config(spec, tokenizer)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(spec.get("seed", 0)))
        model = auto_model_class(spec["family"]).from_config(
            config, dtype=torch.float32, attn_implementation=attn_implementation
        )
    return model.to(dtype), tokenizer
