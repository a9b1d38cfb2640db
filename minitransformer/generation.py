"""Turning a language model's next-token scores into text: greedy decoding and sampling.

A causal LM gives, for the last position, one logit per vocabulary entry. Generation repeats:
pick a next token from those logits, append it, ask again. How to pick:

- greedy: the most likely token (deterministic; ``do_sample=False`` or ``temperature=0``);
- temperature T: sample from softmax(logits / T); T < 1 sharpens, T > 1 flattens;
- top-k (Fan et al. 2018): sample only among the k most likely tokens;
- top-p / nucleus (Holtzman et al. 2020, §3.1): sample only among the smallest set of most
  likely tokens whose probabilities add up to at least p.

The small pieces (``filter_top_k``, ``filter_top_p``, ``sample_next_token``, ``decode_loop``,
``check_sampling_args``, ``left_pad``) know nothing of any model family; T5's generation and beam
search reuse them. ``generate`` drives a decoder-only model (our GPT) with a KV cache:

- prefill: run the whole prompt once, keeping every layer's keys and values (``DecoderCache``);
- decode: feed only the newest token; its query attends to all cached keys. The causal mask for a
  query shorter than the keys is aligned bottom-right (handled in ``nn.attention``).

Batches of prompts of different lengths are left-padded (``left_pad``) with an attention mask,
so every row's next token lands in the same column; positions count from each row's first real
token, and padded keys are never attended to.
"""
from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from minitransformer.nn.attention import check_padding_mask
from minitransformer.nn.embeddings import check_ids

Streamer = Callable[[torch.Tensor], Any]


# ---- checks ---------------------------------------------------------------------------------
def check_sampling_args(max_new_tokens: int, temperature: float, top_k: int | None, top_p: float | None) -> None:
    """Raise ValueError for settings outside their ranges (see each message)."""
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be an integer >= 0, got {max_new_tokens!r}")
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not temperature >= 0:
        raise ValueError(f"temperature must be a number >= 0 (0 means greedy), got {temperature!r}")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise ValueError(f"top_k must be None or an integer >= 1, got {top_k!r}")
    if top_p is not None and (isinstance(top_p, bool) or not isinstance(top_p, (int, float))
                              or not 0.0 < top_p <= 1.0):
        raise ValueError(f"top_p must be None or a number in (0, 1], got {top_p!r}")


# ---- sampling pieces ------------------------------------------------------------------------
def filter_top_k(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the ``k`` largest logits of each row, set the rest to -inf. (..., V) -> (..., V).

    Exactly k survive even with ties (chosen by ``topk``); -inf, not a large negative number, so
    the filtered tokens get probability exactly 0 after softmax.
    """
    if k >= logits.size(-1):
        return logits
    values, indices = torch.topk(logits, k, dim=-1)  # (..., k)
    return torch.full_like(logits, float("-inf")).scatter(-1, indices, values)


def filter_top_p(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Nucleus filtering: keep the smallest set of most likely tokens whose probability sum is >= p.

    A token survives if the probability mass of the tokens ranked above it is still < p, so the
    most likely token always survives. (..., V) -> (..., V) with -inf outside the nucleus.
    """
    if p >= 1.0:
        return logits
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True)  # (..., V)
    probs = torch.softmax(sorted_logits.float(), dim=-1)
    mass_before = probs.cumsum(dim=-1) - probs  # probability of all tokens ranked higher
    remove_sorted = mass_before >= p
    remove = remove_sorted.scatter(-1, order, remove_sorted)  # back to vocabulary order
    return logits.masked_fill(remove, float("-inf"))


def sample_next_token(logits: torch.Tensor, do_sample: bool = True, temperature: float = 1.0,
                      top_k: int | None = None, top_p: float | None = None,
                      generator: torch.Generator | None = None) -> torch.Tensor:
    """(B, V) logits -> (B,) chosen ids. Greedy when ``do_sample=False`` or ``temperature == 0``.

    Order as in common practice: temperature, then top-k, then top-p, then one multinomial draw
    (from ``generator`` if given, for reproducible samples).
    """
    if not do_sample or temperature == 0:
        return logits.argmax(dim=-1)
    logits = logits.float()
    # The row's maximum is subtracted first (softmax does not change): divided by a tiny temperature,
    # raw logits overflow to inf, and inf - inf is NaN; shifted ones only go to -inf, which is fine.
    logits = (logits - logits.amax(dim=-1, keepdim=True)) / temperature
    if top_k is not None:
        logits = filter_top_k(logits, top_k)
    if top_p is not None:
        logits = filter_top_p(logits, top_p)
    probs = torch.softmax(logits, dim=-1)  # (B, V); filtered entries are exactly 0
    if generator is not None and generator.device.type != probs.device.type:
        # draw where the generator lives (a CPU torch.Generator for a GPU model is the common case)
        return torch.multinomial(probs.to(generator.device), 1, generator=generator).squeeze(-1).to(probs.device)
    return torch.multinomial(probs, num_samples=1, generator=generator).squeeze(-1)


def left_pad(prompts: list[list[int]], pad_token_id: int = 0,
             device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Prompts of different lengths -> (input_ids, attention_mask), both (B, T_max), padded on the left.

    Left padding puts every prompt's last token in the last column, so each row's next token is
    appended in the same place; the mask (1 = real, 0 = padding) keeps padding out of attention.
    """
    if not isinstance(prompts, (list, tuple)) or not all(isinstance(p, (list, tuple)) for p in prompts):
        raise TypeError("left_pad expects a list of prompts, each a list of token ids")
    if not prompts or any(len(p) == 0 for p in prompts):
        raise ValueError("left_pad needs a non-empty list of non-empty prompts")
    try:  # ints (numpy's too) pass; a float would be truncated by torch.tensor, so it is refused
        if any(isinstance(t, bool) for p in (*prompts, [pad_token_id]) for t in p):
            raise TypeError("a bool is not a token id")
        prompts = [[operator.index(t) for t in p] for p in prompts]
        pad_token_id = operator.index(pad_token_id)
    except TypeError as e:
        raise TypeError(f"left_pad: token ids and pad_token_id must be integers ({e})") from None
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for i, p in enumerate(prompts):
        ids[i, width - len(p):] = torch.tensor(p, dtype=torch.long)
        mask[i, width - len(p):] = 1
    return ids.to(device), mask.to(device)


def check_streamer(streamer: Any) -> None:
    """TypeError unless ``streamer`` is None, a callable, or an object with a callable ``put``."""
    if streamer is not None and not (callable(getattr(streamer, "put", None)) or callable(streamer)):
        raise TypeError(f"streamer must be a callable taking the new tokens (B,), or have a put() method; "
                        f"got {type(streamer).__name__}")


def _stream(streamer: Any, tokens: torch.Tensor) -> None:
    """Hand new tokens (B,) to a callback, or to an object with ``put`` (Hugging Face style)."""
    if callable(getattr(streamer, "put", None)):
        streamer.put(tokens)
    else:
        streamer(tokens)


# ---- the decoding loop (any family) ---------------------------------------------------------
def decode_loop(
    step: Callable[[torch.Tensor], torch.Tensor],
    first_logits: torch.Tensor,
    max_new_tokens: int,
    do_sample: bool = True,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    eos_token_id: int | None = None,
    pad_token_id: int | None = None,
    generator: torch.Generator | None = None,
    streamer: Streamer | None = None,
) -> torch.Tensor:
    """Pick tokens one at a time; returns the new tokens (B, n), n <= max_new_tokens.

    ``first_logits`` (B, V) score the first new token; ``step(next_ids (B,))`` must return the
    logits (B, V) for the token after ``next_ids`` (the caller keeps the cache or the sequence).
    A row that has produced ``eos_token_id`` is finished: it gets ``pad_token_id`` (default: the
    eos id) from then on, and the loop stops early when every row is finished.
    """
    check_streamer(streamer)
    B = first_logits.shape[0]
    pad = eos_token_id if pad_token_id is None else pad_token_id
    finished = torch.zeros(B, dtype=torch.bool, device=first_logits.device)
    new_tokens: list[torch.Tensor] = []
    logits = first_logits
    for i in range(max_new_tokens):
        next_ids = sample_next_token(logits, do_sample, temperature, top_k, top_p, generator)  # (B,)
        if eos_token_id is not None:
            next_ids = torch.where(finished, torch.full_like(next_ids, pad), next_ids)
            finished = finished | (next_ids == eos_token_id)
        new_tokens.append(next_ids)
        if streamer is not None:
            _stream(streamer, next_ids)
        if i == max_new_tokens - 1 or (eos_token_id is not None and bool(finished.all())):
            break
        logits = step(next_ids)
    if streamer is not None and hasattr(streamer, "end"):
        streamer.end()
    if not new_tokens:
        return first_logits.new_zeros((B, 0), dtype=torch.long)
    return torch.stack(new_tokens, dim=1)  # (B, n)


# ---- decoder-only models (GPT) --------------------------------------------------------------
def generate(
    model: nn.Module,
    input_ids: torch.Tensor,
    max_new_tokens: int = 50,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    do_sample: bool = True,
    eos_token_id: int | None = None,
    use_cache: bool = True,
    generator: torch.Generator | None = None,
    attention_mask: torch.Tensor | None = None,
    streamer: Streamer | None = None,
    sliding_window: bool = False,
    pad_token_id: int | None = None,
) -> torch.Tensor:
    """Continue each prompt of ``input_ids`` (B, T); returns (B, T + n) ids, prompt included.

    ``model`` is a causal LM with ``config.vocab_size``, ``config.max_seq_len``, ``new_cache()``
    and ``forward(ids, attention_mask=, cache=, last_only=)`` returning ``.logits`` (our GPT).
    ``attention_mask`` (B, T): 1 = real token, 0 = left padding (see ``left_pad``).
    ``streamer``: called with each step's new ids (B,) as they are chosen (or an object with
    ``put``/``end``). A prompt, or prompt + new tokens, longer than the context is an error unless
    ``sliding_window=True``: the model then sees only the last ``max_seq_len`` tokens.
    The model runs in eval mode (dropout off) and is put back in its previous mode afterwards.
    """
    cfg = model.config
    check_ids(input_ids, cfg.vocab_size)
    check_sampling_args(max_new_tokens, temperature, top_k, top_p)
    check_streamer(streamer)  # before the prompt goes through the model
    B, T = input_ids.shape
    if T == 0:
        raise ValueError("the prompt is empty: give at least one token per row (e.g. a BOS/EOS id)")
    for name, value in (("eos_token_id", eos_token_id), ("pad_token_id", pad_token_id)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or not 0 <= value < cfg.vocab_size):
            raise ValueError(f"{name} must be None or an int in [0, {cfg.vocab_size}), got {value!r}")
    if pad_token_id is not None and eos_token_id is None:
        raise ValueError("pad_token_id only fills finished rows; it needs eos_token_id")
    if attention_mask is not None:
        check_padding_mask(attention_mask, (B, T))
        if not bool(attention_mask[:, -1].all()):
            raise ValueError("generation needs left padding: every row's last column must be a real token "
                             "(attention_mask[:, -1] == 1); see minitransformer.generation.left_pad")
        if bool(attention_mask.all()):
            attention_mask = None  # no padding: the faster path without a mask
    max_len = cfg.max_seq_len
    if not sliding_window:
        if T > max_len:
            raise ValueError(f"the prompt has {T} tokens but the context holds {max_len}; shorten it "
                             "or pass sliding_window=True to keep only the last max_seq_len tokens")
        if T + max_new_tokens > max_len:
            raise ValueError(f"prompt ({T}) + max_new_tokens ({max_new_tokens}) = {T + max_new_tokens} tokens "
                             f"exceeds the context max_seq_len={max_len}; lower max_new_tokens or pass "
                             "sliding_window=True")

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            state = _CausalState(model, input_ids, attention_mask, use_cache, max_len)
            new = decode_loop(state.step, state.prefill(), max_new_tokens, do_sample, temperature, top_k,
                              top_p, eos_token_id, pad_token_id, generator, streamer)
    finally:
        model.train(was_training)
    return torch.cat([input_ids, new.to(input_ids.dtype)], dim=1)


class _CausalState:
    """The growing sequence (and KV cache) of a decoder-only model during ``generate``."""

    def __init__(self, model: nn.Module, ids: torch.Tensor, mask: torch.Tensor | None, use_cache: bool,
                 max_len: int) -> None:
        self.model, self.use_cache, self.max_len = model, use_cache, max_len
        self.ids = ids  # (B, L) everything so far
        self.mask = mask  # (B, L) or None when nothing is padded
        self.cache = None

    def _window(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The last max_len tokens (all of them unless sliding past the context)."""
        ids = self.ids[:, -self.max_len:]
        mask = None if self.mask is None else self.mask[:, -self.max_len:]
        return ids, mask

    def _run(self, ids: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        return self.model(ids, attention_mask=mask, cache=self.cache, last_only=True).logits[:, -1, :]  # (B, V)

    def prefill(self) -> torch.Tensor:
        """Run the (windowed) sequence from scratch; with a cache, fill it."""
        self.cache = self.model.new_cache() if self.use_cache else None
        return self._run(*self._window())

    def step(self, next_ids: torch.Tensor) -> torch.Tensor:
        """Append the chosen tokens (B,) and return the logits for the one after them (B, V)."""
        self.ids = torch.cat([self.ids, next_ids[:, None]], dim=1)
        if self.mask is not None:
            self.mask = torch.cat([self.mask, self.mask.new_ones(self.mask.shape[0], 1)], dim=1)
        if self.cache is None or self.cache.length + 1 > self.max_len:
            # No cache, or the window slid past the context: positions shift, so start over.
            return self.prefill()
        return self._run(self.ids[:, -1:], self.mask)  # the cache holds everything before the new token
