"""Decode a task's evaluation sources with transformers' `generate` and score them with the task's metric.

Each distinct source is decoded once (E2E: 630 test MRs, not 4,693 rows), in batches of similar length with
left padding, and the outputs are put back in input order before scoring against all references.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from tqdm.auto import tqdm

from prefixlab.suites import suite
from prefixlab.tasks import Collator, EncodedExample, restore_order, sorted_batches

DECODING_KEYS = (
    "num_beams", "max_new_tokens", "min_new_tokens", "min_length", "max_length", "length_penalty",
    "no_repeat_ngram_size", "early_stopping", "bad_words", "do_sample",
)  # fmt: skip


def check_decoding(decoding: Mapping[str, Any]) -> None:
    """Reject decoding settings prefixlab does not know, naming the known ones."""
    unknown = sorted(set(decoding) - set(DECODING_KEYS))
    if unknown:
        raise ValueError(f"unknown decoding settings {unknown}; known: {sorted(DECODING_KEYS)}.")


def generation_kwargs(decoding: Mapping[str, Any], tokenizer: Any, encoder_decoder: bool) -> dict[str, Any]:
    """Turn a task's `decoding` settings into `generate` arguments.

    Keys: num_beams, max_new_tokens, min_new_tokens, min_length / max_length (decoder tokens; for decoder-only
    models they mean new tokens), length_penalty, no_repeat_ngram_size, early_stopping, and bad_words (strings
    never generated, e.g. the newlines the authors banned for E2E).
    """
    check_decoding(decoding)
    kwargs: dict[str, Any] = {"do_sample": False}
    for key, value in decoding.items():
        if value is None or key == "bad_words":
            continue
        if not encoder_decoder and key in ("min_length", "max_length"):
            key = key.replace("length", "new_tokens")
        kwargs[key] = value
    bad_words = [w for w in decoding.get("bad_words") or [] if w]
    if bad_words:
        ids = [tokenizer(w, add_special_tokens=False)["input_ids"] for w in bad_words]
        kwargs["bad_words_ids"] = [list(i) for i in ids if i]
    kwargs["eos_token_id"] = tokenizer.eos_token_id
    kwargs["pad_token_id"] = (
        tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    )
    return kwargs


def clean_output(token_ids: Sequence[int], tokenizer: Any) -> str:
    """Cut at the first end-of-sequence token, drop special tokens, strip (as the authors post-process)."""
    ids = list(token_ids)
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id in ids:
        ids = ids[: ids.index(tokenizer.eos_token_id)]
    return tokenizer.decode(ids, skip_special_tokens=True).strip()


@torch.no_grad()
def decode(
    model: Any,
    tokenizer: Any,
    sources: Sequence[EncodedExample],
    decoding: Mapping[str, Any],
    *,
    batch_size: int = 16,
    device: torch.device | str = "cpu",
    progress: bool = True,
) -> list[str]:
    """Decode each encoded source once; returns the cleaned outputs in input order."""
    kwargs = generation_kwargs(decoding, tokenizer, model.is_encoder_decoder)
    collate = Collator(pad_token_id=kwargs["pad_token_id"], source_pad_side="left")
    batches = sorted_batches([len(s.source_ids) for s in sources], batch_size)
    model.eval()
    outputs = []
    for batch in tqdm(batches, desc="decoding", unit="batch", disable=not progress):
        tensors = collate([sources[i] for i in batch])
        generated = model.generate(
            source_ids=tensors["source_ids"].to(device),
            source_mask=tensors["source_mask"].to(device),
            **kwargs,
        )
        outputs.append([clean_output(row.tolist(), tokenizer) for row in generated])
    return restore_order(batches, outputs)


def score(metric: str, outputs: list[str], references: list[list[str]]) -> dict[str, float]:
    """Score outputs against their references with the task's metric suite (`prefixlab.suites`)."""
    return suite(metric).score(outputs, references)
