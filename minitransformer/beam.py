"""Beam search, written once for any model that can score a next token.

It only needs a *step function*::

    next_token_logits(sequences: LongTensor (N, t)) -> FloatTensor (N, V)

that returns the scores of the token after each row's ``t`` tokens. A model with a KV cache
feeds only the tokens it has not seen yet; beam search then calls ``reorder(rows)`` whenever
it decides which hypotheses survive, so the cache follows them (``DecoderCache.reorder``).
(Greedy decoding and sampling, one hypothesis per input, are ``minitransformer.generation``'s.)

Beam search (e.g. Sutskever et al. 2014; Wu et al. 2016 §7) keeps the ``K`` best partial
outputs per input instead of the single best one. Each step every hypothesis is extended by
every token; the ``2K`` best extensions by total log-probability are kept, those ending in
``eos`` (or reaching the length limit) become *finished* candidates scored
``sum log p / len ** length_penalty``, and the best ``K`` unfinished ones continue. We follow
Hugging Face ``transformers``' semantics step for step, so that with the same model both give the
same outputs:

- ``length_penalty`` > 0 favours longer outputs, < 0 shorter ones; ``len`` counts the generated
  tokens, eos included (not the prompt);
- ``early_stopping=True``: an input is done once it has ``K`` finished hypotheses;
  ``False``: done when the best running hypothesis, scored at its current length, can no longer
  beat the worst finished one (a heuristic); ``"never"``: the same test, but with a positive
  length penalty the running hypothesis is scored at the maximum length (the canonical rule).
"""
from __future__ import annotations

from collections.abc import Callable

import torch

from minitransformer.checks import check_number

StepFn = Callable[[torch.Tensor], torch.Tensor]
NEG = -1.0e9  # "impossible" score; large but finite so that sums stay ordered


def _check_args(input_ids: torch.Tensor, max_new_tokens: int, eos_token_id: int, pad_token_id: int) -> None:
    if not isinstance(input_ids, torch.Tensor) or input_ids.dim() != 2 or 0 in input_ids.shape:
        raise ValueError("input_ids (the prompt) must be a (batch >= 1, prompt_len >= 1) tensor of ids")
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be an integer >= 1, got {max_new_tokens!r}")
    for name, value in (("eos_token_id", eos_token_id), ("pad_token_id", pad_token_id)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} must be a non-negative integer id, got {value!r}")


def _take(tensor: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Pick hypotheses along dim 1: tensor (B, M, ...) and index (B, k) -> (B, k, ...)."""
    while index.dim() < tensor.dim():
        index = index.unsqueeze(-1)
    return torch.take_along_dim(tensor, index, dim=1)


def beam_search(
    next_token_logits: StepFn,
    input_ids: torch.Tensor,
    num_beams: int,
    max_new_tokens: int,
    eos_token_id: int,
    pad_token_id: int,
    length_penalty: float = 1.0,
    early_stopping: bool | str = False,
    reorder: Callable[[torch.Tensor], None] | None = None,
) -> torch.Tensor:
    """Beam search over ``num_beams`` hypotheses per row -> the best finished one per row.

    input_ids (B, P): one prompt per row (for T5 the decoder start token). The step function is
    called on (B * num_beams, t) sequences, beams of a row next to each other (row-major).
    Returns (B, P + n) ids, n <= max_new_tokens; shorter outputs are padded with ``pad_token_id``.
    ``reorder(rows)`` (B * num_beams,) tells a cache which old row each new row continues.
    """
    _check_args(input_ids, max_new_tokens, eos_token_id, pad_token_id)
    if isinstance(num_beams, bool) or not isinstance(num_beams, int) or num_beams < 1:
        raise ValueError(f"num_beams must be an integer >= 1, got {num_beams!r}")
    if early_stopping not in (True, False, "never"):
        raise ValueError(f"early_stopping must be True, False or 'never', got {early_stopping!r}")
    check_number("length_penalty", length_penalty, -100, 100)  # beyond ±100, len ** penalty overflows
    B, P = input_ids.shape
    K, device = num_beams, input_ids.device
    max_len = P + max_new_tokens
    n_candidates = 2 * K  # enough that K unfinished ones remain even if K candidates end in eos
    in_top_k = torch.arange(n_candidates, device=device) < K  # only these may become finished

    # Running hypotheses: (B, K, max_len) ids, padded on the right; their summed log-probabilities.
    running = torch.full((B, K, max_len), pad_token_id, dtype=torch.long, device=device)
    running[:, :, :P] = input_ids[:, None, :]
    running_scores = torch.zeros(B, K, device=device)
    running_scores[:, 1:] = NEG  # all beams start equal: let only the first one expand at step 1
    # The K best finished hypotheses so far (length-normalised scores) and their lengths.
    finished = running.clone()
    finished_scores = torch.full((B, K), NEG, device=device)
    finished_lens = torch.full((B, K), P, dtype=torch.long, device=device)
    is_finished = torch.zeros(B, K, dtype=torch.bool, device=device)  # is slot k a real hypothesis?
    can_improve = torch.ones(B, 1, dtype=torch.bool, device=device)  # may running ones still win?
    row_offset = torch.arange(B, device=device)[:, None] * K  # (B, 1): first flat row of each input

    cur = P
    while True:
        logits = next_token_logits(running[:, :, :cur].reshape(B * K, cur))  # (B*K, V)
        V = logits.shape[-1]
        log_probs = torch.log_softmax(logits.float(), dim=-1).view(B, K, V)
        totals = (log_probs + running_scores[:, :, None]).view(B, K * V)  # every beam x every token

        # 1. the best 2K extensions over all beams of an input
        cand_scores, flat = totals.topk(n_candidates, dim=-1)  # (B, 2K), sorted best first
        cand_beam, cand_token = flat // V, flat % V
        cand = _take(running, cand_beam)  # (B, 2K, max_len)
        cand[:, :, cur] = cand_token
        cand_done = (cand_token == eos_token_id) | (cur + 1 >= max_len)  # (B, 2K)

        # 2. the K best that go on (finished ones are pushed out of the way)
        go_on_scores = cand_scores + cand_done.float() * NEG
        keep = go_on_scores.topk(K, dim=-1).indices  # (B, K)
        running = _take(cand, keep)
        running_scores = _take(go_on_scores, keep)
        source_beam = _take(cand_beam, keep)  # which old beam each new beam continues

        # 3. finished candidates among the top K compete with the finished ones so far
        just_finished = cand_done & in_top_k  # (B, 2K)
        normed = cand_scores / float(cur + 1 - P) ** length_penalty
        normed = normed + (is_finished.all(dim=-1, keepdim=True) & (early_stopping is True)).float() * NEG
        normed = normed + (~can_improve).float() * NEG
        normed = normed + (~just_finished).float() * NEG
        pool_scores = torch.cat([finished_scores, normed], dim=1)  # (B, 3K)
        best = pool_scores.topk(K, dim=-1).indices
        finished = _take(torch.cat([finished, cand], dim=1), best)
        finished_scores = _take(pool_scores, best)
        finished_lens = _take(torch.cat([finished_lens, torch.full_like(cand_token, cur + 1)], dim=1), best)
        is_finished = _take(torch.cat([is_finished, just_finished], dim=1), best)

        if reorder is not None:
            reorder((source_beam + row_offset).view(-1))
        cur += 1

        # 4. can the best running hypothesis still beat the worst finished one?
        if early_stopping == "never" and length_penalty > 0.0:
            best_len = max_len - P  # it may grow to the maximum length, which helps it
        else:
            best_len = cur - P
        best_running = running_scores[:, :1] / float(best_len) ** length_penalty  # (B, 1)
        worst_finished = torch.where(is_finished, finished_scores.min(dim=1, keepdim=True).values,
                                     torch.full_like(finished_scores, NEG))  # (B, K)
        can_improve = can_improve & (best_running > worst_finished).any(dim=-1, keepdim=True)

        all_full = bool(is_finished.all()) and early_stopping is True
        if not bool(can_improve.any()) or all_full or bool(cand_done.all()):
            break

    # The best finished hypothesis of each input; positions after its end still hold pad ids.
    out_len = int(finished_lens[:, 0].max())
    return finished[:, 0, :out_len]  # (B, out_len)
