"""Cross-check of embedding-only prefixes (EMB-n) against PEFT's prompt tuning: the same virtual embeddings give
the same logits (GPT-2, GQA Llama, BART's encoder), one example at a time (PEFT's batching is not prefixlab's)."""

from __future__ import annotations

import warnings

import pytest
import torch
from peft import PromptTuningConfig, TaskType, get_peft_model
from test_method_lora import BUILDERS, batch, zero_shot

from prefixlab import PrefixConfig, PrefixModel

# PEFT (not prefixlab) calls transformers' deprecated is_gradient_checkpointing and warns about it.
pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")

L = 3


@pytest.mark.parametrize("family", sorted(BUILDERS))
def test_embedding_only_prefix_gives_the_logits_of_peft_prompt_tuning(family):
    build = BUILDERS[family]
    torch.manual_seed(0)
    ours = PrefixModel(
        build(), PrefixConfig(length=L, depth="embedding", reparam="none", init_std=0.5)
    ).eval()
    values = ours.prefix()["embedding"].detach()
    encoder_decoder = ours.is_encoder_decoder
    config = PromptTuningConfig(
        task_type=TaskType.SEQ_2_SEQ_LM if encoder_decoder else TaskType.CAUSAL_LM,
        num_virtual_tokens=L,
        num_transformer_submodules=1,  # BART: the encoder's input only, as EMB-n (PEFT's default adds the decoder's)
    )
    theirs = get_peft_model(build(), config).eval()
    with torch.no_grad():
        theirs.prompt_encoder["default"].embedding.weight.copy_(values)
    b = batch()
    for i in range(b["source_ids"].shape[0]):
        x = b["source_ids"][i, b["source_mask"][i].bool()][None]
        y = b["target_ids"][i, b["target_mask"][i].bool()][None]
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # PEFT's notes on position ids and deprecated names
            mine = ours(
                source_ids=x, source_mask=torch.ones_like(x), target_ids=y, target_mask=torch.ones_like(y)
            )
            if encoder_decoder:
                start = torch.tensor([[ours.base.config.decoder_start_token_id]])
                decoder_ids = torch.cat([start, y[:, :-1]], 1)
                expected = theirs(
                    input_ids=x, attention_mask=torch.ones_like(x), decoder_input_ids=decoder_ids
                ).logits
            else:
                ids = torch.cat([x, y], 1)
                logits = theirs(input_ids=ids, attention_mask=torch.ones_like(ids)).logits
                expected = logits[:, L + x.shape[1] - 1 : L + x.shape[1] - 1 + y.shape[1]]
            plain = zero_shot(build)(
                source_ids=x, source_mask=torch.ones_like(x), target_ids=y, target_mask=torch.ones_like(y)
            )
        assert (mine.logits - expected).abs().max().item() < 1e-5
        assert (plain.logits - expected).abs().max().item() > 1e-3  # the virtual tokens matter
