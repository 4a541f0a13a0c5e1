"""PrefixConfig validation and the parameter counts the paper reports."""

from __future__ import annotations

import pytest
from tiny_models import bart, gpt2
from transformers import BartConfig, BartForConditionalGeneration, GPT2Config, GPT2LMHeadModel
from transformers.initialization import no_init_weights

from prefixlab import PrefixConfig, PrefixModel
from prefixlab.methods.config import PrefixConfigError


@pytest.mark.parametrize(
    "values,message",
    [
        ({"length": 0}, "length=0 is not allowed; it must be an integer >= 1"),
        ({"length": 2.5}, "length=2.5"),
        ({"placement": "suffix"}, "placement='suffix' is not allowed; choose one of 'prefix', 'infix'"),
        ({"depth": "half"}, "depth='half' is not allowed; choose one of 'all', 'embedding'"),
        ({"reparam": "lstm"}, "reparam='lstm' is not allowed; choose one of 'none', 'mlp'"),
        ({"init": "zeros"}, "init='zeros' is not allowed"),
        ({"dropout": 1.0}, "dropout=1.0"),
        ({"mlp_hidden": 0}, "mlp_hidden=0"),
        ({"init": "tokens"}, "exactly one of init_text or init_token_ids"),
        ({"init": "tokens", "init_token_ids": [1, 2], "length": 3}, "has 2 ids but length=3"),
        ({"depth": "embedding", "position_offset": True}, "position_offset applies only to depth='all'"),
    ],
)
def test_invalid_values_name_what_is_allowed(values, message):
    with pytest.raises(PrefixConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        PrefixConfig(**values)


def test_from_dict_rejects_unknown_keys():
    with pytest.raises(PrefixConfigError, match="unknown PrefixConfig keys \\['lenght'\\]"):
        PrefixConfig.from_dict({"lenght": 5})
    assert PrefixConfig.from_dict(PrefixConfig(length=7).to_dict()) == PrefixConfig(length=7)


def test_infix_on_encoder_decoder_is_rejected():
    with pytest.raises(PrefixConfigError, match="infix' is undefined for encoder-decoder"):
        PrefixModel(bart(), PrefixConfig(placement="infix"))


def test_flash_attention_kernel_is_rejected_with_the_fix():
    base = gpt2()
    base.config._attn_implementation = "flex_attention"
    with pytest.raises(ValueError, match="attn_implementation='sdpa'"):
        PrefixModel(base, PrefixConfig())


def _uninitialized(model_cls, config):
    """A full-size model without the (slow) random initialization: only shapes matter here."""
    with no_init_weights():
        model = model_cls(config)
    model.tie_weights()
    return model


@pytest.mark.parametrize("length,stored", [(5, 245_760), (10, 491_520)])
def test_gpt2_medium_stores_the_papers_parameter_counts(length, stored):
    """Paper: GPT-2 Medium prefix 0.1% = "250K" (length 5) / "500K" (length 10); 24 x 2 x 1024 per token."""
    base = _uninitialized(GPT2LMHeadModel, GPT2Config(n_layer=24, n_embd=1024, n_head=16))
    pm = PrefixModel(base, PrefixConfig(length=length, reparam="mlp", mlp_hidden=512))
    report = pm.parameter_report()
    assert report["stored_parameters"] == stored
    # P' (length x 1024) + Linear(1024, 512) + Linear(512, 49152)
    assert report["trainable_parameters"] == length * 1024 + (1024 * 512 + 512) + (512 * 49_152 + 49_152)
    assert report["base_parameters"] == 354_823_168  # GPT-2 Medium, tied output embedding
    assert report["stored_percent"] == pytest.approx(100 * stored / report["base_parameters"])
    assert 0.05 < report["stored_percent"] < 0.2  # the paper's "0.1%"
    pm.export()
    assert pm.parameter_report()["trainable_parameters"] == stored


def test_bart_large_stores_73728_per_virtual_token():
    config = BartConfig(
        encoder_layers=12,
        decoder_layers=12,
        d_model=1024,
        encoder_attention_heads=16,
        decoder_attention_heads=16,
        encoder_ffn_dim=4096,
        decoder_ffn_dim=4096,
        vocab_size=50265,
    )
    base = _uninitialized(BartForConditionalGeneration, config)
    pm = PrefixModel(base, PrefixConfig(length=2, reparam="none"))
    assert pm.parameter_report()["stored_parameters"] == 2 * 73_728
    assert {name: layout.width for name, layout in pm.layouts.items()} == {
        "encoder": 24_576,
        "decoder": 24_576,
        "cross": 24_576,
    }


def test_embedding_only_stores_hidden_size_per_token():
    pm = PrefixModel(gpt2(), PrefixConfig(length=3, depth="embedding", reparam="none"))
    assert pm.parameter_report()["stored_parameters"] == 3 * 32
