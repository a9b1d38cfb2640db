"""Turning token ids into vectors, and telling the model where each token sits.

Attention itself is blind to order (it is a weighted sum over a set), so every family adds
position information somewhere: GPT and BERT add a learned vector per absolute position, the
original Transformer adds fixed sinusoids (Vaswani et al. 2017 §3.5), and T5 adds a learned bias
to the attention scores instead (see ``position.py``).
"""
from __future__ import annotations

import math

import torch
from torch import nn


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


class TokenEmbedding(nn.Embedding):
    """A lookup table: id -> learned d_model vector (Vaswani et al. 2017 §3.4). (B, T) -> (B, T, C)."""

    def __init__(self, vocab_size: int, d_model: int, padding_idx: int | None = None) -> None:
        super().__init__(vocab_size, d_model, padding_idx=padding_idx)


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

    def forward(self, positions: torch.Tensor) -> torch.Tensor:  # (B|1, T) -> (B|1, T, C)
        if not torch.compiler.is_compiling() and positions.numel() and int(positions.max()) >= self.max_len:
            raise ValueError(f"sequence position {int(positions.max())} is beyond max_len={self.max_len}")
        return self.pe[positions]


class SegmentEmbedding(nn.Embedding):
    """BERT's token-type (segment) embedding: which sentence of a pair a token belongs to (Devlin et al. 2019 §3)."""

    def __init__(self, type_vocab_size: int, d_model: int) -> None:
        super().__init__(type_vocab_size, d_model)
