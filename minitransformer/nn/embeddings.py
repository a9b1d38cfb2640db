"""Turning token ids into vectors, and telling the model where each token sits.

Attention itself is blind to order (it is a weighted sum over a set), so every family adds
position information somewhere: GPT and BERT add a learned vector per absolute position, the
original Transformer adds fixed sinusoids (Vaswani et al. 2017 §3.5), and T5 adds a learned bias
to the attention scores instead (see ``position.py``).
"""
from __future__ import annotations

import math
import numbers

import torch
import torch.nn.functional as F
from torch import nn

from minitransformer.checks import check_int


def check_ids(ids: torch.Tensor, size: int, what: str = "input_ids") -> None:
    """Raise a clear error for ids that are not a (B, T) integer tensor with values in [0, size)."""
    if not isinstance(ids, torch.Tensor):
        raise TypeError(f"{what} must be a torch.Tensor, got {type(ids).__name__}")
    if ids.dtype not in (torch.int64, torch.int32):  # what an embedding lookup accepts
        raise TypeError(f"{what} must be an integer tensor of dtype torch.long (or torch.int32), got {ids.dtype}")
    if ids.dim() != 2:
        raise ValueError(f"{what} must have shape (batch, seq_len), got {tuple(ids.shape)}")
    if ids.numel():
        lo, hi = torch.stack(torch.aminmax(ids)).tolist()  # one device sync, not two
        if lo < 0 or hi >= size:
            raise ValueError(f"{what} must be in [0, {size}), got values in [{lo}, {hi}]")


PAD_SCORE = -65504.0  # float16's lowest finite number: finite in every float dtype, far below any real score


def padded_vocab_logits(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                        multiple_of: int | None = None) -> torch.Tensor:
    """Scores over the vocabulary, ``x @ weightᵀ (+ bias)``, with the vocabulary padded for fast GPU kernels.

    (..., C) with weight (V, C) -> (..., V + pad), where pad = ``-V % multiple_of``. The first V
    columns are the scores; the pad columns hold ``PAD_SCORE``, so a softmax or cross-entropy over
    all V + pad columns gives them probability exactly 0 (exp underflows) and sends them no
    gradient: the loss and every gradient are those of the V real columns.

    Why: on a GPU a half-precision matrix multiply whose rows are not a multiple of 8 elements
    (16 bytes) misses cuBLAS's fast tensor-core kernels, and the LM head's rows are V long. GPT-2's
    50,257 and BERT's 30,522 are not multiples of 8; for GPT-2 124M on an H200 the unaligned head
    made the whole eager training step 1.45-1.5x slower (benchmarks/results/gpt2_gpu.md). nanoGPT pads
    the vocabulary itself to 50,304, which adds classes the model can predict; this does not.
    ``multiple_of=None`` means 8 on a GPU and 1 (plain ``F.linear``, no padding) on the CPU.
    """
    if multiple_of is None:
        multiple_of = 1 if x.device.type == "cpu" else 8
    check_int("multiple_of", multiple_of, 1)
    pad = -weight.shape[0] % multiple_of
    if pad == 0:
        return F.linear(x, weight, bias)
    weight = F.pad(weight, (0, 0, 0, pad))  # (V + pad, C): zero rows, so the pad scores are the bias
    if bias is None:
        bias = torch.zeros(weight.shape[0] - pad, dtype=weight.dtype, device=weight.device)
    bias = F.pad(bias, (0, pad), value=PAD_SCORE)  # (V + pad,)
    return F.linear(x, weight, bias)  # (..., V + pad); the bias add is fused into the product


def vocab_logits(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                 multiple_of: int | None = None) -> torch.Tensor:
    """``x @ weightᵀ (+ bias)`` -> (..., V), through ``padded_vocab_logits`` (on a GPU a view, not contiguous)."""
    return padded_vocab_logits(x, weight, bias, multiple_of)[..., :weight.shape[0]]


class TiedGradient:
    """One forward pass's hand-over of a tied matrix's gradient from the output head to the input lookup.

    A tied model (Press & Wolf 2017) uses one (V, C) matrix twice: to look tokens up at the start
    and to score the vocabulary at the end. Autograd then computes two gradients for it and adds
    them: the head's, a dense (V, C) table, and the lookup's, which touches only the rows of the ids
    used. That addition is not free: PyTorch adds a sparse lookup gradient into the head's table
    out of place (a full copy of the table) and builds a dense one as a second full table. With
    ``tied_lookup`` and ``tied_logits`` sharing one ``TiedGradient``, the head's backward (which
    runs first: the head comes last in the forward pass) leaves its table here, and the lookup's
    backward adds its rows into that table in place and returns it as the matrix's gradient. Same
    values, one table, no copy; the whole gradient reaches the matrix through the lookup, so
    ``torch.autograd.grad``, gradient hooks and DDP see it complete. If the head is not part of the
    loss, the lookup builds its own table.
    """

    def __init__(self) -> None:
        self.head_grad: torch.Tensor | None = None  # (V, C), set by tied_logits' backward


class _TiedLookup(torch.autograd.Function):
    @staticmethod
    def forward(ctx, ids: torch.Tensor, weight: torch.Tensor, carry: TiedGradient) -> torch.Tensor:
        ctx.save_for_backward(ids)
        ctx.carry, ctx.table_shape = carry, weight.shape
        return F.embedding(ids, weight)  # (..., C)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        (ids,) = ctx.saved_tensors
        table, ctx.carry.head_grad = ctx.carry.head_grad, None  # take it: no reference may stay behind
        if table is None:  # the head was not in this loss
            table = grad_out.new_zeros(ctx.table_shape)
        table.index_add_(0, ids.reshape(-1), grad_out.reshape(-1, grad_out.shape[-1]))  # (V, C), in place
        return None, table, None


class _TiedLogits(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, carry: TiedGradient) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.carry = carry
        return F.linear(x, weight)  # (..., V)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        x, weight = ctx.saved_tensors
        flat = grad_out.reshape(-1, grad_out.shape[-1])  # (N, V)
        ctx.carry.head_grad = flat.t().mm(x.reshape(-1, x.shape[-1]))  # (V, C): for the lookup to finish
        return grad_out @ weight, None, None  # the weight's gradient travels with the lookup's


def tied_lookup(ids: torch.Tensor, weight: torch.Tensor, carry: TiedGradient) -> torch.Tensor:
    """``F.embedding(ids, weight)`` whose backward completes the tied gradient (see ``TiedGradient``)."""
    return _TiedLookup.apply(ids, weight, carry)


def tied_logits(x: torch.Tensor, weight: torch.Tensor, carry: TiedGradient) -> torch.Tensor:
    """``F.linear(x, weight)`` that hands its weight gradient to ``tied_lookup`` (see ``TiedGradient``)."""
    return _TiedLogits.apply(x, weight, carry)


class TokenEmbedding(nn.Embedding):
    """A lookup table: id -> learned d_model vector (Vaswani et al. 2017 §3.4). (B, T) -> (B, T, C)."""

    def __init__(self, vocab_size: int, d_model: int, padding_idx: int | None = None) -> None:
        super().__init__(vocab_size, d_model, padding_idx=padding_idx)


def check_new_vocab_size(new_vocab_size: object, **token_ids: int | None) -> int:
    """``new_vocab_size`` as an int, once it is a valid size and every given special-token id lies below it.

    ``check_new_vocab_size(n, eos_token_id=cfg.eos_token_id)``: TypeError for a non-integer (a bool
    too), ValueError for a size < 1 or for an id (None: not set) that the new vocabulary would
    no longer hold. A model calls it before it changes anything, so a refused resize leaves it whole.
    """
    if isinstance(new_vocab_size, bool) or not isinstance(new_vocab_size, numbers.Integral):
        raise TypeError(f"new_vocab_size must be an integer, got {type(new_vocab_size).__name__} {new_vocab_size!r}")
    if new_vocab_size < 1:
        raise ValueError(f"new_vocab_size must be >= 1, got {new_vocab_size}")
    for name, token_id in token_ids.items():
        if token_id is not None and token_id >= new_vocab_size:
            raise ValueError(f"cannot resize the vocabulary to new_vocab_size={new_vocab_size}: the config's "
                             f"{name}={token_id} would lie outside it (the new ids are 0 to {new_vocab_size - 1}); "
                             "change that id first")
    return int(new_vocab_size)


def resize_vocab_rows(table: nn.Parameter, new_vocab_size: int) -> nn.Parameter:
    """A vocabulary-indexed parameter with ``new_vocab_size`` rows: a matrix (V, C) -> (V', C), a bias (V,) -> (V',).

    Growing keeps the V old rows exactly and starts every new row at the mean of the old rows
    (Hewitt 2021, "Initializing New Word Embeddings for Pretrained Language Models"). For an
    output matrix W and bias b, a new token's score is then h·mean(W) + mean(b): the average of
    the old tokens' scores, for every hidden state h. As exp(average) <= average of exp (Jensen),
    a new token gets no more probability than an average old one, the k new tokens together at
    most k / (V + k), and the old tokens' probabilities barely move. A zero-mean random row
    scores about 0 instead, and a trained model's scores can all lie far below 0 (Hewitt's
    point): the new tokens could then take most of the probability. (transformers' default
    ``mean_resizing=True`` draws around the same mean with 1e-9 times the old rows' covariance,
    i.e. adds negligible noise.) The mean is accumulated in float32.

    Shrinking keeps the first V' rows (the ids of the tokens added last are the ones dropped).
    The result is a new Parameter with the table's dtype, device and ``requires_grad``; a table
    that already has V' rows is returned as it is (the same Parameter).
    """
    check_int("new_vocab_size", new_vocab_size, 1)
    old = table.shape[0]
    if new_vocab_size == old:
        return table
    with torch.no_grad():
        rows = [table[:new_vocab_size]]  # (min(V, V'), ...): the old rows, unchanged
        if new_vocab_size > old:
            mean = table.mean(dim=0, dtype=torch.float32).to(table.dtype)  # (C,) or () for a bias
            rows.append(mean.expand(new_vocab_size - old, *table.shape[1:]))  # (V' - V, ...)
        resized = torch.cat(rows)  # (V', ...): new memory, so the old table can be freed
    return nn.Parameter(resized, requires_grad=table.requires_grad)


class LearnedPositionalEmbedding(nn.Embedding):
    """One learned vector per absolute position 0..max_len-1 (GPT, BERT).

    ``offset`` shifts the positions: RoBERTa numbers real tokens from ``padding_idx + 1``, so
    its table has ``max_seq_len + offset`` rows.
    """

    def __init__(self, max_len: int, d_model: int, offset: int = 0) -> None:
        super().__init__(max_len + offset, d_model)
        self.max_len, self.offset = max_len, offset

    def forward(self, positions: torch.Tensor, check: bool = True) -> torch.Tensor:  # (B|1, T) -> (B|1, T, C)
        """``check=False`` skips the range check, for positions the model built from a length it checked."""
        # (the check reads the tensor back to the CPU: on a GPU the host waits for the device there,
        # and torch.compile would break its graph)
        if check and not torch.compiler.is_compiling() and positions.numel() and int(positions.max()) >= self.max_len:
            raise ValueError(f"sequence position {int(positions.max())} is beyond the position table "
                             f"(max_seq_len={self.max_len})")
        return super().forward(positions + self.offset)


class SinusoidalPositionalEncoding(nn.Module):
    """Fixed sines and cosines of geometrically spaced frequencies (Vaswani et al. 2017 §3.5).

    PE[pos, 2i] = sin(pos / 10000^(2i/C)),  PE[pos, 2i+1] = cos(pos / 10000^(2i/C)).
    Nothing is learned; relative offsets become linear maps of the encodings.
    """

    def __init__(self, max_len: int, d_model: int) -> None:
        super().__init__()
        self.max_len = max_len
        position = torch.arange(max_len, dtype=torch.float32).unsqueeze(1)  # (L, 1)
        inv_freq = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model))
        pe = torch.zeros(max_len, d_model)
        pe[:, 0::2] = torch.sin(position * inv_freq)
        pe[:, 1::2] = torch.cos(position * inv_freq[: d_model // 2])
        self.register_buffer("pe", pe, persistent=False)  # (L, C)

    def forward(self, positions: torch.Tensor, check: bool = True) -> torch.Tensor:  # (B|1, T) -> (B|1, T, C)
        """``check=False`` skips the range check, as in ``LearnedPositionalEmbedding``."""
        if check and not torch.compiler.is_compiling() and positions.numel() and int(positions.max()) >= self.max_len:
            raise ValueError(f"sequence position {int(positions.max())} is beyond max_len={self.max_len}")
        return self.pe[positions]


class SegmentEmbedding(nn.Embedding):
    """BERT's token-type (segment) embedding: which sentence of a pair a token belongs to (Devlin et al. 2019 §3)."""

    def __init__(self, type_vocab_size: int, d_model: int) -> None:
        super().__init__(type_vocab_size, d_model)
