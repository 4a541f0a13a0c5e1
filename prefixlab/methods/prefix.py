"""Prefix-tuning as a registered method (`conf/method/prefix.yaml`): `PrefixConfig` settings, `PrefixModel`."""

from __future__ import annotations

from typing import Any

from prefixlab.methods.config import PrefixConfig
from prefixlab.methods.registry import MethodSpec
from prefixlab.settings import SettingsError


def _build(base: Any, settings: PrefixConfig, tokenizer: Any) -> Any:
    from prefixlab.methods.prefix_model import PrefixModel

    return PrefixModel(base, settings, tokenizer=tokenizer)


def _load(base: Any, path: Any) -> Any:
    from prefixlab.methods.prefix_model import PrefixModel

    return PrefixModel.load(base, path)


def label(settings: PrefixConfig) -> str:
    """The paper's row names: EMB-n (embedding-only), INFIX-n, PREFIX-n."""
    if settings.depth == "embedding":
        return f"EMB-{settings.length}"
    return f"{settings.placement.upper()}-{settings.length}"


def check(settings: PrefixConfig, family: str) -> None:
    """An infix is defined only for decoder-only models (an encoder-decoder has no [x; P; y] sequence)."""
    if settings.placement == "infix" and family == "encoder_decoder":
        raise SettingsError(
            "method.placement='infix' is undefined for an encoder-decoder model; use method.placement=prefix, "
            "or a decoder-only model."
        )


METHOD = MethodSpec(kind="prefix", settings=PrefixConfig, build=_build, load=_load, label=label, check=check)
