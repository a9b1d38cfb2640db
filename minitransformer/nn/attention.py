"""Multi-head attention (Vaswani et al. 2017 §3.2), shared by every family.

    Attention(Q, K, V) = softmax(Q Kᵀ · scale + bias) V,     scale = 1/√d_head by default

Each head attends with its own slice of the projections; the heads' outputs are concatenated
and projected back to ``d_model``. One module covers self-attention (queries, keys and values
from the same sequence) and cross-attention (keys and values from the encoder's output).

Masks are expressed in two ways that can be combined:

- ``is_causal=True``: position i may only look at positions <= i (decoders). When the queries
  are the *last* ``Tq`` of ``Tk`` positions (incremental decoding with a KV cache) the mask is
  aligned bottom-right, so query i sits at absolute position ``Tk - Tq + i``.
- ``attn_bias``: an additive float tensor broadcastable to (B, n_heads, Tq, Tk). Padding is a bias
  of a very large negative number on padded keys (see ``padding_bias``); T5 adds its relative
  position bias here too.

Two backends compute the same thing: ``"manual"`` writes the formula out (and can return the
attention weights for plots), ``"sdpa"`` calls PyTorch's fused
``scaled_dot_product_attention``. Tests keep them equal.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from minitransformer.checks import check_int
from minitransformer.nn.dropout import dropout
from minitransformer.nn.position import apply_rotary

BACKENDS = ("manual", "sdpa")


def causal_mask(t_q: int, t_k: int, device: torch.device | None = None) -> torch.Tensor:
    """Boolean (Tq, Tk), True where query i may attend key j: ``j <= i + (Tk - Tq)`` (bottom-right)."""
    q_pos = torch.arange(t_q, device=device).unsqueeze(1) + (t_k - t_q)  # absolute positions of queries
    k_pos = torch.arange(t_k, device=device).unsqueeze(0)
    return k_pos <= q_pos


def check_padding_mask(mask: object, shape: tuple[int, ...], what: str = "attention_mask",
                       check_values: bool = True) -> None:
    """Raise unless ``mask`` is a tensor of ``shape`` holding only 1 (real token) and 0 (padding).

    Every family checks its masks here. A 2 or a 0.9 would not fail later: GPT numbers its positions
    with the mask's running sum, and ``padding_bias`` treats anything non-zero as real.
    ``check_values=False`` skips the value check, which waits for the device (e.g. under torch.compile).
    """
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"{what} must be a torch.Tensor, got {type(mask).__name__}")
    if tuple(mask.shape) != tuple(shape):
        raise ValueError(f"{what} must have shape {tuple(shape)} (1 = real token, 0 = padding), "
                         f"got {tuple(mask.shape)}")
    if check_values and mask.numel() and not bool(((mask == 0) | (mask == 1)).all()):
        raise ValueError(f"{what} must hold only 0 (padding) and 1 (real token)")


def padding_bias(attention_mask: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(B, Tk) mask of 1 = real token, 0 = padding -> additive bias (B, 1, 1, Tk).

    Padded keys get the most negative finite number of ``dtype`` rather than -inf, so a query
    whose keys are all padding gets a uniform (harmless) distribution instead of NaN.
    """
    if attention_mask.dim() != 2:
        raise ValueError(f"attention_mask must be (batch, seq_len), got shape {tuple(attention_mask.shape)}")
    keep = attention_mask.to(torch.bool)[:, None, None, :]
    return torch.zeros(keep.shape, dtype=dtype, device=attention_mask.device).masked_fill(
        ~keep, torch.finfo(dtype).min)


def attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    attn_bias: torch.Tensor | None = None,
    is_causal: bool = False,
    dropout_p: float = 0.0,
    scale: float | None = None,
    backend: str = "sdpa",
    need_weights: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Scaled dot-product attention on (B, h, T, d) tensors -> output (B, h, Tq, d) and, if asked, weights (B, h, Tq, Tk).

    ``need_weights=True`` always uses the manual formula (the fused kernel does not expose them).
    """
    t_q, t_k = q.shape[-2], k.shape[-2]
    if v.shape[-2] != t_k or k.shape[-1] != q.shape[-1]:
        raise ValueError(f"keys and values must have the same length and keys the queries' size: got q "
                         f"{tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}")
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    if is_causal and t_q == 1:
        is_causal = False  # the newest query may see every key: nothing to mask
    # Fold the causal mask into the bias unless the fused kernel can do it alone (square, no bias).
    if is_causal and (attn_bias is not None or t_q != t_k or backend == "manual" or need_weights):
        allowed = causal_mask(t_q, t_k, q.device)  # (Tq, Tk)
        base = attn_bias if attn_bias is not None else torch.zeros((), dtype=q.dtype, device=q.device)
        attn_bias = base.masked_fill(~allowed, torch.finfo(base.dtype).min)
        is_causal = False
    if attn_bias is not None:
        if not attn_bias.is_floating_point():
            raise TypeError(f"attn_bias must be an additive float tensor, got dtype {attn_bias.dtype} "
                            "(turn a boolean mask into a bias with padding_bias or masked_fill)")
        full = (q.shape[0], q.shape[1], t_q, t_k)
        # broadcastable: aligned from the right, every dimension 1 or equal (checked by hand:
        # torch.broadcast_shapes is pure Python and costs more than a small layer's matmuls)
        ok = attn_bias.dim() <= 4 and all(b in (1, f) for b, f in
                                          zip(reversed(attn_bias.shape), reversed(full[4 - attn_bias.dim():]), strict=True))
        if not ok:
            raise ValueError(f"attn_bias of shape {tuple(attn_bias.shape)} does not broadcast to "
                             f"(batch, heads, Tq, Tk) = {full}")

    # PyTorch's fused CPU kernel can neither drop attention weights nor pass a gradient to the bias
    # (T5's learned position bias): then it falls back to the unfused formula, with extra guards for
    # fully-masked rows. In those cases we run the formula below ourselves.
    cpu_fallback = q.device.type == "cpu" and (
        dropout_p > 0 or (attn_bias is not None and attn_bias.requires_grad and torch.is_grad_enabled()))
    if backend == "sdpa" and not need_weights and not cpu_fallback:
        if attn_bias is not None and attn_bias.dtype != q.dtype:
            # the kernel wants the bias in q's dtype; keep "very negative" finite there
            attn_bias = attn_bias.clamp(min=torch.finfo(q.dtype).min).to(q.dtype)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_bias, dropout_p=dropout_p,
                                             is_causal=is_causal, scale=scale)
        return out, None
    if backend not in BACKENDS:
        raise ValueError(f"unknown attention backend {backend!r}; allowed: {', '.join(BACKENDS)}")

    # Scores, bias and softmax in float32: in half precision a score plus the mask's huge negative
    # number could overflow to -inf and turn a fully-masked row into NaN.
    # (Scaling the (Tq, d) queries costs less than scaling the (Tq, Tk) scores; T5 uses scale 1.
    # The scores are a fresh tensor, so the mask and bias are added in place.)
    scores = ((q * scale if scale != 1.0 else q) @ k.transpose(-2, -1)).float()  # (B, h, Tq, Tk)
    if is_causal:
        scores.masked_fill_(~causal_mask(t_q, t_k, q.device), torch.finfo(scores.dtype).min)
    if attn_bias is not None:
        scores.add_(attn_bias)
    weights = torch.softmax(scores, dim=-1).to(q.dtype)  # (B, h, Tq, Tk), rows sum to 1
    out = dropout(weights, dropout_p) @ v  # (B, h, Tq, d)
    return out, weights if need_weights else None


class KVCache:
    """Keys and values of one attention layer, kept between decoding steps.

    In self-attention each step appends the new position's key and value, so a step costs
    O(T) instead of recomputing all T positions. In cross-attention the encoder output's keys
    and values are computed once and reused (``append`` is not used).
    """

    def __init__(self) -> None:
        self.k: torch.Tensor | None = None  # (B, h, T, d)
        self.v: torch.Tensor | None = None

    @property
    def length(self) -> int:
        return 0 if self.k is None else self.k.shape[-2]

    def append(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.k is None:  # copies: k and v may be views into the fused q|k|v output, which would
            self.k, self.v = k.contiguous(), v.contiguous()  # otherwise stay alive (1.5x the cache)
        else:
            self.k = torch.cat([self.k, k], dim=-2)
            self.v = torch.cat([self.v, v], dim=-2)
        return self.k, self.v

    def reorder(self, index: torch.Tensor) -> None:
        """Keep batch rows ``index`` (beam search picks which hypotheses survive)."""
        if self.k is not None:
            self.k = self.k.index_select(0, index)
            self.v = self.v.index_select(0, index)


class MultiHeadAttention(nn.Module):
    """Multi-head self- or cross-attention.

    Self-attention uses one fused projection ``qkv`` (one matrix multiply makes Q, K and V);
    cross-attention projects the queries (``q``) from the decoder and keys/values (``kv``) from
    the encoder output. ``d_head`` defaults to ``d_model // n_heads`` (T5 sets it on its own as
    ``d_kv``); ``scale=None`` means 1/√d_head (T5 uses 1.0 and folds the scale into its init).
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        d_head: int | None = None,
        bias: bool = True,
        dropout: float = 0.0,
        backend: str = "sdpa",
        scale: float | None = None,
        cross_attention: bool = False,
    ) -> None:
        super().__init__()
        if backend not in BACKENDS:
            raise ValueError(f"unknown attention backend {backend!r}; allowed: {', '.join(BACKENDS)}")
        for name, value in (("d_model", d_model), ("n_heads", n_heads), ("d_head", d_head)):
            if value is not None:
                check_int(name, value, 1)
        if d_head is None:
            if d_model % n_heads != 0:
                raise ValueError(f"d_model={d_model} is not divisible by n_heads={n_heads}")
            d_head = d_model // n_heads
        self.n_heads, self.d_head = n_heads, d_head
        self.inner = n_heads * d_head
        self.dropout = dropout
        self.backend = backend
        self.scale = scale
        self.cross_attention = cross_attention
        if cross_attention:
            self.q = nn.Linear(d_model, self.inner, bias=bias)
            self.kv = nn.Linear(d_model, 2 * self.inner, bias=bias)
        else:
            self.qkv = nn.Linear(d_model, 3 * self.inner, bias=bias)
        self.out = nn.Linear(self.inner, d_model, bias=bias)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, h*d) -> (B, h, T, d)
        B, T, _ = x.shape
        return x.view(B, T, self.n_heads, self.d_head).transpose(1, 2)

    def forward(
        self,
        x: torch.Tensor,
        memory: torch.Tensor | None = None,
        attn_bias: torch.Tensor | None = None,
        is_causal: bool = False,
        cache: KVCache | None = None,
        need_weights: bool = False,
        rotary: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x (B, Tq, C); memory (B, Tk, C) for cross-attention -> (B, Tq, C) and optional weights.

        ``rotary``: RoPE's (cos, sin) for the new positions (``RotaryEmbedding``); self-attention then
        turns its queries and keys by them before caching the keys.
        """
        d_model = self.out.out_features
        if not x.is_floating_point():
            raise TypeError(f"attention input must be a float tensor, got dtype {x.dtype}")
        if x.dim() != 3 or x.shape[-1] != d_model:
            raise ValueError(f"attention input must be (batch, seq_len, d_model) with d_model={d_model}, got shape {tuple(x.shape)}")
        if rotary is not None and self.cross_attention:
            raise ValueError("rotary applies to self-attention (queries and keys of one sequence), not cross-attention")
        if memory is not None and (memory.dim() != 3 or memory.shape[0] != x.shape[0] or memory.shape[-1] != d_model):
            raise ValueError(f"memory must be (batch={x.shape[0]}, src_len, {d_model}), got shape {tuple(memory.shape)}")
        B, T, _ = x.shape
        if self.cross_attention:
            q = self._heads(self.q(x))  # (B, h, Tq, d)
            if cache is not None and cache.k is not None:  # encoder keys/values already projected
                k, v = cache.k, cache.v
            else:
                if memory is None:
                    raise ValueError("cross-attention needs `memory` (the encoder output)")
                k, v = (self._heads(t) for t in self.kv(memory).split(self.inner, dim=2))  # (B, h, Tk, d)
                if cache is not None:
                    cache.k, cache.v = k, v
        else:
            q, k, v = (self._heads(t) for t in self.qkv(x).split(self.inner, dim=2))  # 3 x (B, h, T, d)
            if rotary is not None:  # RoPE: each query and key turned by its own position's angles
                q, k = apply_rotary(q, *rotary), apply_rotary(k, *rotary)
            if cache is not None:
                k, v = cache.append(k, v)  # (B, h, T_past + T, d)
        y, weights = attention(q, k, v, attn_bias=attn_bias, is_causal=is_causal,
                               dropout_p=self.dropout if self.training else 0.0, scale=self.scale,
                               backend=self.backend, need_weights=need_weights)
        y = y.transpose(1, 2).reshape(B, T, self.inner)  # re-assemble heads: (B, Tq, h*d)
        return self.out(y), weights
