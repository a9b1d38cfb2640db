"""The checks of each exercise: the learner's function against minitransformer's own, on seeded random cases.

Every check draws its cases from a fixed seed, so a run is repeatable and a failing case can be
reported precisely (its shapes or values, what was expected, what came back). Where the answer is
random (MLM masking), the checks compare behaviour and rates with the library's function instead.
"""
from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import torch

from minitransformer.data import mask_tokens as library_mask_tokens
from minitransformer.embedding_search import mean_pool as library_mean_pool
from minitransformer.exercises.checking import (
    Check,
    CheckFailed,
    call,
    expect_equal,
    expect_tensor,
    learner_function,
    shape_of,
)
from minitransformer.generation import filter_top_k as library_top_k
from minitransformer.generation import filter_top_p as library_top_p
from minitransformer.nn import DecoderLayer, EncoderLayer, RotaryEmbedding, apply_rotary
from minitransformer.nn import attention as library_attention
from minitransformer.nn import causal_mask as library_causal_mask
from minitransformer.nn import padding_bias as library_padding_bias
from minitransformer.nn import relative_position_bucket as library_bucket
from minitransformer.nn import resize_vocab_rows as library_resize
from minitransformer.tokenizers.bpe import _merge_in_word, bytes_to_unicode, learn_bpe

SEED = 1234  # every check draws its cases from this seed (plus the case number)


def _gen(case: int) -> torch.Generator:
    return torch.Generator().manual_seed(SEED + case)


# ==== 1. BPE merge step ======================================================================
def _byte_ids() -> dict[str, int]:
    """Ids of the base symbols as minitransformer's BPE trainer numbers them (no special tokens)."""
    vocab, _ = learn_bpe({}, 256)
    return vocab


def _random_word_counts(rng: random.Random) -> dict[str, int]:
    letters = "abcdefgh"[: rng.randint(2, 8)]
    counts: dict[str, int] = {}
    for _ in range(rng.randint(1, 10)):
        word = "".join(rng.choice(letters) for _ in range(rng.randint(2, 8)))
        counts[word] = counts.get(word, 0) + rng.randint(1, 9)
    return counts


def _as_id_words(word_counts: dict[str, int], vocab: dict[str, int]) -> dict[tuple[int, ...], int]:
    table = bytes_to_unicode()
    words: Counter[tuple[int, ...]] = Counter()
    for word, n in word_counts.items():
        words[tuple(vocab[table[b]] for b in word.encode("utf-8"))] += n
    return dict(words)


def _learner_merges(most_frequent_pair: Callable, merge_pair: Callable, word_counts: dict[str, int],
                    n_merges: int, case: str, path: Path) -> list[tuple[str, str]]:
    """Drive the learner's two functions through ``n_merges`` merges; the merges as token strings.

    The driver names new symbols as the library does: a merged token whose string already exists
    reuses that id.
    """
    vocab = dict(_byte_ids())
    id_to_token = {i: t for t, i in vocab.items()}
    words = _as_id_words(word_counts, vocab)
    merges: list[tuple[str, str]] = []
    for step in range(n_merges):
        if not any(len(w) > 1 for w in words):
            break
        pair = call(most_frequent_pair, f"{case}, merge {step + 1}", dict(words), path=path)
        if not (isinstance(pair, tuple) and len(pair) == 2 and all(isinstance(s, int) for s in pair)):
            raise CheckFailed(f"{case}, merge {step + 1}\nmost_frequent_pair must return a tuple of two ints, "
                              f"got {pair!r}")
        a, b = pair
        if a not in id_to_token or b not in id_to_token:
            raise CheckFailed(f"{case}, merge {step + 1}\nmost_frequent_pair returned {pair}, which holds an id "
                              "that is in no word")
        token = id_to_token[a] + id_to_token[b]
        if token not in vocab:
            vocab[token] = len(vocab)
            id_to_token[vocab[token]] = token
        merges.append((id_to_token[a], id_to_token[b]))
        new_words: Counter[tuple[int, ...]] = Counter()
        for word, n in words.items():
            merged = call(merge_pair, f"{case}, merge {step + 1}: merge_pair({word}, {pair}, {vocab[token]})",
                          word, pair, vocab[token], path=path)
            new_words[tuple(merged)] += n
        words = dict(new_words)
    return merges


def checks_bpe_merge(module: ModuleType, path: Path) -> list[Check]:
    def merge_in_one_word() -> int:
        merge_pair = learner_function(module, "merge_pair")
        rng = random.Random(SEED)
        n = 0
        for n in range(1, 61):
            word = tuple(rng.randint(1, 3) for _ in range(rng.randint(0, 10)))
            pair = (rng.randint(1, 3), rng.randint(1, 3))
            expected = list(word)
            _merge_in_word(expected, pair[0], pair[1], 99)
            case = f"case {n}: merge_pair({word}, {pair}, 99)"
            got = call(merge_pair, case, word, pair, 99, path=path)
            if not isinstance(got, (tuple, list)):  # a list works as well in the training loop
                raise CheckFailed(f"{case}\nexpected a tuple of ids, got {type(got).__name__}")
            expect_equal(tuple(got), tuple(expected), "merged word", case)
        return n

    def first_merge() -> int:
        most_frequent_pair = learner_function(module, "most_frequent_pair")
        vocab = _byte_ids()
        rng = random.Random(SEED + 1)
        n = 0
        for n in range(1, 61):
            counts = _random_word_counts(rng)
            _, merges = learn_bpe(counts, 257)  # the library's first merge
            expected = (vocab[merges[0][0]], vocab[merges[0][1]])
            words = _as_id_words(counts, vocab)
            case = f"case {n}: words {words} (the strings {counts})"
            got = call(most_frequent_pair, case, dict(words), path=path)
            if not isinstance(got, tuple):  # a list is no dict key: the training loop would fail with it
                raise CheckFailed(f"{case}\nexpected a tuple of two ids (a, b), got {type(got).__name__} {got!r}")
            expect_equal(got, expected, "most frequent pair", case)
        return n

    def training_loop() -> int:
        most_frequent_pair = learner_function(module, "most_frequent_pair")
        merge_pair = learner_function(module, "merge_pair")
        rng = random.Random(SEED + 2)
        cases = [({"low": 5, "lower": 2, "newest": 6, "widest": 3}, 10)]  # Sennrich et al.'s example
        cases += [(_random_word_counts(rng), rng.randint(2, 12)) for _ in range(20)]
        for n, (counts, n_merges) in enumerate(cases, start=1):
            _, expected = learn_bpe(counts, 256 + n_merges)
            case = f"case {n}: {n_merges} merges on the words {counts}"
            got = _learner_merges(most_frequent_pair, merge_pair, counts, n_merges, case, path)
            for step, (e, g) in enumerate(zip(expected, got, strict=False), start=1):  # lengths compared below
                if e != g:
                    raise CheckFailed(f"{case}\nmerge {step}: expected {e}, got {g} "
                                      f"(merges before it agreed: {expected[:step - 1]})")
            expect_equal(len(got), len(expected), "number of merges", case)
        return len(cases)

    return [
        Check("merge_pair fuses every occurrence, left to right", merge_in_one_word,
              "after fusing word[i] and word[i+1], continue at i + 2"),
        Check("most_frequent_pair finds the first merge minitransformer's BPE trainer makes", first_merge,
              "count each pair `count` times per word; ties go to the smallest (a, b)"),
        Check("your two functions, looped, learn the same merges as minitransformer.tokenizers.bpe.learn_bpe",
              training_loop),
    ]


# ==== 2. attention ===========================================================================
def _bias_from_mask(mask: torch.Tensor) -> torch.Tensor:
    return torch.zeros(mask.shape).masked_fill(~mask, torch.finfo(torch.float32).min)


def checks_attention(module: ModuleType, path: Path) -> list[Check]:
    def run_cases(kind: str) -> int:
        fn = learner_function(module, "scaled_dot_product_attention")
        n = 0
        for n in range(1, 21):
            g = _gen({"none": 100, "causal": 200, "random": 300}[kind] + n)
            B, h = int(torch.randint(1, 4, (), generator=g)), int(torch.randint(1, 5, (), generator=g))
            t_q, t_k = int(torch.randint(1, 9, (), generator=g)), int(torch.randint(1, 9, (), generator=g))
            d, d_v = int(torch.randint(1, 17, (), generator=g)), int(torch.randint(1, 17, (), generator=g))
            q = torch.randn(B, h, t_q, d, generator=g)
            k = torch.randn(B, h, t_k, d, generator=g)
            v = torch.randn(B, h, t_k, d_v, generator=g)
            mask = None
            if kind == "causal":
                t_q = min(t_q, t_k)
                q = q[:, :, :t_q]
                mask = library_causal_mask(t_q, t_k)  # (Tq, Tk)
            elif kind == "random":
                mask = torch.rand(B, 1, t_q, t_k, generator=g) < 0.6
                mask[..., 0] |= ~mask.any(dim=-1)  # every query may attend to at least one key
            bias = None if mask is None else _bias_from_mask(mask)
            exp_out, exp_w = library_attention(q, k, v, attn_bias=bias, backend="manual", need_weights=True)
            case = (f"case {n}: q {shape_of(q)}, k {shape_of(k)}, v {shape_of(v)}, "
                    f"mask {'None' if mask is None else shape_of(mask)}")
            if mask is not None and mask.numel() <= 64:
                case += f"\n        mask = {mask.int().tolist()}"
            got = call(fn, case, q.clone(), k.clone(), v.clone(), None if mask is None else mask.clone(), path=path)
            if not (isinstance(got, (tuple, list)) and len(got) == 2):
                raise CheckFailed(f"{case}\nexpected a pair (out, weights), got {type(got).__name__}")
            expect_tensor(got[1], exp_w, "weights", case, check_dtype=True)
            expect_tensor(got[0], exp_out, "out", case, check_dtype=True)
        return n

    return [
        Check("matches minitransformer.nn.attention without a mask", lambda: run_cases("none"),
              "scores = q @ k.transpose(-2, -1) / math.sqrt(d); softmax over the last dimension"),
        Check("matches with a causal mask (Tq <= Tk, bottom-right aligned)", lambda: run_cases("causal"),
              "masked scores must become -inf (or a huge negative number) *before* the softmax"),
        Check("matches with a random (B, 1, Tq, Tk) mask", lambda: run_cases("random"),
              "the mask broadcasts over heads; use scores.masked_fill(~mask, ...)"),
    ]


# ==== 3. masks ===============================================================================
def checks_masks(module: ModuleType, path: Path) -> list[Check]:
    def causal() -> int:
        fn = learner_function(module, "causal_mask")
        pairs = [(t, t) for t in range(1, 9)] + [(t_q, t_k) for t_k in range(1, 9) for t_q in range(1, t_k)]
        for n, (t_q, t_k) in enumerate(pairs, start=1):
            case = f"case {n}: causal_mask(t_q={t_q}, t_k={t_k})"
            got = call(fn, case, t_q, t_k, path=path)
            expected = library_causal_mask(t_q, t_k)
            expect_tensor(got, expected, "mask", case + f"\n        expected {expected.int().tolist()}",
                          check_dtype=True)
        return len(pairs)

    def padding() -> int:
        fn = learner_function(module, "padding_bias")
        n = 0
        for n in range(1, 21):
            g = _gen(350 + n)
            B, T = int(torch.randint(1, 5, (), generator=g)), int(torch.randint(1, 11, (), generator=g))
            mask = (torch.rand(B, T, generator=g) < 0.7).long()
            if n == 1:
                mask[0] = 0  # a row that is all padding
            case = f"case {n}: attention_mask = {mask.tolist()}"
            got = call(fn, case, mask.clone(), path=path)
            expect_tensor(got, library_padding_bias(mask), "bias", case, check_dtype=True, atol=0.0, rtol=0.0)
        return n

    return [
        Check("causal_mask equals minitransformer.nn.causal_mask (square and Tq < Tk)", causal,
              "query i sits at absolute position i + (t_k - t_q); it may see key j when j <= that"),
        Check("padding_bias equals minitransformer.nn.padding_bias", padding,
              "shape (B, 1, 1, Tk), float32, 0.0 at real tokens, torch.finfo(torch.float32).min at padding"),
    ]


# ==== 4. transformer block ===================================================================
def _random_layer(kind: str, g: torch.Generator) -> tuple[torch.nn.Module, torch.Tensor, str]:
    d_model = [8, 16, 24, 32][int(torch.randint(0, 4, (), generator=g))]
    n_heads = [1, 2, 4, 8][int(torch.randint(0, 4, (), generator=g))]
    d_ff = int(torch.randint(4, 65, (), generator=g))
    activation = ["relu", "gelu", "gelu_tanh"][int(torch.randint(0, 3, (), generator=g))]
    B, T = int(torch.randint(1, 4, (), generator=g)), int(torch.randint(1, 8, (), generator=g))
    kwargs = dict(dropout=0.0, activation=activation, pre_norm=kind != "post")
    layer = DecoderLayer(d_model, n_heads, d_ff, **kwargs) if kind == "causal" else \
        EncoderLayer(d_model, n_heads, d_ff, **kwargs)
    with torch.no_grad():  # random weights everywhere, norms included, so every part matters
        for name, p in layer.named_parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3 + (1.0 if name.endswith("norm.weight") else 0.0))
    layer.eval()
    x = torch.randn(B, T, d_model, generator=g)
    return layer, x, f"x {shape_of(x)}, d_model={d_model}, n_heads={n_heads}, d_ff={d_ff}, {activation}"


def checks_transformer_block(module: ModuleType, path: Path) -> list[Check]:
    def run_cases(kind: str) -> int:
        name = "post_ln_block" if kind == "post" else "pre_ln_block"
        fn = learner_function(module, name)
        n = 0
        for n in range(1, 16):
            layer, x, desc = _random_layer(kind, _gen({"causal": 400, "pre": 450, "post": 500}[kind] + n))
            with torch.no_grad():
                expected, _ = layer(x)
                case = f"case {n}: {name}({desc}" + (f", causal={kind == 'causal'})" if kind != "post" else ")")
                args = (x.clone(), layer) if kind == "post" else (x.clone(), layer, kind == "causal")
                got = call(fn, case, *args, path=path)
            expect_tensor(got, expected, "block output", case, atol=1e-4)
        return n

    return [
        Check("pre_ln_block, causal, equals a pre-LN minitransformer.nn.DecoderLayer", lambda: run_cases("causal"),
              "pre-LN: each sublayer reads a normalised copy of x and its output is added to x (x itself is "
              "never normalised); attention with self_attn_norm first, then the feed-forward with ffn_norm; "
              "self_attn returns a pair (output, weights); is_causal=causal"),
        Check("pre_ln_block, not causal, equals a pre-LN EncoderLayer", lambda: run_cases("pre"),
              "if the causal check fails too, fix that first; if only this one fails, is causal=False "
              "reaching the attention?"),
        Check("post_ln_block equals a post-LN EncoderLayer (BERT's order)", lambda: run_cases("post"),
              "post-LN: add the sublayer's output to x, then normalise the sum (self_attn_norm after the "
              "attention, ffn_norm after the feed-forward); no causal mask in BERT's encoder"),
    ]


# ==== 5. top-k / top-p =======================================================================
def _random_logits(g: torch.Generator) -> torch.Tensor:
    V = int(torch.randint(1, 41, (), generator=g))
    lead = [(), (int(torch.randint(1, 4, (), generator=g)),),
            (int(torch.randint(1, 3, (), generator=g)), int(torch.randint(1, 4, (), generator=g)))]
    shape = (*lead[int(torch.randint(0, 3, (), generator=g))], V)
    scale = float(torch.empty(()).uniform_(0.3, 5.0, generator=g))
    return torch.randn(shape, generator=g) * scale


def checks_sampling_filters(module: ModuleType, path: Path) -> list[Check]:
    def run_cases(kind: str) -> int:
        fn = learner_function(module, "filter_top_k" if kind == "k" else "filter_top_p")
        n = 0
        for n in range(1, 41):
            g = _gen({"k": 550, "p": 600}[kind] + n)
            logits = _random_logits(g)
            V = logits.shape[-1]
            if kind == "k":
                arg = int(torch.randint(1, V + 3, (), generator=g))
                expected = library_top_k(logits, arg)
            else:
                arg = 1.0 if n % 10 == 0 else round(float(torch.empty(()).uniform_(0.05, 0.99, generator=g)), 3)
                expected = library_top_p(logits, arg)
            case = f"case {n}: filter_top_{kind}(logits {shape_of(logits)}, {kind}={arg})"
            if logits.numel() <= 12:
                case += f"\n        logits = {[round(v, 3) for v in logits.flatten().tolist()]}"
            before = logits.clone()
            got = call(fn, case, logits, arg, path=path)
            expect_tensor(got, expected, "filtered logits", case, atol=0.0, rtol=0.0)
            if not torch.equal(logits, before):
                raise CheckFailed(f"{case}\nthe input logits were modified in place; return a new tensor")
        if kind == "p":  # a random p never hits "mass before == p" exactly; here the second token's
            # mass before it is 0.5 (the two tied tokens go together, whichever order a sort gives them)
            for logits, p in ((torch.tensor([0.0, math.log(2.0), 0.0]), 0.5),):
                n += 1
                case = f"case {n}: filter_top_p(logits {[round(v, 3) for v in logits.tolist()]}, p={p})"
                got = call(fn, case, logits.clone(), p, path=path)
                expect_tensor(got, library_top_p(logits, p), "filtered logits", case, atol=0.0, rtol=0.0)
        return n

    return [
        Check("filter_top_k equals minitransformer.generation.filter_top_k", lambda: run_cases("k"),
              "kept values stay exactly as they were; the others are float('-inf')"),
        Check("filter_top_p equals minitransformer.generation.filter_top_p", lambda: run_cases("p"),
              "keep a sorted token while the probability mass *before* it is < p; p >= 1 keeps every token "
              "(return early: a float32 running sum can reach 1.0 before the last token)"),
    ]


# ==== 6. MLM masking =========================================================================
V, MASK_ID, SPECIALS = 1000, 4, (0, 1, 2, 3, 4)  # a vocabulary whose first ids are [PAD] [UNK] [CLS] [SEP] [MASK]


def _mlm_batch(g: torch.Generator, B: int = 64, T: int = 256) -> torch.Tensor:
    ids = torch.randint(len(SPECIALS), V, (B, T), generator=g)
    ids[:, 0] = 2  # [CLS]
    ids[:, -1] = 3  # [SEP]
    ids[B // 2:, T // 2:] = 0  # padding in half of the rows
    return ids


def _rates(ids: torch.Tensor, new: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """Fraction of eligible positions selected, and how the selected were changed."""
    eligible = ~torch.isin(ids, torch.tensor(SPECIALS))
    selected = labels != -100
    n_sel = max(int(selected.sum()), 1)
    return {
        "selected / eligible": int(selected.sum()) / int(eligible.sum()),
        "[MASK] / selected": int((selected & (new == MASK_ID)).sum()) / n_sel,
        "random other id / selected": int((selected & (new != MASK_ID) & (new != ids)).sum()) / n_sel,
        "unchanged / selected": int((selected & (new == ids)).sum()) / n_sel,
    }


def checks_mlm_masking(module: ModuleType, path: Path) -> list[Check]:
    def get_fn() -> Callable:
        return learner_function(module, "mask_tokens")

    def run(fn: Callable, ids: torch.Tensor, p: float, seed: int, case: str,
            vocab_size: int = V) -> tuple[torch.Tensor, torch.Tensor]:
        before = ids.clone()
        out = call(fn, case, ids, vocab_size, MASK_ID, list(SPECIALS), p, torch.Generator().manual_seed(seed),
                   path=path)
        if not (isinstance(out, (tuple, list)) and len(out) == 2):
            raise CheckFailed(f"{case}\nexpected a pair (ids, labels), got {type(out).__name__}")
        new, labels = out
        for what, t in (("ids", new), ("labels", labels)):
            if not isinstance(t, torch.Tensor) or t.shape != ids.shape:
                raise CheckFailed(f"{case}\n{what}: expected a tensor of shape {tuple(ids.shape)}, got {shape_of(t)}")
        if labels.dtype != torch.long:
            raise CheckFailed(f"{case}\nlabels: expected dtype torch.long, got {labels.dtype}")
        if not torch.equal(ids, before):
            raise CheckFailed(f"{case}\ninput_ids was modified in place; corrupt a clone() instead")
        return new, labels

    def shapes_and_labels() -> int:
        fn = get_fn()
        n = 0
        for n in range(1, 11):
            g = _gen(650 + n)
            ids = _mlm_batch(g, int(torch.randint(1, 5, (), generator=g)), int(torch.randint(2, 40, (), generator=g)))
            p = [0.15, 0.5, 0.9][n % 3]
            case = f"case {n}: input_ids {shape_of(ids)}, mlm_probability={p}, vocab_size={V}, mask id {MASK_ID}, " \
                   f"special ids {list(SPECIALS)}"
            new, labels = run(fn, ids, p, SEED + n, case)
            selected = labels != -100
            special = torch.isin(ids, torch.tensor(SPECIALS))
            if bool((selected & special).any()):
                pos = _first(selected & special)
                raise CheckFailed(f"{case}\nthe special token {int(ids[pos])} at {pos} was selected "
                                  f"(its label is {int(labels[pos])}; specials must keep label -100)")
            if bool((selected & (labels != ids)).any()):
                pos = _first(selected & (labels != ids))
                raise CheckFailed(f"{case}\nlabels at {pos}: expected the original id {int(ids[pos])}, "
                                  f"got {int(labels[pos])}")
            if bool((~selected & (new != ids)).any()):
                pos = _first(~selected & (new != ids))
                raise CheckFailed(f"{case}\nposition {pos} was changed ({int(ids[pos])} -> {int(new[pos])}) but its "
                                  "label is -100: every changed position must be selected, with its original id "
                                  "as the label")
            if bool(((new < 0) | (new >= V)).any()):
                raise CheckFailed(f"{case}\nids outside [0, vocab_size={V}) in the output")
        return n

    def extremes() -> int:
        fn = get_fn()
        ids = _mlm_batch(_gen(690), 4, 32)
        eligible = ~torch.isin(ids, torch.tensor(SPECIALS))
        new, labels = run(fn, ids, 0.0, SEED, "mlm_probability=0.0")
        if bool((labels != -100).any()) or not torch.equal(new, ids):
            raise CheckFailed("mlm_probability=0.0: expected nothing selected and the ids unchanged")
        new, labels = run(fn, ids, 1.0, SEED, "mlm_probability=1.0")
        if not torch.equal(labels != -100, eligible):
            raise CheckFailed(f"mlm_probability=1.0: expected every one of the {int(eligible.sum())} non-special "
                              f"positions selected, got {int((labels != -100).sum())} selected")
        return 2

    def rates() -> int:
        fn = get_fn()
        ids = _mlm_batch(_gen(700), 128, 512)  # ~49k eligible tokens: the rates are tight
        expected = _rates(ids, *library_mask_tokens(ids, V, MASK_ID, SPECIALS, 0.15,
                                                    generator=torch.Generator().manual_seed(SEED)))
        got = _rates(ids, *run(fn, ids, 0.15, SEED + 1, f"input_ids {shape_of(ids)}, mlm_probability=0.15"))
        n_eligible = int((~torch.isin(ids, torch.tensor(SPECIALS))).sum())
        n_selected = 0.15 * n_eligible
        for name, e in expected.items():
            n = n_eligible if name.startswith("selected") else n_selected
            tolerance = 5 * math.sqrt(2 * max(e * (1 - e), 0.01) / n)  # 5 standard deviations of the difference
            if abs(got[name] - e) > tolerance:
                table = "\n".join(f"  {k:28s} library {expected[k]:.3f}   yours {got[k]:.3f}" for k in expected)
                raise CheckFailed(f"on a batch {shape_of(ids)} with mlm_probability=0.15, the rate "
                                  f"'{name}' is {got[name]:.3f}; minitransformer.data.mask_tokens gives {e:.3f} "
                                  f"(allowed difference {tolerance:.3f})\n{table}")
        return len(expected)

    def random_ids_spread() -> int:
        fn = get_fn()
        small_v = 12  # a small vocabulary, so that ~1,600 random draws hit every id (each ~130 times)
        ids = torch.randint(len(SPECIALS), small_v, (64, 256), generator=_gen(750))
        case = f"input_ids {shape_of(ids)} of ids in [{len(SPECIALS)}, {small_v}), vocab_size={small_v}, " \
               "mlm_probability=1.0"
        new, labels = run(fn, ids, 1.0, SEED + 2, case, vocab_size=small_v)
        replaced = new[(labels != -100) & (new != MASK_ID) & (new != ids)]
        missing = sorted(set(range(small_v)) - {MASK_ID} - set(replaced.tolist()))
        if replaced.numel() < 100 or missing:
            raise CheckFailed(f"{case}\nexpected ~10% of the selected positions to get random ids drawn from "
                              f"all of [0, {small_v}); got {replaced.numel()} random ids, never {missing}")
        return 1

    def seeded() -> int:
        fn = get_fn()
        ids = _mlm_batch(_gen(800), 8, 64)
        a = run(fn, ids, 0.15, SEED, "seed 1234, first call")
        b = run(fn, ids, 0.15, SEED, "seed 1234, second call")
        c = run(fn, ids, 0.15, SEED + 1, "seed 1235")
        if not (torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])):
            raise CheckFailed("two calls with generators seeded alike gave different results: pass `generator=` "
                              "to every torch.rand / torch.randint call")
        if torch.equal(a[1], c[1]):
            raise CheckFailed("generators with different seeds gave the same mask: is the generator used?")
        return 3

    return [
        Check("shapes, dtypes, labels (-100 or the original id), specials never selected", shapes_and_labels),
        Check("mlm_probability 0 selects nothing, 1 selects every non-special token", extremes),
        Check("rates match minitransformer.data.mask_tokens: 15% selected, then 80/10/10", rates,
              "select with torch.rand(...) < mlm_probability; then one more draw u: u < 0.8 mask, "
              "0.8 <= u < 0.9 random id, else keep"),
        Check("random replacements come from the whole vocabulary", random_ids_spread,
              "torch.randint(0, vocab_size, input_ids.shape, generator=generator)"),
        Check("the same generator seed gives the same result", seeded),
    ]


def _first(mask: torch.Tensor) -> tuple[int, ...]:
    return tuple(int(i) for i in mask.nonzero()[0])


# ==== 7. T5 relative position buckets ========================================================
def checks_relative_position(module: ModuleType, path: Path) -> list[Check]:
    def run_cases(bidirectional: bool) -> int:
        fn = learner_function(module, "relative_position_bucket")
        settings = [(32, 128), (32, 64), (16, 32), (8, 16), (64, 256), (12, 40), (4, 12), (32, 512)]
        offsets = torch.arange(-600, 601)
        for n, (num_buckets, max_distance) in enumerate(settings, start=1):
            case = (f"case {n}: relative_position_bucket(offsets -600..600, bidirectional={bidirectional}, "
                    f"num_buckets={num_buckets}, max_distance={max_distance})")
            got = call(fn, case, offsets.clone(), bidirectional, num_buckets, max_distance, path=path)
            expected = library_bucket(offsets, bidirectional, num_buckets, max_distance)
            if not isinstance(got, torch.Tensor) or got.shape != expected.shape:
                raise CheckFailed(f"{case}\nexpected a tensor of shape {tuple(expected.shape)}, got {shape_of(got)}")
            if got.dtype != torch.long:  # as the stub asks
                raise CheckFailed(f"{case}\nexpected bucket ids of dtype torch.long, got {got.dtype}")
            wrong = (got != expected).nonzero()[:, 0]
            if wrong.numel():
                examples = ", ".join(f"offset {int(offsets[i])}: expected {int(expected[i])}, got {int(got[i])}"
                                     for i in wrong[:4])
                raise CheckFailed(f"{case}\n{wrong.numel()} of {offsets.numel()} offsets in the wrong bucket; "
                                  f"{examples}")
        # and a 2-D grid of offsets, as attention uses it
        grid = torch.arange(20)[None, :] - torch.arange(20)[:, None]  # (Tq, Tk): key - query
        got = call(fn, "a (20, 20) grid of offsets key_pos - query_pos", grid.clone(), bidirectional, 32, 128, path=path)
        expect_tensor(got, library_bucket(grid, bidirectional, 32, 128), "buckets",
                      "a (20, 20) grid of offsets key_pos - query_pos")
        return len(settings) + 1

    return [
        Check("bidirectional buckets (encoder) equal minitransformer.nn.relative_position_bucket",
              lambda: run_cases(True),
              "keys ahead (offset > 0) add num_buckets // 2; then halve num_buckets and use |offset|"),
        Check("causal buckets (decoder) equal the library's", lambda: run_cases(False),
              "distance = (-offset).clamp(min=0); all num_buckets are for the past"),
    ]


# ==== 8. Growing the vocabulary ===============================================================
def checks_grow_vocabulary(module: ModuleType, path: Path) -> list[Check]:
    def compare(shapes: list[tuple[tuple[int, ...], int]], dtype: torch.dtype = torch.float32) -> int:
        fn = learner_function(module, "grow_vocabulary")
        for n, (shape, new_size) in enumerate(shapes, start=1):
            table = torch.randn(shape, generator=_gen(n)).mul_(3).add_(1).to(dtype)
            before = table.clone()
            case = f"case {n}: grow_vocabulary(a {dtype} table of shape {shape}, new_vocab_size={new_size})"
            got = call(fn, case, table, new_size, path=path)
            if not torch.equal(table, before):
                raise CheckFailed(f"{case}\nthe input table was modified in place; return a new tensor instead")
            expected = library_resize(table, new_size).detach()
            if isinstance(got, torch.Tensor) and got.shape == expected.shape and got.dtype != dtype:
                raise CheckFailed(f"{case}\nexpected dtype {dtype} (the table's), got {got.dtype}")
            expect_tensor(got, expected, "resized table", case, atol=1e-6, rtol=1e-5)
            if new_size > shape[0] and got.data_ptr() == table.data_ptr():
                raise CheckFailed(f"{case}\nthe result shares memory with the input; return a new tensor")
        return len(shapes)

    def tied_scores() -> int:
        fn = learner_function(module, "grow_vocabulary")
        table = torch.randn(50, 16, generator=_gen(100))
        h = torch.randn(7, 16, generator=_gen(101))  # 7 hidden states
        case = "a tied head after grow_vocabulary(a (50, 16) table, 53): scores h @ new_table.T"
        grown = call(fn, case, table, 53, path=path)
        expect_tensor(grown, library_resize(table, 53).detach(), "resized table", case)
        scores = h @ grown.T  # (7, 53)
        expect_tensor(scores[:, 50:], (h @ table.T).mean(dim=1, keepdim=True).expand(7, 3),
                      "each new token's score (the average of the old scores)", case, atol=1e-5)
        return 1

    return [
        Check("growing a matrix keeps the old rows and appends their mean", lambda: compare(
            [((5, 3), 8), ((40, 16), 41), ((1, 4), 3), ((300, 8), 310)]),
            "new rows = table.mean(dim=0) repeated; the first V rows unchanged"),
        Check("a bias (V,) grows the same way", lambda: compare([((6,), 9), ((100,), 101)]),
              "for a 1-D table the mean is a scalar: expand it to (k,)"),
        Check("shrinking keeps the first rows; the same size gives equal values", lambda: compare(
            [((10, 4), 7), ((9,), 2), ((6, 3), 6)]), "table[:new_vocab_size]"),
        Check("bfloat16 tables stay bfloat16, with the mean taken in float32", lambda: compare(
            [((64, 8), 70)], torch.bfloat16), "table.mean(dim=0, dtype=torch.float32).to(table.dtype)"),
        Check("a new token scores the average of the old scores", tied_scores,
              "with the mean row, h · mean(E) = mean of h · E[i]"),
    ]


# ==== 9. Mean pooling ==========================================================================
def _mask(batch: int, length: int, g: torch.Generator, empty_row: bool = False) -> torch.Tensor:
    """A (B, T) right-padded mask: each row 1 to T real tokens (row 0 none at all with ``empty_row``)."""
    lengths = torch.randint(1, length + 1, (batch,), generator=g)
    if empty_row:
        lengths[0] = 0
    return (torch.arange(length)[None, :] < lengths[:, None]).long()


def checks_mean_pool(module: ModuleType, path: Path) -> list[Check]:
    def compare(shapes: list[tuple[int, int, int]], dtype: torch.dtype = torch.float32, empty_row: bool = False) -> int:
        fn = learner_function(module, "mean_pool")
        for n, (B, T, C) in enumerate(shapes, start=1):
            g = _gen(200 + n)
            hidden = torch.randn(B, T, C, generator=g).to(dtype)
            mask = _mask(B, T, g, empty_row)
            case = f"case {n}: mean_pool(hidden {dtype} {(B, T, C)}, attention_mask with {mask.sum(1).tolist()} real tokens)"
            got = call(fn, case, hidden, mask, path=path)
            expected = library_mean_pool(hidden, mask)
            if isinstance(got, torch.Tensor) and got.shape == expected.shape and got.dtype != dtype:
                raise CheckFailed(f"{case}\nexpected dtype {dtype} (hidden's), got {got.dtype}")
            if isinstance(got, torch.Tensor) and bool(torch.isnan(got).any()):
                raise CheckFailed(f"{case}\nthe result holds NaN: a row without real tokens divides by zero")
            expect_tensor(got, expected, "pooled vectors", case, atol=1e-5, rtol=1e-5)
        return len(shapes)

    def padding_invariance() -> int:
        fn = learner_function(module, "mean_pool")
        g = _gen(300)
        hidden = torch.randn(3, 5, 8, generator=g)
        mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 1, 1, 0, 0]])
        case = "the same texts with 4 more padded positions whose vectors are huge"
        alone = call(fn, case, hidden, mask, path=path)
        junk = torch.randn(3, 4, 8, generator=g) * 1e4
        padded = call(fn, case, torch.cat([hidden, junk], dim=1), torch.cat([mask, torch.zeros(3, 4).long()], dim=1),
                      path=path)
        expect_tensor(padded, alone, "pooled vectors with extra padding (must equal those without)", case, atol=1e-4)
        return 1

    return [
        Check("equals minitransformer.embedding_search.mean_pool", lambda: compare([(2, 5, 4), (4, 9, 16), (1, 1, 3)]),
              "(hidden * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)"),
        Check("padding changes nothing: extra padded positions leave every vector as it was", padding_invariance,
              "multiply by the mask before summing, and count only real tokens"),
        Check("a row with no real token gives zeros, not NaN", lambda: compare([(3, 4, 5)], empty_row=True),
              "clamp the count: .clamp(min=1e-9)"),
        Check("float64 stays float64", lambda: compare([(2, 6, 3)], torch.float64), "mask.to(hidden.dtype)"),
    ]


# ==== 10. RoPE =================================================================================
def _library_rotate(x: torch.Tensor, positions: torch.Tensor, base: float) -> torch.Tensor:
    rope = RotaryEmbedding(x.shape[-1], base)
    if x.dtype == torch.float64:
        rope.inv_freq = rope.inv_freq.double()
    cos, sin = rope(positions[None])  # (1, 1, T, d)
    return apply_rotary(x, cos[0, 0].to(x.dtype), sin[0, 0].to(x.dtype))  # (T, d) against x's (..., T, d)


def checks_rotary(module: ModuleType, path: Path) -> list[Check]:
    def compare(cases: list[tuple[tuple[int, ...], float]], dtype: torch.dtype = torch.float32) -> int:
        fn = learner_function(module, "rotate")
        for n, (shape, base) in enumerate(cases, start=1):
            g = _gen(400 + n)
            x = torch.randn(shape, generator=g).to(dtype)
            positions = torch.randint(0, 200, (shape[-2],), generator=g)
            case = f"case {n}: rotate(x {dtype} {shape}, positions {positions.tolist()[:6]}..., base={base})"
            got = call(fn, case, x, positions, base, path=path)
            if isinstance(got, torch.Tensor) and got.shape == x.shape and got.dtype != dtype:
                raise CheckFailed(f"{case}\nexpected dtype {dtype} (x's), got {got.dtype}")
            expect_tensor(got, _library_rotate(x, positions, base), "rotated x", case, atol=1e-4, rtol=1e-4)
        return len(cases)

    def offsets_only() -> int:
        fn = learner_function(module, "rotate")
        g = _gen(500)
        q, k = torch.randn(2, 1, 8, generator=g, dtype=torch.float64)
        case = "q at position 3, k at 10, then both 37 positions later: q·k must not change"
        near = (call(fn, case, q, torch.tensor([3]), 10000.0, path=path)
                * call(fn, case, k, torch.tensor([10]), 10000.0, path=path)).sum()
        far = (call(fn, case, q, torch.tensor([40]), 10000.0, path=path)
               * call(fn, case, k, torch.tensor([47]), 10000.0, path=path)).sum()
        expect_tensor(far, near, "the score q·k", case, atol=1e-8)
        return 1

    return [
        Check("equals minitransformer's RotaryEmbedding + apply_rotary",
              lambda: compare([((1, 5, 8), 10000.0), ((2, 3, 7, 16), 10000.0), ((4, 2), 500.0)]),
              "pair feature i with feature i + d/2 (halves), angle positions[t] · base^(-2i/d)"),
        Check("a score depends only on the offset between query and key", offsets_only,
              "turn both q and k, each by its own position's angles"),
        Check("float64 stays float64",
              lambda: compare([((3, 6), 10000.0)], torch.float64), "cos/sin in x's dtype"),
    ]
