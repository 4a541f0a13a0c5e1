"""prefixlab: prefix-tuning (Li & Liang, 2021) and its ablations on any Hugging Face model.

`PrefixConfig` and `PrefixModel` are imported on first use, so that torch-free parts (reports, the notebook)
start fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prefixlab.methods.config import PrefixConfig
    from prefixlab.methods.prefix_model import PrefixModel

__all__ = ["PrefixConfig", "PrefixModel"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name == "PrefixConfig":
        from prefixlab.methods.config import PrefixConfig

        return PrefixConfig
    if name == "PrefixModel":
        from prefixlab.methods.prefix_model import PrefixModel

        return PrefixModel
    raise AttributeError(f"module 'prefixlab' has no attribute {name!r}")
