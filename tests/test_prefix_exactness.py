"""Virtual tokens set to real tokens' activations must behave exactly like those real tokens (to 1e-5)."""

from __future__ import annotations

import pytest
import torch
from tiny_models import DECODER_ONLY, ENCODER_DECODER, T5_FAMILY, bart, gpt2, llama, max_error, t5
from transformers.integrations.sdpa_attention import sdpa_attention_forward

from prefixlab import PrefixConfig, PrefixModel
from prefixlab.methods import injection
from prefixlab.methods.injection import capturing, stack_captured

TOL = 1e-5
P = torch.tensor([[5, 6, 7]])
X = torch.tensor([[10, 11, 12, 13, 14]])
Y = torch.tensor([[20, 21, 22, 23]])
L, S, T = P.shape[1], X.shape[1], Y.shape[1]


def ones(t: torch.Tensor) -> torch.Tensor:
    return torch.ones_like(t)


def run(pm: PrefixModel, x: torch.Tensor = X, y: torch.Tensor = Y):
    return pm(source_ids=x, source_mask=ones(x), target_ids=y, target_mask=ones(y))


def real_kv(pm: PrefixModel, columns: slice, **inputs) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Keys/values the base model computes for real tokens at `columns` of `inputs`, and its logits."""
    with capturing(pm._state) as captured, torch.no_grad():
        logits = pm.base(**inputs).logits
    return stack_captured(captured, pm.layouts, columns), logits


@pytest.mark.parametrize("family", sorted(DECODER_ONLY))
def test_all_layer_prefix_equals_real_prefix_tokens(family):
    base = DECODER_ONLY[family]()
    pm = PrefixModel(base, PrefixConfig(length=L, reparam="none"))
    assert pm.position_offset is True
    kv, ref = real_kv(pm, slice(0, L), input_ids=torch.cat([P, X, Y], 1))
    pm.set_prefix(kv)
    out = run(pm)
    assert out.logits.shape == (1, T, base.config.vocab_size)
    expected = ref[:, L + S - 1 : L + S - 1 + T]
    assert max_error(out.logits, expected) < TOL


def test_random_prefix_changes_the_output():
    """The injected activations are really used: a random prefix gives different logits than a real one."""
    base = gpt2()
    pm = PrefixModel(base, PrefixConfig(length=L, reparam="none", init_std=1.0))
    kv, ref = real_kv(pm, slice(0, L), input_ids=torch.cat([P, X, Y], 1))
    assert (run(pm).logits - ref[:, L + S - 1 : L + S - 1 + T]).abs().max().item() > 1e-2


def test_prefix_without_position_offset_matches_transformers_cache():
    """position_offset=False: x starts at position 0 after the prefix, checked against transformers' own cache
    holding the prefix keys/values and explicit position ids."""
    from transformers import DynamicCache

    base = gpt2()
    pm = PrefixModel(base, PrefixConfig(length=L, reparam="none", position_offset=False))
    kv, _ = real_kv(pm, slice(0, L), input_ids=P)
    pm.set_prefix(kv)
    cache = DynamicCache(config=base.config)
    for layer in range(base.config.n_layer):
        cache.update(kv["decoder"][layer, 0][None], kv["decoder"][layer, 1][None], layer)
    xy = torch.cat([X, Y], 1)
    with torch.no_grad():
        ref = base(
            input_ids=xy,
            cache=cache,
            attention_mask=torch.ones(1, L + S + T, dtype=torch.long),
            position_ids=torch.arange(S + T)[None],
        ).logits
    assert max_error(run(pm).logits, ref[:, S - 1 : S - 1 + T]) < TOL


@pytest.mark.parametrize("family", sorted(DECODER_ONLY))
def test_infix_equals_real_infix_tokens(family):
    """Infix: equals the base model on [x; q; sep; y] (x's last token, the separator, is read after q)."""
    base = DECODER_ONLY[family]()
    pm = PrefixModel(base, PrefixConfig(length=L, placement="infix", reparam="none"))
    sequence = torch.cat([X[:, :-1], P, X[:, -1:], Y], 1)
    kv, ref = real_kv(pm, slice(S - 1, S - 1 + L), input_ids=sequence)
    pm.set_prefix(kv)
    out = run(pm)
    assert max_error(out.logits, ref[:, S - 1 + L : S - 1 + L + T]) < TOL


def test_infix_is_invisible_to_the_source():
    """Changing the infix must not change anything the source computes: x never attends to it."""
    base = gpt2()
    pm = PrefixModel(base, PrefixConfig(length=L, placement="infix", reparam="none"))
    captured_runs = []
    for std in (0.1, 3.0):
        torch.manual_seed(1)
        pm.set_prefix({"decoder": torch.randn(L, pm.layouts["decoder"].width) * std})
        with capturing(pm._state) as captured:
            run(pm)
        captured_runs.append({slot: kv[0][:, :, : S - 1].clone() for slot, kv in captured.items()})
    for slot in captured_runs[0]:
        assert torch.equal(captured_runs[0][slot], captured_runs[1][slot])


@pytest.mark.parametrize("family", sorted(DECODER_ONLY))
@pytest.mark.parametrize("placement", ["prefix", "infix"])
def test_embedding_only_equals_real_token_embeddings(family, placement):
    base = DECODER_ONLY[family]()
    pm = PrefixModel(base, PrefixConfig(length=L, placement=placement, depth="embedding", reparam="none"))
    pm.set_prefix({"embedding": base.get_input_embeddings()(P)[0]})
    if placement == "prefix":
        sequence = torch.cat([P, X, Y], 1)
    else:
        sequence = torch.cat([X[:, :-1], P, X[:, -1:], Y], 1)
    with torch.no_grad():
        ref = base(input_ids=sequence).logits
    assert max_error(run(pm).logits, ref[:, -T - 1 : -1]) < TOL


@pytest.mark.parametrize("family", sorted(ENCODER_DECODER))
def test_encoder_decoder_three_prefix_sets_equal_real_tokens(family):
    """Encoder prefix = encoder on [p; x]; decoder self-attention prefix = decoder on [p; y]; cross-attention
    prefix = extra encoder states (the encoder outputs of p). With position_offset=True x and y sit after p:
    shifted learned positions (BART), or relative position bias columns for p as real tokens at 0..L-1 (T5)."""
    base = ENCODER_DECODER[family]()
    pm = PrefixModel(base, PrefixConfig(length=L, reparam="none", position_offset=True))
    assert set(pm.layouts) == {"encoder", "decoder", "cross"}
    start = torch.tensor([[base.config.decoder_start_token_id]])
    decoder_inputs = torch.cat([P, start, Y[:, :-1]], 1)
    kv, ref = real_kv(pm, slice(0, L), input_ids=torch.cat([P, X], 1), decoder_input_ids=decoder_inputs)
    pm.set_prefix(kv)
    assert max_error(run(pm).logits, ref[:, L:]) < TOL


@pytest.mark.parametrize("family", sorted(ENCODER_DECODER))
def test_encoder_decoder_embedding_prefix_equals_real_encoder_tokens(family):
    base = ENCODER_DECODER[family]()
    pm = PrefixModel(base, PrefixConfig(length=L, depth="embedding", reparam="none"))
    pm.set_prefix({"embedding": base.get_encoder().embed_tokens(P)[0]})
    start = torch.tensor([[base.config.decoder_start_token_id]])
    with torch.no_grad():
        ref = base(input_ids=torch.cat([P, X], 1), decoder_input_ids=torch.cat([start, Y[:, :-1]], 1)).logits
    assert max_error(run(pm).logits, ref) < TOL


def test_bart_default_keeps_positions_at_zero():
    """The authors' BART code: x and y positions start at 0 (position_offset False by default)."""
    base = bart()
    pm = PrefixModel(base, PrefixConfig(length=L, reparam="none"))
    assert pm.position_offset is False
    pm.set_prefix({name: torch.zeros(L, layout.width) for name, layout in pm.layouts.items()})
    # With all-zero keys/values the prefix only adds uniform attention mass to zero vectors; the output must
    # still differ from a model whose positions were shifted, proving no shift happens by default.
    shifted = PrefixModel(base, PrefixConfig(length=L, reparam="none", position_offset=True))
    shifted.set_prefix({name: torch.zeros(L, layout.width) for name, layout in pm.layouts.items()})
    assert (run(pm).logits - run(shifted).logits).abs().max().item() > 1e-3


def recorded_position_biases(call, monkeypatch) -> dict[tuple[str, int], torch.Tensor]:
    """Run `call()` and return the position bias each attention slot handed to sdpa."""
    seen = {}

    def recording_sdpa(module, query, key, value, attention_mask, **kwargs):
        seen[module._prefixlab_slot] = kwargs["position_bias"]
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)

    monkeypatch.setattr(injection, "sdpa_attention_forward", recording_sdpa)
    with torch.no_grad():
        call()
    monkeypatch.undo()
    return seen


@pytest.mark.parametrize("family", sorted(T5_FAMILY))
def test_t5_virtual_tokens_get_no_position_bias_by_default(family, monkeypatch):
    """T5 default (position_offset False, as BART's): the virtual columns get zero relative-position bias in
    every layer of every set, and the real columns keep exactly the bias the model computes without a prefix.
    With position_offset=True the self-attention virtual columns are biased (as real tokens at 0..L-1)."""
    base = T5_FAMILY[family]()
    default = PrefixModel(base, PrefixConfig(length=L, reparam="none"))
    shifted = PrefixModel(base, PrefixConfig(length=L, reparam="none", position_offset=True))
    decoder_inputs = torch.cat([torch.tensor([[base.config.decoder_start_token_id]]), Y[:, :-1]], 1)
    plain = recorded_position_biases(lambda: base(input_ids=X, decoder_input_ids=decoder_inputs), monkeypatch)
    zero = recorded_position_biases(lambda: run(default), monkeypatch)
    offset = recorded_position_biases(lambda: run(shifted), monkeypatch)
    assert len(plain) == len(zero) == len(offset) == 3 * 2
    for slot, bias in zero.items():
        assert bias.shape[-1] == plain[slot].shape[-1] + L
        assert torch.equal(bias[..., L:], plain[slot])
        assert torch.equal(offset[slot][..., L:], plain[slot])
        assert not bias[..., :L].any(), slot
        if slot[0] == "cross":  # T5's cross-attention has no relative bias
            assert not offset[slot][..., :L].any(), slot
        else:
            assert offset[slot][..., :L].abs().min().item() > 0, slot


@pytest.mark.parametrize("family", ["gpt2", "llama", "gemma3", "bart", "t5"])
def test_eager_kernel_gives_the_same_result(family):
    build = {**DECODER_ONLY, **ENCODER_DECODER}[family]
    base_sdpa, base_eager = build(), build(attn="eager")
    outs = []
    for base in (base_sdpa, base_eager):
        pm = PrefixModel(base, PrefixConfig(length=L, reparam="none"))
        torch.manual_seed(3)
        pm.set_prefix({name: torch.randn(L, layout.width) for name, layout in pm.layouts.items()})
        x = torch.tensor([[10, 11, 12, 0], [13, 14, 15, 16]])
        m = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]])
        outs.append(
            pm(source_ids=x, source_mask=m, target_ids=Y.repeat(2, 1), target_mask=ones(Y.repeat(2, 1)))
        )
    assert max_error(outs[0].logits, outs[1].logits) < TOL


@pytest.mark.parametrize("family,placement", [("llama", "prefix"), ("llama", "infix"), ("t5", "prefix")])
def test_padded_batch_equals_examples_one_at_a_time(family, placement):
    """Right-padded sources and targets in a batch give each example's own logits and loss."""
    base = {"llama": llama, "t5": t5}[family]()
    pm = PrefixModel(base, PrefixConfig(length=L, placement=placement, reparam="mlp", init_std=0.5))
    xs = [torch.tensor([10, 11, 12, 13, 14]), torch.tensor([15, 16])]
    ys = [torch.tensor([20, 21]), torch.tensor([22, 23, 24, 25])]
    source = torch.nn.utils.rnn.pad_sequence(xs, batch_first=True)
    target = torch.nn.utils.rnn.pad_sequence(ys, batch_first=True)
    smask = torch.nn.utils.rnn.pad_sequence([ones(x) for x in xs], batch_first=True)
    tmask = torch.nn.utils.rnn.pad_sequence([ones(y) for y in ys], batch_first=True)
    with torch.no_grad():
        batch = pm(
            source_ids=source,
            source_mask=smask,
            target_ids=target,
            target_mask=tmask,
            loss_reduction="sequence_sum",
        )
        total = 0.0
        for i, (x, y) in enumerate(zip(xs, ys, strict=True)):
            single = run(pm, x[None], y[None])
            assert max_error(batch.logits[i, : len(y)], single.logits[0]) < TOL
            total += single.loss.item() * len(y)
    assert abs(batch.loss.item() - total / 2) < 1e-4
