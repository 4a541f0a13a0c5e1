"""Helpers for the task-layer tests: tiny tokenizers built offline, and the real-data requirement check."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

CORPUS = [
    "name[Alimentum], area[city centre], familyFriendly[no]",
    "There is a place in the city centre, Alimentum, that is not family-friendly.",
    "name[Blue Spice], eatType[coffee shop], area[city centre]",
    "A coffee shop in the city centre area called Blue Spice.",
    "Prison Link Cymru had 1,099 referrals in 2015-16 and said some ex-offenders were living rough.",
]


def require_data(*relative: str) -> Path:
    """The data root ($PREFIXLAB_DATA_DIR) if it holds `relative` files; else skip, or fail when $CI is set."""
    root = os.environ.get("PREFIXLAB_DATA_DIR")
    missing = [r for r in relative if not root or not (Path(root) / r).is_file()]
    if missing:
        message = f"needs {', '.join(missing)} under $PREFIXLAB_DATA_DIR (now {root!r})"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return Path(root)


def _wrap(tok: Tokenizer, **special: str | None) -> PreTrainedTokenizerFast:
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, **{k: v for k, v in special.items() if v is not None}
    )


def byte_bpe_tokenizer(eos: str = "<|endoftext|>", pad: str | None = None) -> PreTrainedTokenizerFast:
    """A GPT-2-style byte-level BPE (pad=None like GPT-2); eos `<|im_end|>` gives a SmolLM2-style one."""
    specials = [s for s in dict.fromkeys(["<|endoftext|>", eos, pad]) if s]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(CORPUS, trainer)
    return _wrap(tok, eos_token=eos, pad_token=pad)


def word_tokenizer(extra_words: list[str] | None = None) -> PreTrainedTokenizerFast:
    """Word-level (split on words and punctuation runs): predictable ids for exact-sequence tests."""
    words = sorted({w for line in CORPUS + (extra_words or []) for w, _ in _split(line)})
    vocab = {t: i for i, t in enumerate(["<pad>", "<unk>", "<|endoftext|>", *words])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.add_special_tokens(["<pad>", "<|endoftext|>"])
    return _wrap(tok, eos_token="<|endoftext|>", pad_token="<pad>", unk_token="<unk>")


def seq2seq_tokenizer() -> PreTrainedTokenizerFast:
    """Word-level with a BART-like post-processor: `<s> ... </s>` around every encoded text."""
    words = sorted({w for line in CORPUS for w, _ in _split(line)})
    vocab = {t: i for i, t in enumerate(["<s>", "<pad>", "</s>", "<unk>", *words])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.add_special_tokens(["<s>", "<pad>", "</s>"])
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", special_tokens=[("<s>", 0), ("</s>", 2)]
    )
    return _wrap(tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>")


def _split(text: str) -> list[tuple[str, tuple[int, int]]]:
    return pre_tokenizers.Whitespace().pre_tokenize_str(text)


def test_tiny_tokenizers_know_their_special_tokens() -> None:
    gpt2 = byte_bpe_tokenizer()
    assert gpt2.pad_token is None
    assert gpt2(" x <|endoftext|>", add_special_tokens=False)["input_ids"][-1] == gpt2.eos_token_id
    smol = byte_bpe_tokenizer(eos="<|im_end|>", pad="<|im_end|>")
    assert smol(" x <|im_end|>", add_special_tokens=False)["input_ids"][-1] == smol.eos_token_id
    bart = seq2seq_tokenizer()
    ids = bart("city centre")["input_ids"]
    assert ids[0] == bart.bos_token_id and ids[-1] == bart.eos_token_id


def test_require_data_skips_or_fails(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PREFIXLAB_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="e2e/devset.csv"):
        require_data("e2e/devset.csv")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="e2e/devset.csv"):
        require_data("e2e/devset.csv")
