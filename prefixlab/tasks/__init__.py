"""The task layer: load data (local files or the hub), split it, format it per model family, batch it.

Typical use::

    from prefixlab.tasks import load_task, encode_split, Collator, LengthGroupedBatchSampler, pad_id_for

    data = load_task("e2e")                        # conf/task/e2e.yaml; data under $PREFIXLAB_DATA_DIR
    train = encode_split(data, "train", tokenizer, "decoder_only")
    sampler = LengthGroupedBatchSampler([e.length for e in train], batch_size=10, seed=0)
    loader = DataLoader(train, batch_sampler=sampler, collate_fn=Collator(pad_id_for(tokenizer)))
    data.metadata()                                # where the data came from, split sizes, holdout
"""

from prefixlab.tasks.batching import (
    LengthGroupedBatchSampler,
    padding_fraction,
    random_batches,
    restore_order,
    sorted_batches,
)
from prefixlab.tasks.collate import Collator, collate_causal_lm, pad_id_for, pad_sequences
from prefixlab.tasks.config import TaskConfig, load_task_config, resolve_data_dir
from prefixlab.tasks.errors import DataFormatError, DataNotFoundError
from prefixlab.tasks.examples import Example, GroupedExample, group_examples
from prefixlab.tasks.formatting import (
    EncodedExample,
    Template,
    encode_eval,
    encode_pairs,
    encode_sources,
    encode_split,
    model_family,
    template_for,
)
from prefixlab.tasks.hub import examples_from_hub, load_hub_splits, splits_from_hub
from prefixlab.tasks.loading import DataInfo, TaskData, derive_splits, load_task
from prefixlab.tasks.lowdata import low_data_subset
from prefixlab.tasks.readers import read_examples, read_table
from prefixlab.tasks.splitting import hash_unit, split_by_group

__all__ = [
    "Collator",
    "DataFormatError",
    "DataInfo",
    "DataNotFoundError",
    "EncodedExample",
    "Example",
    "GroupedExample",
    "LengthGroupedBatchSampler",
    "TaskConfig",
    "TaskData",
    "Template",
    "collate_causal_lm",
    "derive_splits",
    "encode_eval",
    "encode_pairs",
    "encode_sources",
    "encode_split",
    "examples_from_hub",
    "group_examples",
    "hash_unit",
    "load_hub_splits",
    "load_task",
    "load_task_config",
    "low_data_subset",
    "model_family",
    "pad_id_for",
    "pad_sequences",
    "padding_fraction",
    "random_batches",
    "read_examples",
    "read_table",
    "resolve_data_dir",
    "restore_order",
    "sorted_batches",
    "split_by_group",
    "splits_from_hub",
    "template_for",
]
