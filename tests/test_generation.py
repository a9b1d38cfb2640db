"""Sampling pieces (top-k, top-p, temperature, seeds), the decoding loop, and GPT.generate's contract."""
from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from minitransformer.generation import (
    check_sampling_args,
    decode_loop,
    filter_top_k,
    filter_top_p,
    left_pad,
    sample_next_token,
)
from minitransformer.models.config import GPTConfig
from minitransformer.models.gpt import GPT


def tiny(seed: int = 0, **kw) -> GPT:
    torch.manual_seed(seed)
    base = dict(vocab_size=41, max_seq_len=24, d_model=24, n_layers=2, n_heads=2, dropout=0.0)
    return GPT(GPTConfig(**{**base, **kw})).eval()


logit_rows = st.lists(st.floats(-20, 20, allow_nan=False, width=32), min_size=2, max_size=30)


# ---- top-k --------------------------------------------------------------------------------------
@given(logits=logit_rows, k=st.integers(1, 40))
def test_filter_top_k_keeps_exactly_the_k_largest(logits, k):
    x = torch.tensor([logits])
    out = filter_top_k(x, k)[0]
    kept = torch.isfinite(out)
    assert kept.sum().item() == min(k, len(logits))
    assert torch.all(out[~kept] == float("-inf"))  # -inf, not a large negative number
    assert torch.equal(out[kept], x[0][kept])
    if kept.sum() < len(logits):  # nothing dropped is larger than anything kept
        assert x[0][~kept].max() <= x[0][kept].min()


@given(seed=st.integers(0, 2**31 - 1), k=st.integers(1, 5))
def test_top_k_never_samples_outside_the_k_most_likely(seed, k):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(8, 30, generator=g) * 3
    allowed = logits.topk(k, dim=-1).indices  # (8, k)
    for _ in range(5):
        tok = sample_next_token(logits, temperature=1.5, top_k=k, generator=g)
        assert (allowed == tok[:, None]).any(-1).all()


# ---- top-p --------------------------------------------------------------------------------------
def nucleus(probs: list[float], p: float) -> set[int]:
    """Independent reference: walk tokens by decreasing probability until the mass reaches p."""
    order = sorted(range(len(probs)), key=lambda i: -probs[i])
    chosen, mass = set(), 0.0
    for i in order:
        chosen.add(i)
        mass += probs[i]
        if mass >= p:
            break
    return chosen


@given(seed=st.integers(0, 2**31 - 1), p=st.floats(0.05, 1.0))
def test_filter_top_p_is_the_nucleus(seed, p):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(1, 25, generator=g, dtype=torch.float64) * 2
    probs = torch.softmax(logits, -1)[0].tolist()
    kept = set(torch.isfinite(filter_top_p(logits, p)[0]).nonzero().flatten().tolist())
    ref = nucleus(probs, p)
    # rounding may move a token whose cumulative mass sits right at p; allow only that
    assert kept == ref or abs(sum(sorted(probs, reverse=True)[: min(len(kept), len(ref))]) - p) < 1e-6


@given(seed=st.integers(0, 2**31 - 1), p=st.floats(0.05, 0.95))
def test_top_p_never_samples_outside_the_nucleus(seed, p):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(6, 20, generator=g) * 2
    tok = sample_next_token(logits, top_p=p, generator=g)
    for row, t in zip(torch.softmax(logits.double(), -1).tolist(), tok.tolist(), strict=True):
        order = sorted(range(len(row)), key=lambda i: -row[i])
        rank = order.index(t)
        assert sum(row[i] for i in order[:rank]) < p + 1e-6  # the mass ranked above t had not reached p


def test_top_p_one_keeps_everything_and_top_token_always_survives():
    logits = torch.tensor([[5.0, 1.0, 0.0, -1.0]])
    assert torch.equal(filter_top_p(logits, 1.0), logits)
    assert torch.isfinite(filter_top_p(logits, 1e-9)).sum() == 1


# ---- temperature, seeds --------------------------------------------------------------------------
@given(seed=st.integers(0, 2**31 - 1))
def test_zero_and_tiny_temperature_equal_greedy(seed):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(5, 17, generator=g) * 2
    greedy = logits.argmax(-1)
    assert torch.equal(sample_next_token(logits, temperature=0.0), greedy)
    assert torch.equal(sample_next_token(logits, do_sample=False, temperature=3.0, top_k=2), greedy)
    assert torch.equal(sample_next_token(logits, temperature=1e-4, generator=g), greedy)
    assert torch.equal(sample_next_token(logits, temperature=1e-40, generator=g), greedy)  # used to be NaN


def test_temperature_zero_generation_equals_greedy():
    model = tiny()
    prompt = torch.tensor([[1, 2, 3]])
    assert torch.equal(model.generate(prompt, max_new_tokens=10, temperature=0.0),
                       model.generate(prompt, max_new_tokens=10, do_sample=False))


def test_same_seed_same_sample():
    model = tiny()
    prompt = torch.tensor([[5, 6, 7], [8, 9, 10]])
    runs = [model.generate(prompt, max_new_tokens=15, top_k=10, top_p=0.9,
                           generator=torch.Generator().manual_seed(s)) for s in (123, 123, 124)]
    assert torch.equal(runs[0], runs[1])
    assert not torch.equal(runs[0], runs[2])
    # the cache does not change what is sampled
    assert torch.equal(runs[0], model.generate(prompt, max_new_tokens=15, top_k=10, top_p=0.9, use_cache=False,
                                               generator=torch.Generator().manual_seed(123)))


# ---- the loop: eos, streaming ----------------------------------------------------------------------
def test_decode_loop_stops_rows_at_eos_and_pads():
    # row 0 says 3 then eos (9); row 1 never says eos
    script = {0: [3, 9, 4, 4, 4], 1: [1, 2, 1, 2, 1]}

    def logits_for(step: int) -> torch.Tensor:
        out = torch.zeros(2, 10)
        for row in (0, 1):
            out[row, script[row][step]] = 5.0
        return out

    calls = []

    def step(next_ids):
        calls.append(next_ids.tolist())
        return logits_for(len(calls))

    streamed = []
    new = decode_loop(step, logits_for(0), max_new_tokens=5, do_sample=False, eos_token_id=9, pad_token_id=0,
                      streamer=streamed.append)
    assert new.tolist() == [[3, 9, 0, 0, 0], [1, 2, 1, 2, 1]]
    assert torch.equal(torch.stack(streamed, 1), new)


def test_generation_stops_when_every_row_is_done():
    model = tiny()
    prompt = torch.tensor([[1, 2, 3], [4, 5, 6]])
    free = model.generate(prompt, max_new_tokens=8, do_sample=False)
    eos = int(free[0, 4])  # the second token greedy produces for row 0
    out = model.generate(prompt, max_new_tokens=8, do_sample=False, eos_token_id=eos)
    row0 = out[0, 3:].tolist()
    assert row0[:2] == free[0, 3:5].tolist() and all(t == eos for t in row0[1:])
    assert out.shape[1] <= free.shape[1]
    if eos not in free[1, 3:].tolist():
        assert torch.equal(out[1], free[1])


def test_streamer_receives_every_new_token_in_order():
    model = tiny()
    got = []

    class Collector:  # Hugging Face-style streamer with put/end
        ended = False

        def put(self, ids):
            got.append(ids.clone())

        def end(self):
            Collector.ended = True

    out = model.generate(torch.tensor([[1, 2]]), max_new_tokens=6, do_sample=False, streamer=Collector())
    assert Collector.ended and torch.equal(torch.stack(got, 1), out[:, 2:])


# ---- batches, cache, sliding window ----------------------------------------------------------------
def test_padded_batch_generates_like_each_prompt_alone():
    model = tiny(seed=1)
    prompts = [[3, 1, 4, 1, 5, 9, 2], [6, 5], [3, 5, 8, 9]]
    ids, mask = left_pad(prompts, pad_token_id=0)
    for use_cache in (True, False):
        batch = model.generate(ids, attention_mask=mask, max_new_tokens=10, do_sample=False, use_cache=use_cache)
        for i, p in enumerate(prompts):
            alone = model.generate(torch.tensor([p]), max_new_tokens=10, do_sample=False)
            assert batch[i, -10:].tolist() == alone[0, -10:].tolist()


def test_sliding_window_past_the_context():
    model = tiny(seed=2)  # context 24
    long_prompt = torch.randint(0, 41, (2, 30), generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="sliding_window"):
        model.generate(long_prompt, max_new_tokens=5)
    with pytest.raises(ValueError, match="sliding_window"):
        model.generate(long_prompt[:, :20], max_new_tokens=5)
    cached = model.generate(long_prompt, max_new_tokens=12, do_sample=False, sliding_window=True)
    plain = model.generate(long_prompt, max_new_tokens=12, do_sample=False, sliding_window=True, use_cache=False)
    assert torch.equal(cached, plain) and cached.shape == (2, 42)
    # the first new token depends only on the last 24 prompt tokens
    first = model(long_prompt[:, -24:]).logits[:, -1].argmax(-1)
    assert torch.equal(cached[:, 30], first)
    # a window that starts inside the prompt and slides during generation, with the cache
    short = long_prompt[:, :20]
    assert torch.equal(model.generate(short, max_new_tokens=10, do_sample=False, sliding_window=True),
                       model.generate(short, max_new_tokens=10, do_sample=False, sliding_window=True,
                                      use_cache=False))

    # and a left-padded batch sliding past the context
    ids, mask = left_pad([list(range(1, 21)), [7, 8, 9]])
    assert torch.equal(model.generate(ids, attention_mask=mask, max_new_tokens=10, do_sample=False,
                                      sliding_window=True),
                       model.generate(ids, attention_mask=mask, max_new_tokens=10, do_sample=False,
                                      sliding_window=True, use_cache=False))


def test_generate_restores_training_mode_and_ignores_dropout():
    model = tiny(dropout=0.5).train()
    prompt = torch.tensor([[1, 2, 3]])
    a = model.generate(prompt, max_new_tokens=6, do_sample=False)
    b = model.generate(prompt, max_new_tokens=6, do_sample=False)
    assert torch.equal(a, b) and model.training


# ---- bad input ----------------------------------------------------------------------------------------
def test_bad_generation_input_is_a_clear_error():
    model = tiny()
    ok = torch.tensor([[1, 2, 3]])
    cases = [
        (dict(input_ids=torch.tensor([[1, 41]])), r"\[0, 41\)"),
        (dict(input_ids=torch.tensor([[-1, 2]])), r"\[0, 41\)"),
        (dict(input_ids=torch.zeros(1, 0, dtype=torch.long)), "empty"),
        (dict(input_ids=torch.zeros(1, 25, dtype=torch.long)), "context"),
        (dict(input_ids=ok, top_p=0.0), "top_p"),
        (dict(input_ids=ok, top_p=1.5), "top_p"),
        (dict(input_ids=ok, top_k=0), "top_k"),
        (dict(input_ids=ok, temperature=-0.1), "temperature"),
        (dict(input_ids=ok, max_new_tokens=-1), "max_new_tokens"),
        (dict(input_ids=ok, eos_token_id=41), "eos_token_id"),
        (dict(input_ids=ok, attention_mask=torch.ones(1, 4)), "attention_mask"),
        (dict(input_ids=ok, attention_mask=torch.tensor([[1, 1, 0]])), "left padding"),
        (dict(input_ids=ok, attention_mask=torch.tensor([[2, 1, 1]])), "only 0"),
    ]
    for kwargs, pattern in cases:
        with pytest.raises(ValueError, match=pattern):
            model.generate(**kwargs)
    with pytest.raises(TypeError):
        model.generate(torch.tensor([[1.0, 2.0]]))
    with pytest.raises(ValueError, match="top_k"):
        check_sampling_args(5, 1.0, 2.5, None)
    with pytest.raises(ValueError, match="non-empty"):
        left_pad([[1], []])
    with pytest.raises(TypeError, match="integers"):  # torch.tensor would have made 1.9 into 1
        left_pad([[1.9, 2]])
    with pytest.raises(TypeError, match="integers"):
        left_pad([[1]], pad_token_id=0.5)
    with pytest.raises(TypeError, match="integers"):  # True is 1 to operator.index, but not a token
        left_pad([[True, 2]])
    calls = []
    model.register_forward_hook(lambda *args: calls.append(1))
    for streamer in ("print", type("NoPut", (), {"put": None})()):
        with pytest.raises(TypeError, match="streamer"):
            model.generate(torch.tensor([[1, 2]]), max_new_tokens=2, streamer=streamer)
    assert not calls  # refused before the prompt went through the model


def test_zero_new_tokens_returns_the_prompt():
    model = tiny()
    prompt = torch.tensor([[1, 2, 3]])
    assert torch.equal(model.generate(prompt, max_new_tokens=0), prompt)


def test_a_generator_on_another_device_draws_there(monkeypatch):
    """A CPU torch.Generator with a GPU model: the draw happens where the generator lives (torch.multinomial
    refuses a generator from another device) and the ids come back to the logits' device. Emulated on
    the CPU with a generator that says it lives on the meta device."""
    class ElsewhereGenerator:
        device = torch.device("meta")

    seen = {}

    def fake_multinomial(probs, num_samples, generator=None):
        seen["probs"], seen["generator"] = probs.device, generator.device
        return torch.zeros(probs.shape[0], num_samples, dtype=torch.long)

    monkeypatch.setattr(torch, "multinomial", fake_multinomial)
    ids = sample_next_token(torch.randn(2, 5), generator=ElsewhereGenerator())
    assert seen["probs"] == seen["generator"] == torch.device("meta")
    assert ids.shape == (2,) and ids.device.type == "cpu"
