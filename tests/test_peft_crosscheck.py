"""Cross-check against PEFT's prefix tuning: the same prefix values give the same logits (decoder-only)."""

from __future__ import annotations

import pytest
import torch
from peft import PrefixTuningConfig, TaskType, get_peft_model
from tiny_models import gpt2, llama

from prefixlab import PrefixConfig, PrefixModel

# PEFT (not prefixlab) still passes the renamed `past_key_values` argument and warns about it.
pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")

L = 4
X = torch.tensor([[10, 11, 12, 13, 14], [15, 16, 17, 0, 0]])
XM = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
Y = torch.tensor([[20, 21, 22], [23, 24, 25]])


@pytest.mark.parametrize("build", [gpt2, llama], ids=["gpt2", "llama-gqa"])
def test_same_prefix_values_give_the_same_logits_as_peft(build):
    ours = PrefixModel(build(), PrefixConfig(length=L, reparam="none", init_std=0.5))
    values = ours.prefix()["decoder"].detach()
    peft_model = get_peft_model(
        build(),
        PrefixTuningConfig(task_type=TaskType.CAUSAL_LM, num_virtual_tokens=L, prefix_projection=False),
    )
    encoder = peft_model.prompt_encoder["default"]
    assert (
        encoder.embedding.weight.shape == values.shape
    )  # same flat layout: (length, layers x 2 x kv x head)
    with torch.no_grad():
        encoder.embedding.weight.copy_(values)
    peft_model.eval()
    for i in range(X.shape[0]):  # PEFT expects [x; y] without padding in the middle: one example at a time
        x = X[i, XM[i].bool()][None]
        y = Y[i][None]
        with torch.no_grad():
            theirs = peft_model(
                input_ids=torch.cat([x, y], 1), attention_mask=torch.ones(1, x.shape[1] + 3)
            ).logits
            mine = ours(
                source_ids=x, source_mask=torch.ones_like(x), target_ids=y, target_mask=torch.ones_like(y)
            )
        expected = theirs[:, x.shape[1] - 1 : x.shape[1] - 1 + y.shape[1]]
        assert (mine.logits - expected).abs().max().item() < 1e-5
    with torch.no_grad():  # and our padded batch gives the same rows
        batch = ours(source_ids=X, source_mask=XM, target_ids=Y, target_mask=torch.ones_like(Y)).logits
        x = X[1, XM[1].bool()][None]
        theirs = peft_model(
            input_ids=torch.cat([x, Y[1:]], 1), attention_mask=torch.ones(1, x.shape[1] + 3)
        ).logits
    assert (batch[1] - theirs[0, x.shape[1] - 1 : x.shape[1] + 2]).abs().max().item() < 1e-5
