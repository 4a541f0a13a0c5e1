"""One real training step (forward, backward, clipping, AdamW) of each method the benchmarks compare.

Each `Method` turns the same E2E examples into its own inputs once (`prepare`, untimed) and then runs one
step per call (`step`). Methods in one process each need their own copy of the base model (PrefixModel and
PEFT freeze it, FineTuneModel unfreezes it); several PrefixModels may share one.

Two sequence layouts appear. Compact: each row is `[x_i; y_i]` from column 0, padded on the right (width =
max(source_i + target_i)); what PEFT and a plain causal LM see, and what prefixlab packs for a prefix since
fbfa1d1. Aligned: every source padded on the left to the longest source and every target on the right to the
longest target, so the target block starts at one column (width = max source + max target); prefixlab's
layout before fbfa1d1, and still its layout for an infix.

FLOP model (for MFU on GPU): a frozen model costs 4 FLOPs per parameter and token (forward 2, backward to
the activations 2), a fully trained one 6 (plus the weight gradients). Only useful work is counted: the
body's parameters over the real (non-pad) tokens plus the output layer over the target tokens whose logits
the loss needs; attention scores and the tiny prefix MLP are left out. Methods that pad more or compute
logits everywhere do more than this, which shows as a lower MFU.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from common import autocast, parameter_split, to_device
from torch import nn

MAX_GRAD_NORM = 1.0
LR = 8e-5


@dataclass
class Method:
    """A trainable setup: `prepare` builds a batch's inputs from encoded examples; `step` trains on it;
    `layout` is the sequence layout its model runs ("compact" or "aligned", for counting token slots)."""

    name: str
    model: nn.Module
    prepare: Callable[[Sequence[Any]], dict[str, torch.Tensor]]
    step: Callable[[dict[str, torch.Tensor]], None]
    flops_per_param_token: int
    layout: str = "compact"


def source_target_layout(model: nn.Module) -> str:
    """The layout a prefixlab SourceTargetModel packs decoder-only rows in (aligned before fbfa1d1)."""
    compact = getattr(model, "_compact_rows", None)
    return "compact" if compact is not None and compact() else "aligned"


def _optimizer_step(params: list[nn.Parameter], optimizer: torch.optim.Optimizer) -> None:
    torch.nn.utils.clip_grad_norm_(params, MAX_GRAD_NORM)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def _trainable(model: nn.Module) -> list[nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]


def source_target_batches(pad_id: int, device: torch.device) -> Callable[[Sequence[Any]], dict]:
    """Collate as a prefixlab run does (sources and targets apart, padded on the right)."""
    from prefixlab.tasks import Collator

    collate = Collator(pad_id)
    return lambda examples: to_device(collate(examples), device)


def source_target_step(model: nn.Module, device: torch.device, lr: float = LR) -> Callable[[dict], None]:
    """A training step of a SourceTargetModel (prefixlab's call) with AdamW over its trainable weights."""
    params = _trainable(model)
    optimizer = torch.optim.AdamW(params, lr=lr)

    def step(batch: dict[str, torch.Tensor]) -> None:
        with autocast(device):
            loss = model(**batch, loss_reduction="token_mean").loss
        loss.backward()
        _optimizer_step(params, optimizer)

    return step


def prefixlab_prefix(
    base: nn.Module,
    pad_id: int,
    device: torch.device,
    length: int = 10,
    name: str = "prefixlab",
    model_class: type | None = None,
    checkpointing: bool = False,
    mlp_hidden: int = 512,
) -> Method:
    """prefixlab prefix-tuning: depth all, MLP reparameterization (hidden `mlp_hidden`), `length` virtual tokens;
    `checkpointing` recomputes each block in backward (trainer.activation_checkpointing).
    `model_class` swaps in a PrefixModel subclass (prototypes of proposed changes)."""
    from prefixlab import PrefixConfig, PrefixModel

    cls = model_class or PrefixModel
    model = cls(base, PrefixConfig(length=length, depth="all", reparam="mlp", mlp_hidden=mlp_hidden))
    model.set_activation_checkpointing(checkpointing)
    model.train()
    step = source_target_step(model, device)
    layout = source_target_layout(model)
    return Method(name, model, source_target_batches(pad_id, device), step, 4, layout)


def peft_prefix(base: nn.Module, pad_id: int, device: torch.device, length: int = 10) -> Method:
    """PEFT prefix tuning with prefix_projection (the same MLP), called the PEFT way: `[x; y]` right-padded,
    labels -100 on source and padding, logits and loss over every position."""
    from peft import PrefixTuningConfig, get_peft_model

    from prefixlab.tasks import collate_causal_lm

    config = PrefixTuningConfig(
        task_type="CAUSAL_LM", num_virtual_tokens=length, prefix_projection=True, encoder_hidden_size=512
    )
    model = get_peft_model(base, config)
    model.train()
    params = _trainable(model)
    optimizer = torch.optim.AdamW(params, lr=LR)

    def prepare(examples: Sequence[Any]) -> dict[str, torch.Tensor]:
        return to_device(collate_causal_lm(examples, pad_id), device)

    def step(batch: dict[str, torch.Tensor]) -> None:
        with warnings.catch_warnings(), autocast(device):
            warnings.simplefilter("ignore", FutureWarning)
            loss = model(**batch).loss
        loss.backward()
        _optimizer_step(params, optimizer)

    return Method("PEFT", model, prepare, step, 4)


def floor_inputs(examples: Sequence[Any], pad_id: int, layout: str) -> dict[str, torch.Tensor]:
    """Inputs of the frozen-model floor in `layout` ("compact" or "aligned"): ids, mask, positions, the
    targets (right-padded) and `keep`, the (batch, target_len) positions whose hidden states predict them."""
    from prefixlab.methods.source_target import left_align, right_align
    from prefixlab.tasks import Collator

    batch = Collator(pad_id)(examples)
    target_ids, target_mask = right_align(batch["target_ids"], batch["target_mask"])
    target_len = target_ids.shape[1]
    if layout == "aligned":
        source_ids, source_mask = left_align(batch["source_ids"], batch["source_mask"])
        ids = torch.cat([source_ids, target_ids], dim=1)
        mask = torch.cat([source_mask, target_mask], dim=1)
        starts = torch.full((len(examples),), source_ids.shape[1] - 1)
    else:
        ids, mask = right_align(
            torch.cat([batch["source_ids"], target_ids], dim=1),
            torch.cat([batch["source_mask"], target_mask], dim=1),
        )
        width = int(mask.sum(1).max())
        ids, mask = ids[:, :width], mask[:, :width]
        starts = batch["source_mask"].sum(1) - 1
    keep = (starts[:, None] + torch.arange(target_len)[None]).clamp(max=ids.shape[1] - 1)
    return {
        "ids": ids,
        "mask": mask,
        "positions": (mask.long().cumsum(1) - 1).clamp(min=0),
        "target_ids": target_ids,
        "target_mask": target_mask,
        "keep": keep,
    }


def frozen_floor(
    base: nn.Module, pad_id: int, device: torch.device, layout: str = "compact", logits: str = "targets"
) -> Method:
    """The floor: the frozen model's forward + backward with only the input embeddings requiring grad and
    the same target-token loss; no optimizer. `logits` "targets": the output layer runs only on the hidden
    states that predict targets (gathered: `logits_to_keep` as per-row positions in the compact layout; the
    int `logits_to_keep` prefixlab passed before fbfa1d1 in the aligned layout); "all": on every position
    (the naive floor)."""
    from prefixlab.methods.source_target import target_loss

    for parameter in base.parameters():
        parameter.requires_grad_(False)
    embed = base.get_input_embeddings()

    def prepare(examples: Sequence[Any]) -> dict[str, torch.Tensor]:
        return to_device(floor_inputs(examples, pad_id, layout), device)

    def step(batch: dict[str, torch.Tensor]) -> None:
        target_len = batch["target_ids"].shape[1]
        if logits == "all":
            keep: int | torch.Tensor = 0
        elif layout == "aligned":
            keep = target_len + 1  # what prefixlab passed before fbfa1d1
        else:
            keep = batch["keep"]
        embeds = embed(batch["ids"]).detach().requires_grad_()
        with autocast(device):
            out = base(
                inputs_embeds=embeds,
                attention_mask=batch["mask"],
                position_ids=batch["positions"],
                use_cache=False,
                logits_to_keep=keep,
            )
            if logits == "all":
                index = batch["keep"][..., None].expand(-1, -1, out.logits.shape[-1])
                predicted = out.logits.gather(1, index)
            elif layout == "aligned":
                predicted = out.logits[:, :target_len]
            else:
                predicted = out.logits
            loss = target_loss(predicted, batch["target_ids"], batch["target_mask"])
        loss.backward()

    names = {
        ("compact", "targets"): "floor (target logits)",
        ("aligned", "targets"): "floor, aligned layout, int logits_to_keep",
        ("compact", "all"): "naive floor (all logits)",
        ("aligned", "all"): "naive floor, aligned layout",
    }
    return Method(names[layout, logits], base, prepare, step, 4, layout)


def full_finetune(base: nn.Module, pad_id: int, device: torch.device) -> Method:
    """Full fine-tuning (FineTuneModel "all") with AdamW over every weight."""
    from prefixlab.methods.finetune import FineTuneModel

    model = FineTuneModel(base, "all")
    model.train()
    step = source_target_step(model, device, lr=5e-5)
    layout = source_target_layout(model)
    return Method("full fine-tuning", model, source_target_batches(pad_id, device), step, 6, layout)


#: Method builders by command-line name; each takes (base model, pad id, device).
BUILDERS: dict[str, Callable[[nn.Module, int, torch.device], Method]] = {
    "prefixlab": prefixlab_prefix,
    "prefixlab-ckpt": lambda base, pad, device: prefixlab_prefix(
        base, pad, device, name="prefixlab, activation checkpointing", checkpointing=True
    ),
    "peft": peft_prefix,
    "floor": frozen_floor,
    "floor-aligned": lambda base, pad, device: frozen_floor(base, pad, device, layout="aligned"),
    "naive-floor": lambda base, pad, device: frozen_floor(base, pad, device, logits="all"),
    "finetune": full_finetune,
}


def build(name: str, base: nn.Module, pad_id: int, device: torch.device, fresh_copy: bool) -> Method:
    """Build method `name` on `base` (on a deep copy of it when `fresh_copy`)."""
    return BUILDERS[name](copy.deepcopy(base) if fresh_copy else base, pad_id, device)


def useful_flops(model: nn.Module, examples: Sequence[Any], per_param_token: int) -> float:
    """FLOPs of one step on `examples` under the model above (see the module docstring)."""
    body, head = parameter_split(model)
    tokens = sum(len(e.source_ids) + len(e.target_ids) for e in examples)
    targets = sum(len(e.target_ids) for e in examples)
    return float(per_param_token * (body * tokens + head * targets))


def target_tokens(examples: Sequence[Any]) -> int:
    """Target tokens of a batch (what tokens/s counts)."""
    return sum(len(e.target_ids) for e in examples)


def token_slots(examples: Sequence[Any], layout: str) -> int:
    """Token positions the body runs over (batch x width) in a layout."""
    if layout == "aligned":
        width = max(len(e.source_ids) for e in examples) + max(len(e.target_ids) for e in examples)
    else:
        width = max(len(e.source_ids) + len(e.target_ids) for e in examples)
    return len(examples) * width
