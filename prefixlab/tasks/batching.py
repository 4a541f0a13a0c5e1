"""Batch order: length-grouped training batches, a naive baseline, padding accounting, and length-sorted
generation batches whose outputs can be put back in input order."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, TypeVar

import numpy as np
from torch.utils.data import Sampler

T = TypeVar("T")


class LengthGroupedBatchSampler(Sampler[list[int]]):
    """Batches of similar length: shuffle (seed, epoch), sort each mega-batch (`mega_batch_mult` x
    `batch_size` examples) by length, cut into batches of `batch_size` examples, shuffle the batch order.

    Deterministic given `seed` and the epoch set with `set_epoch`; every index appears once per epoch.
    Use as `DataLoader(encoded, batch_sampler=sampler, collate_fn=Collator(...))`.
    """

    def __init__(
        self,
        lengths: Sequence[int],
        batch_size: int,
        seed: int = 0,
        mega_batch_mult: int = 50,
        shuffle: bool = True,
        drop_last: bool = False,
    ) -> None:
        if batch_size < 1 or mega_batch_mult < 1:
            raise ValueError("batch_size and mega_batch_mult must be positive")
        self.lengths = list(lengths)
        self.batch_size = batch_size
        self.seed = seed
        self.mega_batch_mult = mega_batch_mult
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose order `__iter__` yields."""
        self.epoch = epoch

    def batches(self, epoch: int | None = None) -> list[list[int]]:
        """The batches of `epoch` (default: the current one) as lists of indices."""
        epoch = self.epoch if epoch is None else epoch
        rng = np.random.default_rng([self.seed, epoch])
        n = len(self.lengths)
        order = rng.permutation(n) if self.shuffle else np.arange(n)
        mega = self.batch_size * self.mega_batch_mult
        batches: list[list[int]] = []
        for start in range(0, n, mega):
            chunk = sorted(order[start : start + mega].tolist(), key=lambda i: -self.lengths[i])
            batches += [chunk[k : k + self.batch_size] for k in range(0, len(chunk), self.batch_size)]
        if self.drop_last:
            batches = [b for b in batches if len(b) == self.batch_size]
        if self.shuffle:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches())

    def __len__(self) -> int:
        return len(self.batches()) if self.drop_last else -(-len(self.lengths) // self.batch_size)


def random_batches(n: int, batch_size: int, seed: int = 0, epoch: int = 0) -> list[list[int]]:
    """Naive baseline: a seeded shuffle cut into batches of `batch_size` (no length grouping)."""
    order = np.random.default_rng([seed, epoch]).permutation(n).tolist()
    return [order[k : k + batch_size] for k in range(0, n, batch_size)]


def padding_fraction(
    batches: Sequence[Sequence[int]],
    source_lengths: Sequence[int],
    target_lengths: Sequence[int] | None = None,
) -> float:
    """Share of pad tokens among all token slots when each batch pads sources (and targets) to its longest."""
    padded = total = 0
    for lengths in (source_lengths, target_lengths):
        if lengths is None:
            continue
        for batch in batches:
            sizes = [lengths[i] for i in batch]
            slots = len(sizes) * max(sizes, default=0)
            total += slots
            padded += slots - sum(sizes)
    return padded / total if total else 0.0


def sorted_batches(lengths: Sequence[int], batch_size: int, descending: bool = True) -> list[list[int]]:
    """Generation batches of similar length: indices sorted by length (longest first by default)."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i] if descending else lengths[i])
    return [order[k : k + batch_size] for k in range(0, len(order), batch_size)]


def restore_order(batches: Sequence[Sequence[int]], outputs: Sequence[Sequence[T]]) -> list[T]:
    """Put per-batch outputs back into input order: `outputs[b][j]` belongs to index `batches[b][j]`."""
    n = sum(len(b) for b in batches)
    restored: list[Any] = [None] * n
    for batch, results in zip(batches, outputs, strict=True):
        if len(batch) != len(results):
            raise ValueError(f"a batch of {len(batch)} examples has {len(results)} outputs")
        for index, result in zip(batch, results, strict=True):
            restored[index] = result
    return restored
