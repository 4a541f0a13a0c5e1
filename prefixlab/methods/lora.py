"""LoRA (Hu et al. 2021) as a registered method (`conf/method/lora.yaml`), through PEFT.

PEFT's `inject_adapter_in_model` replaces each targeted projection of the frozen base model in place by a
`lora.Linear` that computes `W x + (alpha / rank) * B A dropout(x)`, with A (rank x in) random and B (out x
rank) zero, so that at initialization the model is exactly the base model. The base model keeps its class
(no `PeftModel` wrapper), so `SourceTargetModel`'s loss, decoding and activation checkpointing apply as they
are: the transformer blocks stay transformers' `GradientCheckpointingLayer`s, the LoRA layers inside them.

Targets (`target_modules: null`): the query and value projections, as the LoRA paper did for GPT-2, by
PEFT's per-family table: `q_proj`, `v_proj` on Llama-style models and BART (encoder and decoder self-attention
and cross-attention), the fused `c_attn` on GPT-2. On GPT-2 PEFT adapts `c_attn` as one linear map, hidden ->
3 x hidden, so one rank-r update spans the query, key and value outputs (A: r x h, B: 3h x r; r(h + 3h) per
layer), where the LoRA paper's `MergedLinear` adapted only query and value, each with its own rank r (A: 2r x
h, B: 2h x r). The stored count is the same, 4hr per layer (GPT-2 Medium: 98,304 r over 24 layers), the
update space differs.

`export()` keeps the adapters unmerged: what `save` stores (A and B of every targeted layer) is what runs, so a
reload gives identical logits; merging B A into W would change the frozen base weights and reload only up to
rounding. The base model stays in eval mode (no dropout); only LoRA's own dropout follows `train()`/`eval()`.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import torch
from pydantic import Field
from safetensors.torch import load_file
from torch import nn

from prefixlab.methods.registry import MethodSpec
from prefixlab.methods.source_target import (
    SourceTargetModel,
    parameter_counts,
    save_safetensors_atomically,
    saved_metadata,
)

LORA_FILE = "lora.safetensors"
FORMAT = "prefixlab-lora-v1"


@dataclass
class LoraSettings:
    """`conf/method/lora.yaml`. Defaults: the LoRA paper's GPT-2 setting (r=4, alpha=32, dropout 0.1, q and v).

    Attributes:
        rank: r, the rank of each update B A.
        alpha: the update is scaled by alpha / rank.
        dropout: dropout on the input of A during training (the base model itself never drops out).
        target_modules: names of the projections to adapt (PEFT's suffix match on module names); None: the
            query and value projections of the model's family (`default_target_modules`).
    """

    rank: Annotated[int, Field(ge=1)] = 4
    alpha: Annotated[float, Field(gt=0)] = 32.0
    dropout: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.1
    target_modules: Annotated[list[str], Field(min_length=1)] | None = None


def default_target_modules(base: nn.Module) -> list[str]:
    """The query and value projections of `base`'s family (PEFT's table; `c_attn` on GPT-2)."""
    from peft.utils import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as TARGETS

    model_type = getattr(base.config, "model_type", None)
    if model_type in TARGETS:
        return list(TARGETS[model_type])
    names = {name.rpartition(".")[2] for name, _ in base.named_modules()}
    if {"q_proj", "v_proj"} <= names:
        return ["q_proj", "v_proj"]
    raise ValueError(
        f"no default LoRA targets for model_type={model_type!r}; set method.target_modules to the names of "
        "its query and value projections."
    )


class _Parameters:
    """Duck-typed stand-in for a module in `parameter_counts`: the base model's own parameters only."""

    def __init__(self, parameters: list[nn.Parameter]) -> None:
        self._parameters = parameters

    def parameters(self) -> list[nn.Parameter]:
        return self._parameters


class LoraModel(SourceTargetModel):
    """A frozen base model with PEFT's LoRA layers injected in place; only A and B train."""

    def __init__(self, base_model: nn.Module, settings: LoraSettings | None = None) -> None:
        from peft import LoraConfig, inject_adapter_in_model
        from peft.tuners.tuners_utils import cast_adapter_dtype
        from transformers.pytorch_utils import Conv1D

        super().__init__(base_model)
        self.settings = settings or LoraSettings()
        self.target_modules = list(self.settings.target_modules or default_target_modules(base_model))
        for parameter in base_model.parameters():
            parameter.requires_grad_(False)
        base_model.eval()
        targets = [
            m
            for name, m in base_model.named_modules()
            if any(name == t or name.endswith(f".{t}") for t in self.target_modules)
        ]
        if not targets:
            raise ValueError(
                f"LoRA found no module named {self.target_modules} in {type(base_model).__name__}; "
                "method.target_modules names modules by their last name parts (e.g. q_proj, attn.c_attn)."
            )
        config = LoraConfig(
            r=self.settings.rank,
            lora_alpha=self.settings.alpha,
            lora_dropout=self.settings.dropout,
            target_modules=self.target_modules,
            bias="none",
            # GPT-2's Conv1D stores its weight transposed (in x out); PEFT would switch this on with a warning
            fan_in_fan_out=any(isinstance(m, Conv1D) for m in targets),
        )
        inject_adapter_in_model(config, base_model)
        cast_adapter_dtype(
            base_model, "default"
        )  # A and B in float32 on a half-precision model, like a prefix
        base_model.eval()
        # PEFT leaves exactly the adapter weights trainable (bias="none")
        self.adapter_names = [name for name, p in base_model.named_parameters() if p.requires_grad]
        self.train(self.training)  # LoRA's dropout follows this module's mode, like any submodule's

    def train(self, mode: bool = True) -> LoraModel:
        """Train mode for LoRA's dropout only: the frozen model stays in eval mode (no dropout)."""
        from peft.tuners.lora import LoraLayer

        super().train(mode)
        self.base.eval()
        for module in self.base.modules():
            if isinstance(module, LoraLayer):
                module.lora_dropout.train(mode)
        return self

    def adapter_state(self) -> dict[str, torch.Tensor]:
        """The LoRA weights by their name in the base model (`...c_attn.lora_A.default.weight`)."""
        parameters = dict(self.base.named_parameters())
        return {name: parameters[name] for name in self.adapter_names}

    def parameter_report(self) -> dict[str, float]:
        """Trainable and stored parameters (A and B of every targeted layer), as % of the base model."""
        own = set(self.adapter_names)
        base = [p for name, p in self.base.named_parameters() if name not in own]
        count = sum(p.numel() for p in self.adapter_state().values())
        return parameter_counts(_Parameters(base), count, stored=count)  # type: ignore[arg-type]

    def export(self) -> None:
        """Nothing to fold: the adapters stay unmerged, and A and B are what is stored (see the module doc)."""

    def save(self, path: str | os.PathLike) -> Path:
        """Store only A and B and the settings (a file, or `lora.safetensors` in a folder), atomically."""
        metadata = {
            "format": FORMAT,
            "settings": json.dumps(dataclasses.asdict(self.settings)),
            "target_modules": json.dumps(self.target_modules),
        }
        return save_safetensors_atomically(self.adapter_state(), path, metadata, LORA_FILE)

    @classmethod
    def load(cls, base_model: nn.Module, path: str | os.PathLike) -> LoraModel:
        """Rebuild on `base_model` (a fresh copy of the model it was trained on) from a file written by `save`."""
        path, metadata = saved_metadata(path, LORA_FILE, "LoraModel", "LoRA weights", FORMAT)
        settings = LoraSettings(**json.loads(metadata["settings"]))
        model = cls(base_model, settings)
        state = load_file(str(path), device=str(next(base_model.parameters()).device))
        own = model.adapter_state()
        if set(state) != set(own):
            raise ValueError(
                f"{path} does not fit this model: it holds {len(state)} LoRA weights, the model has {len(own)} "
                f"(e.g. {sorted(set(state) ^ set(own))[:3]})."
            )
        with torch.no_grad():
            for name, value in state.items():
                own[name].copy_(value)
        return model


def label(settings: LoraSettings) -> str:
    """`LoRA-r4`; with explicit targets `LoRA-r4-q_proj+k_proj+v_proj`."""
    if settings.target_modules is None:
        return f"LoRA-r{settings.rank}"
    return f"LoRA-r{settings.rank}-{'+'.join(settings.target_modules)}"


METHOD = MethodSpec(
    kind="lora",
    settings=LoraSettings,
    build=lambda base, settings, tokenizer: LoraModel(base, settings),
    load=LoraModel.load,
    label=label,
)
