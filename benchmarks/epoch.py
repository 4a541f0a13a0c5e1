"""Training epoch: the data pipeline a run uses (LengthGroupedBatchSampler) vs naive random batches.

Both pipelines train prefixlab prefix-tuning (depth all, MLP reparameterization, length 10) with real steps
(DataLoader + Collator, forward, backward, clipping, AdamW) on the same examples in batches of 10. The naive
pipeline shuffles and pads each batch to its longest (`random_batches`); the run's pipeline sorts
mega-batches by length first. Target: the run's pipeline >= 1.3x faster.

A full epoch of the offline E2E training set (4,179 pairs, 418 batches) takes long on CPUs, so by default a
fixed random subset of the run's batches is timed (``--max-batches N`` or ``--fraction F``; ``--fraction 1``
is the whole epoch). The naive pipeline gets exactly the same examples, shuffled into the same number of
random batches. Steps are interleaved batch by batch (grouped i, naive i, naive i+1, grouped i+1, ...) so a
shared machine's load hits both alike; the full-epoch time is extrapolated from the measured batches.

    python benchmarks/epoch.py [--quick] [--max-batches N | --fraction F] [--model M] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Iterator, Sequence
from functools import partial
from typing import Any

from common import (
    base_parser,
    describe_environment,
    e2e,
    environment,
    fmt_mfu,
    interleaved,
    load,
    markdown_table,
    mfu,
    pick,
    run_batches,
    setup,
    stage,
    to_device,
    verdict,
    write_json,
)
from torch.utils.data import DataLoader
from training_steps import prefixlab_prefix, token_slots, useful_flops

from prefixlab.tasks import Collator, pad_id_for, padding_fraction, random_batches

TARGET = 1.3


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command line."""
    parser = base_parser(__doc__.split("\n\n")[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--max-batches", type=int, default=None, help="batches timed per pipeline (default 16)")
    size.add_argument("--fraction", type=float, default=None, help="share of the epoch's batches timed")
    parser.add_argument("--batch-size", type=int, default=10)
    args = parser.parse_args(argv)
    args.reps = args.reps or (1 if args.quick else 2)
    return args


def loader_steps(dataset: Sequence[Any], batches: list[list[int]], pad_id: int) -> Iterator[dict[str, Any]]:
    """The batches as a run's DataLoader yields them (collated on the fly, like the Trainer)."""
    return iter(DataLoader(dataset, batch_sampler=batches, collate_fn=Collator(pad_id)))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark and print its table."""
    args = parse_args(argv)
    device = setup(args)
    env = environment(device)
    with stage(f"loading {args.model} and the E2E training set"):
        model, tokenizer = load(args.model, device)
        _, train = e2e(tokenizer)
        pad_id = pad_id_for(tokenizer)
    lengths = [e.length for e in train]
    sources = [len(e.source_ids) for e in train]
    targets = [len(e.target_ids) for e in train]
    epoch_grouped = run_batches(lengths, args.batch_size, args.seed)
    epoch_naive = random_batches(len(train), args.batch_size, seed=args.seed)
    if args.fraction is not None:
        count = max(1, round(args.fraction * len(epoch_grouped)))
    else:
        count = args.max_batches or (4 if args.quick else 16)
    count = min(count, len(epoch_grouped))
    # The measured subset: `count` of the run's own batches; the naive pipeline shuffles the same examples.
    grouped = pick(epoch_grouped, count, args.seed)
    subset = [i for batch in grouped for i in batch]
    naive = [[subset[j] for j in batch] for batch in random_batches(len(subset), args.batch_size, args.seed)]
    assert sorted(subset) == sorted(i for b in naive for i in b) and len(naive) == len(grouped)

    method = prefixlab_prefix(model, pad_id, device)
    layout = method.layout

    def padding(batches: list[list[int]]) -> float:
        """Pad share of the token slots the model runs over, in the layout of the model used."""
        if layout == "compact":
            return padding_fraction(batches, lengths)
        return padding_fraction(batches, sources, targets)

    pipelines = {"length-grouped (run)": grouped, "naive random": naive}
    with stage("warm-up"):
        longest = max(grouped + naive, key=lambda b: max(lengths[i] for i in b))
        for _ in range(max(args.warmup, 0)):
            method.step(to_device(Collator(pad_id)([train[i] for i in longest]), device))

    def pass_units(batches: list[list[int]]) -> list:
        """One unit per step of a pass; the first opens a fresh DataLoader iterator, as each epoch does."""
        loader: dict[str, Iterator[dict[str, Any]]] = {}

        def unit(step: int) -> None:
            if step == 0:
                loader["it"] = loader_steps(train, batches, pad_id)
            method.step(to_device(next(loader["it"]), device))

        return [partial(unit, step) for step in range(count)]

    cpu_seconds: dict[str, list[float]] = {}
    with stage(f"timing {args.reps} interleaved passes over {count} batches per pipeline"):
        units = {name: pass_units(batches) for name, batches in pipelines.items()}
        seconds = interleaved(units, args.reps, 0, device, cpu=cpu_seconds)

    results: dict[str, Any] = {"environment": env, "args": vars(args), "pipelines": {}}
    rows = []
    base_time = statistics.median(seconds["naive random"])
    base_cpu = statistics.median(cpu_seconds["naive random"])
    for name, batches in pipelines.items():
        epoch = epoch_grouped if name.startswith("length") else epoch_naive
        median = statistics.median(seconds[name])
        examples = [[train[i] for i in b] for b in batches]
        flops = sum(useful_flops(model, b, 4) for b in examples)
        slots = sum(token_slots(b, layout) for b in examples)
        epoch_slots = sum(token_slots([train[i] for i in b], layout) for b in epoch)
        entry = {
            "seconds": seconds[name],
            "padding_fraction_measured": padding(batches),
            "padding_fraction_epoch": padding(epoch),
            "token_slots_measured": slots,
            "token_slots_epoch": epoch_slots,
            # Seconds per token slot measured here, times the full epoch's slots (corrects for a subset whose
            # padding differs from the epoch's).
            "estimated_epoch_seconds": median / slots * epoch_slots,
            "speedup_vs_naive": base_time / median,
            "cpu_seconds": cpu_seconds[name],
            "cpu_speedup_vs_naive": base_cpu / statistics.median(cpu_seconds[name]),
            "mfu": mfu(flops, median, device, args.peak_flops),
        }
        results["pipelines"][name] = entry
        rows.append(
            [
                name,
                len(batches),
                sum(len(b) for b in batches),
                f"{100 * entry['padding_fraction_measured']:.1f}%",
                f"{100 * entry['padding_fraction_epoch']:.1f}%",
                f"{slots:,}",
                f"{median:.1f}",
                f"{min(seconds[name]):.1f}",
                f"{entry['estimated_epoch_seconds'] / 60:.1f}",
                f"{entry['speedup_vs_naive']:.2f}x",
                f"{entry['cpu_speedup_vs_naive']:.2f}x" if device.type == "cpu" else "-",
                fmt_mfu(entry["mfu"]),
            ]
        )
    ours, naive_entry = results["pipelines"]["length-grouped (run)"], results["pipelines"]["naive random"]
    speedup = ours["speedup_vs_naive"]
    epoch_speedup = naive_entry["estimated_epoch_seconds"] / ours["estimated_epoch_seconds"]
    results["target"] = {
        "speedup": speedup,
        "estimated_full_epoch_speedup": epoch_speedup,
        "required": TARGET,
        "met": speedup >= TARGET,
    }
    what = (
        "the whole epoch"
        if count == len(epoch_grouped)
        else (
            f"a fixed random subset: {count} of the epoch's {len(epoch_grouped)} batches "
            f"({len(subset)} of {len(train)} pairs), the same pairs under both pipelines"
        )
    )
    print(
        f"\n### One training epoch, {args.model}, E2E offline train ({len(train)} pairs), batch {args.batch_size}"
    )
    print(f"Measured: {what}; {args.reps} interleaved pass(es), median; prefixlab packs {layout} rows.\n")
    print(
        markdown_table(
            [
                "pipeline",
                "batches",
                "pairs",
                "padding (measured)",
                "padding (full epoch)",
                "token slots",
                "wall s (median)",
                "wall s (min)",
                "est. full epoch min",
                "speedup",
                "speedup (CPU time)",
                "MFU",
            ],
            rows,
        )
    )
    print(
        f"\nTarget: length-grouped >= {TARGET}x faster than naive: measured {speedup:.2f}x, "
        f"{verdict(speedup >= TARGET)} (full-epoch estimate {epoch_speedup:.2f}x; full-epoch token slots "
        f"naive / grouped = {naive_entry['token_slots_epoch'] / ours['token_slots_epoch']:.2f}x)."
    )
    print(
        f"{describe_environment(env)}. Step = DataLoader collation + forward + backward + clip + AdamW. "
        f"Padding = pad slots / all token slots in the model's layout ({layout}). "
        "Full-epoch minutes = measured seconds per token slot x the epoch's token slots (same pipeline)."
    )
    write_json(args.json, results)
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
