"""Low-data subsets (paper section 6.3): `size` training pairs and a dev set of 30% of the size."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from prefixlab.tasks.examples import Example


def low_data_subset(
    pool: Sequence[Example], size: int, subset_seed: int = 0, dev_fraction: float = 0.3
) -> tuple[list[Example], list[Example]]:
    """Sample `size` training pairs and `round(dev_fraction * size)` dev pairs from `pool`.

    One permutation per `subset_seed` (numpy PCG64): the first `size` pairs train; dev takes the next pairs
    whose group is not in the training subset, so no source leaks from train into dev. The same seed gives
    nested subsets across sizes (the 50-pair set is inside the 100-pair set); both lists keep pool order.
    """
    dev_size = round(dev_fraction * size)
    if size + dev_size > len(pool):
        raise ValueError(
            f"low-data size {size} (+{dev_size} dev) exceeds the {len(pool)} training pairs available"
        )
    order = np.random.default_rng(subset_seed).permutation(len(pool)).tolist()
    train_idx = order[:size]
    train_groups = {pool[i].group for i in train_idx}
    dev_idx = [i for i in order[size:] if pool[i].group not in train_groups][:dev_size]
    if len(dev_idx) < dev_size:
        raise ValueError(
            f"low-data size {size}: only {len(dev_idx)} pairs outside the training groups, {dev_size} needed for dev"
        )
    return [pool[i] for i in sorted(train_idx)], [pool[i] for i in sorted(dev_idx)]
