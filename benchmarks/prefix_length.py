"""Training step time vs prefix length (1, 10, 50, 200 virtual tokens) on the same E2E or XSum batches.

prefixlab prefix-tuning (depth all, MLP reparameterization) with a real step (forward, backward, clipping,
AdamW); all lengths wrap one shared frozen model and are timed interleaved step by step.
Target: length 200 step time <= 1.25x length 1.

`--task e2e` (default): E2E training pairs, batches of 10, MLP hidden 512 (conf/method/prefix.yaml).
`--task xsum`: the XSum training articles as the CPU XSum study trains on them (conf/budget/cpu_xsum.yaml:
the offline sample through prefixlab's task layer, sources cut to 128 tokens, batches of 4) with the
summarization prefix's MLP hidden 800 (conf/method/prefix_summarization.yaml).

    python benchmarks/prefix_length.py [--task e2e|xsum] [--quick] [--lengths 1 10 50 200] [--model M]
        [--device cpu|cuda] [--batch-size N] [--mlp-hidden N] [--max-source-tokens N]
"""

from __future__ import annotations

import argparse
import sys
from functools import partial
from typing import Any

from common import (
    Summary,
    base_parser,
    describe_environment,
    e2e,
    environment,
    fmt_mfu,
    interleaved,
    load,
    markdown_table,
    mfu,
    paired_ratio,
    pick,
    run_batches,
    setup,
    stage,
    verdict,
    write_json,
    xsum,
)
from training_steps import prefixlab_prefix, target_tokens, useful_flops

from prefixlab.tasks import pad_id_for

TARGET = 1.25
#: Per task: the label in the table, and the defaults of --batch-size and --mlp-hidden (the training presets').
TASKS: dict[str, dict[str, Any]] = {
    "e2e": {"label": "E2E", "batch_size": 10, "mlp_hidden": 512},
    "xsum": {"label": "XSum", "batch_size": 4, "mlp_hidden": 800},
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command line."""
    parser = base_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--task", choices=tuple(TASKS), default="e2e", help="whose training batches to time")
    parser.add_argument("--lengths", type=int, nargs="+", default=[1, 10, 50, 200])
    parser.add_argument("--batches", type=int, default=None, help="batches per round (default 3, quick 1)")
    parser.add_argument("--batch-size", type=int, default=None, help="default: e2e 10, xsum 4")
    parser.add_argument(
        "--mlp-hidden", type=int, default=None, help="prefix MLP hidden width (default: e2e 512, xsum 800)"
    )
    parser.add_argument(
        "--max-source-tokens",
        type=int,
        default=128,
        help="with --task xsum: articles cut to this many tokens (default 128, as budget=cpu_xsum)",
    )
    args = parser.parse_args(argv)
    args.batch_size = args.batch_size or TASKS[args.task]["batch_size"]
    args.mlp_hidden = args.mlp_hidden or TASKS[args.task]["mlp_hidden"]
    args.batches = args.batches or (1 if args.quick else 3)
    args.reps = args.reps or (2 if args.quick else 5)
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark and print its table."""
    args = parse_args(argv)
    device = setup(args)
    env = environment(device)
    label = TASKS[args.task]["label"]
    with stage(f"loading {args.model} and the {label} batches"):
        model, tokenizer = load(args.model, device)
        _, train = e2e(tokenizer) if args.task == "e2e" else xsum(tokenizer, args.max_source_tokens)
        batches = pick(
            run_batches([e.length for e in train], args.batch_size, args.seed), args.batches, args.seed
        )
        examples = [[train[i] for i in b] for b in batches]
        pad_id = pad_id_for(tokenizer)
    methods = {
        n: prefixlab_prefix(model, pad_id, device, length=n, name=f"length {n}", mlp_hidden=args.mlp_hidden)
        for n in args.lengths
    }
    inputs = {n: [m.prepare(b) for b in examples] for n, m in methods.items()}

    units = {str(n): [partial(m.step, batch) for batch in inputs[n]] for n, m in methods.items()}
    cpu: dict[str, list[float]] = {}
    with stage(f"timing {args.reps} interleaved rounds of {len(examples)} steps per length"):
        times = interleaved(units, args.reps, args.warmup, device, cpu=cpu)

    n_targets = sum(target_tokens(b) for b in examples)
    flops = sum(useful_flops(model, b, 4) for b in examples)
    shortest = str(min(args.lengths))
    rows, results = [], {"environment": env, "args": vars(args), "lengths": {}}
    for n in args.lengths:
        summary = Summary.of(times[str(n)])
        ratio = paired_ratio(times[str(n)], times[shortest])
        cpu_ratio = paired_ratio(cpu[str(n)], cpu[shortest])
        util = mfu(flops, summary.median, device, args.peak_flops)
        results["lengths"][n] = {
            "round_seconds": times[str(n)],
            "round_cpu_seconds": cpu[str(n)],
            "ratio_vs_shortest": ratio,
            "cpu_ratio_vs_shortest": cpu_ratio,
            "mfu": util,
        }
        rows.append(
            [
                n,
                f"{summary.median / len(examples):.3f}",
                f"{summary.min / len(examples):.3f}",
                f"{ratio:.2f}x",
                f"{cpu_ratio:.2f}x" if device.type == "cpu" else "-",
                f"{n_targets / summary.median:,.0f}",
                fmt_mfu(util),
            ]
        )
    print(
        f"\n### Training step vs prefix length, {args.model}: {len(examples)} {label} batches of "
        f"{args.batch_size} ({n_targets} target tokens), prefix MLP hidden {args.mlp_hidden}, "
        f"{args.reps} interleaved rounds\n"
    )
    print(
        markdown_table(
            [
                "prefix length",
                "step s (median)",
                "step s (min)",
                f"vs length {shortest}",
                f"CPU time vs length {shortest}",
                "target tok/s",
                "MFU",
            ],
            rows,
        )
    )
    longest = str(max(args.lengths))
    ratio = paired_ratio(times[longest], times[shortest])
    cpu_ratio = paired_ratio(cpu[longest], cpu[shortest])
    results["target"] = {"ratio": ratio, "cpu_ratio": cpu_ratio, "required": TARGET, "met": ratio <= TARGET}
    print(
        f"\nTarget: length {longest} step <= {TARGET}x length {shortest}: {ratio:.2f}x, {verdict(ratio <= TARGET)}"
        + (f" (from CPU time: {cpu_ratio:.2f}x)." if device.type == "cpu" else ".")
    )
    print(
        f"{describe_environment(env)}. 'vs length' = median over rounds of the round-time ratio (wall; "
        "CPU: process CPU time, less sensitive to other processes' load). MFU counts "
        "4 x (body params x real tokens + head params x target tokens) per step (prefix and attention excluded)."
    )
    write_json(args.json, results)
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
