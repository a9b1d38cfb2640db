"""Encoder and decoder layers: equal PyTorch's Transformer layers, causality, padding, KV cache, dropout.

The independent reference is ``torch.nn.TransformerEncoderLayer`` / ``TransformerDecoderLayer``
(post-LN with ``norm_first=False``, pre-LN with ``norm_first=True``), given the same weights.
"""
from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from minitransformer.nn import DecoderCache, DecoderLayer, EncoderLayer, RelativePositionBias, padding_bias

BACKENDS = ("manual", "sdpa")


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _copy_attention(ours, ref) -> None:
    C = ref.embed_dim
    if ours.cross_attention:
        ours.q.weight.copy_(ref.in_proj_weight[:C])
        ours.q.bias.copy_(ref.in_proj_bias[:C])
        ours.kv.weight.copy_(ref.in_proj_weight[C:])
        ours.kv.bias.copy_(ref.in_proj_bias[C:])
    else:
        ours.qkv.weight.copy_(ref.in_proj_weight)
        ours.qkv.bias.copy_(ref.in_proj_bias)
    ours.out.weight.copy_(ref.out_proj.weight)
    ours.out.bias.copy_(ref.out_proj.bias)


def _copy_norm(ours, ref) -> None:
    ours.weight.copy_(ref.weight)
    ours.bias.copy_(ref.bias)


def _randomise(module: torch.nn.Module, seed: int) -> None:
    """Non-trivial values everywhere (norms start at 1/0, torch's attention biases at 0)."""
    g = _gen(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            centre = 1.0 if "norm" in name and name.endswith("weight") else 0.0
            p.copy_(centre + 0.3 * torch.randn(p.shape, generator=g))


def _encoder_pair(d_model, n_heads, d_ff, pre_norm, activation, backend, seed):
    ref = torch.nn.TransformerEncoderLayer(d_model, n_heads, d_ff, dropout=0.0, activation=activation,
                                           batch_first=True, norm_first=pre_norm).eval()
    _randomise(ref, seed)
    ours = EncoderLayer(d_model, n_heads, d_ff, dropout=0.0, activation=activation, pre_norm=pre_norm,
                        backend=backend).eval()
    with torch.no_grad():
        _copy_attention(ours.self_attn, ref.self_attn)
        ours.ffn.fc_in.weight.copy_(ref.linear1.weight)
        ours.ffn.fc_in.bias.copy_(ref.linear1.bias)
        ours.ffn.fc_out.weight.copy_(ref.linear2.weight)
        ours.ffn.fc_out.bias.copy_(ref.linear2.bias)
        _copy_norm(ours.self_attn_norm, ref.norm1)
        _copy_norm(ours.ffn_norm, ref.norm2)
    return ref, ours


def _decoder_pair(d_model, n_heads, d_ff, pre_norm, activation, backend, seed):
    ref = torch.nn.TransformerDecoderLayer(d_model, n_heads, d_ff, dropout=0.0, activation=activation,
                                           batch_first=True, norm_first=pre_norm).eval()
    _randomise(ref, seed)
    ours = DecoderLayer(d_model, n_heads, d_ff, cross_attention=True, dropout=0.0, activation=activation,
                        pre_norm=pre_norm, backend=backend).eval()
    with torch.no_grad():
        _copy_attention(ours.self_attn, ref.self_attn)
        _copy_attention(ours.cross_attn, ref.multihead_attn)
        ours.ffn.fc_in.weight.copy_(ref.linear1.weight)
        ours.ffn.fc_in.bias.copy_(ref.linear1.bias)
        ours.ffn.fc_out.weight.copy_(ref.linear2.weight)
        ours.ffn.fc_out.bias.copy_(ref.linear2.bias)
        _copy_norm(ours.self_attn_norm, ref.norm1)
        _copy_norm(ours.cross_attn_norm, ref.norm2)
        _copy_norm(ours.ffn_norm, ref.norm3)
    return ref, ours


# ---- equal to PyTorch's layers (pre-LN and post-LN) ---------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("pre_norm", [False, True])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_encoder_layer_equals_torch(backend, pre_norm, activation):
    ref, ours = _encoder_pair(16, 4, 24, pre_norm, activation, backend, seed=1)
    g = _gen(1)
    x = torch.randn(2, 5, 16, generator=g)
    keep = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    expected = ref(x, src_key_padding_mask=keep == 0)
    got, _ = ours(x, attn_bias=padding_bias(keep))
    real = keep.bool()  # torch's fast path may zero padded positions: compare real ones
    torch.testing.assert_close(got[real], expected[real], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("pre_norm", [False, True])
def test_decoder_layer_with_cross_attention_equals_torch(backend, pre_norm):
    ref, ours = _decoder_pair(16, 4, 24, pre_norm, "gelu", backend, seed=2)
    g = _gen(2)
    x, memory = torch.randn(2, 5, 16, generator=g), torch.randn(2, 7, 16, generator=g)
    memory_keep = torch.tensor([[1, 1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1, 1]])
    causal = torch.nn.Transformer.generate_square_subsequent_mask(5)
    expected = ref(x, memory, tgt_mask=causal, tgt_is_causal=True,
                   memory_key_padding_mask=torch.zeros(2, 7).masked_fill(memory_keep == 0, float("-inf")))
    got, _ = ours(x, memory=memory, memory_bias=padding_bias(memory_keep))
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


# ---- causality ---------------------------------------------------------------------------------------
@st.composite
def layer_configs(draw):
    return dict(
        pre_norm=draw(st.booleans()),
        norm=draw(st.sampled_from(["layernorm", "rmsnorm"])),
        activation=draw(st.sampled_from(["relu", "gelu", "gelu_tanh", "gated-gelu"])),
        bias=draw(st.booleans()),
        backend=draw(st.sampled_from(BACKENDS)),
        d_head=draw(st.sampled_from([None, 3])),
        attn_scale=draw(st.sampled_from([None, 1.0])),
    )


@given(cfg=layer_configs(), cross=st.booleans(), T=st.integers(2, 7), data=st.data(), seed=st.integers(0, 10_000))
def test_decoder_is_causal(cfg, cross, T, data, seed):
    """Changing the inputs at positions > t never changes a (2-layer) decoder's outputs at positions <= t."""
    t = data.draw(st.integers(0, T - 2))
    torch.manual_seed(seed)
    layers = [DecoderLayer(8, 2, 16, cross_attention=cross, dropout=0.0, **cfg).eval() for _ in range(2)]
    g = _gen(seed)
    x, memory = torch.randn(2, T, 8, generator=g), torch.randn(2, 3, 8, generator=g)
    x2 = x.clone()
    x2[:, t + 1:] = torch.randn(2, T - t - 1, 8, generator=g)

    def run(h):
        for layer in layers:
            h, _ = layer(h, memory=memory if cross else None)
        return h

    y, y2 = run(x), run(x2)
    torch.testing.assert_close(y[:, : t + 1], y2[:, : t + 1], atol=1e-6, rtol=1e-5)
    assert not torch.allclose(y[:, t + 1:], y2[:, t + 1:])  # the later positions did see the change


# ---- padding invariance ------------------------------------------------------------------------------
@given(cfg=layer_configs(), kind=st.sampled_from(["encoder", "decoder", "decoder+cross"]), T=st.integers(1, 6),
       extra=st.integers(1, 4), rel_bias=st.booleans(), seed=st.integers(0, 10_000))
def test_appending_padding_changes_nothing_at_real_positions(cfg, kind, T, extra, rel_bias, seed):
    torch.manual_seed(seed)
    C, h = 8, 2
    if kind == "encoder":
        layer = EncoderLayer(C, h, 16, dropout=0.0, **cfg).eval()
    else:
        layer = DecoderLayer(C, h, 16, cross_attention=kind == "decoder+cross", dropout=0.0, **cfg).eval()
    rel = RelativePositionBias(h, num_buckets=8, max_distance=16, bidirectional=kind == "encoder")
    g = _gen(seed)
    B, S = 2, 3
    keep = (torch.rand(B, T, generator=g) > 0.3).long()
    keep[:, 0] = 1
    x = torch.randn(B, T, C, generator=g)
    x_ext = torch.cat([x, 100 * torch.randn(B, extra, C, generator=g)], dim=1)  # padding with loud junk
    keep_ext = torch.cat([keep, torch.zeros(B, extra, dtype=torch.long)], dim=1)
    memory = torch.randn(B, S, C, generator=g)
    memory_ext = torch.cat([memory, 100 * torch.randn(B, extra, C, generator=g)], dim=1)
    memory_keep_ext = torch.cat([torch.ones(B, S, dtype=torch.long), torch.zeros(B, extra, dtype=torch.long)], 1)

    def run(inp, kp, mem, mem_keep):
        L = inp.shape[1]
        bias = padding_bias(kp) + (rel(L, L) if rel_bias else 0)
        if kind == "encoder":
            return layer(inp, attn_bias=bias)[0]
        return layer(inp, attn_bias=bias, memory=mem, memory_bias=padding_bias(mem_keep))[0]

    y = run(x, keep, memory, torch.ones(B, S, dtype=torch.long))
    y_ext = run(x_ext, keep_ext, memory_ext, memory_keep_ext)
    real = keep.bool()
    torch.testing.assert_close(y_ext[:, :T][real], y[real], atol=1e-5, rtol=1e-5)


# ---- KV cache through a decoder layer with cross-attention ------------------------------------------
@given(chunks=st.lists(st.integers(1, 3), min_size=1, max_size=4), backend=st.sampled_from(BACKENDS),
       pre_norm=st.booleans(), seed=st.integers(0, 10_000))
def test_decoder_stack_with_cache_matches_full_forward(chunks, backend, pre_norm, seed):
    torch.manual_seed(seed)
    C, h, B, S, T = 8, 2, 2, 4, sum(chunks)
    layers = [DecoderLayer(C, h, 16, cross_attention=True, dropout=0.0, pre_norm=pre_norm, backend=backend).eval()
              for _ in range(2)]
    rel = RelativePositionBias(h, num_buckets=8, max_distance=16, bidirectional=False)
    g = _gen(seed)
    x, memory = torch.randn(B, T, C, generator=g), torch.randn(B, S, C, generator=g)
    memory_bias = padding_bias(torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]]))

    full = x
    for layer in layers:
        full, _ = layer(full, attn_bias=rel(T, T), memory=memory, memory_bias=memory_bias)

    cache, outs, pos = DecoderCache(len(layers), cross_attention=True), [], 0
    for n in chunks:
        y = x[:, pos:pos + n]
        for i, layer in enumerate(layers):
            y, _ = layer(y, attn_bias=rel(n, pos + n, query_offset=pos), memory=memory if pos == 0 else None,
                         memory_bias=memory_bias, self_cache=cache.self_attn[i], cross_cache=cache.cross_attn[i])
        outs.append(y)
        pos += n
        assert cache.length == pos
    torch.testing.assert_close(torch.cat(outs, dim=1), full, atol=1e-5, rtol=1e-5)


def test_decoder_cache_reorder_and_plain_decoder():
    cache = DecoderCache(3)
    assert cache.length == 0 and cache.cross_attn == [None, None, None]
    torch.manual_seed(0)
    layer = DecoderLayer(8, 2, 16, dropout=0.0).eval()
    cache = DecoderCache(1)
    x = torch.randn(3, 4, 8)
    layer(x[:, :2], self_cache=cache.self_attn[0])
    index = torch.tensor([1, 0, 0])
    cache.reorder(index)
    y, _ = layer(x[index, 2:], self_cache=cache.self_attn[0])
    torch.testing.assert_close(y, layer(x[index])[0][:, 2:], atol=1e-5, rtol=1e-5)


# ---- dropout -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("layer_cls", [EncoderLayer, DecoderLayer])
def test_residual_dropout(layer_cls):
    torch.manual_seed(0)
    layer = layer_cls(8, 2, 16, dropout=0.5, attn_dropout=0.0, ffn_dropout=0.0)
    assert layer.self_attn.dropout == 0.0 and layer.dropout.p == 0.5
    x = torch.randn(2, 5, 8)
    layer.eval()
    y_eval = layer(x)[0]
    layer.train()
    torch.manual_seed(1)
    y1 = layer(x)[0]
    torch.manual_seed(2)
    y2 = layer(x)[0]
    assert not torch.allclose(y1, y2) and not torch.allclose(y1, y_eval)
    # without any dropout, training mode is the same function as eval mode
    quiet = layer_cls(8, 2, 16, dropout=0.0)
    quiet.load_state_dict(layer.state_dict())
    torch.testing.assert_close(quiet.train()(x)[0], y_eval, atol=1e-6, rtol=1e-6)


def test_attention_dropout_defaults_to_residual_dropout():
    layer = DecoderLayer(8, 2, 16, cross_attention=True, dropout=0.2)
    assert layer.self_attn.dropout == 0.2 and layer.cross_attn.dropout == 0.2
    layer = EncoderLayer(8, 2, 16, dropout=0.2, attn_dropout=0.05, ffn_dropout=0.3)
    assert layer.self_attn.dropout == 0.05 and layer.ffn.dropout.p == 0.3


# ---- gradients, shapes, dtypes, errors ---------------------------------------------------------------
@given(cfg=layer_configs(), kind=st.sampled_from(["encoder", "decoder", "decoder+cross"]))
def test_every_parameter_receives_a_gradient(cfg, kind):
    torch.manual_seed(0)
    if kind == "encoder":
        layer = EncoderLayer(8, 2, 16, dropout=0.0, **cfg)
    else:
        layer = DecoderLayer(8, 2, 16, cross_attention=kind == "decoder+cross", dropout=0.0, **cfg)
    x, memory = torch.randn(2, 4, 8), torch.randn(2, 3, 8)
    out, weights = layer(x, need_weights=True) if kind == "encoder" else layer(x, memory=memory, need_weights=True)
    assert out.shape == (2, 4, 8) and out.dtype == torch.float32
    assert weights.shape == (2, 2, 4, 4)
    out.square().sum().backward()
    for name, p in layer.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    names = {n for n, _ in layer.named_parameters()}
    assert any(n.endswith(".bias") for n in names) == cfg["bias"]  # bias=False: no biases anywhere


def test_parameter_count_equals_torch_layers():
    enc = EncoderLayer(16, 4, 24)
    dec = DecoderLayer(16, 4, 24, cross_attention=True)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(enc) == count(torch.nn.TransformerEncoderLayer(16, 4, 24))
    assert count(dec) == count(torch.nn.TransformerDecoderLayer(16, 4, 24))


def test_half_precision_layer_keeps_dtype():
    layer = DecoderLayer(8, 2, 16, cross_attention=True, norm="rmsnorm").to(torch.bfloat16).eval()
    x, memory = torch.randn(1, 3, 8, dtype=torch.bfloat16), torch.randn(1, 2, 8, dtype=torch.bfloat16)
    assert layer(x, memory=memory)[0].dtype == torch.bfloat16


def test_bad_layer_configs():
    with pytest.raises(ValueError, match="divisible"):
        EncoderLayer(10, 3, 16)
    with pytest.raises(ValueError, match="activation"):
        EncoderLayer(8, 2, 16, activation="swish")
    with pytest.raises(ValueError, match="norm"):
        DecoderLayer(8, 2, 16, norm="batchnorm")
    with pytest.raises(ValueError, match="backend"):
        DecoderLayer(8, 2, 16, backend="flash")
    with pytest.raises(ValueError, match="memory"):
        DecoderLayer(8, 2, 16, cross_attention=True)(torch.randn(1, 2, 8))
