"""Low-data subsets (paper section 6.3): deterministic, seed-dependent, dev = 30% of the size."""

from __future__ import annotations

import pytest
from test_tasks_support import require_data

from prefixlab.tasks import Example, load_task, load_task_config, low_data_subset

POOL = [Example(f"mr {i // 3}", f"ref {i}", f"mr {i // 3}") for i in range(900)]  # 300 MRs x 3 refs


@pytest.mark.parametrize("size", [50, 100, 200])
def test_subsets_are_deterministic_and_seed_dependent(size: int) -> None:
    train, dev = low_data_subset(POOL, size, subset_seed=1)
    assert (train, dev) == low_data_subset(POOL, size, subset_seed=1)
    assert len(train) == size and len(dev) == round(0.3 * size)
    assert not {e.group for e in train} & {e.group for e in dev}
    other_train, _ = low_data_subset(POOL, size, subset_seed=2)
    assert other_train != train
    assert [POOL.index(e) for e in train] == sorted(POOL.index(e) for e in train)  # pool order kept


def test_sizes_are_nested_for_one_seed() -> None:
    small, _ = low_data_subset(POOL, 50, subset_seed=3)
    large, _ = low_data_subset(POOL, 100, subset_seed=3)
    assert set(small) < set(large)


def test_too_large_a_subset_is_an_error() -> None:
    with pytest.raises(ValueError, match="exceeds the 900 training pairs"):
        low_data_subset(POOL, 800)


@pytest.mark.data
def test_low_data_e2e_run_records_its_subset() -> None:
    require_data("e2e/devset.csv", "e2e/testset_w_refs.csv")
    data = load_task(load_task_config("e2e", train_size=100, subset_seed=4))
    assert (len(data.train), len(data.validation), len(data.test)) == (100, 30, 4693)
    info = data.metadata()
    assert info["low_data"]["train_size"] == 100 and info["low_data"]["subset_seed"] == 4
    assert info["low_data"]["dev_size"] == 30 and info["split_pairs"]["validation"] == 30
    assert "low-data subset of 100 pairs" in info["split_origin"]["train"]
    full = load_task("e2e")
    assert set(data.train) | set(data.validation) <= set(full.train)
