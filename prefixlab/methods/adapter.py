"""Bottleneck adapters (Houlsby et al. 2019; Lin et al. 2020) as a registered method (`conf/method/adapter*.yaml`).

An adapter maps a hidden state z (width h) to `z + up(act(down(z)))`, with down: h -> b and up: b -> h (weights
and biases: 2hb + b + h parameters). The up-projection starts at zero, so at initialization every adapter is the
identity and the model is exactly the base model; the down-projection starts as N(0, init_std^2) (Houlsby et
al.: 1e-2). No maintained adapter library supports transformers 5, so this one is written here: the adapters live
in this module (not in the base model, whose weights and names stay as they are) and enter through forward hooks.

Where: one adapter per transformer block, on the output of the block's feed-forward sublayer, before that
sublayer's residual addition: `mlp` in GPT-2 and Llama-style blocks, `fc2` in BART's encoder and decoder blocks
(there also before the post-LN LayerNorm). Li & Liang cite Houlsby et al. and Lin et al.: this is Houlsby et al.'s
feed-forward adapter, alone, which Pfeiffer et al. 2021 found on par with Houlsby's two per block, and, like Lin et
al. 2020 for GPT-2, one adapter per block after its feed-forward. Why this point: it means the same thing in
pre-LN (GPT-2, Llama) and post-LN (BART) blocks, where an adapter on a block's output would follow a LayerNorm in
one family and not the other; and the paper's 3% / 0.1% rows are parameter budgets, which one adapter per block
meets with the closed form below. Lin et al. also put a LayerNorm inside each adapter (2h more per block); it is
left out here, as in Houlsby's adapters.

Size: `bottleneck` b directly, or `percent` p of the base model's parameters N: with n adapters of width h the
method stores n(2hb + b + h) = n(2h + 1) b + n h numbers, so the largest b within the budget is

    b = floor((p/100 * N - n h) / (n (2h + 1)))

(the adapters never exceed the budget; GPT-2 Medium, N = 354,823,168, n = 24, h = 1024: 3% -> b = 215,
10,597,416 parameters, 2.987%; 0.1% -> b = 6, 319,632 parameters, 0.090%, where b = 7 would be 0.104%).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import torch
from pydantic import Field
from safetensors.torch import load_file
from torch import nn
from transformers.modeling_layers import GradientCheckpointingLayer

from prefixlab.methods.registry import MethodSpec
from prefixlab.methods.source_target import (
    SourceTargetModel,
    parameter_counts,
    save_safetensors_atomically,
    saved_metadata,
)

ADAPTER_FILE = "adapter.safetensors"
FORMAT = "prefixlab-adapter-v1"
# the feed-forward sublayer inside a block, by family: GPT-2, Llama-style, Falcon, ... (`mlp`); BART, OPT (`fc2`)
FEED_FORWARD = ("mlp", "feed_forward", "fc2")
NONLINEARITIES = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh}


@dataclass
class AdapterSettings:
    """`conf/method/adapter.yaml`: give the width (`bottleneck`) or a budget (`percent`), not both.

    Attributes:
        bottleneck: b, the adapters' inner width; None: solved from `percent`.
        percent: the adapters' size as % of the base model's parameters (paper Table 2: 3 and 0.1).
        nonlinearity: between the down- and the up-projection (Lin et al.: relu).
        dropout: dropout on the bottleneck activations during training.
        init_std: std of the down-projection's normal initialization (the up-projection starts at zero).
        module: the sub-module of each block whose output the adapter transforms; None: its feed-forward
            sublayer (`mlp`, or `fc2` in BART).
    """

    bottleneck: Annotated[int, Field(ge=1)] | None = None
    percent: Annotated[float, Field(gt=0.0, lt=100.0)] | None = 3.0
    nonlinearity: Literal["relu", "gelu", "tanh"] = "relu"
    dropout: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.0
    init_std: Annotated[float, Field(gt=0.0)] = 0.01
    module: str | None = None

    def __post_init__(self) -> None:
        if (self.bottleneck is None) == (self.percent is None):
            raise ValueError(
                f"set exactly one of bottleneck and percent (got bottleneck={self.bottleneck!r}, "
                f"percent={self.percent!r}); e.g. method.bottleneck=64 method.percent=null."
            )


class Adapter(nn.Module):
    """z -> z + up(dropout(act(down(z)))); the identity at initialization (up-projection zero)."""

    def __init__(
        self, hidden: int, bottleneck: int, nonlinearity: str, dropout: float, init_std: float
    ) -> None:
        super().__init__()
        self.down = nn.Linear(hidden, bottleneck)
        self.act = NONLINEARITIES[nonlinearity]()
        self.dropout = nn.Dropout(dropout)
        self.up = nn.Linear(bottleneck, hidden)
        with torch.no_grad():
            self.down.weight.normal_(0.0, init_std)
            self.down.bias.zero_()
            self.up.weight.zero_()
            self.up.bias.zero_()

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """The adapted hidden states, in the input's dtype (the adapter computes in its own, float32)."""
        dtype = self.down.weight.dtype
        z = hidden.to(dtype)
        return (z + self.up(self.dropout(self.act(self.down(z))))).to(hidden.dtype)

    @staticmethod
    def size(hidden: int, bottleneck: int) -> int:
        """Parameters of one adapter: 2hb + b + h."""
        return 2 * hidden * bottleneck + bottleneck + hidden


def adapter_sites(base: nn.Module, module: str | None = None) -> list[tuple[str, nn.Module]]:
    """(name, module) whose output each block's adapter transforms: one per transformer block, in order."""
    blocks = [(n, m) for n, m in base.named_modules() if isinstance(m, GradientCheckpointingLayer)]
    if not blocks:
        raise ValueError(f"{type(base).__name__} has no transformer blocks (GradientCheckpointingLayer).")
    sites = []
    for name, block in blocks:
        candidates = (module,) if module is not None else FEED_FORWARD
        found = next((c for c in candidates if _has_submodule(block, c)), None)
        if found is None:
            raise ValueError(
                f"{type(block).__name__} ({name}) has no sub-module {' or '.join(map(repr, candidates))}; "
                "set method.module to the feed-forward sublayer of its blocks."
            )
        sites.append((f"{name}.{found}", block.get_submodule(found)))
    return sites


def _has_submodule(block: nn.Module, path: str) -> bool:
    try:
        block.get_submodule(path)
    except AttributeError:
        return False
    return True


def bottleneck_for_budget(base_parameters: int, hidden_sizes: list[int], percent: float) -> int:
    """The largest b with sum over adapters of (2hb + b + h) <= percent/100 * base_parameters."""
    budget = percent / 100.0 * base_parameters
    width = math.floor((budget - sum(hidden_sizes)) / sum(2 * h + 1 for h in hidden_sizes))
    if width < 1:
        smallest = sum(Adapter.size(h, 1) for h in hidden_sizes)
        raise ValueError(
            f"method.percent={percent!r} is below the smallest adapters (bottleneck 1: {smallest:,} parameters, "
            f"{100.0 * smallest / base_parameters:.4g}% of this model)."
        )
    return width


def _apply(adapter: Adapter, module: nn.Module, inputs: Any, output: Any) -> Any:
    if isinstance(output, tuple):  # a feed-forward that also returns e.g. router logits
        return (adapter(output[0]), *output[1:])
    return adapter(output)


class AdapterModel(SourceTargetModel):
    """A frozen base model with one trainable bottleneck adapter per block (see the module doc)."""

    def __init__(
        self, base_model: nn.Module, settings: AdapterSettings | None = None, *, width: int | None = None
    ) -> None:
        """`width` fixes the bottleneck instead of solving it from `settings` (`load` passes the saved one)."""
        super().__init__(base_model)
        self.settings = settings or AdapterSettings()
        for parameter in base_model.parameters():
            parameter.requires_grad_(False)
        base_model.eval()
        sites = adapter_sites(base_model, self.settings.module)
        self.site_names = [name for name, _ in sites]
        hidden = [_output_width(base_model, m) for _, m in sites]
        if width is None:
            width = self.settings.bottleneck or bottleneck_for_budget(
                sum(p.numel() for p in base_model.parameters()), hidden, self.settings.percent
            )
        self.bottleneck = width
        device = next(base_model.parameters()).device
        self.adapters = nn.ModuleList(
            Adapter(h, width, self.settings.nonlinearity, self.settings.dropout, self.settings.init_std).to(
                device
            )
            for h in hidden
        )
        self._hooks = [
            site.register_forward_hook(functools.partial(_apply, adapter))
            for (_, site), adapter in zip(sites, self.adapters, strict=True)
        ]

    def train(self, mode: bool = True) -> AdapterModel:
        """Train mode for the adapters only: the frozen model stays in eval mode (no dropout), as in the paper."""
        super().train(mode)
        self.base.eval()
        return self

    def remove(self) -> nn.Module:
        """Take the adapters out of the base model (its forward is the base model's again) and return it."""
        for hook in self._hooks:
            hook.remove()
        self._hooks = []
        return self.base

    def parameter_report(self) -> dict[str, float]:
        """Trainable and stored parameters (all adapters), and both as % of the base model."""
        count = sum(p.numel() for p in self.adapters.parameters())
        return parameter_counts(self.base, count, stored=count) | {"bottleneck": self.bottleneck}

    def export(self) -> None:
        """Nothing to fold: the adapters are what is stored."""

    def save(self, path: str | os.PathLike) -> Path:
        """Store only the adapters and the settings (a file, or `adapter.safetensors` in a folder), atomically."""
        metadata = {
            "format": FORMAT,
            "settings": json.dumps(dataclasses.asdict(self.settings)),
            "bottleneck": json.dumps(self.bottleneck),
            "sites": json.dumps(self.site_names),
        }
        return save_safetensors_atomically(self.adapters.state_dict(), path, metadata, ADAPTER_FILE)

    @classmethod
    def load(cls, base_model: nn.Module, path: str | os.PathLike) -> AdapterModel:
        """Rebuild on `base_model` (a fresh copy of the model it was trained on) from a file written by `save`."""
        path, metadata = saved_metadata(path, ADAPTER_FILE, "AdapterModel", "adapters", FORMAT)
        settings = AdapterSettings(**json.loads(metadata["settings"]))
        model = cls(base_model, settings, width=json.loads(metadata["bottleneck"]))
        if model.site_names != json.loads(metadata["sites"]):
            raise ValueError(f"{path} was saved for other blocks: {json.loads(metadata['sites'])[:3]} ...")
        model.adapters.load_state_dict(load_file(str(path), device=str(next(base_model.parameters()).device)))
        return model


def _output_width(base: nn.Module, module: nn.Module) -> int:
    """The width of a sublayer's output: a Linear's out_features, a Conv1D's nf, else the model's hidden size."""
    for attribute in ("out_features", "nf"):
        if isinstance(getattr(module, attribute, None), int):
            return getattr(module, attribute)
    return base.config.get_text_config().hidden_size


def label(settings: AdapterSettings) -> str:
    """The paper's row names `adapter (3%)`, `adapter (0.1%)`; by width `adapter-b64`."""
    if settings.percent is not None:
        return f"adapter ({settings.percent:g}%)"
    return f"adapter-b{settings.bottleneck}"


METHOD = MethodSpec(
    kind="adapter",
    settings=AdapterSettings,
    build=lambda base, settings, tokenizer: AdapterModel(base, settings),
    load=AdapterModel.load,
    label=label,
)
