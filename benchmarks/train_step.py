"""Training step: prefixlab prefix-tuning vs PEFT prefix tuning vs the frozen-model floor vs full fine-tuning.

All methods train on the same E2E batches (a fixed random choice of the length-grouped batches of 10 that a
run makes) with a real step: forward, backward, gradient clipping and AdamW (the floors have nothing to
update). The floor is the frozen model's forward + backward with only the input embeddings requiring grad
and logits only where the loss needs them, in the compact layout (each row `[x_i; y_i]`, no extra padding);
the naive floor computes logits at every position; ``--methods ... floor-aligned`` adds the floor in the
aligned layout with an int `logits_to_keep` (prefixlab's layout before fbfa1d1); `prefixlab-ckpt` is prefixlab
with activation checkpointing (`trainer.activation_checkpointing`). Timing is interleaved step by step in one
process; peak memory is measured in a fresh process per method.

Targets: prefixlab >= 1.15x PEFT target tokens/s; prefixlab step <= 1.1x the floor; prefix-tuning peak
memory <= 0.5x full fine-tuning's.

    python benchmarks/train_step.py [--quick] [--model smollm2-135m] [--device cpu|cuda] [--json PATH]
"""

from __future__ import annotations

import argparse
import sys
from functools import partial
from pathlib import Path
from typing import Any

from common import (
    Summary,
    base_parser,
    child_result,
    current_memory,
    describe_environment,
    e2e,
    environment,
    fmt_mfu,
    interleaved,
    load,
    markdown_table,
    mfu,
    mib,
    paired_ratio,
    peak_memory,
    pick,
    reset_peak_memory,
    run_batches,
    run_child,
    setup,
    stage,
    touch_parameters,
    verdict,
    write_json,
)
from training_steps import BUILDERS, build, target_tokens, token_slots, useful_flops

from prefixlab.tasks import pad_id_for

ORDER = ["prefixlab", "prefixlab-ckpt", "peft", "floor", "naive-floor", "finetune"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command line."""
    parser = base_parser(__doc__.split("\n\n")[0])
    parser.add_argument(
        "--batches", type=int, default=None, help="E2E batches per round (default 3, quick 1)"
    )
    parser.add_argument("--batch-size", type=int, default=10)
    parser.add_argument("--methods", nargs="+", default=ORDER, choices=sorted(BUILDERS))
    parser.add_argument("--no-memory", action="store_true", help="skip the per-method memory subprocesses")
    parser.add_argument("--child", choices=sorted(BUILDERS), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.batches = args.batches or (1 if args.quick else 3)
    args.reps = args.reps or (2 if args.quick else 3)
    return args


def chosen_examples(args: argparse.Namespace, tokenizer: Any) -> list[list[Any]]:
    """The encoded examples of each benchmark batch."""
    _, train = e2e(tokenizer)
    batches = pick(
        run_batches([e.length for e in train], args.batch_size, args.seed), args.batches, args.seed
    )
    return [[train[i] for i in batch] for batch in batches]


def child(args: argparse.Namespace) -> None:
    """Fresh process: build one method, train twice on the largest batch, report the peak memory.

    `runtime` is the process before the model is loaded (Python, torch, transformers, peft, prefixlab), so
    peak - runtime is the memory of the model and its training (what CUDA's allocator counts)."""
    import peft  # noqa: F401  (every child imports the same libraries before its baseline)

    device = setup(args)
    runtime = current_memory(device)
    model, tokenizer = load(args.model, device)
    largest = max(chosen_examples(args, tokenizer), key=lambda b: token_slots(b, "aligned"))
    method = build(args.child, model, pad_id_for(tokenizer), device, fresh_copy=False)
    batch = method.prepare(largest)
    touch_parameters(method.model)
    loaded = current_memory(device)
    how = reset_peak_memory(device)
    for _ in range(2):  # the second step runs with the optimizer state in place
        method.step(batch)
    child_result(
        {
            "peak": peak_memory(device),
            "runtime": runtime if device.type == "cpu" else 0,
            "loaded": loaded,
            "how": how,
        }
    )


def child_argv(args: argparse.Namespace, name: str) -> list[str]:
    """The command line of a memory child for method `name`."""
    argv = ["--child", name, "--model", args.model, "--device", args.device, "--seed", str(args.seed)]
    argv += ["--batches", str(args.batches), "--batch-size", str(args.batch_size)]
    argv += ["--omp-wait-policy", args.omp_wait_policy]
    if args.threads:
        argv += ["--threads", str(args.threads)]
    if args.data_dir:
        argv += ["--data-dir", args.data_dir]
    return argv


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark and print its tables."""
    args = parse_args(argv)
    if args.child:
        child(args)
        return {}
    device = setup(args)
    env = environment(device)
    with stage(f"loading {args.model} and the E2E batches"):
        model, tokenizer = load(args.model, device)
        examples = chosen_examples(args, tokenizer)
        pad_id = pad_id_for(tokenizer)
    with stage(f"building {', '.join(args.methods)} (one model copy each)"):
        methods = {name: build(name, model, pad_id, device, fresh_copy=True) for name in args.methods}
    inputs = {name: [m.prepare(batch) for batch in examples] for name, m in methods.items()}

    units = {name: [partial(m.step, batch) for batch in inputs[name]] for name, m in methods.items()}
    cpu: dict[str, list[float]] = {}
    with stage(f"timing {args.reps} interleaved rounds of {len(examples)} steps per method"):
        times = interleaved(units, args.reps, args.warmup, device, cpu=cpu)

    memory: dict[str, dict[str, Any]] = {}
    if not args.no_memory:
        for name in args.methods:
            with stage(f"peak memory of {name} (fresh process)"):
                memory[name] = run_child(Path(__file__), child_argv(args, name))

    n_targets = sum(target_tokens(batch) for batch in examples)
    shapes = [
        (
            len(b),
            max(len(e.source_ids) for e in b),
            max(len(e.target_ids) for e in b),
            max(e.length for e in b),
        )
        for b in examples
    ]
    results: dict[str, Any] = {"environment": env, "args": vars(args), "batches": shapes, "methods": {}}
    rows = []
    for name, method in methods.items():
        summary = Summary.of(times[name])
        per_step = summary.median / len(examples)
        flops = sum(useful_flops(model, b, method.flops_per_param_token) for b in examples)
        util = mfu(flops, summary.median, device, args.peak_flops)
        slots = sum(token_slots(b, method.layout) for b in examples)
        mem = memory.get(name)
        results["methods"][name] = {
            "round_seconds": times[name],
            "round_cpu_seconds": cpu[name],
            "median_step_s": per_step,
            "target_tokens_per_s": n_targets / summary.median,
            "token_slots": slots,
            "mfu": util,
            "memory": mem,
        }
        vs = f"{paired_ratio(times[name], times['prefixlab']):.2f}x" if "prefixlab" in times else "-"
        rows.append(
            [
                method.name,
                f"{slots:,}",
                f"{per_step:.3f}",
                f"{summary.min / len(examples):.3f}",
                f"{Summary.of(cpu[name]).median / len(examples):.3f}",
                f"{n_targets / summary.median:,.0f}",
                vs,
                fmt_mfu(util),
                mib(mem["peak"] - mem["runtime"]) if mem else "-",
                mib(mem["peak"]) if mem else "-",
                mib(mem["peak"] - mem["loaded"]) if mem else "-",
            ]
        )
    print(
        f"\n### Training step, {args.model}: {len(examples)} E2E batches of {args.batch_size} "
        f"((batch, max source, max target, max source+target): {shapes}), {n_targets} target tokens, "
        f"{args.reps} interleaved rounds\n"
    )
    print(
        markdown_table(
            [
                "method",
                "token slots",
                "step s (median)",
                "step s (min)",
                "CPU s/step",
                "target tok/s",
                "time vs prefixlab",
                "MFU",
                "peak MiB (model + training)",
                "peak RSS MiB" if device.type == "cpu" else "peak MiB",
                "peak above loaded model MiB",
            ],
            rows,
        )
    )
    targets = target_rows(times, cpu, memory, device.type == "cpu")
    results["targets"] = [
        dict(zip(["target", "measured", "required", "status", "cpu_time_ratio", "value"], t, strict=True))
        for t in targets
    ]
    if targets:
        headers = ["target", "measured (wall)", "required", "status", "same from CPU time"]
        print("\n" + markdown_table(headers, [t[:5] for t in targets]))
    how = next(iter(memory.values()))["how"] if memory else "not measured"
    print(
        f"\n{describe_environment(env)}. Step = forward + backward + clip + AdamW (floors: forward + "
        f"backward). prefixlab packs rows in the {methods['prefixlab'].layout if 'prefixlab' in methods else '?'} "
        "layout. CPU s = process CPU time (all threads), less sensitive than wall time to other processes' load. Token slots = batch x width the model runs over, summed over the batches. 'time vs "
        "prefixlab' = median over rounds of (round time / prefixlab's round time). MFU = useful FLOPs / time / "
        "peak, useful FLOPs = c x (body params x real tokens + head params x target tokens), c = 4 frozen "
        f"(forward + activation grads), 6 fine-tuning. Memory: {how}, one fresh process per method, two "
        "steps on the largest batch; 'model + training' subtracts the process before the model was loaded "
        "(Python + libraries), 'above loaded model' the process after loading and wrapping it."
    )
    write_json(args.json, results)
    return results


def target_rows(
    times: dict[str, list[float]],
    cpu: dict[str, list[float]],
    memory: dict[str, dict[str, Any]],
    on_cpu: bool,
) -> list[list[Any]]:
    """The targets: what, measured, required, status, the same from CPU time, raw value."""
    rows: list[list[Any]] = []

    def add(what: str, value: float, required: str, ok: bool | None, cpu_value: float | None = None) -> None:
        status = "-" if ok is None else verdict(ok)
        cpu_text = f"{cpu_value:.2f}x" if cpu_value is not None and on_cpu else "-"
        rows.append([what, f"{value:.2f}x", required, status, cpu_text, value])

    def ratio(a: str, b: str) -> tuple[float, float]:
        return paired_ratio(times[a], times[b]), paired_ratio(cpu[a], cpu[b])

    if "prefixlab" in times and "peft" in times:
        speedup, by_cpu = ratio("peft", "prefixlab")
        add("prefixlab / PEFT target tokens/s", speedup, ">= 1.15x", speedup >= 1.15, by_cpu)
    if "prefixlab" in times and "floor" in times:
        value, by_cpu = ratio("prefixlab", "floor")
        add("prefixlab step / floor (target logits) step", value, "<= 1.10x", value <= 1.1, by_cpu)
    if "prefixlab" in times and "floor-aligned" in times:
        value, by_cpu = ratio("prefixlab", "floor-aligned")
        add("(info) prefixlab step / floor in the aligned layout", value, "-", None, by_cpu)
    if "prefixlab" in memory and "finetune" in memory:
        ours, theirs = memory["prefixlab"], memory["finetune"]
        share = (ours["peak"] - ours["runtime"]) / (theirs["peak"] - theirs["runtime"])
        add(
            "prefix-tuning / full fine-tuning peak memory (model + training)", share, "<= 0.50x", share <= 0.5
        )
        if ours["runtime"]:
            add("(info) the same, whole-process peak RSS", ours["peak"] / theirs["peak"], "-", None)
        overhead = (ours["peak"] - ours["loaded"]) / (theirs["peak"] - theirs["loaded"])
        add("(info) the same, above the loaded model", overhead, "-", None)
    if "prefixlab-ckpt" in memory and "finetune" in memory:
        ours, theirs = memory["prefixlab-ckpt"], memory["finetune"]
        share = (ours["peak"] - ours["runtime"]) / (theirs["peak"] - theirs["runtime"])
        add("the same with activation checkpointing", share, "<= 0.50x", share <= 0.5)
    if "prefixlab-ckpt" in times and "prefixlab" in times:
        value, by_cpu = ratio("prefixlab-ckpt", "prefixlab")
        add("(info) step time with / without activation checkpointing", value, "-", None, by_cpu)
    return rows


if __name__ == "__main__":
    main(sys.argv[1:])
