"""LoRA through PEFT (`method=lora`): the base model at initialization, only A and B train, save/load, decoding,
activation checkpointing, GPT-2 Medium / BART-large parameter counts, and the registry path.

The helpers here (batch, the zero-shot reference, perturbation, the shared checks) serve test_method_adapter.py too.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from hydra import compose, initialize_config_dir
from safetensors.torch import load_file
from tiny_models import bart, gpt2, llama
from transformers import BartConfig, BartForConditionalGeneration, GPT2Config, GPT2LMHeadModel
from transformers.modeling_layers import GradientCheckpointingLayer

from prefixlab.methods.finetune import FineTuneModel
from prefixlab.methods.lora import METHOD, LoraModel, LoraSettings, label
from prefixlab.methods.registry import method_label, method_settings
from prefixlab.settings import SettingsError

CONF = Path(__file__).resolve().parents[1] / "conf"
BUILDERS = {"gpt2": gpt2, "llama": llama, "bart": bart}


# ------------------------------------------------------------------------------------------------ helpers
def batch() -> dict[str, torch.Tensor]:
    """Three pairs, sources and targets of different lengths (padding inside the batch)."""
    g = torch.Generator().manual_seed(1)
    return {
        "source_ids": torch.randint(5, 60, (3, 6), generator=g),
        "source_mask": torch.tensor([[1] * 6, [0, 0, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]]),
        "target_ids": torch.randint(5, 60, (3, 4), generator=g),
        "target_mask": torch.tensor([[1] * 4, [1, 1, 0, 0], [1, 1, 1, 0]]),
    }


def zero_shot(build) -> FineTuneModel:
    """The base model itself through the same source/target interface."""
    return FineTuneModel(build(), "none")


@torch.no_grad()
def perturb(model: torch.nn.Module, seed: int = 1, scale: float = 0.3) -> None:
    """Random values for every trainable parameter (at initialization some are zero, e.g. LoRA's B)."""
    g = torch.Generator().manual_seed(seed)
    for parameter in model.parameters():
        if parameter.requires_grad:
            parameter.copy_(torch.randn(parameter.shape, generator=g) * scale)


def own_parameters(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: p for name, p in model.named_parameters() if p.requires_grad}


def check_equals_base_model(model, build) -> None:
    """Logits, greedy and beam decoding equal the base model's; a perturbed method changes the logits."""
    reference = zero_shot(build)
    b = batch()
    with torch.no_grad():
        expected = reference(**b)
        got = model(**b)
    assert torch.equal(got.logits, expected.logits)
    assert got.loss.item() == expected.loss.item()
    for options in ({"num_beams": 1, "do_sample": False}, {"num_beams": 3, "num_return_sequences": 2}):
        kwargs = {
            "source_ids": b["source_ids"],
            "source_mask": b["source_mask"],
            "max_new_tokens": 5,
            **options,
        }
        assert torch.equal(model.generate(**kwargs), reference.generate(**kwargs)), options
    perturb(model)
    with torch.no_grad():
        assert (model(**b).logits - expected.logits).abs().max() > 1e-3  # the method really is in the forward


def check_one_step_changes_only_own_parameters(model, may_train=lambda name: False) -> None:
    """An AdamW step on the loss: every own parameter moves, every base weight stays bitwise equal; in train
    mode no module of the base model but those `may_train` names (the method's own, e.g. LoRA's dropout) trains."""
    perturb(model)  # so that every own parameter gets a gradient (LoRA's A gets none while B is zero)
    base_before = {
        name: p.detach().clone() for name, p in model.base.named_parameters() if not p.requires_grad
    }
    own = own_parameters(model)
    own_before = {name: p.detach().clone() for name, p in own.items()}
    model.train()
    training = [n for n, m in model.base.named_modules() if m.training]
    assert training == [n for n in training if may_train(n)], "the base model stays in eval mode"
    optimizer = torch.optim.AdamW(own.values(), lr=1e-2)
    model(**batch()).loss.backward()
    optimizer.step()
    for name, before in base_before.items():
        assert torch.equal(dict(model.base.named_parameters())[name], before), name
    for name, before in own_before.items():
        assert not torch.equal(own[name], before), f"{name} did not train"
    assert {n for n, p in model.named_parameters() if p.requires_grad} == set(own)


def check_save_and_reload(model, build, cls, tmp_path: Path, stored: int) -> Path:
    """Save (only the method's parameters), reload on a fresh base model: identical logits and decoding."""
    perturb(model)
    model.eval()
    path = model.save(tmp_path / "method")
    assert sum(v.numel() for v in load_file(str(path)).values()) == stored
    reloaded = cls.load(build(), tmp_path / "method").eval()
    b = batch()
    with torch.no_grad():
        assert torch.equal(reloaded(**b).logits, model(**b).logits)
    kwargs = {
        "source_ids": b["source_ids"],
        "source_mask": b["source_mask"],
        "max_new_tokens": 4,
        "num_beams": 2,
    }
    assert torch.equal(reloaded.generate(**kwargs), model.generate(**kwargs))
    assert not list(tmp_path.glob("method/*.tmp*")), "written under a temporary name, then renamed"
    return path


def loss_and_grads(model) -> tuple[float, dict[str, torch.Tensor], int]:
    """Loss, gradients of own parameters, bytes autograd kept (as tests/test_activation_checkpointing.py)."""
    saved = []

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        saved.append(tensor.numel() * tensor.element_size())
        return tensor

    model.zero_grad(set_to_none=True)
    torch.manual_seed(0)  # the same dropout masks in both runs
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        loss = model(**batch(), loss_reduction="sequence_sum").loss
    loss.backward()
    return loss.item(), {n: p.grad.clone() for n, p in own_parameters(model).items()}, sum(saved)


def check_activation_checkpointing(model, n_blocks: int) -> None:
    """Blocks are still transformers' checkpointable layers; the same loss and gradients, fewer activations."""
    blocks = [m for m in model.base.modules() if isinstance(m, GradientCheckpointingLayer)]
    assert len(blocks) == n_blocks
    perturb(model)
    model.train()
    loss, grads, saved = loss_and_grads(model)
    calls = []
    next(blocks[0].children()).register_forward_pre_hook(lambda *_: calls.append(1))
    model.set_activation_checkpointing(True)
    ckpt_loss, ckpt_grads, ckpt_saved = loss_and_grads(model)
    assert ckpt_loss == pytest.approx(loss, rel=1e-6)
    assert ckpt_grads.keys() == grads.keys() and grads
    for name in grads:
        assert grads[name].abs().max() > 0, name
        torch.testing.assert_close(ckpt_grads[name], grads[name], rtol=1e-5, atol=1e-6, msg=name)
    assert len(calls) == 2, "the first block ran once forward and once more in backward"
    assert ckpt_saved < 0.5 * saved, (ckpt_saved, saved)


def method_yaml(name: str) -> dict:
    """A conf/method file, checked: `kind` plus every settings field, each line commented."""
    path = CONF / "method" / f"{name}.yaml"
    lines = [line for line in path.read_text().splitlines() if line and not line.startswith("#")]
    assert all("#" in line for line in lines if not line.startswith("kind:")), path
    return yaml.safe_load(path.read_text())


def compose_method(name: str):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("train", overrides=[f"method={name}"]).method


def lora(build, **settings) -> LoraModel:
    torch.manual_seed(0)
    return LoraModel(build(), LoraSettings(**settings))


# --------------------------------------------------------------------------------------------------- tests
@pytest.mark.parametrize("family", sorted(BUILDERS))
def test_at_initialization_lora_is_the_base_model(family):
    check_equals_base_model(lora(BUILDERS[family]), BUILDERS[family])


@pytest.mark.parametrize("family", ["gpt2", "bart"])
def test_one_step_trains_only_lora_weights(family):
    model = lora(BUILDERS[family])
    check_one_step_changes_only_own_parameters(model, may_train=lambda name: ".lora_dropout" in name)
    assert all(".lora_A." in n or ".lora_B." in n for n in own_parameters(model))


def test_lora_dropout_follows_train_mode_and_the_base_model_never_drops_out():
    model = lora(gpt2, dropout=0.5)
    perturb(model)
    model.train()
    lora_dropouts = [m for n, m in model.base.named_modules() if ".lora_dropout." in n]
    assert lora_dropouts and all(m.training for m in lora_dropouts)
    others = [m for n, m in model.base.named_modules() if ".lora_dropout" not in n]
    assert not any(m.training for m in others)
    with torch.no_grad():
        assert not torch.equal(model(**batch()).logits, model(**batch()).logits)
        model.eval()
        assert torch.equal(model(**batch()).logits, model(**batch()).logits)


@pytest.mark.parametrize("family", ["gpt2", "llama", "bart"])
def test_save_reload_on_a_fresh_base_gives_identical_logits(family, tmp_path):
    model = lora(BUILDERS[family])
    stored = model.parameter_report()["stored_parameters"]
    path = check_save_and_reload(model, BUILDERS[family], LoraModel, tmp_path, stored)
    assert path.name == "lora.safetensors"
    with pytest.raises(ValueError, match="does not fit this model"):
        LoraModel.load(BUILDERS["llama" if family != "llama" else "gpt2"](), path)
    with pytest.raises(FileNotFoundError, match="LoraModel.save"):
        LoraModel.load(BUILDERS[family](), tmp_path / "nothing")


def test_export_keeps_the_adapters_unmerged():
    model = lora(gpt2).eval()
    perturb(model)
    before = {n: p.clone() for n, p in model.base.named_parameters()}
    with torch.no_grad():
        logits = model(**batch()).logits
        model.export()
        assert torch.equal(model(**batch()).logits, logits)
    assert all(torch.equal(p, before[n]) for n, p in model.base.named_parameters())


@pytest.mark.parametrize(("family", "blocks"), [("gpt2", 2), ("llama", 2), ("bart", 4)])
def test_activation_checkpointing_gives_the_same_gradients(family, blocks):
    check_activation_checkpointing(lora(BUILDERS[family], dropout=0.2), blocks)


def check_half_precision_base(model) -> None:
    """On a bfloat16 model the method's own weights stay float32; logits keep the model's dtype; grads flow."""
    assert {p.dtype for p in own_parameters(model).values()} == {torch.float32}
    out = model(**batch())
    assert out.logits.dtype == torch.bfloat16
    out.loss.backward()
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in own_parameters(model).values())


def test_a_bfloat16_base_keeps_lora_weights_in_float32():
    check_half_precision_base(LoraModel(gpt2().to(torch.bfloat16), LoraSettings()))


def test_default_targets_are_the_query_and_value_projections():
    assert lora(gpt2).target_modules == ["c_attn"]
    assert lora(llama).target_modules == ["q_proj", "v_proj"]
    adapted = {n.split(".lora_")[0] for n in lora(bart).adapter_names}
    assert len(adapted) == 2 * (
        2 + 2 + 2
    )  # q and v of encoder self-, decoder self- and cross-attention x 2 layers
    assert all(n.endswith(("q_proj", "v_proj")) for n in adapted)
    custom = lora(llama, target_modules=["k_proj"])
    assert {n.split(".")[-4] for n in custom.adapter_names} == {"k_proj"}
    with pytest.raises(ValueError, match="found no module"):
        lora(llama, target_modules=["c_attn"])


@pytest.mark.parametrize("rank", [1, 4, 8])
def test_gpt2_medium_counts_match_the_closed_form(rank):
    """PEFT's LoRA on the fused c_attn (1024 -> 3072): A is r x 1024, B is 3072 x r; 24 layers."""
    with torch.device("meta"):
        base = GPT2LMHeadModel(GPT2Config(n_layer=24, n_embd=1024, n_head=16))
    report = LoraModel(base, LoraSettings(rank=rank)).parameter_report()
    assert report["stored_parameters"] == report["trainable_parameters"] == 24 * rank * (1024 + 3 * 1024)
    assert report["base_parameters"] == 354_823_168  # the base model alone, without the LoRA weights
    assert report["stored_percent"] == pytest.approx(100 * 98_304 * rank / 354_823_168)


def test_bart_large_counts_match_the_closed_form():
    """q and v (1024 -> 1024) in 12 encoder self-, 12 decoder self- and 12 cross-attentions: 72 x r x 2048."""
    with torch.device("meta"):
        base = BartForConditionalGeneration(BartConfig(d_model=1024, encoder_layers=12, decoder_layers=12))
    assert LoraModel(base, LoraSettings(rank=8)).parameter_report()["stored_parameters"] == 72 * 8 * 2048


def test_registry_validates_settings_with_full_keys():
    spec, settings = method_settings({"kind": "lora", "rank": 8, "alpha": 16, "target_modules": ["c_attn"]})
    assert spec is METHOD and settings == LoraSettings(rank=8, alpha=16.0, target_modules=["c_attn"])
    bad = {"rank": 0, "alpha": 0, "dropout": 1.0, "target_modules": [], "rnak": 4}
    with pytest.raises(SettingsError) as error:
        method_settings({"kind": "lora", **bad})
    for key in (
        "method.rank=0",
        "method.alpha=0",
        "method.dropout=1.0",
        "method.target_modules=[]",
        "method.rnak",
    ):
        assert key in str(error.value)
    assert label(LoraSettings()) == "LoRA-r4"
    assert label(LoraSettings(rank=8, target_modules=["q_proj", "k_proj"])) == "LoRA-r8-q_proj+k_proj"


def test_the_yaml_holds_every_field_and_composes():
    values = method_yaml("lora")
    assert set(values) == {"kind", *LoraSettings.__dataclass_fields__}
    assert method_settings(values)[1] == LoraSettings()
    assert method_label(compose_method("lora")) == "LoRA-r4"


@pytest.mark.parametrize("family", sorted(BUILDERS))
def test_registry_builds_and_loads_on_every_family(family, tmp_path):
    spec, settings = method_settings({**method_yaml("lora"), "rank": 2})
    model = spec.build(BUILDERS[family](), settings, None)
    assert isinstance(model, LoraModel) and model.parameter_report()["stored_parameters"] > 0
    model.save(tmp_path)
    assert isinstance(spec.load(BUILDERS[family](), tmp_path), LoraModel)
