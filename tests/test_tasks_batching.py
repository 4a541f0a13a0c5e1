"""Length-grouped training batches, padding accounting, and length-sorted generation batches."""

from __future__ import annotations

import numpy as np
import pytest
from test_tasks_support import word_tokenizer
from torch.utils.data import DataLoader

from prefixlab.tasks import (
    Collator,
    Example,
    LengthGroupedBatchSampler,
    encode_pairs,
    load_task_config,
    pad_id_for,
    padding_fraction,
    random_batches,
    restore_order,
    sorted_batches,
    template_for,
)

RNG = np.random.default_rng(0)
SOURCE_LENGTHS = RNG.integers(5, 300, size=1003).tolist()
TARGET_LENGTHS = RNG.integers(5, 60, size=1003).tolist()
LENGTHS = [s + t for s, t in zip(SOURCE_LENGTHS, TARGET_LENGTHS, strict=True)]


@pytest.mark.parametrize("drop_last", [False, True])
def test_every_example_once_per_epoch(drop_last: bool) -> None:
    sampler = LengthGroupedBatchSampler(
        LENGTHS, batch_size=10, seed=0, mega_batch_mult=5, drop_last=drop_last
    )
    for epoch in range(3):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        flat = [i for b in batches for i in b]
        assert len(flat) == len(set(flat))
        assert len(batches) == len(sampler)
        if drop_last:
            assert all(len(b) == 10 for b in batches) and len(flat) == 1000
        else:
            assert sorted(flat) == list(range(len(LENGTHS)))
            assert sorted(len(b) for b in batches)[0] == 3


def test_order_is_deterministic_given_seed_and_epoch() -> None:
    a = LengthGroupedBatchSampler(LENGTHS, batch_size=8, seed=1)
    b = LengthGroupedBatchSampler(LENGTHS, batch_size=8, seed=1)
    assert a.batches(0) == b.batches(0) and a.batches(3) == b.batches(3)
    assert a.batches(0) != a.batches(1)
    assert a.batches(0) != LengthGroupedBatchSampler(LENGTHS, batch_size=8, seed=2).batches(0)
    b.set_epoch(3)
    assert list(b) == a.batches(3)


def test_bucketing_reduces_padding_against_naive_batches() -> None:
    bucketed = LengthGroupedBatchSampler(LENGTHS, batch_size=10, seed=0).batches(0)
    naive = random_batches(len(LENGTHS), batch_size=10, seed=0)
    assert sorted(i for b in naive for i in b) == list(range(len(LENGTHS)))
    waste_bucketed = padding_fraction(bucketed, SOURCE_LENGTHS, TARGET_LENGTHS)
    waste_naive = padding_fraction(naive, SOURCE_LENGTHS, TARGET_LENGTHS)
    assert waste_bucketed < 0.6 * waste_naive
    assert padding_fraction(bucketed, LENGTHS) < 0.1 * padding_fraction(naive, LENGTHS)


def test_padding_fraction_counts_pad_slots() -> None:
    assert padding_fraction([[0, 1], [2]], [4, 2, 3]) == pytest.approx(2 / 11)
    assert padding_fraction([[0, 1]], [4, 2], [1, 3]) == pytest.approx((2 + 2) / (8 + 6))
    assert padding_fraction([], [1]) == 0.0


def test_generation_batches_restore_the_input_order() -> None:
    lengths = [3, 9, 1, 7, 7, 2]
    batches = sorted_batches(lengths, batch_size=4)
    assert batches == [[1, 3, 4, 0], [5, 2]]
    outputs = [[f"out{i}" for i in b] for b in batches]
    assert restore_order(batches, outputs) == [f"out{i}" for i in range(6)]
    assert sorted_batches(lengths, 4, descending=False)[0] == [2, 5, 0, 3]
    with pytest.raises(ValueError, match="a batch of 2 examples has 1 outputs"):
        restore_order(batches, [outputs[0], ["x"]])


def test_dataloader_with_sampler_and_collator() -> None:
    tok = word_tokenizer()
    examples = [Example(" ".join(["city"] * (1 + i % 7)), "A coffee shop.", str(i)) for i in range(25)]
    encoded = encode_pairs(examples, tok, template_for(load_task_config("e2e"), "decoder_only"))
    sampler = LengthGroupedBatchSampler([e.length for e in encoded], batch_size=4, seed=0, mega_batch_mult=2)
    loader = DataLoader(encoded, batch_sampler=sampler, collate_fn=Collator(pad_id_for(tok)))
    batches = list(loader)
    assert len(batches) == 7
    assert sum(b["source_ids"].shape[0] for b in batches) == 25
    assert sum(int(b["target_mask"].sum()) for b in batches) == 25 * 5
