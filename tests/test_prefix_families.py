"""Which model families prefixlab supports, which it refuses (and why), and that wrapping a model is local.

The supported families are those the exactness suite runs on (`tiny_models.SUPPORTED`); the README's list is
checked against them here.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from test_prefix_exactness import TOL, real_kv
from tiny_models import (
    ENCODER_DECODER,
    FALCON_ON_INTERFACE,
    LLAMA_STYLE,
    SUPPORTED,
    T5_STYLE,
    UNSUPPORTED,
    falcon,
    max_error,
)
from transformers import LlamaConfig, LlamaForCausalLM, T5Config, T5ForConditionalGeneration

from prefixlab import PrefixConfig, PrefixModel
from prefixlab.methods.injection import UnsupportedModelError

README = Path(__file__).resolve().parent.parent / "README.md"
X = torch.tensor([[10, 11, 12, 13, 14]])
Y = torch.tensor([[20, 21, 22]])
# The README names families as people write them; the suite's keys are these names, lowercased and joined.
README_NAMES = {
    "GPT-2": "gpt2",
    "Llama": "llama",
    "Qwen2": "qwen2",
    "Mistral": "mistral",
    "Gemma 2": "gemma2",
    "Gemma 3": "gemma3",
    "BART": "bart",
    "T5": "t5",
    "Flan-T5": "flan-t5",
    "mT5": "mt5",
    "UL2": "ul2",
}


def run(pm: PrefixModel) -> torch.Tensor:
    with torch.no_grad():
        return pm(
            source_ids=X, source_mask=torch.ones_like(X), target_ids=Y, target_mask=torch.ones_like(Y)
        ).logits


def test_readme_lists_exactly_the_families_the_exactness_suite_covers():
    line = next(line for line in README.read_text().splitlines() if line.startswith("**Supported families**"))
    listed = re.findall(r"`([^`]+)`", line)
    assert listed, line
    assert sorted(README_NAMES.get(name, name) for name in listed) == sorted(SUPPORTED)


@pytest.mark.parametrize("family", sorted(UNSUPPORTED))
def test_unreachable_families_fail_at_wrap_time_with_the_reason(family):
    build, reason = UNSUPPORTED[family]
    base = build()
    with pytest.raises(UnsupportedModelError, match=reason):
        PrefixModel(base, PrefixConfig(length=3))


def test_falcon_is_refused_where_it_bypasses_the_interface_and_exact_where_it_calls_it():
    base = falcon()
    if not FALCON_ON_INTERFACE:  # transformers < 5.25: attention in Falcon's own code
        with pytest.raises(UnsupportedModelError, match="computes attention in its own code"):
            PrefixModel(base, PrefixConfig(length=3))
        return
    p = torch.tensor([[5, 6, 7]])  # virtual tokens set to these real tokens' keys/values give their logits
    pm = PrefixModel(base, PrefixConfig(length=3, reparam="none"))
    kv, ref = real_kv(pm, slice(0, 3), input_ids=torch.cat([p, X, Y], 1))
    pm.set_prefix(kv)
    start = p.shape[1] + X.shape[1] - 1
    assert max_error(run(pm), ref[:, start : start + Y.shape[1]]) < TOL


def test_a_refused_model_is_left_as_it_was():
    """LongT5 passes the class-level checks and fails in the dry run: the model gets its own kernel back."""
    build, _ = UNSUPPORTED["longt5"]
    base = build()
    ids = torch.tensor([[10, 11, 12]])
    with torch.no_grad():
        before = base(input_ids=ids, decoder_input_ids=ids).logits
    with pytest.raises(UnsupportedModelError):
        PrefixModel(base, PrefixConfig(length=3))
    assert base.config._attn_implementation == "eager"
    assert not any(hasattr(m, "_prefixlab_state") or hasattr(m, "_prefixlab_slot") for m in base.modules())
    with torch.no_grad():
        assert torch.equal(base(input_ids=ids, decoder_input_ids=ids).logits, before)


@pytest.mark.parametrize(
    "config,cls",
    [
        (LlamaConfig(num_key_value_heads=2, **LLAMA_STYLE), LlamaForCausalLM),
        (T5Config(**T5_STYLE), T5ForConditionalGeneration),
    ],
    ids=["llama", "t5"],
)
def test_wrapping_is_local_to_the_wrapped_model(config, cls):
    """Issue 11: build a model from a config object, wrap it, build a second model from the same config
    object: the second one runs its own plain kernel (its first forward used to fail)."""
    config._attn_implementation = "sdpa"
    torch.manual_seed(0)
    first = cls(config).eval()
    torch.manual_seed(0)
    reference = cls(config).eval()
    pm = PrefixModel(first, PrefixConfig(length=3, init_std=1.0))
    assert config._attn_implementation == "sdpa"
    torch.manual_seed(0)
    second = cls(config).eval()
    inputs = {"input_ids": X, **({"decoder_input_ids": Y} if config.is_encoder_decoder else {})}
    with torch.no_grad():
        expected = reference(**inputs).logits
        assert torch.equal(second(**inputs).logits, expected)
        assert torch.equal(first(**inputs).logits, expected)  # the wrapped base without a prefix active
    assert first.config._attn_implementation.startswith("prefixlab_")
    assert second.config._attn_implementation == "sdpa"
    unwrapped_pm = PrefixModel(second, PrefixConfig(length=3, init_std=1.0))
    unwrapped_pm.prefix.load_state_dict(pm.prefix.state_dict())
    assert torch.equal(run(unwrapped_pm), run(pm))  # and the prefix is really injected in both
    assert max_error(run(pm)[:, :1], reference(**inputs).logits[:, :1]) > 1e-3


def test_a_module_without_prefix_state_runs_the_plain_kernel():
    """A model whose config names prefixlab's kernel but that no PrefixModel wraps computes plain attention."""
    build = SUPPORTED["llama"]
    plain, renamed = build(), build()
    renamed.set_attn_implementation("prefixlab_sdpa")
    with torch.no_grad():
        assert torch.equal(renamed(input_ids=X).logits, plain(input_ids=X).logits)


@pytest.mark.parametrize("family", sorted(ENCODER_DECODER))
def test_encoder_decoder_families_get_three_prefix_sets(family):
    base = ENCODER_DECODER[family]()
    pm = PrefixModel(base, PrefixConfig(length=2))
    layers = base.config.num_layers if hasattr(base.config, "num_layers") else base.config.encoder_layers
    assert {name: layout.layers for name, layout in pm.layouts.items()} == {
        "encoder": layers,
        "decoder": layers,
        "cross": layers,
    }
