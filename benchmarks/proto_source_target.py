"""Before/after of the decoder-only `SourceTargetModel.forward` change (landed in fbfa1d1), measured.

This began as the prototype of two changes to prefixlab/methods/source_target.py; prefixlab now has both, so
the "current" row is the change and `OldForwardPrefixModel` reproduces the code before it:

A. Output-layer gather. The old forward passed ``logits_to_keep=target_len + 1``; transformers then slices
   ``hidden[:, -k:, :]``, a non-contiguous view, and ``nn.Linear`` on a non-contiguous 3-D input runs as a
   batched matmul against the broadcast weight (``aten::bmm``), ~2.5x slower on CPU than one ``mm`` over the
   same rows, forward and backward. Positions given as a tensor (transformers >= 5 gathers them with
   ``take_along_dim`` into a contiguous tensor) run one ``mm`` and drop the unused last position.
B. Compact rows (placement "prefix"; an infix needs the source's last token at one column). The old layout
   padded every source to the longest source and every target to the longest target (width = max source +
   max target); packing each row as ``[x_i; y_i]`` removes that padding, and the per-row target positions go
   to transformers as a (batch, target_len) ``logits_to_keep``.

Rows: the old forward, A alone (aligned rows, gathered positions: what an infix runs now), the current code
(A + B), PEFT and the floor, on the same batches, interleaved step by step; the variants are also checked to
give the same loss and logits.

    python benchmarks/proto_source_target.py [--quick] [--batches N] [--reps R]
"""

from __future__ import annotations

import copy
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
from training_steps import frozen_floor, peft_prefix, prefixlab_prefix, target_tokens

from prefixlab import PrefixModel
from prefixlab.methods.source_target import SourceTargetOutput, left_align, right_align, target_loss
from prefixlab.tasks import Collator, pad_id_for


class OldForwardPrefixModel(PrefixModel):
    """PrefixModel with the decoder-only forward as it was before fbfa1d1 (aligned rows, int keep)."""

    def forward(
        self,
        source_ids: torch.Tensor,
        source_mask: torch.Tensor,
        target_ids: torch.Tensor,
        target_mask: torch.Tensor,
        loss_reduction: str = "token_mean",
    ) -> SourceTargetOutput:
        """Loss over target tokens and target logits (batch, target_len, vocab), the old way."""
        if self.is_encoder_decoder:
            return super().forward(source_ids, source_mask, target_ids, target_mask, loss_reduction)
        target_ids, target_mask = right_align(target_ids, target_mask)
        virtual = self._virtual()
        target_len = target_ids.shape[1]
        source_ids, source_mask = left_align(source_ids, source_mask)
        ids = torch.cat([source_ids, target_ids], dim=1)
        mask = torch.cat([source_mask, target_mask], dim=1)
        inputs, inject = self._decoder_only_inputs(ids, mask, source_ids.shape[1], virtual)
        with self._injected(inject):
            out = self.base(**inputs, use_cache=False, logits_to_keep=target_len + 1)
        logits = out.logits[:, :target_len]
        return SourceTargetOutput(
            loss=target_loss(logits, target_ids, target_mask, loss_reduction), logits=logits
        )


class AlignedPrefixModel(PrefixModel):
    """The current forward with aligned rows (change A alone; the path an infix takes)."""

    def _compact_rows(self) -> bool:
        return False


def check_equal(model: Any, examples: list[list[Any]], pad_id: int, device: torch.device) -> list[str]:
    """Old forward vs A vs current on the same prefix: loss and logits of every batch (float32)."""
    lines = []
    collate = Collator(pad_id)
    for cls in (AlignedPrefixModel, PrefixModel):
        base = copy.deepcopy(model)
        current = prefixlab_prefix(base, pad_id, device, model_class=OldForwardPrefixModel).model
        proposed = cls(base, current.config)
        proposed.prefix.load_state_dict(current.prefix.state_dict())
        worst_loss = worst_logit = 0.0
        for batch in examples:
            tensors = to_device(collate(batch), device)
            with torch.no_grad():
                a, b = current(**tensors), proposed(**tensors)
            mask = tensors["target_mask"].sum(1)
            for row, n in enumerate(mask.tolist()):
                worst_logit = max(worst_logit, (a.logits[row, :n] - b.logits[row, :n]).abs().max().item())
            worst_loss = max(worst_loss, (a.loss - b.loss).abs().item())
        lines.append(
            f"{cls.__name__} vs the old forward: max |loss diff| {worst_loss:.2e}, "
            f"max |logit diff| on target tokens {worst_logit:.2e}"
        )
    return lines


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Time the old forward, A and the current one, interleaved, and print a table."""
    parser = base_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=10)
    args = parser.parse_args(argv)
    args.batches = args.batches or (1 if args.quick else 3)
    args.reps = args.reps or (2 if args.quick else 4)
    device = setup(args)
    env = environment(device)
    model, tokenizer = load(args.model, device)
    _, train = e2e(tokenizer)
    pad_id = pad_id_for(tokenizer)
    batches = pick(
        run_batches([e.length for e in train], args.batch_size, args.seed), args.batches, args.seed
    )
    examples = [[train[i] for i in b] for b in batches]
    with stage("checking that the variants compute the same loss and logits"):
        equal = check_equal(model, examples, pad_id, device)
    methods = {
        "old forward (aligned, int keep)": prefixlab_prefix(
            copy.deepcopy(model), pad_id, device, model_class=OldForwardPrefixModel
        ),
        "A: aligned, gathered keep": prefixlab_prefix(
            copy.deepcopy(model), pad_id, device, model_class=AlignedPrefixModel
        ),
        "current (A+B: packed rows)": prefixlab_prefix(copy.deepcopy(model), pad_id, device),
        "PEFT": peft_prefix(copy.deepcopy(model), pad_id, device),
        "floor (target logits)": frozen_floor(copy.deepcopy(model), pad_id, device),
    }
    inputs = {name: [m.prepare(b) for b in examples] for name, m in methods.items()}
    cpu: dict[str, list[float]] = {}
    with stage(f"timing {args.reps} interleaved rounds"):
        times = interleaved(
            {name: [partial(methods[name].step, b) for b in inputs[name]] for name in methods},
            args.reps,
            args.warmup,
            device,
            cpu=cpu,
        )
    n_targets = sum(target_tokens(b) for b in examples)
    rows = []
    for name in methods:
        summary = Summary.of(times[name])
        rows.append(
            [
                name,
                f"{summary.median / len(examples):.3f}",
                f"{summary.min / len(examples):.3f}",
                f"{n_targets / summary.median:,.0f}",
                f"{paired_ratio(times['PEFT'], times[name]):.2f}x",
                f"{paired_ratio(times[name], times['floor (target logits)']):.2f}x",
                f"{paired_ratio(cpu['PEFT'], cpu[name]):.2f}x",
                f"{paired_ratio(cpu[name], cpu['floor (target logits)']):.2f}x",
            ]
        )
    print(
        f"\n### SourceTargetModel.forward before/after fbfa1d1, {args.model}, {len(examples)} E2E batches\n"
    )
    print(
        markdown_table(
            [
                "variant",
                "step s (median)",
                "step s (min)",
                "target tok/s",
                "speed vs PEFT",
                "time vs floor",
                "CPU: speed vs PEFT",
                "CPU: time vs floor",
            ],
            rows,
        )
    )
    print("\n" + "\n".join(equal))
    print(f"{describe_environment(env)}; {args.reps} interleaved rounds, paired-ratio medians.")
    results = {"environment": env, "times": times, "cpu_times": cpu, "equality": equal}
    write_json(args.json, results)
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
