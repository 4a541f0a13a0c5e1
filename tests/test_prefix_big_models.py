"""Big models on one GPU or several, checked with what runs on a CPU: a bfloat16 frozen model with a float32
prefix, virtual keys/values placed on each layer's device, and models loaded with a `device_map`."""

from __future__ import annotations

import functools

import pytest
import torch
from tiny_models import gemma2, llama, t5
from transformers.integrations.sdpa_attention import sdpa_attention_forward

from prefixlab import PrefixConfig, PrefixModel
from prefixlab.methods import injection
from prefixlab.methods.injection import capturing, injecting, stack_captured
from prefixlab.models import InvalidModelConfigError, load_model

P = torch.tensor([[5, 6, 7]])
X = torch.tensor([[10, 11, 12, 13, 14]])
Y = torch.tensor([[20, 21, 22, 23]])
L, S, T = P.shape[1], X.shape[1], Y.shape[1]
BF16_TOL = 3e-2  # bfloat16 keeps 8 significant bits: 2^-8 = 0.4% per rounding, a few roundings per layer


def run(pm: PrefixModel) -> torch.Tensor:
    with torch.no_grad():
        return pm(
            source_ids=X, source_mask=torch.ones_like(X), target_ids=Y, target_mask=torch.ones_like(Y)
        ).logits


def relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    return ((actual.float() - expected.float()).abs().max() / expected.float().abs().max()).item()


BF16_CASES = {
    "llama": llama,
    "gemma2-window4": functools.partial(gemma2, window=4),  # sequences outgrow the window
    "t5": t5,
}


@pytest.mark.parametrize("case", sorted(BF16_CASES))
def test_bfloat16_model_equals_real_tokens_within_bfloat16_rounding(case):
    """The frozen model in bfloat16, the prefix in float32: virtual tokens holding the real tokens' bfloat16
    keys/values give the base model's bfloat16 logits on the real sequence, to bfloat16 precision; the
    keys/values of other tokens are far outside that."""
    base = BF16_CASES[case]().to(torch.bfloat16)
    pm = PrefixModel(base, PrefixConfig(length=L, reparam="none", position_offset=True))
    if base.config.is_encoder_decoder:
        start = torch.tensor([[base.config.decoder_start_token_id]])
        inputs = {"input_ids": torch.cat([P, X], 1), "decoder_input_ids": torch.cat([P, start, Y[:, :-1]], 1)}
        window = slice(L, None)
    else:
        inputs = {"input_ids": torch.cat([P, X, Y], 1)}
        window = slice(L + S - 1, -1)
    if "window" in case:  # keep p visible to every query in the reference, as prefixlab does
        inputs["attention_mask"] = {
            "sliding_attention": additive_mask(window=4),
            "full_attention": additive_mask(window=None),
        }
    with capturing(pm._state) as captured, torch.no_grad():
        ref = base(**inputs).logits[:, window]
    pm.set_prefix(stack_captured(captured, pm.layouts, slice(0, L)))
    assert all(p.dtype == torch.float32 for p in pm.prefix.parameters())
    ours = run(pm)
    assert ours.dtype == torch.bfloat16
    assert relative_error(ours, ref) < BF16_TOL
    pm.set_prefix(pm.token_activations((P + 10)[0].tolist()))
    assert relative_error(run(pm), ref) > 3 * BF16_TOL


def additive_mask(window: int | None) -> torch.Tensor:
    """Gemma 2's causal mask on [p; x; y] (additive, for its eager kernel); with a window, p's columns stay
    visible to every query and the window slides over x and y."""
    n = L + S + T
    rows, cols = torch.arange(n)[:, None], torch.arange(n)[None, :]
    visible = cols <= rows
    if window is not None:
        visible &= (rows - cols < window) | (cols < L)
    return torch.zeros(n, n, dtype=torch.bfloat16).masked_fill(~visible, torch.finfo(torch.bfloat16).min)[
        None, None
    ]


def test_virtual_keys_values_follow_each_layers_device(monkeypatch):
    """With `device_map`, layers live on different devices while the prefix lives on the first one. Here one
    layer's attention is on the meta device (a stand-in for a second GPU: shapes only, no data) and the prefix
    on the CPU: the kernel gets the virtual keys/values on the meta device, beside the layer's own keys."""
    base = llama()
    pm = PrefixModel(base, PrefixConfig(length=L, reparam="none", init_std=0.5))
    attention = base.model.layers[1].self_attn.to("meta")
    seen = []

    def recording_sdpa(module, query, key, value, attention_mask, **kwargs):
        seen.append((key.device.type, value.device.type, tuple(key.shape)))
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)

    monkeypatch.setattr(injection, "sdpa_attention_forward", recording_sdpa)
    hidden = torch.randn(1, S, base.config.hidden_size)
    cos, sin = base.model.rotary_emb(hidden, position_ids=torch.arange(S)[None])
    virtual = pm._virtual()
    assert virtual["decoder"].device.type == "cpu"
    with injecting(pm._state, virtual), torch.no_grad():
        out, _ = attention(
            hidden.to("meta"), position_embeddings=(cos.to("meta"), sin.to("meta")), attention_mask=None
        )
    kv_heads, head_dim = pm.layouts["decoder"].kv_heads, pm.layouts["decoder"].head_dim
    assert seen == [("meta", "meta", (1, kv_heads, L + S, head_dim))]
    assert out.device.type == "meta" and out.shape == hidden.shape


@pytest.fixture
def saved_tiny_llama(tmp_path):
    """tiny-llama written as a Hugging Face checkpoint folder, loadable by the hub loader without the hub."""
    model, tokenizer = load_model("tiny-llama")
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    return tmp_path, model


def test_device_map_loads_layers_in_place_and_prefixes_train(saved_tiny_llama, monkeypatch):
    """A `device_map` goes to from_pretrained, and the loader leaves the weights where the map put them (the
    `device` argument is ignored): on the meta device when the map says so, on the CPU (the only real device
    here) where a prefix then trains on the bfloat16 model."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    folder, original = saved_tiny_llama
    spec = {"name": "local-llama", "loader": "hub", "family": "decoder_only", "hub_id": str(folder)}
    model, _ = load_model(spec, device="cpu", device_map={"": "meta"})
    assert {p.device.type for p in model.parameters()} == {"meta"}
    model, _ = load_model(spec, device="meta", dtype="bfloat16", device_map={"": "cpu"})
    assert {p.device.type for p in model.parameters()} == {"cpu"}
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    ids = torch.tensor([[10, 11, 12]])
    with torch.no_grad():
        expected = original.to(torch.bfloat16)(input_ids=ids).logits
        assert torch.equal(model(input_ids=ids).logits, expected)
    pm = PrefixModel(model, PrefixConfig(length=2, mlp_hidden=8))
    loss = pm(source_ids=X, source_mask=torch.ones_like(X), target_ids=Y, target_mask=torch.ones_like(Y)).loss
    loss.backward()
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in pm.prefix.parameters())


def test_device_map_is_refused_where_the_loader_cannot_place_weights():
    with pytest.raises(InvalidModelConfigError, match="device_map is supported by the hub and gguf loaders"):
        load_model("tiny-llama", device_map="auto")
    with pytest.raises(InvalidModelConfigError, match="must be null, a string"):
        load_model({"name": "gpt2", "device_map": 3})
