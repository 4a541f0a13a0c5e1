"""Prototype (scratch, not prefixlab code): per-layer prefix keys/values without select-backward, measured.

`prefix_attention` (prefixlab/methods/injection.py) reads each layer's virtual keys and values as
``kv[layer, 0]`` / ``kv[layer, 1]`` from one (layers, 2, kv_heads, length, head_dim) tensor. In backward each
of those 2 x layers `select`s allocates a zero tensor the size of the whole prefix, copies its gradient in,
and autograd adds the 2 x layers full-size gradients together: 60 zero-fills and 60 additions of 9 MB each
per step at length 200 on SmolLM2 (fill_/add_/copy_ grow by ~0.25 s per step). Splitting the tensor once per
forward with ``unbind`` (backward: one ``stack``) removes that traffic.

Proposed change: in `PrefixModel._virtual` (prefixlab/methods/prefix_model.py) hand the injection per-layer
(key, value) pairs, e.g. ``[layer.unbind(0) for layer in kv.unbind(0)]``, and in `prefix_attention` read
``pairs[layer]`` (and the length from ``pairs[0][0].shape[2]``). This prototype gets the same effect without
touching prefixlab by wrapping the tensor in an object that answers ``kv[layer, which]`` and ``kv.shape``.

Usage: ``python benchmarks/proto_prefix_kv.py [--quick] [--lengths 1 200] [--batches N] [--reps R]``.
"""

from __future__ import annotations

import sys
from functools import partial
from typing import Any

import torch
from common import (
    Summary,
    base_parser,
    describe_environment,
    e2e,
    environment,
    interleaved,
    load,
    markdown_table,
    paired_ratio,
    pick,
    run_batches,
    setup,
    stage,
    to_device,
    write_json,
)
from training_steps import prefixlab_prefix

from prefixlab import PrefixModel
from prefixlab.tasks import Collator, pad_id_for


class LayerKV:
    """Per-layer views of a (layers, 2, kv_heads, length, head_dim) prefix, made with `unbind`; indexable
    as ``kv[layer, 0 or 1]`` like the tensor, so `prefix_attention` needs no change."""

    def __init__(self, kv: torch.Tensor) -> None:
        self.shape = kv.shape
        self.pairs = [layer.unbind(0) for layer in kv.unbind(0)]

    def __getitem__(self, index: tuple[int, int]) -> torch.Tensor:
        layer, which = index
        return self.pairs[layer][which]


class UnbindPrefixModel(PrefixModel):
    """PrefixModel whose virtual keys/values reach the attention layers through `LayerKV`."""

    def _virtual(self) -> dict[str, Any]:
        values = super()._virtual()
        if self.config.depth == "embedding":
            return values
        return {name: LayerKV(kv) for name, kv in values.items()}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Time current vs proposed prefix step at each length, interleaved; check equal gradients."""
    parser = base_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[1, 200])
    parser.add_argument("--batches", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=10)
    args = parser.parse_args(argv)
    args.batches = args.batches or (1 if args.quick else 3)
    args.reps = args.reps or (2 if args.quick else 5)
    device = setup(args)
    env = environment(device)
    model, tokenizer = load(args.model, device)
    _, train = e2e(tokenizer)
    pad_id = pad_id_for(tokenizer)
    batches = pick(
        run_batches([e.length for e in train], args.batch_size, args.seed), args.batches, args.seed
    )
    examples = [[train[i] for i in b] for b in batches]

    checks = []
    with stage("checking equal loss and prefix gradients"):
        for n in args.lengths:
            current = prefixlab_prefix(model, pad_id, device, length=n).model
            proposed = UnbindPrefixModel(model, current.config)
            proposed.prefix.load_state_dict(current.prefix.state_dict())
            tensors = to_device(Collator(pad_id)(examples[0]), device)
            grads = []
            for m in (current, proposed):
                m.zero_grad()
                m(**tensors).loss.backward()
                grads.append(torch.cat([p.grad.flatten() for p in m.prefix.parameters()]))
            checks.append(f"length {n}: max |grad diff| {(grads[0] - grads[1]).abs().max().item():.2e}")

    methods = {}
    for n in args.lengths:
        methods[f"current, length {n}"] = prefixlab_prefix(model, pad_id, device, length=n)
        methods[f"unbind, length {n}"] = prefixlab_prefix(
            model, pad_id, device, length=n, model_class=UnbindPrefixModel
        )
    inputs = {name: [m.prepare(b) for b in examples] for name, m in methods.items()}
    with stage(f"timing {args.reps} interleaved rounds"):
        times = interleaved(
            {name: [partial(methods[name].step, b) for b in inputs[name]] for name in methods},
            args.reps,
            args.warmup,
            device,
        )
    shortest = min(args.lengths)
    rows = []
    for name in methods:
        kind = name.split(",")[0]
        summary = Summary.of(times[name])
        rows.append(
            [
                name,
                f"{summary.median / len(examples):.3f}",
                f"{summary.min / len(examples):.3f}",
                f"{paired_ratio(times[name], times[f'{kind}, length {shortest}']):.2f}x",
                f"{paired_ratio(times[name], times['current' + name[len(kind) :]]):.2f}x",
            ]
        )
    print(
        f"\n### Prototype: per-layer prefix keys/values via unbind, {args.model}, {len(examples)} E2E batches\n"
    )
    print(
        markdown_table(
            [
                "variant",
                "step s (median)",
                "step s (min)",
                f"vs same variant at length {shortest}",
                "vs current",
            ],
            rows,
        )
    )
    print("\n" + "\n".join(checks))
    print(f"{describe_environment(env)}; {args.reps} interleaved rounds, paired-ratio medians.")
    results = {"environment": env, "times": times, "checks": checks}
    write_json(args.json, results)
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
