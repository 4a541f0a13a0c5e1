"""Activation checkpointing: the same loss and gradients, fewer activations kept, blocks really recomputed."""

from __future__ import annotations

import pytest
import torch
from test_training_loop import TRAIN, VALIDATION
from tiny_models import bart, gpt2, llama
from transformers.modeling_layers import GradientCheckpointingLayer

from prefixlab import PrefixConfig, PrefixModel
from prefixlab.methods.finetune import FineTuneModel
from prefixlab.runs import RunFolder, trainable_state
from prefixlab.tasks import Collator
from prefixlab.training import Trainer, TrainerSettings

CASES = {
    "llama-prefix": (llama, lambda base: PrefixModel(base, PrefixConfig(length=3, mlp_hidden=16))),
    "llama-infix": (
        llama,
        lambda base: PrefixModel(base, PrefixConfig(length=3, placement="infix", reparam="none")),
    ),
    "gpt2-embedding": (gpt2, lambda base: PrefixModel(base, PrefixConfig(length=2, depth="embedding"))),
    "bart-prefix": (bart, lambda base: PrefixModel(base, PrefixConfig(length=3, mlp_hidden=16))),
    "gpt2-finetune": (gpt2, lambda base: FineTuneModel(base, "all")),
}


def batch() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    source = torch.randint(5, 60, (3, 6), generator=g)
    target = torch.randint(5, 60, (3, 4), generator=g)
    source_mask = torch.tensor([[1] * 6, [0, 0, 1, 1, 1, 1], [0, 1, 1, 1, 1, 1]])
    target_mask = torch.tensor([[1] * 4, [1, 1, 0, 0], [1, 1, 1, 0]])
    return {
        "source_ids": source,
        "source_mask": source_mask,
        "target_ids": target,
        "target_mask": target_mask,
    }


def loss_grads_and_saved_bytes(model: torch.nn.Module) -> tuple[float, dict[str, torch.Tensor], int]:
    """Loss, gradients of the trainable parameters, and bytes autograd kept outside checkpointed blocks."""
    saved = []

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        saved.append(tensor.numel() * tensor.element_size())
        return tensor

    model.zero_grad(set_to_none=True)
    torch.manual_seed(0)  # the same dropout masks (fine-tuning trains with the model's dropout)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        loss = model(**batch(), loss_reduction="sequence_sum").loss
    loss.backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.requires_grad}
    return loss.item(), grads, sum(saved)


@pytest.mark.parametrize("case", sorted(CASES))
def test_checkpointing_gives_the_same_loss_and_gradients_and_keeps_fewer_activations(case):
    build_base, build_model = CASES[case]
    torch.manual_seed(0)
    model = build_model(build_base())
    model.train()
    loss, grads, saved = loss_grads_and_saved_bytes(model)

    calls = []
    first_block = next(m for m in model.base.modules() if isinstance(m, GradientCheckpointingLayer))
    # a pre-hook: recomputation may stop early, inside the block's last module, once it has what backward needs
    next(first_block.children()).register_forward_pre_hook(lambda *_: calls.append(1))
    model.set_activation_checkpointing(True)
    ckpt_loss, ckpt_grads, ckpt_saved = loss_grads_and_saved_bytes(model)

    assert ckpt_loss == pytest.approx(loss, rel=1e-6)
    assert ckpt_grads.keys() == grads.keys() and grads
    for name in grads:
        torch.testing.assert_close(ckpt_grads[name], grads[name], rtol=1e-5, atol=1e-6, msg=name)
    assert len(calls) == 2, "the first block ran once forward and once more in backward"
    assert ckpt_saved < 0.5 * saved, (ckpt_saved, saved)


def test_checkpointing_leaves_decoding_and_no_grad_forwards_alone():
    torch.manual_seed(0)
    model = PrefixModel(llama(), PrefixConfig(length=3, mlp_hidden=16))
    model.eval()
    b = batch()
    expected = model.generate(source_ids=b["source_ids"], source_mask=b["source_mask"], max_new_tokens=4)
    model.set_activation_checkpointing(True)
    got = model.generate(source_ids=b["source_ids"], source_mask=b["source_mask"], max_new_tokens=4)
    assert torch.equal(got, expected)
    model.set_activation_checkpointing(False)
    _, grads_off, saved_off = loss_grads_and_saved_bytes(model)
    _, _, saved_again = loss_grads_and_saved_bytes(model)
    assert saved_again == saved_off and grads_off  # switched off: activations are kept again


def test_trainer_setting_trains_to_the_same_weights(tmp_path):
    def train(name: str, **settings) -> dict[str, torch.Tensor]:
        torch.manual_seed(0)
        model = PrefixModel(gpt2(), PrefixConfig(length=3, mlp_hidden=16, dropout=0.2))
        options = {"lr": 1e-2, "max_steps": 4, "batch_size": 4, **settings}
        trainer = Trainer(model, TrainerSettings(**options), TRAIN, VALIDATION, Collator(pad_token_id=0),
                          RunFolder(tmp_path / name), seed=0, progress=False)  # fmt: skip
        trainer.fit()
        assert model.activation_checkpointing == settings.get("activation_checkpointing", False)
        return trainable_state(model)

    plain, checkpointed = train("plain"), train("checkpointed", activation_checkpointing=True)
    for name in plain:
        torch.testing.assert_close(checkpointed[name], plain[name], rtol=1e-5, atol=1e-6, msg=name)


def test_a_model_without_checkpointable_blocks_is_refused():
    model = FineTuneModel(gpt2(), "all")
    model.base.transformer.h = torch.nn.ModuleList()  # no blocks left to checkpoint
    with pytest.raises(ValueError, match="trainer.activation_checkpointing=false"):
        model.set_activation_checkpointing(True)
