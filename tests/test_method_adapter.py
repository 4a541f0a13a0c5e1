"""Bottleneck adapters (`method=adapter`): identity at initialization, where they sit, only they train,
save/load, decoding, activation checkpointing, the paper's 3% / 0.1% sizes on GPT-2 Medium, the registry path."""

from __future__ import annotations

import functools

import pytest
import torch
from test_method_lora import (
    BUILDERS,
    batch,
    check_activation_checkpointing,
    check_equals_base_model,
    check_half_precision_base,
    check_one_step_changes_only_own_parameters,
    check_save_and_reload,
    compose_method,
    method_yaml,
    perturb,
    zero_shot,
)
from tiny_models import bart, gpt2, llama
from transformers import BartConfig, BartForConditionalGeneration, GPT2Config, GPT2LMHeadModel

from prefixlab.methods.adapter import (
    METHOD,
    Adapter,
    AdapterModel,
    AdapterSettings,
    bottleneck_for_budget,
    label,
)
from prefixlab.methods.finetune import FineTuneModel
from prefixlab.methods.registry import method_label, method_settings
from prefixlab.settings import SettingsError

GPT2_MEDIUM = 354_823_168  # parameters of GPT-2 Medium (tied embeddings counted once)


def adapters(build, **settings) -> AdapterModel:
    torch.manual_seed(0)
    return AdapterModel(build(), AdapterSettings(**{"bottleneck": 8, "percent": None, **settings}))


def gpt2_medium() -> GPT2LMHeadModel:
    with torch.device("meta"):  # counts only: no memory for the weights
        return GPT2LMHeadModel(GPT2Config(n_layer=24, n_embd=1024, n_head=16))


@pytest.mark.parametrize("family", sorted(BUILDERS))
def test_at_initialization_adapters_are_the_base_model(family):
    check_equals_base_model(adapters(BUILDERS[family]), BUILDERS[family])


def test_one_adapter_per_block_on_its_feed_forward_output():
    assert adapters(gpt2).site_names == ["transformer.h.0.mlp", "transformer.h.1.mlp"]
    assert adapters(llama).site_names == ["model.layers.0.mlp", "model.layers.1.mlp"]
    assert adapters(bart).site_names == [
        f"model.{s}.layers.{i}.fc2" for s in ("encoder", "decoder") for i in (0, 1)
    ]


def test_each_adapter_transforms_its_blocks_feed_forward_output():
    """The same as the base model with every block's FFN output z replaced, by hand, by z + up(relu(down(z)))."""
    model = adapters(gpt2).eval()
    perturb(model)
    reference = zero_shot(gpt2)
    for block, adapter in zip(reference.base.transformer.h, model.adapters, strict=True):
        original = type(block.mlp).forward
        block.mlp.forward = functools.partial(lambda m, a, f, h: a(f(m, h)), block.mlp, adapter, original)
    b = batch()
    with torch.no_grad():
        assert torch.equal(reference(**b).logits, model(**b).logits)
        first, z = model.adapters[0], torch.randn(3, 32)
        torch.testing.assert_close(first(z), z + first.up(torch.relu(first.down(z))))


def test_one_step_trains_only_the_adapters():
    model = adapters(bart, dropout=0.1)
    check_one_step_changes_only_own_parameters(model)
    assert all(name.startswith("adapters.") for name, p in model.named_parameters() if p.requires_grad)
    assert model.adapters.training and not model.base.training


@pytest.mark.parametrize("family", sorted(BUILDERS))
def test_save_reload_on_a_fresh_base_gives_identical_logits(family, tmp_path):
    model = adapters(BUILDERS[family])
    stored = model.parameter_report()["stored_parameters"]
    path = check_save_and_reload(model, BUILDERS[family], AdapterModel, tmp_path, stored)
    assert path.name == "adapter.safetensors"
    with pytest.raises(ValueError, match="saved for other blocks"):
        AdapterModel.load(BUILDERS["bart" if family != "bart" else "gpt2"](), path)


def test_a_budget_sized_model_reloads_with_its_saved_width(tmp_path):
    model = AdapterModel(gpt2(), AdapterSettings(percent=5.0))
    # 2 blocks of h=32: 2 (65 b + 32) <= 5% of 31,616 = 1,580.8 -> b = 11
    assert model.bottleneck == 11 and model.parameter_report()["stored_parameters"] == 2 * (65 * 11 + 32)
    model.save(tmp_path)
    assert AdapterModel.load(gpt2(), tmp_path).bottleneck == 11


@pytest.mark.parametrize(("family", "blocks"), [("gpt2", 2), ("llama", 2), ("bart", 4)])
def test_activation_checkpointing_gives_the_same_gradients(family, blocks):
    check_activation_checkpointing(adapters(BUILDERS[family], dropout=0.2), blocks)


def test_a_bfloat16_base_keeps_adapters_in_float32():
    check_half_precision_base(
        AdapterModel(llama().to(torch.bfloat16), AdapterSettings(bottleneck=4, percent=None))
    )


def test_remove_gives_back_the_base_model():
    model = adapters(llama)
    perturb(model)
    base = model.remove()
    with torch.no_grad():
        assert torch.equal(FineTuneModel(base, "none")(**batch()).logits, zero_shot(llama)(**batch()).logits)


@pytest.mark.parametrize(
    ("percent", "bottleneck", "stored"),
    [(3.0, 215, 10_597_416), (0.1, 6, 319_632)],  # paper Table 2: adapter 3% and 0.1%
)
def test_gpt2_medium_paper_sizes_match_the_closed_form(percent, bottleneck, stored):
    model = AdapterModel(gpt2_medium(), AdapterSettings(percent=percent))
    report = model.parameter_report()
    assert report["base_parameters"] == GPT2_MEDIUM
    assert model.bottleneck == bottleneck
    assert (
        report["stored_parameters"]
        == report["trainable_parameters"]
        == 24 * (2 * 1024 * bottleneck + bottleneck + 1024)
    )
    assert report["stored_parameters"] == stored
    # the largest width within the budget: one more would exceed it
    assert stored <= percent / 100 * GPT2_MEDIUM < 24 * Adapter.size(1024, bottleneck + 1)


def test_gpt2_medium_by_width_and_bart_large_by_budget():
    assert AdapterModel(gpt2_medium(), AdapterSettings(bottleneck=64, percent=None)).parameter_report()[
        "stored_parameters"
    ] == 24 * (2 * 1024 * 64 + 64 + 1024)
    with torch.device("meta"):
        base = BartForConditionalGeneration(BartConfig(d_model=1024, encoder_layers=12, decoder_layers=12))
    total = sum(p.numel() for p in base.parameters())
    model = AdapterModel(base, AdapterSettings(percent=1.0))
    assert len(model.adapters) == 24  # 12 encoder + 12 decoder blocks
    assert model.bottleneck == int((total / 100 - 24 * 1024) // (24 * 2049))


def test_a_budget_below_one_unit_of_width_is_refused():
    with pytest.raises(ValueError, match="below the smallest adapters"):
        bottleneck_for_budget(GPT2_MEDIUM, [1024] * 24, 0.005)
    with pytest.raises(ValueError, match="no sub-module 'ffn'"):
        adapters(gpt2, module="ffn")


def test_registry_validates_settings_with_full_keys():
    spec, settings = method_settings({"kind": "adapter", "percent": 0.1})
    assert spec is METHOD and settings == AdapterSettings(percent=0.1)
    with pytest.raises(SettingsError) as error:
        method_settings({"kind": "adapter", "percent": 0, "bottleneck": 0, "nonlinearity": "swish"})
    for key in ("method.percent=0", "method.bottleneck=0", "method.nonlinearity='swish'"):
        assert key in str(error.value)
    with pytest.raises(SettingsError, match="method: set exactly one of bottleneck and percent"):
        method_settings({"kind": "adapter", "bottleneck": 64, "percent": 3.0})
    with pytest.raises(SettingsError, match="method.init_std=-1"):
        method_settings({"kind": "adapter", "init_std": -1})
    assert label(AdapterSettings(percent=3.0)) == "adapter (3%)"
    assert label(AdapterSettings(percent=0.1)) == "adapter (0.1%)"
    assert label(AdapterSettings(bottleneck=64, percent=None)) == "adapter-b64"


@pytest.mark.parametrize(
    ("name", "row"),
    [("adapter", "adapter (3%)"), ("adapter_3pct", "adapter (3%)"), ("adapter_0.1pct", "adapter (0.1%)")],
)
def test_each_yaml_holds_every_field_and_names_its_paper_row(name, row):
    values = method_yaml(name)
    assert set(values) == {"kind", *AdapterSettings.__dataclass_fields__}
    method_settings(values)
    assert method_label(compose_method(name)) == row


@pytest.mark.parametrize("family", sorted(BUILDERS))
def test_registry_builds_and_loads_on_every_family(family, tmp_path):
    spec, settings = method_settings({**method_yaml("adapter_3pct"), "percent": 10.0})
    model = spec.build(BUILDERS[family](), settings, None)
    assert isinstance(model, AdapterModel) and model.bottleneck >= 1
    model.save(tmp_path / "adapter.safetensors")
    assert isinstance(spec.load(BUILDERS[family](), tmp_path / "adapter.safetensors"), AdapterModel)
