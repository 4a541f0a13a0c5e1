"""`SourceTargetModel`: a transformers model called with the task split into source x and target y.

Decoder-only models see `[x; y]`, each row packed from column 0 without padding between source and target; the
output layer runs only at the positions that predict target tokens (a per-row `logits_to_keep`), gathered into
one contiguous matrix product. Encoder-decoder models get x on the encoder and y on the decoder. Subclasses add
virtual tokens (`PrefixModel`) or choose which base weights train (`FineTuneModel`).
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn
from torch.utils.checkpoint import checkpoint
from transformers.modeling_layers import GradientCheckpointingLayer

from prefixlab.atomic import atomic_path

LOSS_REDUCTIONS = ("token_mean", "sequence_sum")


@dataclass
class SourceTargetOutput:
    """The loss over target tokens and logits (batch, target_len, vocab); `logits[:, t]` predicts target t."""

    loss: torch.Tensor
    logits: torch.Tensor


def left_align(ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Move each row's real tokens (mask 1) to the right end, padding on the left; keeps their order."""
    order = torch.argsort(mask.to(torch.int8), dim=1, stable=True)
    return ids.gather(1, order), mask.gather(1, order)


def right_align(ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Move each row's real tokens (mask 1) to the left end, padding on the right; keeps their order."""
    order = torch.argsort((1 - mask).to(torch.int8), dim=1, stable=True)
    return ids.gather(1, order), mask.gather(1, order)


def target_loss(
    logits: torch.Tensor, target_ids: torch.Tensor, target_mask: torch.Tensor, reduction: str = "token_mean"
) -> torch.Tensor:
    """Cross-entropy of the target tokens in float32; padding never counts.

    `token_mean` averages over all target tokens of the batch (PEFT, HF Trainer, the authors' BART code);
    `sequence_sum` sums each sequence's token losses and averages over the batch (the authors' GPT-2 code).
    """
    if reduction not in LOSS_REDUCTIONS:
        raise ValueError(f"loss reduction {reduction!r} is not allowed; choose one of {LOSS_REDUCTIONS}.")
    per_token = F.cross_entropy(logits.float().flatten(0, 1), target_ids.flatten(), reduction="none")
    per_token = per_token.view_as(target_ids) * target_mask.to(torch.float32)
    if reduction == "token_mean":
        return per_token.sum() / target_mask.sum().clamp(min=1)
    return per_token.sum(dim=1).mean()


def save_safetensors_atomically(
    tensors: dict[str, torch.Tensor],
    path: str | os.PathLike,
    metadata: dict[str, str],
    default_name: str = "",
) -> Path:
    """Write tensors as safetensors under a temporary name beside `path`, then rename. With `default_name`, a
    `path` that is not a `.safetensors` file is a folder and the file is `path/default_name`."""
    path = Path(path)
    if default_name and path.suffix != ".safetensors":
        path = path / default_name
    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    return path


def saved_file(path: str | os.PathLike, default_name: str, writer: str, what: str) -> Path:
    """The file a `save` wrote: `path` itself, or `default_name` inside the folder `path`; a clear error if absent."""
    path = Path(path)
    if path.is_dir():
        path = path / default_name
    if not path.exists():
        raise FileNotFoundError(f"no saved {what} at {path}; expected a file written by {writer}.save.")
    return path


def saved_metadata(
    path: str | os.PathLike, default_name: str, writer: str, what: str, fmt: str
) -> tuple[Path, dict]:
    """(file, metadata) of what `writer.save` wrote at `path`; a clear error if absent or of another format."""
    from safetensors import safe_open

    path = saved_file(path, default_name, writer, what)
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata() or {}
    if metadata.get("format") != fmt:
        raise ValueError(
            f"{path} is not a file written by {writer}.save (format {metadata.get('format')!r}, expected {fmt!r})."
        )
    return path, metadata


def parameter_counts(base: nn.Module, trainable: int, stored: int) -> dict[str, float]:
    """Trainable and stored parameter counts and both as % of `base`'s parameters."""
    total = sum(p.numel() for p in base.parameters())
    return {
        "base_parameters": total,
        "trainable_parameters": trainable,
        "stored_parameters": stored,
        "trainable_percent": 100.0 * trainable / total,
        "stored_percent": 100.0 * stored / total,
    }


class SourceTargetModel(nn.Module):
    """Runs a base model on (source, target) pairs: loss and target logits, and decoding of targets."""

    def __init__(self, base_model: nn.Module) -> None:
        super().__init__()
        self.base = base_model
        self.is_encoder_decoder = bool(base_model.config.is_encoder_decoder)
        self.activation_checkpointing = False
        self._blocks_wrapped = False

    # ------------------------------------------------------------------ activation checkpointing
    def set_activation_checkpointing(self, enabled: bool = True) -> None:
        """Recompute each transformer block's activations in the backward pass instead of keeping them.

        Trades one more forward pass per block for memory: the frozen model's saved activations are most of
        prefix-tuning's training memory. Gradients are the same (up to float summation order). Applies to
        training only (grad enabled); decoding is unaffected.
        """
        if enabled and not self._blocks_wrapped:
            blocks = [m for m in self.base.modules() if isinstance(m, GradientCheckpointingLayer)]
            if not blocks:
                raise ValueError(
                    f"{type(self.base).__name__} has no transformer blocks that transformers marks as "
                    "checkpointable (GradientCheckpointingLayer); set trainer.activation_checkpointing=false."
                )
            for block in blocks:
                block.forward = functools.partial(self._checkpointed_block, block.forward)
            self._blocks_wrapped = True
        self.activation_checkpointing = enabled

    def _checkpointed_block(self, block_forward: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if not (self.activation_checkpointing and torch.is_grad_enabled()):
            return block_forward(*args, **kwargs)
        replay = self._replay_context()

        def run(*inner_args: Any, **inner_kwargs: Any) -> Any:
            with replay():
                return block_forward(*inner_args, **inner_kwargs)

        return checkpoint(run, *args, use_reentrant=False, **kwargs)

    def _replay_context(self) -> Callable[[], contextlib.AbstractContextManager[None]]:
        """A context that puts back what the block saw when it first ran (the recomputation runs later)."""
        return contextlib.nullcontext

    # --------------------------------------------------------------------- hooks for subclasses
    def _virtual(self) -> dict[str, torch.Tensor]:
        """Values of the virtual tokens for this call (none here)."""
        return {}

    def _decoder_only_inputs(
        self, ids: torch.Tensor, mask: torch.Tensor, source_width: int, virtual: dict[str, torch.Tensor]
    ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """Model inputs for the rows `[x; y]` and the arguments of `_injected`."""
        positions = (mask.long().cumsum(1) - 1).clamp(min=0)
        return {"input_ids": ids, "attention_mask": mask, "position_ids": positions}, {}

    def _encoder_inputs(
        self, source_ids: torch.Tensor, source_mask: torch.Tensor, virtual: dict[str, torch.Tensor]
    ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """Encoder inputs for the source, and the arguments of `_injected`."""
        return {"input_ids": source_ids, "attention_mask": source_mask}, {}

    @contextlib.contextmanager
    def _injected(self, inject: dict[str, Any]) -> Iterator[None]:
        """Context in which the base model runs with the virtual tokens described by `inject`."""
        yield

    def _compact_rows(self) -> bool:
        """Whether each row may be packed as `[x_i; y_i]` from column 0 (no column must be common to the batch)."""
        return True

    def _columns_before_targets(self) -> int:
        """Columns `_decoder_only_inputs` inserts before the targets (virtual embeddings; none here)."""
        return 0

    def _pack(
        self,
        source_ids: torch.Tensor,
        source_mask: torch.Tensor,
        target_ids: torch.Tensor,
        target_mask: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, int, torch.Tensor]:
        """Decoder-only rows `[x; y]` and, per row, the positions whose outputs predict the target tokens.

        Compact rows put each `[x_i; y_i]` at column 0, right-padded to the longest row (no padding between
        source and target); otherwise sources are left-aligned so that the source's last token sits at one
        column for the whole batch (needed by an infix). Returns (ids, mask, source width, positions (B, T)).
        """
        target_len = target_ids.shape[1]
        steps = torch.arange(target_len, device=target_ids.device)
        if self._compact_rows():
            ids, mask = right_align(
                torch.cat([source_ids, target_ids], 1), torch.cat([source_mask, target_mask], 1)
            )
            width = int(mask.sum(1).max())
            keep = ((source_mask.sum(1) - 1)[:, None] + steps).clamp(max=width - 1)
            return ids[:, :width], mask[:, :width], source_ids.shape[1], keep
        source_ids, source_mask = left_align(source_ids, source_mask)
        width = source_ids.shape[1]
        keep = (width - 1 + steps).expand(source_ids.shape[0], -1)
        return torch.cat([source_ids, target_ids], 1), torch.cat([source_mask, target_mask], 1), width, keep

    def _embed(self, ids: torch.Tensor) -> torch.Tensor:
        embed = (
            self.base.get_encoder().embed_tokens
            if self.is_encoder_decoder
            else self.base.get_input_embeddings()
        )
        return embed(ids)

    # ------------------------------------------------------------------------------------ forward
    def forward(
        self,
        source_ids: torch.Tensor,
        source_mask: torch.Tensor,
        target_ids: torch.Tensor,
        target_mask: torch.Tensor,
        loss_reduction: str = "token_mean",
    ) -> SourceTargetOutput:
        """Loss over target tokens and target logits (batch, target_len, vocab); sources never count."""
        target_ids, target_mask = right_align(target_ids, target_mask)
        virtual = self._virtual()
        if self.is_encoder_decoder:
            logits = self._encoder_decoder_logits(source_ids, source_mask, target_ids, target_mask, virtual)
        else:
            ids, mask, source_width, keep = self._pack(source_ids, source_mask, target_ids, target_mask)
            inputs, inject = self._decoder_only_inputs(ids, mask, source_width, virtual)
            with self._injected(inject):
                out = self.base(
                    **inputs, use_cache=False, logits_to_keep=keep + self._columns_before_targets()
                )
            logits = out.logits
        return SourceTargetOutput(
            loss=target_loss(logits, target_ids, target_mask, loss_reduction), logits=logits
        )

    def _encoder_decoder_logits(
        self, source_ids, source_mask, target_ids, target_mask, virtual
    ) -> torch.Tensor:
        starts = torch.full_like(target_ids[:, :1], self.base.config.decoder_start_token_id)
        decoder_ids = torch.cat([starts, target_ids[:, :-1]], dim=1)
        decoder_mask = torch.cat([torch.ones_like(target_mask[:, :1]), target_mask[:, :-1]], dim=1)
        inputs, inject = self._encoder_inputs(source_ids, source_mask, virtual)
        with self._injected(inject):
            out = self.base(
                **inputs, decoder_input_ids=decoder_ids, decoder_attention_mask=decoder_mask, use_cache=False
            )
        return out.logits

    # ----------------------------------------------------------------------------------- generate
    @torch.no_grad()
    def generate(
        self, source_ids: torch.Tensor, source_mask: torch.Tensor, **generation_kwargs: Any
    ) -> torch.Tensor:
        """Decode targets with transformers' `generate` (greedy, beam search, ...; batched, sources left-padded
        for decoder-only models). Returns only the generated target tokens (batch, new_len), padded with the
        pad token."""
        virtual = self._virtual()
        kwargs = dict(generation_kwargs)
        config = kwargs.get("generation_config") or self.base.generation_config
        if kwargs.get("pad_token_id") is None and config.pad_token_id is None:
            eos = config.eos_token_id
            kwargs["pad_token_id"] = eos[0] if isinstance(eos, list) else eos
        if self.is_encoder_decoder:
            inputs, inject = self._encoder_inputs(source_ids, source_mask, virtual)
            with self._injected(inject):
                out = self.base.generate(**inputs, **kwargs)
            return out[:, 1:]
        source_ids, source_mask = left_align(source_ids, source_mask)
        inputs, inject = self._decoder_only_inputs(source_ids, source_mask, source_ids.shape[1], virtual)
        with self._injected(inject):
            out = self.base.generate(**inputs, **kwargs)
        if "inputs_embeds" in inputs:
            return out
        return out[:, source_ids.shape[1] :]
