"""Test decoding: prefixlab's evaluation (each MR once, length-sorted batches of 16, left padding) vs a naive
loop that calls `PrefixModel.generate` once per test row (E2E: 4,693 rows for 630 MRs) with batch size 1.

Both use the paper's E2E decoding settings (conf/task/e2e.yaml: beam 5, at most 100 new tokens, newlines
banned) and the same prefix. The outputs must be identical for every MR (checked and reported; the script
fails if they are not). Timed on a fixed random subset of test MRs with all their rows (``--mrs N``);
the naive loop runs once, split into chunks with a prefixlab pass before, between and after them.

An untrained prefix makes the model ramble to the 100-token limit, which is not what a trained prefix
decodes, so by default the prefix is first trained briefly (``--prefix-steps``, AdamW at a high learning rate,
cached under prefixlab's cache folder); ``--prefix PATH`` uses a saved prefix instead. As in the training app,
the prefix is exported and decoding runs in the model's dtype (float32), on CUDA too.

    python benchmarks/decode.py [--quick] [--mrs N] [--prefix PATH] [--model M] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
from common import (
    base_parser,
    describe_environment,
    environment,
    load,
    markdown_table,
    pick,
    run_batches,
    setup,
    stage,
    synchronize,
    to_device,
    verdict,
    write_json,
)

from prefixlab import PrefixConfig, PrefixModel
from prefixlab.evaluate import clean_output, decode, generation_kwargs
from prefixlab.tasks import Collator, encode_eval, encode_split, load_task, pad_id_for

TARGET = 5.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command line."""
    parser = base_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--mrs", type=int, default=None, help="test MRs timed (default 8, quick 3)")
    parser.add_argument("--batch-size", type=int, default=16, help="prefixlab's decoding batch size")
    parser.add_argument("--prefix", default=None, help="a prefix saved by PrefixModel.save (skips training)")
    parser.add_argument("--prefix-steps", type=int, default=60, help="steps of the quick prefix training")
    parser.add_argument("--prefix-lr", type=float, default=3e-3)
    args = parser.parse_args(argv)
    args.mrs = args.mrs or (3 if args.quick else 8)
    args.reps = args.reps or 3
    return args


def cached_prefix_path(args: argparse.Namespace) -> Path:
    """Where the quickly trained prefix is kept between runs."""
    from prefixlab.models import cache_root

    name = f"{args.model}-e2e-len10-mlp512-{args.prefix_steps}steps-lr{args.prefix_lr:g}-seed{args.seed}"
    return cache_root() / "benchmarks" / f"{name}.safetensors"


def prefix_model(args: argparse.Namespace, model: Any, tokenizer: Any, data: Any, device: torch.device):
    """The PrefixModel to decode with: loaded from --prefix or the cache, else trained briefly and cached."""
    path = Path(args.prefix) if args.prefix else cached_prefix_path(args)
    if path.exists():
        prefix = PrefixModel.load(model, path)
        source = f"loaded from {path}"
    else:
        torch.manual_seed(args.seed)
        prefix = PrefixModel(model, PrefixConfig(length=10, depth="all", reparam="mlp", mlp_hidden=512))
        prefix.train()
        train = encode_split(data, "train", tokenizer, "decoder_only")
        batches = run_batches([e.length for e in train], 10, args.seed)[: args.prefix_steps]
        params = [p for p in prefix.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=args.prefix_lr)
        collate = Collator(pad_id_for(tokenizer))
        loss = torch.tensor(float("nan"))
        with stage(f"training a prefix for {len(batches)} steps (cached afterwards in {path})"):
            for batch in batches:
                loss = prefix(**to_device(collate([train[i] for i in batch]), device)).loss
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
        prefix.export()
        prefix.save(path)
        source = f"trained for {len(batches)} steps at lr {args.prefix_lr:g} (last loss {loss.item():.2f}), saved to {path}"
    prefix.export()
    prefix.eval()
    return prefix, source


def naive_loop(prefix: PrefixModel, tokenizer: Any, rows: list[list[int]], kwargs: dict, device) -> list[str]:
    """One `generate` call per test row, batch size 1."""
    outputs = []
    for ids in rows:
        source = torch.tensor([ids], device=device)
        generated = prefix.generate(source_ids=source, source_mask=torch.ones_like(source), **kwargs)
        outputs.append(clean_output(generated[0].tolist(), tokenizer))
    return outputs


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark and print its tables."""
    args = parse_args(argv)
    device = setup(args)
    env = environment(device)
    with stage(f"loading {args.model} and the E2E test set"):
        model, tokenizer = load(args.model, device)
        data = load_task("e2e")
        groups, sources = encode_eval(data, "test", tokenizer, "decoder_only")
    prefix, prefix_source = prefix_model(args, model, tokenizer, data, device)
    decoding = dict(data.config.decoding)
    kwargs = generation_kwargs(decoding, tokenizer, False)
    chosen = pick(list(range(len(groups))), args.mrs, args.seed)
    mr_sources = [sources[i] for i in chosen]
    # The test rows of the chosen MRs, in file order: each MR repeated once per reference.
    row_mr = [k for k, i in enumerate(chosen) for _ in groups[i].references]
    n_rows = len(row_mr)

    def ours() -> list[str]:
        return decode(prefix, tokenizer, mr_sources, decoding, batch_size=args.batch_size, device=device,
                      progress=False)  # fmt: skip

    with stage("warm-up"):
        for _ in range(max(args.warmup, 0)):
            naive_loop(prefix, tokenizer, [mr_sources[0].source_ids], kwargs, device)
            decode(prefix, tokenizer, mr_sources[:2], decoding, batch_size=2, device=device, progress=False)
    # P N1 P N2 ... P: prefixlab passes around chunks of the naive loop (split at MR boundaries).
    chunks = [list(c) for c in _split(list(range(len(chosen))), max(args.reps - 1, 1))]
    ours_seconds: list[float] = []
    naive_seconds = 0.0
    naive_outputs: list[str] = []
    batched: list[str] = []
    with stage(
        f"timing: prefixlab x{len(chunks) + 1}, naive loop over {n_rows} rows in {len(chunks)} chunks"
    ):
        for k in range(len(chunks) + 1):
            synchronize(device)
            start = time.perf_counter()
            batched = ours()
            synchronize(device)
            ours_seconds.append(time.perf_counter() - start)
            print(f"  prefixlab pass {k + 1}: {ours_seconds[-1]:.1f}s", file=sys.stderr, flush=True)
            if k == len(chunks):
                break
            rows = [mr_sources[m].source_ids for m in row_mr if m in set(chunks[k])]
            start = time.perf_counter()
            naive_outputs += naive_loop(prefix, tokenizer, rows, kwargs, device)
            synchronize(device)
            naive_seconds += time.perf_counter() - start
            print(
                f"  naive chunk {k + 1}: {len(rows)} rows, {naive_seconds:.1f}s so far",
                file=sys.stderr,
                flush=True,
            )

    mismatches = [
        (m, batched[m], out) for m, out in zip(row_mr, naive_outputs, strict=True) if out != batched[m]
    ]
    bad_mrs = sorted({m for m, _, _ in mismatches})
    diagnosis = diagnose(
        prefix, tokenizer, mr_sources, decoding, bad_mrs, batched, naive_outputs, row_mr, device
    )
    ours_median = statistics.median(ours_seconds)
    new_tokens = [len(tokenizer(o, add_special_tokens=False)["input_ids"]) for o in batched]
    rows_table = [
        ["prefixlab decode (each MR once, batches of 16)", len(chosen), len(chosen), f"{ours_median:.1f}",
         f"{min(ours_seconds):.1f}", f"{len(chosen) / ours_median:.3f}", f"{n_rows / ours_median:.3f}", f"{naive_seconds / ours_median:.2f}x"],
        ["naive loop (generate per row, batch 1)", n_rows, n_rows, f"{naive_seconds:.1f}", f"{naive_seconds:.1f}",
         f"{len(chosen) / naive_seconds:.3f}", f"{n_rows / naive_seconds:.3f}", "1.00x"],
    ]  # fmt: skip
    speedup = naive_seconds / ours_median
    results = {
        "environment": env,
        "args": vars(args),
        "prefix": prefix_source,
        "mrs": [groups[i].group for i in chosen],
        "rows": n_rows,
        "prefixlab_seconds": ours_seconds,
        "naive_seconds": naive_seconds,
        "speedup": speedup,
        "identical_mrs": len(chosen) - len(bad_mrs),
        "mismatches": [{"mr": groups[chosen[m]].group, "batched": b, "naive": n} for m, b, n in mismatches],
        "diagnosis": diagnosis,
        "mean_output_tokens": statistics.mean(new_tokens),
        "target": {"speedup": speedup, "required": TARGET, "met": speedup >= TARGET},
    }
    print(
        f"\n### E2E test decoding, {args.model}: {len(chosen)} of {len(groups)} test MRs with all their "
        f"{n_rows} rows; beam {kwargs.get('num_beams')}, max {kwargs.get('max_new_tokens')} new tokens, "
        "newlines banned\n"
    )
    print(
        markdown_table(
            [
                "method",
                "generate inputs",
                "outputs",
                "wall s (median)",
                "wall s (min)",
                "MRs/s",
                "rows/s",
                "speedup",
            ],
            rows_table,
        )
    )
    print(
        f"\nOutputs identical per MR: {len(chosen) - len(bad_mrs)}/{len(chosen)} MRs ({len(mismatches)} rows differ)."
    )
    for line in diagnosis:
        print(f"  {line}")
    print(f"Target: prefixlab >= {TARGET}x the naive loop: {speedup:.2f}x, {verdict(speedup >= TARGET)}.")
    print(
        f"Prefix: {prefix_source}. Mean output length {statistics.mean(new_tokens):.1f} tokens "
        f"(max {max(new_tokens)}). {describe_environment(env)}. prefixlab: median of {len(ours_seconds)} passes; "
        "naive: one pass (chunks summed)."
    )
    write_json(args.json, results)
    if bad_mrs:
        raise SystemExit(f"outputs differ for {len(bad_mrs)} MRs (see above)")
    return results


def _split(items: list[int], parts: int) -> list[list[int]]:
    size = -(-len(items) // parts)
    return [items[k : k + size] for k in range(0, len(items), size)]


def diagnose(
    prefix: PrefixModel,
    tokenizer: Any,
    mr_sources: list[Any],
    decoding: dict[str, Any],
    bad_mrs: list[int],
    batched_outputs: list[str],
    naive_outputs: list[str],
    row_mr: list[int],
    device: torch.device,
) -> list[str]:
    """For MRs whose batched output differs: decode each alone with prefixlab's decode (batch 1, no padding)
    to tell batching/padding numerics from anything else."""
    lines = []
    for m in bad_mrs[:5]:
        alone = decode(
            prefix, tokenizer, [mr_sources[m]], decoding, batch_size=1, device=device, progress=False
        )[0]
        naive = naive_outputs[row_mr.index(m)]
        batched = batched_outputs[m]
        where = next(
            (i for i, (a, b) in enumerate(zip(batched, naive, strict=False)) if a != b),
            min(len(batched), len(naive)),
        )
        cause = "batching/left padding" if alone == naive else "not batching (differs alone too)"
        lines.append(
            f"MR #{m}: first difference at char {where} ({cause}); batched={batched!r} naive={naive!r}"
        )
    return lines


if __name__ == "__main__":
    main(sys.argv[1:])
