"""`PrefixModel`: a frozen transformers model plus trainable virtual tokens, called with source and target.

Decoder-only models see `[x; y]` with the virtual tokens inserted (`[P; x; y]` or `[x; P; y]`); encoder-decoder
models get x on the encoder and y on the decoder, with three independent prefix sets (encoder self-attention,
decoder self-attention, cross-attention). The source/target layout, loss and decoding are `SourceTargetModel`'s.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import json
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

from prefixlab.methods.config import PrefixConfig, PrefixConfigError
from prefixlab.methods.injection import (
    SetLayout,
    UnsupportedModelError,
    attach,
    capturing,
    injecting,
    relative_position_bias,
    restored,
    shiftable_position_embeddings,
    snapshot,
    stack_captured,
    unsupported_reason,
)
from prefixlab.methods.parameters import PrefixParameters, as_key_values, from_key_values
from prefixlab.methods.source_target import (
    SourceTargetModel,
    SourceTargetOutput,
    parameter_counts,
    save_safetensors_atomically,
    saved_file,
)

PrefixOutput = SourceTargetOutput

log = logging.getLogger(__name__)

PREFIX_FILE = "prefix.safetensors"


class PrefixModel(SourceTargetModel):
    """A frozen base model with trainable virtual tokens (see `PrefixConfig` for the variants).

    Args:
        base_model: a transformers model (decoder-only `*ForCausalLM` or encoder-decoder
            `*ForConditionalGeneration`) loaded with attn_implementation "sdpa" or "eager".
        config: the prefix variant.
        tokenizer: needed only for `init="tokens"` with `init_text`.
    """

    def __init__(self, base_model: nn.Module, config: PrefixConfig, tokenizer: Any = None) -> None:
        super().__init__(base_model)
        self.config = config
        for parameter in self.base.parameters():
            parameter.requires_grad_(False)
        self.base.eval()
        if config.depth == "all" and (reason := unsupported_reason(self.base)) is not None:
            raise UnsupportedModelError(reason)
        self._validate()
        self.position_offset = (
            (not self.is_encoder_decoder) if config.position_offset is None else config.position_offset
        )
        hidden = self.base.get_input_embeddings().embedding_dim
        if config.depth == "all":
            self._state, self.layouts = attach(self.base)
            widths = {name: layout.width for name, layout in self.layouts.items()}
        else:
            self._state, self.layouts = None, {}
            widths = {"embedding": hidden}
        device = next(self.base.parameters()).device
        self.prefix = PrefixParameters(
            widths,
            config.length,
            reparam=config.reparam,
            mlp_hidden=config.mlp_hidden,
            mlp_input_dim=config.mlp_input_dim or hidden,
            init_std=config.init_std,
        ).to(device)
        self.prefix_dropout = nn.Dropout(config.dropout)
        self.init_residual: float | None = None
        if config.init == "tokens":
            self.initialize_from_tokens(self._init_token_ids(tokenizer))

    # ----------------------------------------------------------------------------------------- setup
    def _validate(self) -> None:
        config = self.config
        if self.is_encoder_decoder and config.placement == "infix":
            raise PrefixConfigError(
                "placement='infix' is undefined for encoder-decoder models (the source is encoded separately "
                "from the target); use placement='prefix'."
            )
        forward_params = inspect.signature(self.base.forward).parameters
        if not self.is_encoder_decoder and "position_ids" not in forward_params:
            raise PrefixConfigError(f"{type(self.base).__name__} does not accept position_ids.")
        if (
            self.is_encoder_decoder
            and config.depth == "all"
            and config.position_offset
            and not shiftable_position_embeddings(self.base)
            and not relative_position_bias(self.base)
        ):
            raise PrefixConfigError(
                f"position_offset=True is not supported for {type(self.base).__name__} (neither learned position "
                "embeddings to shift nor a relative position bias); use position_offset=False."
            )

    def _init_token_ids(self, tokenizer: Any) -> list[int]:
        if self.config.init_token_ids is not None:
            return list(self.config.init_token_ids)
        if tokenizer is None:
            raise PrefixConfigError(
                "init_text needs the model's tokenizer: PrefixModel(model, config, tokenizer)."
            )
        ids = tokenizer(self.config.init_text, add_special_tokens=False)["input_ids"]
        if len(ids) != self.config.length:
            raise PrefixConfigError(
                f"init_text {self.config.init_text!r} has {len(ids)} tokens but length={self.config.length}; "
                f"set length={len(ids)}."
            )
        return ids

    def train(self, mode: bool = True) -> PrefixModel:
        """Train mode for the prefix only: the frozen model stays in eval mode (no dropout), as in the paper."""
        super().train(mode)
        self.base.eval()
        return self

    # --------------------------------------------------------------------------- virtual token values
    @torch.no_grad()
    def token_activations(self, token_ids: list[int] | torch.Tensor) -> dict[str, torch.Tensor]:
        """P that makes the virtual tokens behave like these real tokens on their own at positions 0..:
        their input embeddings (depth "embedding") or their keys/values in every layer (depth "all")."""
        device = next(self.base.parameters()).device
        ids = torch.as_tensor(token_ids, dtype=torch.long, device=device).view(1, -1)
        if ids.shape[1] != self.config.length:
            raise PrefixConfigError(
                f"{ids.shape[1]} tokens given for a prefix of length {self.config.length}."
            )
        if self.config.depth == "embedding":
            return {"embedding": self._embed(ids)[0].float()}
        inputs = {"input_ids": ids}
        if self.is_encoder_decoder:
            inputs["decoder_input_ids"] = ids
        with capturing(self._state) as captured:
            self.base(**inputs, use_cache=False)
        kv = stack_captured(captured, self.layouts, slice(0, ids.shape[1]))
        return {name: from_key_values(values).float() for name, values in kv.items()}

    def set_prefix(self, values: dict[str, torch.Tensor]) -> None:
        """Set P of each named set directly (exports a reparameterized set first). Values are (length,
        width) matrices, or for depth "all" key/value tensors (layers, 2, kv_heads, length, head_dim)."""
        for name, value in values.items():
            if value.dim() == 5:
                value = from_key_values(value)
            self.prefix.sets[name].set_values(value)

    def initialize_from_tokens(self, token_ids: list[int] | torch.Tensor) -> None:
        """Start the virtual tokens as real tokens' activations (paper section 7.4).

        With reparam="mlp", fit MLP(P') to those activations by MSE with Adam (init_fit_steps, init_fit_lr,
        as the authors did) and keep the final residual in `init_residual`.
        """
        targets = self.token_activations(token_ids)
        if self.config.reparam == "none":
            self.set_prefix(targets)
            self.init_residual = 0.0
            return
        params = list(self.prefix.parameters())
        optimizer = torch.optim.Adam(params, lr=self.config.init_fit_lr)
        residual = torch.tensor(float("nan"))
        with torch.enable_grad():
            for _ in range(max(self.config.init_fit_steps, 1)):
                produced = self.prefix()
                residual = sum(F.mse_loss(produced[n], targets[n]) for n in targets) / len(targets)
                if self.config.init_fit_steps == 0:
                    break
                optimizer.zero_grad()
                residual.backward()
                optimizer.step()
        with torch.no_grad():
            produced = self.prefix()
            residual = sum(F.mse_loss(produced[n], targets[n]) for n in targets) / len(targets)
        self.init_residual = float(residual)
        log.info("prefix MLP fitted to token activations: MSE residual %.3e", self.init_residual)

    def _virtual(self) -> dict[str, torch.Tensor]:
        """P of every set after dropout, as key/value tensors for depth "all"."""
        values = {name: self.prefix_dropout(p) for name, p in self.prefix().items()}
        if self.config.depth == "embedding":
            return values
        return {name: as_key_values(values[name], self.layouts[name]) for name in values}

    # ------------------------------------------------------------------------------ decoder-only layout
    def _decoder_only_inputs(
        self, ids: torch.Tensor, mask: torch.Tensor, source_width: int, virtual: dict[str, torch.Tensor]
    ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """Model inputs for the rows `[x; y]` and the injection arguments; for an infix, x is left-aligned in
        the first `source_width` columns. Returns (model kwargs, injecting kwargs)."""
        length = self.config.length
        infix = self.config.placement == "infix"
        sep = source_width - 1  # the source's last token: the infix goes right before it
        if self.config.depth == "embedding":
            embeds = self._embed(ids)
            virtual_embeds = virtual["embedding"].to(embeds.dtype).unsqueeze(0).expand(ids.shape[0], -1, -1)
            ones = torch.ones(ids.shape[0], length, dtype=mask.dtype, device=mask.device)
            if infix:
                embeds = torch.cat([embeds[:, :sep], virtual_embeds, embeds[:, sep:]], dim=1)
                mask = torch.cat([mask[:, :sep], ones, mask[:, sep:]], dim=1)
            else:
                embeds = torch.cat([virtual_embeds, embeds], dim=1)
                mask = torch.cat([ones, mask], dim=1)
            positions = (mask.long().cumsum(1) - 1).clamp(min=0)
            return {"inputs_embeds": embeds, "attention_mask": mask, "position_ids": positions}, {}
        positions = (mask.long().cumsum(1) - 1).clamp(min=0)
        if infix:
            positions[:, sep:] += length
        elif self.position_offset:
            positions = positions + length
        inject = {"kv": virtual, "infix": infix, "insert_at": sep}
        return {"input_ids": ids, "attention_mask": mask, "position_ids": positions}, inject

    def _compact_rows(self) -> bool:
        """An infix needs the source's last token at one column for the whole batch; a prefix does not."""
        return self.config.placement == "prefix"

    def _columns_before_targets(self) -> int:
        """Virtual embeddings are real columns of the sequence (before the targets in both placements)."""
        return self.config.length if self.config.depth == "embedding" else 0

    def _replay_context(self) -> Callable[[], contextlib.AbstractContextManager[None]]:
        if self._state is None:  # depth "embedding": nothing is injected inside the blocks
            return super()._replay_context()
        return functools.partial(restored, self._state, snapshot(self._state))

    @contextlib.contextmanager
    def _injected(self, inject: dict[str, Any]) -> Iterator[None]:
        if not inject:
            yield
            return
        with injecting(self._state, **inject):
            yield

    def _encoder_inputs(
        self, source_ids: torch.Tensor, source_mask: torch.Tensor, virtual: dict[str, torch.Tensor]
    ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        if self.config.depth == "embedding":
            embeds = self._embed(source_ids)
            batch = source_ids.shape[0]
            virtual_embeds = virtual["embedding"].to(embeds.dtype).unsqueeze(0).expand(batch, -1, -1)
            ones = torch.ones(batch, self.config.length, dtype=source_mask.dtype, device=source_mask.device)
            inputs = {
                "inputs_embeds": torch.cat([virtual_embeds, embeds], dim=1),
                "attention_mask": torch.cat([ones, source_mask], dim=1),
            }
            return inputs, {}
        shift = self.config.length if self.position_offset else 0
        return {"input_ids": source_ids, "attention_mask": source_mask}, {
            "kv": virtual,
            "position_shift": shift,
        }

    # ------------------------------------------------------------------------------------ bookkeeping
    def export(self) -> None:
        """Drop the reparameterization MLP, keeping only P (what the paper stores)."""
        self.prefix.export()

    def parameter_report(self) -> dict[str, float]:
        """Trainable parameters now, stored parameters after export, and both as % of the base model."""
        trainable = sum(p.numel() for p in self.prefix.parameters() if p.requires_grad)
        return parameter_counts(self.base, trainable, stored=self.prefix.stored_size())

    def _metadata(self) -> dict[str, str]:
        layouts = {name: vars(layout) for name, layout in self.layouts.items()}
        return {
            "format": "prefixlab-prefix-v1",
            "config": json.dumps(self.config.to_dict()),
            "layouts": json.dumps(layouts),
            "exported": json.dumps(self.prefix.exported),
            "position_offset": json.dumps(self.position_offset),
            "base_model": str(getattr(self.base.config, "_name_or_path", "")),
            "base_model_type": str(self.base.config.model_type),
        }

    def save(self, path: str | os.PathLike) -> Path:
        """Store only the prefix (P after export; P' and the MLP too before, so training can resume) and the
        config, as safetensors. `path` is a file or a folder (then `prefix.safetensors` inside). Written to a
        temporary name and renamed, so an interrupted save never leaves a broken file."""
        path = Path(path)
        if path.suffix != ".safetensors":
            path = path / PREFIX_FILE
        return save_safetensors_atomically(self.prefix.state_dict(), path, self._metadata())

    @classmethod
    def load(cls, base_model: nn.Module, path: str | os.PathLike) -> PrefixModel:
        """Rebuild a PrefixModel on `base_model` from a file written by `save`."""
        path = saved_file(path, PREFIX_FILE, "PrefixModel", "prefix")
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
        if metadata.get("format") != "prefixlab-prefix-v1":
            raise ValueError(f"{path} is not a prefixlab prefix file (missing format metadata).")
        values = json.loads(metadata["config"])
        config = PrefixConfig.from_dict(
            {**values, "init": "random", "init_text": None, "init_token_ids": None}
        )
        model = cls(base_model, config)
        model.config = PrefixConfig.from_dict(values)
        saved_layouts = {name: SetLayout(**v) for name, v in json.loads(metadata["layouts"]).items()}
        if saved_layouts != model.layouts:
            raise ValueError(
                f"the prefix in {path} was trained for attention layouts {saved_layouts}, "
                f"but this model has {model.layouts} (a different base model?)."
            )
        if json.loads(metadata["exported"]):
            model.export()
        state = load_file(str(path), device=str(next(base_model.parameters()).device))
        model.prefix.load_state_dict(state)
        return model
