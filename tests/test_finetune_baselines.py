"""Fine-tuning baselines: what trains, that outputs equal the base model's, and save/load."""

from __future__ import annotations

import pytest
import torch
from tiny_models import bart, gpt2, llama

from prefixlab.methods.finetune import FineTuneModel, top_layers

X = torch.tensor([[10, 11, 12, 13], [14, 15, 0, 0]])
XM = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]])
Y = torch.tensor([[20, 21, 22], [23, 0, 0]])
YM = torch.tensor([[1, 1, 1], [1, 0, 0]])


def batch():
    return {"source_ids": X, "source_mask": XM, "target_ids": Y, "target_mask": YM}


@pytest.mark.parametrize("build", [gpt2, llama, bart])
def test_zero_shot_logits_equal_the_base_model_on_the_concatenation(build):
    base = build()
    model = FineTuneModel(base, "none")
    assert model.parameter_report()["trainable_parameters"] == 0
    with torch.no_grad():
        out = model(**batch())
        x, y = X[:1], Y[:1]
        if base.config.is_encoder_decoder:
            start = torch.tensor([[base.config.decoder_start_token_id]])
            ref = base(input_ids=x, decoder_input_ids=torch.cat([start, y[:, :-1]], 1)).logits
        else:
            ref = base(input_ids=torch.cat([x, y], 1)).logits[:, x.shape[1] - 1 : -1]
    assert (out.logits[:1] - ref).abs().max().item() < 1e-5


def test_top2_trains_only_the_top_two_blocks(tmp_path):
    base = llama()
    model = FineTuneModel(base, "top2")
    top = {id(p) for layer in top_layers(base, 2) for p in layer.parameters()}
    for parameter in base.parameters():
        assert parameter.requires_grad == (id(parameter) in top)
    before = {k: v.clone() for k, v in base.state_dict().items()}
    optimizer = torch.optim.AdamW([p for p in base.parameters() if p.requires_grad], lr=1e-2)
    model(**batch()).loss.backward()
    optimizer.step()
    changed = {k for k, v in base.state_dict().items() if not torch.equal(v, before[k])}
    assert changed and all(k.startswith("model.layers.") for k in changed)
    path = model.save(tmp_path)
    reloaded = FineTuneModel.load(llama(), path)
    with torch.no_grad():
        assert torch.equal(reloaded(**batch()).logits, model(**batch()).logits)


def test_full_finetuning_trains_everything_and_rejects_unknown_modes():
    model = FineTuneModel(gpt2(), "all")
    report = model.parameter_report()
    assert report["trainable_parameters"] == report["base_parameters"]
    with pytest.raises(ValueError, match="choose one of"):
        FineTuneModel(gpt2(), "top3")
