"""The trainable prefix: one `PrefixSet` per place it enters the model, trained directly or through an MLP.

A set produces a matrix P of shape (length, width). For depth="all" the width is layers x 2 x kv_heads x
head_dim and P is viewed as keys/values (layers, 2, kv_heads, length, head_dim); for depth="embedding" it is
the model's hidden size. With reparam="mlp", P = MLP(P') with MLP = Linear-Tanh-Linear (the paper's
reparameterization); `export()` replaces P' and the MLP by the P they compute, which is all that is stored.
"""

from __future__ import annotations

import torch
from torch import nn

from prefixlab.methods.injection import SetLayout


class PrefixSet(nn.Module):
    """One independent prefix matrix P (length x width), direct or reparameterized."""

    def __init__(
        self,
        length: int,
        width: int,
        *,
        reparam: str = "none",
        mlp_hidden: int = 512,
        mlp_input_dim: int = 512,
        init_std: float = 0.02,
    ) -> None:
        super().__init__()
        self.length, self.width = length, width
        if reparam == "mlp":
            self.prefix_input = nn.Parameter(torch.randn(length, mlp_input_dim) * init_std)
            self.mlp = nn.Sequential(
                nn.Linear(mlp_input_dim, mlp_hidden), nn.Tanh(), nn.Linear(mlp_hidden, width)
            )
            self.prefix = None
        else:
            self.prefix = nn.Parameter(torch.randn(length, width) * init_std)
            self.prefix_input = None
            self.mlp = None

    @property
    def reparameterized(self) -> bool:
        """True while P is computed by the MLP (before `export`)."""
        return self.mlp is not None

    def forward(self) -> torch.Tensor:
        """P, shape (length, width), in float32."""
        if self.mlp is not None:
            return self.mlp(self.prefix_input)
        return self.prefix

    @torch.no_grad()
    def set_values(self, values: torch.Tensor) -> None:
        """Make P equal `values` (length x width): the direct matrix, or an exported one if reparameterized."""
        values = values.reshape(self.length, self.width).to(torch.float32)
        if self.mlp is not None:
            self.export()
        self.prefix.copy_(values)

    @torch.no_grad()
    def export(self) -> None:
        """Replace P' and the MLP by the P they compute (what is kept after training)."""
        if self.mlp is None:
            return
        prefix = self.mlp(self.prefix_input).detach().clone()
        device = prefix.device
        self.mlp = None
        self.prefix_input = None
        self.prefix = nn.Parameter(prefix.to(device))


class PrefixParameters(nn.Module):
    """All prefix sets of a model (e.g. "decoder"; or "encoder", "decoder", "cross"; or "embedding")."""

    def __init__(
        self,
        widths: dict[str, int],
        length: int,
        *,
        reparam: str,
        mlp_hidden: int,
        mlp_input_dim: int,
        init_std: float,
    ) -> None:
        super().__init__()
        self.sets = nn.ModuleDict(
            {
                name: PrefixSet(
                    length,
                    width,
                    reparam=reparam,
                    mlp_hidden=mlp_hidden,
                    mlp_input_dim=mlp_input_dim,
                    init_std=init_std,
                )
                for name, width in widths.items()
            }
        )

    def forward(self) -> dict[str, torch.Tensor]:
        """P of every set: name -> (length, width)."""
        return {name: prefix_set() for name, prefix_set in self.sets.items()}

    def export(self) -> None:
        """Drop every reparameterization MLP, keeping the P it computes."""
        for prefix_set in self.sets.values():
            prefix_set.export()

    @property
    def exported(self) -> bool:
        """True when no set is reparameterized any more."""
        return not any(s.reparameterized for s in self.sets.values())

    def stored_size(self) -> int:
        """Numbers kept after export: length x width summed over sets."""
        return sum(s.length * s.width for s in self.sets.values())


def as_key_values(prefix: torch.Tensor, layout: SetLayout) -> torch.Tensor:
    """View P (length, layers*2*kv_heads*head_dim) as keys/values (layers, 2, kv_heads, length, head_dim)."""
    length = prefix.shape[0]
    kv = prefix.view(length, layout.layers, 2, layout.kv_heads, layout.head_dim)
    return kv.permute(1, 2, 3, 0, 4)


def from_key_values(kv: torch.Tensor) -> torch.Tensor:
    """Inverse of `as_key_values`: (layers, 2, kv_heads, length, head_dim) -> (length, width)."""
    return kv.permute(3, 0, 1, 2, 4).reshape(kv.shape[3], -1)
