"""`PrefixConfig`: every knob of prefix-tuning that the paper ablates, validated on construction."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import Field

PLACEMENTS = ("prefix", "infix")
DEPTHS = ("all", "embedding")
REPARAMS = ("none", "mlp")
INITS = ("random", "tokens")


class PrefixConfigError(ValueError):
    """A `PrefixConfig` value or combination that prefixlab cannot run, with what is allowed."""


def _choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise PrefixConfigError(
            f"{name}={value!r} is not allowed; choose one of {', '.join(map(repr, allowed))}."
        )


@dataclass
class PrefixConfig:
    """How the virtual tokens are shaped, placed, parameterized and initialized.

    Attributes:
        length: number of virtual tokens (>= 1).
        placement: "prefix" puts them before the source (`[P; x; y]`); "infix" between source and target
            (`[x; P; y]`, x never attends to P). With "infix" the source's last token (the separator in
            every task format) is read after P, so that the first target token is predicted by a position
            that has seen P, as in the authors' GPT-2 infix code, where the target starts after the infix.
        depth: "all" trains key/value activations in every attention layer (prefix-tuning, P-tuning v2);
            "embedding" trains only input embeddings that run through the frozen model (the EMB-n ablation).
        reparam: "none" trains P directly; "mlp" trains P' and a Linear-Tanh-Linear MLP with P = MLP(P').
        mlp_hidden: hidden width of the reparameterization MLP (paper: 512 table-to-text, 800 summarization).
        mlp_input_dim: width of P'; None uses the model's hidden size, as the authors' code does.
        dropout: dropout on the prefix activations during training.
        init: "random" or "tokens" (activations of real tokens, paper section 7.4).
        init_text: text whose tokens initialize the prefix (tokenized by the model's tokenizer); ignored with
            init="random", so a sweep over init can keep the text fixed.
        init_token_ids: token ids that initialize the prefix (instead of init_text).
        init_fit_steps / init_fit_lr: with reparam="mlp" and init="tokens", Adam steps and learning rate
            used to regress MLP(P') onto the token activations by MSE (authors: 500 steps at 1e-4).
        position_offset: for depth="all", placement="prefix": whether the source's position ids start after
            the virtual tokens (True: the authors' GPT-2 code and PEFT) or at 0 (False: the authors' BART
            code). None picks the family default (decoder-only True, encoder-decoder False).
        init_std: standard deviation of random initialization.
    """

    length: Annotated[int, Field(ge=1)] = 10
    placement: Literal["prefix", "infix"] = "prefix"
    depth: Literal["all", "embedding"] = "all"
    reparam: Literal["mlp", "none"] = "mlp"
    mlp_hidden: Annotated[int, Field(ge=1)] = 512
    mlp_input_dim: Annotated[int, Field(ge=1)] | None = None
    dropout: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.0
    init: Literal["random", "tokens"] = "random"
    init_text: str | None = None
    init_token_ids: list[int] | None = field(default=None)
    init_fit_steps: Annotated[int, Field(ge=0)] = 500
    init_fit_lr: Annotated[float, Field(gt=0)] = 1e-4
    position_offset: bool | None = None
    init_std: Annotated[float, Field(gt=0)] = 0.02

    def __post_init__(self) -> None:
        if isinstance(self.length, bool) or not isinstance(self.length, int) or self.length < 1:
            raise PrefixConfigError(f"length={self.length!r} is not allowed; it must be an integer >= 1.")
        _choice("placement", self.placement, PLACEMENTS)
        _choice("depth", self.depth, DEPTHS)
        _choice("reparam", self.reparam, REPARAMS)
        _choice("init", self.init, INITS)
        if not isinstance(self.mlp_hidden, int) or self.mlp_hidden < 1:
            raise PrefixConfigError(
                f"mlp_hidden={self.mlp_hidden!r} is not allowed; it must be an integer >= 1."
            )
        if self.mlp_input_dim is not None and (
            not isinstance(self.mlp_input_dim, int) or self.mlp_input_dim < 1
        ):
            raise PrefixConfigError(f"mlp_input_dim={self.mlp_input_dim!r} must be None or an integer >= 1.")
        if not 0.0 <= float(self.dropout) < 1.0:
            raise PrefixConfigError(f"dropout={self.dropout!r} is not allowed; it must be in [0, 1).")
        if self.init_fit_steps < 0 or self.init_fit_lr <= 0:
            raise PrefixConfigError("init_fit_steps must be >= 0 and init_fit_lr > 0.")
        if self.init == "tokens":
            if (self.init_text is None) == (self.init_token_ids is None):
                raise PrefixConfigError("init='tokens' needs exactly one of init_text or init_token_ids.")
            if self.init_token_ids is not None:
                self.init_token_ids = [int(t) for t in self.init_token_ids]
                if len(self.init_token_ids) != self.length:
                    raise PrefixConfigError(
                        f"init_token_ids has {len(self.init_token_ids)} ids but length={self.length}; "
                        "they must match (set length to the number of initialization tokens)."
                    )
        if self.position_offset is not None and not (self.depth == "all" and self.placement == "prefix"):
            raise PrefixConfigError(
                "position_offset applies only to depth='all' with placement='prefix' (embedding-only and "
                "infix virtual tokens occupy real positions); leave it unset (None)."
            )

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form, for run records and the saved prefix's metadata."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> PrefixConfig:
        """Build from a dict (e.g. a Hydra config), rejecting unknown keys with the list of known ones."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise PrefixConfigError(f"unknown PrefixConfig keys {unknown}; known keys: {sorted(known)}.")
        return cls(**values)
