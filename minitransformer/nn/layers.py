"""Encoder and decoder layers: attention and feed-forward sub-layers joined by residual connections.

Each sub-layer is wrapped as in Vaswani et al. 2017 §3.1, in one of two orders:

- post-LN (original Transformer, BERT):  x = Norm(x + Dropout(Sublayer(x)))
- pre-LN  (GPT-2, T5):                   x = x + Dropout(Sublayer(Norm(x)))

Pre-LN keeps an un-normalised "residual stream" running through the stack, which trains more
stably when deep; such stacks end with one final norm (the family adds it).

An encoder layer is self-attention + feed-forward. A decoder layer is *causal* self-attention,
optionally cross-attention to the encoder output (T5; GPT has none), then feed-forward.
"""
from __future__ import annotations

import torch
from torch import nn

from minitransformer.nn.attention import KVCache, MultiHeadAttention
from minitransformer.nn.dropout import Dropout
from minitransformer.nn.feedforward import FeedForward
from minitransformer.nn.norms import make_norm


class EncoderLayer(nn.Module):
    """Self-attention + feed-forward, each with a residual connection and a norm (pre- or post-).

    ``dropout`` is the residual dropout; ``attn_dropout`` drops attention weights; ``ffn_dropout``
    is the feed-forward's inner dropout (T5 only). ``parallel=True`` (pre-LN only) lets both
    sub-layers read the same input, ``x + Attn(LN(x)) + FFN(LN'(x))``, as GPT-J and GPT-NeoX do
    (Wang & Komatsuzaki 2021): the two can run side by side.
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        d_ff: int,
        d_head: int | None = None,
        dropout: float = 0.1,
        attn_dropout: float | None = None,
        ffn_dropout: float = 0.0,
        activation: str = "gelu",
        norm: str = "layernorm",
        norm_eps: float = 1e-5,
        bias: bool = True,
        pre_norm: bool = True,
        attn_scale: float | None = None,
        backend: str = "sdpa",
        parallel: bool = False,
    ) -> None:
        super().__init__()
        if parallel and not pre_norm:
            raise ValueError("a parallel layer (both sub-layers read the same input) is pre-LN; got pre_norm=False")
        self.pre_norm, self.parallel = pre_norm, parallel
        self.norm_kind, self.norm_eps, self.bias = norm, norm_eps, bias
        attn_dropout = dropout if attn_dropout is None else attn_dropout
        self.self_attn = MultiHeadAttention(d_model, n_heads, d_head, bias=bias, dropout=attn_dropout,
                                            backend=backend, scale=attn_scale)
        self.self_attn_norm = make_norm(norm, d_model, norm_eps, bias)
        self.ffn = FeedForward(d_model, d_ff, activation, bias=bias, dropout=ffn_dropout)
        self.ffn_norm = make_norm(norm, d_model, norm_eps, bias)
        self.dropout = Dropout(dropout)

    def _pre(self, x: torch.Tensor, norm: nn.Module) -> torch.Tensor:
        """What the sub-layer sees: the normalised stream (pre-LN) or the stream itself (post-LN)."""
        return norm(x) if self.pre_norm else x

    def _add(self, x: torch.Tensor, y: torch.Tensor, norm: nn.Module) -> torch.Tensor:
        """Residual connection around a sub-layer whose output is y."""
        x = x + self.dropout(y)
        return x if self.pre_norm else norm(x)

    def _parallel(self, x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """``parallel=True``: the attention output a and the feed-forward of the same x, both added to x."""
        return x + self.dropout(a) + self.dropout(self.ffn(self.ffn_norm(x)))

    def forward(self, x: torch.Tensor, attn_bias: torch.Tensor | None = None,
                need_weights: bool = False,
                rotary: tuple[torch.Tensor, torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x (B, T, C) -> (B, T, C), and the attention weights (B, h, T, T) if asked; ``rotary``: RoPE's angles."""
        a, weights = self.self_attn(self._pre(x, self.self_attn_norm), attn_bias=attn_bias,
                                    need_weights=need_weights, rotary=rotary)
        if self.parallel:
            return self._parallel(x, a), weights
        x = self._add(x, a, self.self_attn_norm)
        x = self._add(x, self.ffn(self._pre(x, self.ffn_norm)), self.ffn_norm)
        return x, weights


class DecoderLayer(EncoderLayer):
    """Causal self-attention, then (if ``cross_attention``) attention to the encoder output, then feed-forward."""

    def __init__(self, d_model: int, n_heads: int, d_ff: int, cross_attention: bool = False, **kwargs) -> None:
        super().__init__(d_model, n_heads, d_ff, **kwargs)
        self.cross_attn = None
        if cross_attention and self.parallel:
            raise ValueError("a parallel layer has no cross-attention (there is no third sub-layer to run beside)")
        if cross_attention:
            sa = self.self_attn
            self.cross_attn = MultiHeadAttention(d_model, n_heads, sa.d_head, bias=self.bias, dropout=sa.dropout,
                                                 backend=sa.backend, scale=sa.scale, cross_attention=True)
            self.cross_attn_norm = make_norm(self.norm_kind, d_model, self.norm_eps, self.bias)

    def forward(
        self,
        x: torch.Tensor,
        attn_bias: torch.Tensor | None = None,
        memory: torch.Tensor | None = None,
        memory_bias: torch.Tensor | None = None,
        self_cache: KVCache | None = None,
        cross_cache: KVCache | None = None,
        need_weights: bool = False,
        rotary: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x (B, T, C); memory (B, S, C) -> (B, T, C), and the self-attention weights if asked.

        ``attn_bias`` is added to the self-attention scores (padding, position bias), on top of
        the causal mask; ``memory_bias`` to the cross-attention scores (encoder padding). ``rotary``
        is RoPE's (cos, sin) for the new positions, applied in self-attention.
        """
        a, weights = self.self_attn(self._pre(x, self.self_attn_norm), attn_bias=attn_bias, is_causal=True,
                                    cache=self_cache, need_weights=need_weights, rotary=rotary)
        if self.parallel:  # GPT-J / GPT-NeoX: the feed-forward reads the layer's input too
            return self._parallel(x, a), weights
        x = self._add(x, a, self.self_attn_norm)
        if self.cross_attn is not None:
            c, _ = self.cross_attn(self._pre(x, self.cross_attn_norm), memory=memory, attn_bias=memory_bias,
                                   cache=cross_cache)
            x = self._add(x, c, self.cross_attn_norm)
        x = self._add(x, self.ffn(self._pre(x, self.ffn_norm)), self.ffn_norm)
        return x, weights


class DecoderCache:
    """The KV caches of a whole decoder stack during generation: one per layer (and per cross-attention)."""

    def __init__(self, n_layers: int, cross_attention: bool = False) -> None:
        self.self_attn = [KVCache() for _ in range(n_layers)]
        self.cross_attn = [KVCache() for _ in range(n_layers)] if cross_attention else [None] * n_layers

    @property
    def length(self) -> int:
        """How many positions are cached (the next token's position)."""
        return self.self_attn[0].length

    def reorder(self, index: torch.Tensor) -> None:
        """Keep batch rows ``index`` in every cache (beam search)."""
        for cache in self.self_attn + self.cross_attn:
            if cache is not None:
                cache.reorder(index)
