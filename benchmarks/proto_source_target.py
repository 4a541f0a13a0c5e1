"""Prototype (scratch, not prefixlab code): a faster decoder-only `SourceTargetModel.forward`, measured.

Two changes to prefixlab/methods/source_target.py, `SourceTargetModel.forward`, decoder-only branch:

A. Output-layer gather. prefixlab passes ``logits_to_keep=target_len + 1``; transformers then slices
   ``hidden[:, -k:, :]``, a non-contiguous view, and ``nn.Linear`` on a non-contiguous 3-D input runs as a
   batched matmul against the broadcast weight (``aten::bmm``), ~2.5x slower on CPU than one ``mm`` over
   the same rows, forward and backward. Passing the positions as a tensor instead
   (``logits_to_keep=torch.arange(source_width - 1, source_width - 1 + target_len)``; transformers >= 5
   gathers them with ``take_along_dim`` into a contiguous tensor) runs one ``mm`` and also drops the unused
   last position.
B. Compact rows (placement "prefix" only; infix needs the source's last token at one column). prefixlab pads
   every source to the longest source and every target to the longest target, so a batch is
   max source + max target wide; packing each row as ``[x_i; y_i]`` (``right_align`` of the concatenation,
   cut to max(source_i + target_i)) removes that extra padding, and the target positions differ per row, so
   they go to transformers as a (batch, target_len) ``logits_to_keep`` (gathered, contiguous, same logits
   shape as today).

Usage: ``python benchmarks/proto_source_target.py [--quick] [--batches N] [--reps R]`` prints the timing of
the current PrefixModel, A, A+B, PEFT and the floor on the same batches, interleaved, and checks that the
prototypes give the same loss and logits as the current code.
"""

from __future__ import annotations

import copy
import sys
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


class ProposedPrefixModel(PrefixModel):
    """PrefixModel whose decoder-only forward uses change A (and B when `compact`)."""

    compact = True

    def forward(
        self,
        source_ids: torch.Tensor,
        source_mask: torch.Tensor,
        target_ids: torch.Tensor,
        target_mask: torch.Tensor,
        loss_reduction: str = "token_mean",
    ) -> SourceTargetOutput:
        """Loss over target tokens and target logits (batch, target_len, vocab), as `SourceTargetModel`."""
        if self.is_encoder_decoder:
            return super().forward(source_ids, source_mask, target_ids, target_mask, loss_reduction)
        target_ids, target_mask = right_align(target_ids, target_mask)
        virtual = self._virtual()
        target_len = target_ids.shape[1]
        arange = torch.arange(target_len, device=target_ids.device)
        if self.compact and self.config.placement == "prefix":
            # B: each row [x_i; y_i] from column 0, padded on the right to the longest row.
            ids, mask = right_align(
                torch.cat([source_ids, target_ids], dim=1), torch.cat([source_mask, target_mask], dim=1)
            )
            width = int(mask.sum(1).max())
            ids, mask = ids[:, :width], mask[:, :width]
            keep = ((source_mask.sum(1) - 1)[:, None] + arange).clamp(max=width - 1)
            if self.config.depth == "embedding":  # the virtual embeddings come first in the sequence
                keep = keep + self.config.length
            source_width = source_ids.shape[1]  # only read for placement "infix"
        else:
            source_ids, source_mask = left_align(source_ids, source_mask)
            ids = torch.cat([source_ids, target_ids], dim=1)
            mask = torch.cat([source_mask, target_mask], dim=1)
            source_width = source_ids.shape[1]
            # A: the positions predicting the targets, as a tensor: gathered contiguously (one matmul).
            keep = arange + (ids.shape[1] - target_len - 1)
            if self.config.depth == "embedding":
                keep = keep + self.config.length
        inputs, inject = self._decoder_only_inputs(ids, mask, source_width, virtual)
        with self._injected(inject):
            out = self.base(**inputs, use_cache=False, logits_to_keep=keep)
        logits = out.logits
        return SourceTargetOutput(
            loss=target_loss(logits, target_ids, target_mask, loss_reduction), logits=logits
        )


class ProposedGatherOnly(ProposedPrefixModel):
    """Change A alone (prefixlab's layout kept)."""

    compact = False


def check_equal(model: Any, examples: list[list[Any]], pad_id: int, device: torch.device) -> list[str]:
    """Current vs proposed forward on the same prefix: loss and logits of every batch (float32)."""
    lines = []
    collate = Collator(pad_id)
    for cls in (ProposedGatherOnly, ProposedPrefixModel):
        base = copy.deepcopy(model)
        current = prefixlab_prefix(base, pad_id, device).model
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
            f"{cls.__name__}: max |loss diff| {worst_loss:.2e}, max |logit diff| on target tokens {worst_logit:.2e}"
        )
    return lines


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Time current vs proposed forward, interleaved, and print a table."""
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
    with stage("checking that the prototypes compute the same loss and logits"):
        equal = check_equal(model, examples, pad_id, device)
    methods = {
        "prefixlab (current)": prefixlab_prefix(copy.deepcopy(model), pad_id, device),
        "A: gathered logits_to_keep": prefixlab_prefix(
            copy.deepcopy(model), pad_id, device, model_class=ProposedGatherOnly
        ),
        "A+B: + compact rows": prefixlab_prefix(
            copy.deepcopy(model), pad_id, device, model_class=ProposedPrefixModel
        ),
        "PEFT": peft_prefix(copy.deepcopy(model), pad_id, device),
        "floor (target logits)": frozen_floor(copy.deepcopy(model), pad_id, device),
    }
    inputs = {name: [m.prepare(b) for b in examples] for name, m in methods.items()}
    with stage(f"timing {args.reps} interleaved rounds"):
        times = interleaved(
            {name: (lambda n=name: [methods[n].step(b) for b in inputs[n]]) for name in methods},
            args.reps,
            args.warmup,
            device,
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
            ]
        )
    print(f"\n### Prototype: SourceTargetModel.forward changes, {args.model}, {len(examples)} E2E batches\n")
    print(
        markdown_table(
            ["variant", "step s (median)", "step s (min)", "target tok/s", "speed vs PEFT", "time vs floor"],
            rows,
        )
    )
    print("\n" + "\n".join(equal))
    print(f"{describe_environment(env)}; {args.reps} interleaved rounds, paired-ratio medians.")
    results = {"environment": env, "times": times, "equality": equal}
    write_json(args.json, results)
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
