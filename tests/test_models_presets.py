"""The model presets added for model coverage: T5 and Flan-T5 from the hub, Qwen2.5-1.5B in bfloat16 with its
memory estimate, and the tiny random T5 for tests and demos."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, Qwen2Config

from prefixlab import PrefixConfig, PrefixModel
from prefixlab.methods.injection import SetLayout
from prefixlab.methods.parameters import PrefixParameters
from prefixlab.models import get_model_config, load_model, model_conf_dir

# Qwen/Qwen2.5-1.5B's config.json (the architecture the preset's comment and memory estimate describe).
QWEN25_15B = dict(
    hidden_size=1536,
    intermediate_size=8960,
    num_hidden_layers=28,
    num_attention_heads=12,
    num_key_value_heads=2,
    vocab_size=151936,
    max_position_embeddings=131072,
    tie_word_embeddings=True,
)


@pytest.mark.parametrize(
    "name,hub_id,family,dtype",
    [
        ("t5-base", "google-t5/t5-base", "encoder_decoder", "float32"),
        ("flan-t5-base", "google/flan-t5-base", "encoder_decoder", "float32"),
        ("qwen2.5-1.5b", "Qwen/Qwen2.5-1.5B", "decoder_only", "bfloat16"),
    ],
)
def test_hub_presets(name, hub_id, family, dtype):
    spec = get_model_config(name)
    assert (spec["loader"], spec["hub_id"], spec["family"], spec["dtype"]) == ("hub", hub_id, family, dtype)
    assert "device_map" in spec and spec["device_map"] is None  # so that model.device_map=auto overrides it


def test_qwen_preset_states_its_sizes_and_memory_estimate():
    """The numbers in conf/model/qwen2.5-1.5b.yaml follow from the architecture: parameters (counted on the
    meta device, no weights), the prefix width, the MLP-reparameterized prefix at length 10 and the bytes."""
    text = (model_conf_dir() / "qwen2.5-1.5b.yaml").read_text()
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(Qwen2Config(**QWEN25_15B))
    parameters = sum(p.numel() for p in model.parameters())
    assert parameters == 1_543_714_304 and "1,543,714,304" in text
    assert f"{parameters * 2 / 1e9:.1f} GB" in text  # the frozen weights in bfloat16
    layout = SetLayout(layers=28, kv_heads=2, head_dim=QWEN25_15B["hidden_size"] // 12)
    assert layout.width == 14_336 and "14,336" in text and "143,360" in text
    prefix = PrefixParameters({"decoder": layout.width}, 10, reparam="mlp", mlp_hidden=512,
                              mlp_input_dim=1536, init_std=0.02)  # fmt: skip
    trainable = sum(p.numel() for p in prefix.parameters())
    assert f"{trainable / 1e6:.2f}M trainable" in text
    # float32 value, gradient and two AdamW moments per trainable parameter
    assert f"float32 {trainable * 16 / 1e9:.2f} GB" in text


def test_tiny_t5_preset_wraps_trains_and_decodes():
    model, tokenizer = load_model("tiny-t5")
    assert type(model).__name__ == "T5ForConditionalGeneration"
    assert model.config.decoder_start_token_id == tokenizer.pad_token_id == 0
    pm = PrefixModel(model, PrefixConfig(length=4, mlp_hidden=16))
    assert set(pm.layouts) == {"encoder", "decoder", "cross"}
    src = tokenizer(["name[Aromi]", "eatType[pub]"], return_tensors="pt", padding=True)
    tgt = tokenizer(["Aromi.", "A pub."], return_tensors="pt", padding=True)
    loss = pm(source_ids=src.input_ids, source_mask=src.attention_mask,
              target_ids=tgt.input_ids, target_mask=tgt.attention_mask).loss  # fmt: skip
    loss.backward()
    assert all(p.grad is not None for p in pm.prefix.parameters())
    out = pm.generate(source_ids=src.input_ids, source_mask=src.attention_mask, num_beams=2, max_new_tokens=5)
    assert out.shape[0] == 2 and 1 <= out.shape[1] <= 5
