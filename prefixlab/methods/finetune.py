"""The paper's baselines: full fine-tuning, FT-top2 (only the top two layers train) and the zero-shot model."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from safetensors import safe_open
from safetensors.torch import load_file
from torch import nn

from prefixlab.methods.registry import MethodSpec
from prefixlab.methods.source_target import (
    SourceTargetModel,
    parameter_counts,
    save_safetensors_atomically,
    saved_file,
)

TRAINABLE = ("all", "top2", "none")
WEIGHTS_FILE = "finetuned.safetensors"


def _layer_stacks(model: nn.Module) -> list[nn.ModuleList]:
    """The transformer block lists of a model (decoder-only: one; encoder-decoder: encoder and decoder)."""
    n_layers = {
        getattr(model.config, k, None) for k in ("num_hidden_layers", "decoder_layers", "encoder_layers")
    }
    stacks = [
        m for m in model.modules() if isinstance(m, nn.ModuleList) and len(m) in n_layers and len(m) > 0
    ]
    if not stacks:
        raise ValueError(f"cannot find the transformer layers of {type(model).__name__}.")
    return stacks


def top_layers(model: nn.Module, count: int = 2) -> list[nn.Module]:
    """The top `count` blocks of the stack that produces the output (the decoder's, for encoder-decoders)."""
    return list(_layer_stacks(model)[-1][-count:])


class FineTuneModel(SourceTargetModel):
    """A base model whose weights train: all of them, the top two layers, or none (zero-shot reference)."""

    def __init__(self, base_model: nn.Module, trainable: str = "all") -> None:
        super().__init__(base_model)
        if trainable not in TRAINABLE:
            raise ValueError(f"trainable={trainable!r} is not allowed; choose one of {TRAINABLE}.")
        self.trainable = trainable
        for parameter in base_model.parameters():
            parameter.requires_grad_(trainable == "all")
        if trainable == "top2":
            for layer in top_layers(base_model, 2):
                for parameter in layer.parameters():
                    parameter.requires_grad_(True)

    def parameter_report(self) -> dict[str, float]:
        """Trainable and stored parameters (the trained weights) and both as % of the base model."""
        trainable = sum(p.numel() for p in self.base.parameters() if p.requires_grad)
        return parameter_counts(self.base, trainable, stored=trainable)

    def export(self) -> None:
        """Nothing to fold: the trained weights are what is stored."""

    def save(self, path: str | os.PathLike) -> Path:
        """Store the trainable weights (a file, or `finetuned.safetensors` in a folder), atomically."""
        names = {name for name, p in self.base.named_parameters() if p.requires_grad}
        tensors = {k: v for k, v in self.base.state_dict().items() if k in names}
        metadata = {"format": "prefixlab-finetune-v1", "trainable": json.dumps(self.trainable)}
        return save_safetensors_atomically(tensors, path, metadata, WEIGHTS_FILE)

    @classmethod
    def load(cls, base_model: nn.Module, path: str | os.PathLike) -> FineTuneModel:
        """Rebuild on `base_model` from a file written by `save`."""
        path = saved_file(path, WEIGHTS_FILE, "FineTuneModel", "weights")
        with safe_open(str(path), framework="pt") as handle:
            trainable = json.loads((handle.metadata() or {})["trainable"])
        model = cls(base_model, trainable)
        state = load_file(str(path), device=str(next(base_model.parameters()).device))
        missing = set(state) - set(base_model.state_dict())
        if missing:
            raise ValueError(f"{path} holds weights this model does not have: {sorted(missing)[:5]} ...")
        base_model.load_state_dict(state, strict=False)
        return model


@dataclass
class FineTuneSettings:
    """`conf/method/finetune.yaml`, `ft_top2.yaml`, `zeroshot.yaml`: which base weights train."""

    trainable: Literal["all", "top2", "none"] = "all"


LABELS = {"all": "fine-tune", "top2": "FT-top2", "none": "zero-shot"}

METHOD = MethodSpec(
    kind="finetune",
    settings=FineTuneSettings,
    build=lambda base, settings, tokenizer: FineTuneModel(base, settings.trainable),
    load=FineTuneModel.load,
    label=lambda settings: LABELS[settings.trainable],
)
