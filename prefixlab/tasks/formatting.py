"""Turn pairs into token ids with the per-model-family templates of the task config (`task.format`).

A template is a string with `{source}` or `{target}` and optionally `{eos}` / `{bos}` (the tokenizer's
special-token text). Source and target are encoded separately (the model wrapper gets them apart), and
truncation keeps the template's tail (e.g. the end-of-sequence separator) and cuts the content instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from prefixlab.tasks.config import TaskConfig
from prefixlab.tasks.examples import Example, GroupedExample

FAMILIES = ("decoder_only", "encoder_decoder")


@dataclass(frozen=True)
class Template:
    """How one model family sees a pair: `source`/`target` format strings, and whether the tokenizer adds
    its own special tokens (BART's <s> ... </s>)."""

    source: str
    target: str
    add_special_tokens: bool = False

    def render(self, which: str, text: str, tokenizer: Any) -> str:
        """Fill the `source` or `target` template with `text` and the tokenizer's special-token text."""
        template = self.source if which == "source" else self.target
        values = {"source": text, "target": text}
        for name in ("eos", "bos"):
            if "{" + name + "}" in template:
                token = getattr(tokenizer, f"{name}_token", None)
                if token is None:
                    raise ValueError(
                        f"template {template!r} uses {{{name}}} but the tokenizer has no {name}_token"
                    )
                values[name] = token
        return template.format_map(values)


def model_family(model_or_config: Any) -> str:
    """`encoder_decoder` when the model (or its config) is an encoder-decoder, else `decoder_only`."""
    config = getattr(model_or_config, "config", model_or_config)
    return "encoder_decoder" if getattr(config, "is_encoder_decoder", False) else "decoder_only"


def template_for(cfg: TaskConfig, family: str) -> Template:
    """The task's template for a model family (`decoder_only`, `encoder_decoder` or any key of task.format)."""
    if family not in cfg.format:
        raise KeyError(f"task {cfg.name!r} has no format for {family!r}; formats: {sorted(cfg.format)}")
    spec = cfg.format[family]
    return Template(spec["source"], spec["target"], bool(spec.get("add_special_tokens", False)))


@dataclass
class EncodedExample:
    """Token ids of one example; `target_ids` is None for generation inputs; `index` is its input position."""

    source_ids: list[int]
    target_ids: list[int] | None
    index: int

    @property
    def length(self) -> int:
        """Source plus target tokens (the bucketing key)."""
        return len(self.source_ids) + len(self.target_ids or ())


def _common_suffix(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[-1 - n] == b[-1 - n]:
        n += 1
    return n


def encode_texts(
    texts: Sequence[str], tokenizer: Any, template: Template, which: str, max_tokens: int | None = None
) -> list[list[int]]:
    """Render and tokenize `texts`; beyond `max_tokens`, cut the content and keep the template's tail."""
    rendered = [template.render(which, t, tokenizer) for t in texts]
    ids = tokenizer(rendered, add_special_tokens=template.add_special_tokens)["input_ids"]
    if max_tokens is None:
        return [list(x) for x in ids]
    placeholder = "{" + which + "}"
    after = (template.source if which == "source" else template.target).split(placeholder, 1)[1]
    tail_text = Template(placeholder + after, placeholder + after).render(which, "", tokenizer)
    tail = tokenizer(tail_text, add_special_tokens=template.add_special_tokens)["input_ids"]
    out = []
    for seq in ids:
        seq = list(seq)
        if len(seq) > max_tokens:
            keep = min(_common_suffix(seq, tail), max_tokens - 1)
            seq = seq[: max_tokens - keep] + seq[len(seq) - keep :]
        out.append(seq)
    return out


def encode_pairs(
    examples: Sequence[Example],
    tokenizer: Any,
    template: Template,
    max_source_tokens: int | None = None,
    max_target_tokens: int | None = None,
) -> list[EncodedExample]:
    """Encode training pairs into `source_ids` and `target_ids` (not concatenated)."""
    sources = encode_texts([e.source for e in examples], tokenizer, template, "source", max_source_tokens)
    targets = encode_texts([e.target for e in examples], tokenizer, template, "target", max_target_tokens)
    return [EncodedExample(s, t, i) for i, (s, t) in enumerate(zip(sources, targets, strict=True))]


def encode_sources(
    items: Sequence[str | GroupedExample],
    tokenizer: Any,
    template: Template,
    max_source_tokens: int | None = None,
) -> list[EncodedExample]:
    """Encode generation inputs (plain strings or grouped eval examples); `target_ids` stays None."""
    texts = [item.source if isinstance(item, GroupedExample) else item for item in items]
    sources = encode_texts(texts, tokenizer, template, "source", max_source_tokens)
    return [EncodedExample(s, None, i) for i, s in enumerate(sources)]


def encode_split(data: Any, split: str, tokenizer: Any, family: str) -> list[EncodedExample]:
    """Encode the pairs of `data` (a `TaskData`) split `split` with the task's template and length limits."""
    cfg = data.config
    return encode_pairs(
        data.split(split), tokenizer, template_for(cfg, family), cfg.max_source_tokens, cfg.max_target_tokens
    )


def encode_eval(
    data: Any, split: str, tokenizer: Any, family: str
) -> tuple[list[GroupedExample], list[EncodedExample]]:
    """Grouped eval examples of a split (each source once, with all references) and their encoded sources."""
    grouped = data.grouped(split)
    cfg = data.config
    return grouped, encode_sources(grouped, tokenizer, template_for(cfg, family), cfg.max_source_tokens)
