"""Sliding-window attention (Mistral, Gemma 2, Gemma 3): the virtual tokens are visible to every query.

Prefix-tuning's definition makes the prefix part of every layer's keys/values for every query. A window of W
tokens therefore limits which *real* tokens a query sees, never the virtual ones. While the whole sequence fits
in the window this equals real tokens; beyond it, it equals real tokens under a mask that keeps their columns
visible, and differs from a cache-based prefix (PEFT's), which behaves like real tokens at positions 0..L-1 and
falls out of the window.
"""

from __future__ import annotations

import pytest
import torch
from peft import PrefixTuningConfig, TaskType, get_peft_model
from tiny_models import SLIDING_WINDOW, max_error
from transformers import GenerationConfig

from prefixlab import PrefixConfig, PrefixModel
from prefixlab.methods.injection import capturing, stack_captured

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")  # PEFT passes `past_key_values`

TOL = 1e-5
P = torch.tensor([[5, 6, 7]])
X = torch.tensor([[10, 11, 12, 13, 14]])
Y = torch.tensor([[20, 21, 22, 23]])
L, S, T = P.shape[1], X.shape[1], Y.shape[1]
N = L + S + T
WINDOW = 4  # much shorter than N: most queries are more than a window away from the virtual tokens


def ones(t: torch.Tensor) -> torch.Tensor:
    return torch.ones_like(t)


def run(pm: PrefixModel) -> torch.Tensor:
    with torch.no_grad():
        return pm(source_ids=X, source_mask=ones(X), target_ids=Y, target_mask=ones(Y)).logits


def with_real_tokens(
    base, sequence: torch.Tensor, columns: slice, attention_mask=None, **config
) -> tuple[PrefixModel, torch.Tensor]:
    """A PrefixModel whose virtual tokens hold the keys/values of `sequence[columns]` in the base model's run on
    `sequence` (with `attention_mask` if given), and that run's logits."""
    pm = PrefixModel(base, PrefixConfig(length=L, reparam="none", **config))
    with capturing(pm._state) as captured, torch.no_grad():
        logits = base(input_ids=sequence, attention_mask=attention_mask).logits
    pm.set_prefix(stack_captured(captured, pm.layouts, columns))
    return pm, logits


def masks(base, real: torch.Tensor, always: torch.Tensor, window: int):
    """The base model's attention masks for one sequence whose columns are `real` tokens (the window counts
    only those) or virtual ones visible to every later query (`always`): causal, plus the sliding window over
    real tokens in sliding layers. In the kernel's convention (boolean for sdpa, additive for eager)."""
    index = real.long().cumsum(0) - 1  # position among the real tokens
    causal = torch.ones(len(real), len(real), dtype=torch.bool).tril()
    in_window = (index[:, None] - index[None, :] < window) & real[None, :]
    sliding = causal & (in_window | always[None, :])

    def convention(visible: torch.Tensor) -> torch.Tensor:
        if base.config._attn_implementation == "sdpa":
            return visible[None, None]
        return torch.zeros(visible.shape).masked_fill(~visible, torch.finfo(torch.float32).min)[None, None]

    if getattr(base.config, "layer_types", None) is None:  # Mistral: every layer slides
        return convention(sliding)
    return {"sliding_attention": convention(sliding), "full_attention": convention(causal)}


@pytest.mark.parametrize("family", sorted(SLIDING_WINDOW))
def test_inside_the_window_the_prefix_equals_real_tokens(family):
    base = SLIDING_WINDOW[family](window=N)  # [p; x; y] just fits
    pm, ref = with_real_tokens(base, torch.cat([P, X, Y], 1), slice(0, L))
    assert max_error(run(pm), ref[:, L + S - 1 : -1]) < TOL


@pytest.mark.parametrize("family", sorted(SLIDING_WINDOW))
def test_beyond_the_window_the_prefix_stays_visible_to_every_query(family):
    """Equal to real tokens [p; x; y] under masks that keep p's columns visible to every query (the window
    slides over x and y only), and far from the plain model, whose window hides p from most queries."""
    base = SLIDING_WINDOW[family](window=WINDOW)
    sequence = torch.cat([P, X, Y], 1)
    pm, windowed = with_real_tokens(base, sequence, slice(0, L))
    real = torch.arange(N) >= L
    with torch.no_grad():
        ref = base(input_ids=sequence, attention_mask=masks(base, real, ~real, WINDOW)).logits
    ours = run(pm)
    assert max_error(ours, ref[:, L + S - 1 : -1]) < TOL
    assert (ours - windowed[:, L + S - 1 : -1]).abs().max().item() > 1e-2


@pytest.mark.parametrize("family", sorted(SLIDING_WINDOW))
def test_a_cache_based_prefix_falls_out_of_the_window(family):
    """PEFT's prefix (past key/values in the cache) with the same values equals the plain model on real
    tokens: beyond the window it is hidden, where prefixlab's stays visible; inside the window both agree."""
    for window, same in ((WINDOW, False), (N, True)):
        base = SLIDING_WINDOW[family](window=window)
        pm, windowed = with_real_tokens(base, torch.cat([P, X, Y], 1), slice(0, L))
        peft_model = get_peft_model(
            SLIDING_WINDOW[family](window=window),
            PrefixTuningConfig(task_type=TaskType.CAUSAL_LM, num_virtual_tokens=L, prefix_projection=False),
        )
        with torch.no_grad():
            peft_model.prompt_encoder["default"].embedding.weight.copy_(pm.prefix()["decoder"])
            peft_model.eval()
            theirs = peft_model(input_ids=torch.cat([X, Y], 1), attention_mask=torch.ones(1, S + T)).logits
        theirs = theirs[:, S - 1 : -1]
        assert max_error(theirs, windowed[:, L + S - 1 : -1]) < TOL
        assert (max_error(theirs, run(pm)) < TOL) == same, window


@pytest.mark.parametrize("family", sorted(SLIDING_WINDOW))
def test_beyond_the_window_the_infix_stays_visible_from_the_separator_on(family):
    """Infix [x; q; sep; y]: equal to real tokens under masks where q's columns are visible to every query from
    q on (so x never sees them, the separator and every target always do) and the window slides over x and y.
    A 2-token window: the later targets' windows no longer hold the separator."""
    base = SLIDING_WINDOW[family](window=2)
    sequence = torch.cat([X[:, :-1], P, X[:, -1:], Y], 1)
    infix = (torch.arange(N) >= S - 1) & (torch.arange(N) < S - 1 + L)
    mask = masks(base, ~infix, infix, 2)
    pm, ref = with_real_tokens(base, sequence, slice(S - 1, S - 1 + L), mask, placement="infix")
    assert max_error(run(pm), ref[:, S - 1 + L : -1]) < TOL


@pytest.mark.parametrize("placement", ["prefix", "infix"])
@pytest.mark.parametrize("family", sorted(SLIDING_WINDOW))
def test_cached_decoding_beyond_the_window_equals_full_forwards(family, placement):
    """generate() with transformers' sliding-window cache (it keeps only the last W-1 real tokens) still sees
    the virtual tokens: each greedy token is the argmax of the uncached forward on the tokens before it."""
    pm = PrefixModel(
        SLIDING_WINDOW[family](window=WINDOW), PrefixConfig(length=L, placement=placement, init_std=0.5)
    )
    pm.eval()
    config = GenerationConfig(max_new_tokens=8, do_sample=False, pad_token_id=0, eos_token_id=None)
    generated = pm.generate(source_ids=X, source_mask=ones(X), generation_config=config)
    assert generated.shape == (1, 8) and len(set(generated[0].tolist())) > 1
    with torch.no_grad():
        logits = pm(
            source_ids=X, source_mask=ones(X), target_ids=generated, target_mask=ones(generated)
        ).logits
    assert logits.argmax(-1).tolist() == generated.tolist()


@pytest.mark.parametrize("family", sorted(SLIDING_WINDOW))
def test_embedding_only_virtual_tokens_are_ordinary_positions(family):
    """Embedding-only virtual tokens are input positions: the window applies to them as to real tokens."""
    base = SLIDING_WINDOW[family](window=WINDOW)
    pm = PrefixModel(base, PrefixConfig(length=L, depth="embedding", reparam="none"))
    pm.set_prefix({"embedding": base.get_input_embeddings()(P)[0]})
    with torch.no_grad():
        ref = base(input_ids=torch.cat([P, X, Y], 1)).logits
    assert max_error(run(pm), ref[:, L + S - 1 : -1]) < TOL
