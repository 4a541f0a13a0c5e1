"""Pad encoded examples into the tensors the model wrapper takes: source_ids/source_mask/target_ids/target_mask."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from prefixlab.tasks.formatting import EncodedExample

PAD_SIDES = ("left", "right")


def pad_id_for(tokenizer: Any) -> int:
    """The tokenizer's pad id, or its eos id when it has none (GPT-2); masks make the value irrelevant."""
    for name in ("pad_token_id", "eos_token_id"):
        value = getattr(tokenizer, name, None)
        if value is not None:
            return int(value)
    raise ValueError("the tokenizer has neither a pad token nor an eos token; pass pad_token_id explicitly")


def pad_sequences(
    sequences: Sequence[Sequence[int]], pad_value: int, side: str = "right"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack ragged id lists into a (batch, longest) LongTensor and a mask that is 1 on real tokens."""
    if side not in PAD_SIDES:
        raise ValueError(f"pad side must be one of {PAD_SIDES}, got {side!r}")
    width = max((len(s) for s in sequences), default=0)
    ids = torch.full((len(sequences), width), pad_value, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        if not seq:
            continue
        cols = slice(0, len(seq)) if side == "right" else slice(width - len(seq), width)
        ids[row, cols] = torch.as_tensor(list(seq), dtype=torch.long)
        mask[row, cols] = 1
    return ids, mask


@dataclass
class Collator:
    """`DataLoader` collate_fn: sources padded on `source_pad_side` (left for decoder-only generation), targets
    on `target_pad_side`; examples without targets (generation inputs) give only source tensors."""

    pad_token_id: int
    source_pad_side: str = "right"
    target_pad_side: str = "right"

    def __call__(self, batch: Sequence[EncodedExample]) -> dict[str, torch.Tensor]:
        """Pad one batch."""
        source_ids, source_mask = pad_sequences(
            [e.source_ids for e in batch], self.pad_token_id, self.source_pad_side
        )
        out = {"source_ids": source_ids, "source_mask": source_mask}
        if all(e.target_ids is not None for e in batch):
            target_ids, target_mask = pad_sequences(
                [e.target_ids for e in batch], self.pad_token_id, self.target_pad_side
            )
            out |= {"target_ids": target_ids, "target_mask": target_mask}
        return out


def collate_causal_lm(
    batch: Sequence[EncodedExample], pad_token_id: int, ignore_index: int = -100
) -> dict[str, torch.Tensor]:
    """Concatenate source+target per example, right-pad, and label only target tokens (for plain HF
    decoder-only fine-tuning); the source, its separator and padding get `ignore_index`."""
    sequences = [list(e.source_ids) + list(e.target_ids or ()) for e in batch]
    input_ids, attention_mask = pad_sequences(sequences, pad_token_id, "right")
    labels = torch.full_like(input_ids, ignore_index)
    for row, e in enumerate(batch):
        start, stop = len(e.source_ids), len(sequences[row])
        labels[row, start:stop] = input_ids[row, start:stop]
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}
