"""Training touches only the prefix; export, save and load keep the model's outputs; real-token init."""

from __future__ import annotations

import pytest
import torch
from tiny_models import bart, gpt2, llama

from prefixlab import PrefixConfig, PrefixModel

X = torch.tensor([[10, 11, 12, 13], [14, 15, 16, 0]])
XM = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]])
Y = torch.tensor([[20, 21, 22], [23, 24, 0]])
YM = torch.tensor([[1, 1, 1], [1, 1, 0]])


def batch() -> dict[str, torch.Tensor]:
    return {"source_ids": X, "source_mask": XM, "target_ids": Y, "target_mask": YM}


CASES = {
    "gpt2-prefix-mlp": (gpt2, {"reparam": "mlp"}),
    "llama-infix-none": (llama, {"placement": "infix", "reparam": "none"}),
    "llama-embedding-mlp": (llama, {"depth": "embedding", "reparam": "mlp"}),
    "bart-prefix-mlp": (bart, {"reparam": "mlp"}),
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


def test_bfloat16_base_keeps_fp32_prefix_and_trains():
    base = llama().to(torch.bfloat16)
    pm = PrefixModel(base, PrefixConfig(length=3, mlp_hidden=16))
    assert all(p.dtype == torch.float32 for p in pm.prefix.parameters())
    out = pm(**batch())
    assert out.logits.dtype == torch.bfloat16
    assert out.loss.dtype == torch.float32
    out.loss.backward()
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in pm.prefix.parameters())
    generated = pm.generate(source_ids=X, source_mask=XM, max_new_tokens=3, do_sample=False, pad_token_id=0)
    assert generated.shape == (2, 3)


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
