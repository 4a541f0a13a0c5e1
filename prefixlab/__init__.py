"""prefixlab: prefix-tuning (Li & Liang, 2021) and its ablations on any Hugging Face model."""

from prefixlab.methods.config import PrefixConfig
from prefixlab.methods.prefix_model import PrefixModel

__all__ = ["PrefixConfig", "PrefixModel"]
__version__ = "0.1.0"
