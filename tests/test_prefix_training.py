"""Training touches only the prefix; export, save and load keep the model's outputs; real-token init."""

from __future__ import annotations

import functools

import pytest
import torch
from test_activation_checkpointing import loss_grads_and_saved_bytes
from tiny_models import bart, gemma2, gpt2, llama, mistral, mt5, t5, ul2
from transformers.modeling_layers import GradientCheckpointingLayer

from prefixlab import PrefixConfig, PrefixModel

X = torch.tensor([[10, 11, 12, 13], [14, 15, 16, 0]])
XM = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]])
Y = torch.tensor([[20, 21, 22], [23, 24, 0]])
YM = torch.tensor([[1, 1, 1], [1, 1, 0]])


def batch() -> dict[str, torch.Tensor]:
    return {"source_ids": X, "source_mask": XM, "target_ids": Y, "target_mask": YM}


# Sliding-window models get a 4-token window: every row here (4 virtual + up to 7 real tokens) outgrows it.
gemma2_window4 = functools.partial(gemma2, window=4)
mistral_window4 = functools.partial(mistral, window=4)
CASES = {
    "gpt2-prefix-mlp": (gpt2, {"reparam": "mlp"}),
    "llama-infix-none": (llama, {"placement": "infix", "reparam": "none"}),
    "llama-embedding-mlp": (llama, {"depth": "embedding", "reparam": "mlp"}),
    "bart-prefix-mlp": (bart, {"reparam": "mlp"}),
    "t5-prefix-mlp": (t5, {"reparam": "mlp"}),
    "mt5-prefix-offset-none": (mt5, {"reparam": "none", "position_offset": True}),
    "ul2-embedding-mlp": (ul2, {"depth": "embedding", "reparam": "mlp"}),
    "gemma2-window4-prefix-mlp": (gemma2_window4, {"reparam": "mlp"}),
    "mistral-window4-infix-none": (mistral_window4, {"placement": "infix", "reparam": "none"}),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_optimizer_step_changes_only_the_prefix(case):
    build, options = CASES[case]
    base = build()
    pm = PrefixModel(base, PrefixConfig(length=4, mlp_hidden=16, **options))
    before_base = {k: v.clone() for k, v in base.state_dict().items()}
    before_prefix = {k: v.clone() for k, v in pm.prefix.state_dict().items()}
    assert all(not p.requires_grad for p in base.parameters())
    optimizer = torch.optim.AdamW([p for p in pm.parameters() if p.requires_grad], lr=1e-2)
    pm.train()
    assert not base.training
    loss = pm(**batch()).loss
    loss.backward()
    optimizer.step()
    for key, value in base.state_dict().items():
        assert torch.equal(value, before_base[key]), key
    for key, value in pm.prefix.state_dict().items():
        assert not torch.equal(value, before_prefix[key]), key
    assert all(p.grad is None for p in base.parameters())


@pytest.mark.parametrize("case", sorted(CASES))
def test_export_then_reload_gives_identical_logits(case, tmp_path):
    build, options = CASES[case]
    base = build()
    pm = PrefixModel(base, PrefixConfig(length=4, mlp_hidden=16, **options))
    pm.eval()
    with torch.no_grad():
        before = pm(**batch()).logits
    pm.save(tmp_path / "training")  # P' and the MLP too: a run can resume from this
    pm.export()
    assert pm.prefix.exported
    report = pm.parameter_report()
    assert report["trainable_parameters"] == report["stored_parameters"]
    path = pm.save(tmp_path / "exported.safetensors")
    with torch.no_grad():
        exported = pm(**batch()).logits
        reloaded = PrefixModel.load(build(), path)(**batch()).logits
        resumed = PrefixModel.load(build(), tmp_path / "training")
        assert resumed.prefix.exported == (options.get("reparam") == "none")
        resumed_logits = resumed(**batch()).logits
    assert torch.equal(before, exported)
    assert torch.equal(exported, reloaded)
    assert torch.equal(before, resumed_logits)


def test_loss_counts_only_target_tokens():
    pm = PrefixModel(gpt2(), PrefixConfig(length=2))
    out = pm(**batch())
    per_token = torch.nn.functional.cross_entropy(out.logits.transpose(1, 2), Y, reduction="none")
    assert torch.allclose(out.loss, (per_token * YM).sum() / YM.sum())
    summed = pm(**batch(), loss_reduction="sequence_sum").loss
    assert torch.allclose(summed, (per_token * YM).sum(1).mean())
    with pytest.raises(ValueError, match="token_mean"):
        pm(**batch(), loss_reduction="mean")


def test_token_init_sets_prefix_to_real_token_activations():
    base = gpt2()
    ids = [5, 6, 7]
    pm = PrefixModel(base, PrefixConfig(length=3, reparam="none", init="tokens", init_token_ids=ids))
    expected = pm.token_activations(ids)["decoder"]
    assert torch.equal(pm.prefix()["decoder"], expected)
    assert pm.init_residual == 0.0


def test_token_init_with_mlp_fits_the_activations_and_reports_residual():
    base = gpt2()
    ids = [5, 6, 7]
    pm = PrefixModel(
        base,
        PrefixConfig(
            length=3,
            reparam="mlp",
            mlp_hidden=64,
            init="tokens",
            init_token_ids=ids,
            init_fit_lr=1e-2,
            init_fit_steps=300,
        ),
    )
    target = pm.token_activations(ids)["decoder"]
    untrained = PrefixModel(base, PrefixConfig(length=3, reparam="mlp", mlp_hidden=64))
    start_mse = torch.nn.functional.mse_loss(untrained.prefix()["decoder"], target).item()
    assert pm.init_residual is not None
    assert pm.init_residual < 0.05 * start_mse
    assert abs(torch.nn.functional.mse_loss(pm.prefix()["decoder"], target).item() - pm.init_residual) < 1e-9


def test_token_init_from_text_uses_the_tokenizer():
    class WordTokenizer:
        vocab = {"table-to-text:": 9, "hello": 8}

        def __call__(self, text, add_special_tokens=False):
            return {"input_ids": [self.vocab[w] for w in text.split()]}

    pm = PrefixModel(
        gpt2(),
        PrefixConfig(length=2, reparam="none", init="tokens", init_text="table-to-text: hello"),
        tokenizer=WordTokenizer(),
    )
    assert torch.equal(pm.prefix()["decoder"], pm.token_activations([9, 8])["decoder"])
    with pytest.raises(ValueError, match="has 2 tokens but length=3"):
        PrefixModel(
            gpt2(),
            PrefixConfig(length=3, init="tokens", init_text="table-to-text: hello"),
            tokenizer=WordTokenizer(),
        )
    with pytest.raises(ValueError, match="needs the model's tokenizer"):
        PrefixModel(gpt2(), PrefixConfig(length=2, init="tokens", init_text="table-to-text: hello"))


@pytest.mark.parametrize("build", [llama, t5, gemma2_window4], ids=["llama", "t5", "gemma2-window4"])
def test_bfloat16_base_keeps_fp32_prefix_and_trains(build):
    base = build().to(torch.bfloat16)
    pm = PrefixModel(base, PrefixConfig(length=3, mlp_hidden=16))
    assert all(p.dtype == torch.float32 for p in pm.prefix.parameters())
    optimizer = torch.optim.AdamW([p for p in pm.parameters() if p.requires_grad], lr=1e-2)
    out = pm(**batch())
    assert out.logits.dtype == torch.bfloat16
    assert out.loss.dtype == torch.float32
    out.loss.backward()
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in pm.prefix.parameters())
    optimizer.step()
    moments = [t for state in optimizer.state.values() for t in state.values() if t.dim() > 0]
    assert moments and all(t.dtype == torch.float32 for t in moments)  # AdamW's state stays float32 too
    assert all(p.dtype == torch.bfloat16 for p in base.parameters())
    generated = pm.generate(source_ids=X, source_mask=XM, max_new_tokens=3, do_sample=False, pad_token_id=0)
    assert generated.shape == (2, 3)


CHECKPOINTING = {
    "t5-prefix": (t5, {}),
    "mt5-prefix-offset": (mt5, {"position_offset": True}),
    "gemma2-window4-prefix": (gemma2_window4, {}),
    "mistral-window4-infix": (mistral_window4, {"placement": "infix"}),
}


@pytest.mark.parametrize("case", sorted(CHECKPOINTING))
def test_activation_checkpointing_gives_the_same_gradients(case):
    """As tests/test_activation_checkpointing.py for BART and Llama: the same loss and gradients, the first
    block recomputed in backward, fewer activations kept (the relative position bias and the sliding-window
    masks are replayed with the blocks)."""
    build, options = CHECKPOINTING[case]
    torch.manual_seed(0)
    model = PrefixModel(build(), PrefixConfig(length=3, mlp_hidden=16, **options))
    model.train()
    loss, grads, saved = loss_grads_and_saved_bytes(model)
    calls = []
    first_block = next(m for m in model.base.modules() if isinstance(m, GradientCheckpointingLayer))
    first_linear = next(m for m in first_block.modules() if isinstance(m, torch.nn.Linear))
    first_linear.register_forward_pre_hook(lambda *_: calls.append(1))
    model.set_activation_checkpointing(True)
    ckpt_loss, ckpt_grads, ckpt_saved = loss_grads_and_saved_bytes(model)
    assert ckpt_loss == pytest.approx(loss, rel=1e-6)
    assert ckpt_grads.keys() == grads.keys() and grads
    for name in grads:
        torch.testing.assert_close(ckpt_grads[name], grads[name], rtol=1e-5, atol=1e-6, msg=name)
    assert len(calls) == 2, "the first block ran once forward and once more in backward"
    assert ckpt_saved < 0.5 * saved, (ckpt_saved, saved)


def test_dropout_applies_only_in_training():
    pm = PrefixModel(gpt2(), PrefixConfig(length=4, dropout=0.5))
    pm.train()
    torch.manual_seed(0)
    a = pm(**batch()).logits
    b = pm(**batch()).logits
    assert not torch.equal(a, b)
    pm.eval()
    assert torch.equal(pm(**batch()).logits, pm(**batch()).logits)


def test_load_rejects_a_different_base_model(tmp_path):
    pm = PrefixModel(gpt2(), PrefixConfig(length=2))
    path = pm.save(tmp_path)
    with pytest.raises(ValueError, match="different base model"):
        PrefixModel.load(llama(), path)
    with pytest.raises(FileNotFoundError, match="no saved prefix"):
        PrefixModel.load(gpt2(), tmp_path / "missing")
