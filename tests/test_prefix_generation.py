"""Decoding through `PrefixModel.generate` equals the base model decoding the real prompt `[p; x]`."""

from __future__ import annotations

import pytest
import torch
from tiny_models import DECODER_ONLY, ENCODER_DECODER, llama, t5
from transformers import GenerationConfig

from prefixlab import PrefixConfig, PrefixModel
from prefixlab.methods.injection import capturing, stack_captured

P = torch.tensor([[5, 6, 7]])
L = P.shape[1]
SOURCES = [torch.tensor([10, 11, 12, 13, 14]), torch.tensor([15, 16]), torch.tensor([17, 18, 19])]
DECODING = {"greedy": {"num_beams": 1}, "beam5": {"num_beams": 5}}


def with_real_prefix(base, **config) -> PrefixModel:
    pm = PrefixModel(base, PrefixConfig(length=L, reparam="none", **config))
    with capturing(pm._state) as captured, torch.no_grad():
        base(input_ids=P, **({"decoder_input_ids": P} if base.config.is_encoder_decoder else {}))
    pm.set_prefix(stack_captured(captured, pm.layouts, slice(0, L)))
    return pm


def generation(**kwargs) -> GenerationConfig:
    return GenerationConfig(max_new_tokens=8, do_sample=False, pad_token_id=0, eos_token_id=2, **kwargs)


@pytest.mark.parametrize("decoding", sorted(DECODING))
@pytest.mark.parametrize("family", sorted(DECODER_ONLY))
def test_generate_equals_base_on_real_prompt(family, decoding):
    base = DECODER_ONLY[family]()
    pm = with_real_prefix(base)
    config = generation(**DECODING[decoding])
    for x in SOURCES:
        x = x[None]
        ours = pm.generate(source_ids=x, source_mask=torch.ones_like(x), generation_config=config)
        prompt = torch.cat([P, x], 1)
        theirs = base.generate(input_ids=prompt, generation_config=config)[:, prompt.shape[1] :]
        assert ours.tolist() == theirs.tolist()
        assert ours.shape[1] >= 2


@pytest.mark.parametrize(
    "family,placement,depth",
    [
        ("llama", "prefix", "all"),
        ("llama", "infix", "all"),
        ("llama", "prefix", "embedding"),
        ("t5", "prefix", "all"),
        ("t5", "prefix", "embedding"),
    ],
)
@pytest.mark.parametrize("decoding", sorted(DECODING))
def test_left_padded_batch_equals_one_at_a_time(family, placement, depth, decoding):
    base = {"llama": llama, "t5": t5}[family]()
    pm = PrefixModel(
        base, PrefixConfig(length=L, placement=placement, depth=depth, reparam="mlp", init_std=0.5)
    )
    config = generation(**DECODING[decoding])
    source = torch.nn.utils.rnn.pad_sequence(
        SOURCES, batch_first=True
    )  # right padded: the API accepts either
    mask = torch.nn.utils.rnn.pad_sequence([torch.ones_like(x) for x in SOURCES], batch_first=True)
    batch = pm.generate(source_ids=source, source_mask=mask, generation_config=config)
    for i, x in enumerate(SOURCES):
        single = pm.generate(
            source_ids=x[None], source_mask=torch.ones_like(x)[None], generation_config=config
        )
        row = batch[i, : single.shape[1]]
        assert row.tolist() == single[0].tolist()
        assert (batch[i, single.shape[1] :] == 0).all()


@pytest.mark.parametrize("decoding", sorted(DECODING))
@pytest.mark.parametrize("family", sorted(ENCODER_DECODER))
def test_encoder_decoder_generate_equals_base_with_real_prefixes(family, decoding):
    """BART, T5: the three prefix sets hold what the real tokens p compute in the context of x (the encoder is
    bidirectional, so p's encoder states depend on x): decoding equals the base model on encoder input [p; x]
    and decoder input [p'; start]."""
    base = ENCODER_DECODER[family]()
    pm = PrefixModel(base, PrefixConfig(length=L, reparam="none", position_offset=True))
    config = generation(**DECODING[decoding])
    start = torch.tensor([[base.config.decoder_start_token_id]])
    # generate() prepends the start token to decoder inputs that do not begin with it: so do the real tokens
    decoder_prefix = torch.cat([start, P[:, 1:]], 1)
    for x in SOURCES:
        x = x[None]
        encoder_inputs, decoder_inputs = torch.cat([P, x], 1), torch.cat([decoder_prefix, start], 1)
        with capturing(pm._state) as captured, torch.no_grad():
            base(input_ids=encoder_inputs, decoder_input_ids=decoder_inputs)
        pm.set_prefix(stack_captured(captured, pm.layouts, slice(0, L)))
        ours = pm.generate(source_ids=x, source_mask=torch.ones_like(x), generation_config=config)
        theirs = base.generate(
            input_ids=encoder_inputs, decoder_input_ids=decoder_inputs, generation_config=config
        )
        assert ours.tolist() == theirs[:, L + 1 :].tolist()
        assert ours.shape[1] >= 2
