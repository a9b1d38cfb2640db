"""GPT with each position scheme (GPTConfig.position): what each one promises, and RoPE against GPT-NeoX.

- learned / sinusoidal add a vector per position: shifting every position changes the output;
- rope / alibi put only offsets into attention: shifting every position changes nothing;
- all four keep the KV cache, left padding and the two attention backends exact;
- a RoPE GPT is GPT-NeoX (and with parallel layers and RoPE on a quarter of each head, Pythia):
  same logits, loss and greedy ids as transformers' GPTNeoXForCausalLM with the same weights.
"""
from __future__ import annotations

import dataclasses

import pytest
import torch
import transformers
from hypothesis import given, settings
from hypothesis import strategies as st
from test_gpt_parity import assert_generates_as_hf  # (tests/models is on sys.path)

import minitransformer as mt
from minitransformer.accounting import analytic_parameter_count, count_parameters
from minitransformer.generation import left_pad
from minitransformer.interop import gpt2 as gpt2_interop
from minitransformer.interop import gpt_neox as gpt_neox_interop
from minitransformer.models.config import GPTConfig
from minitransformer.models.gpt import GPT
from minitransformer.nn.position import POSITIONS

TINY = dict(vocab_size=53, max_seq_len=48, d_model=24, n_layers=2, n_heads=3, dropout=0.0)
RELATIVE = ("rope", "alibi")


def tiny(position: str, seed: int = 0, **kw) -> GPT:
    torch.manual_seed(seed)
    model = GPT(GPTConfig(**{**TINY, "position": position, **kw})).eval()
    with torch.no_grad():  # non-trivial norms and biases, so that nothing cancels by accident
        for name, p in model.named_parameters():
            if name.endswith("bias") or "norm" in name:
                p.add_(torch.randn_like(p) * 0.1)
    return model


def ids_of(shape, seed=0):
    return torch.randint(0, TINY["vocab_size"], shape, generator=torch.Generator().manual_seed(seed))


# ---- what each scheme promises ----------------------------------------------------------------
@settings(max_examples=10)
@given(shift=st.integers(1, 20), length=st.integers(2, 20), seed=st.integers(0, 1000))
def test_relative_schemes_see_offsets_only(shift, length, seed):
    """Positions s, s+1, ... give the same logits as 0, 1, ... under RoPE and ALiBi, not under learned or sinusoidal."""
    ids = ids_of((2, length), seed)
    for position in POSITIONS:
        model = tiny(position)
        with torch.no_grad():
            base = model(ids).logits
            shifted = model(ids, position_ids=torch.arange(shift, shift + length)[None]).logits
        if position in RELATIVE:
            assert torch.allclose(base, shifted, atol=1e-5), position
        else:
            assert not torch.allclose(base, shifted, atol=1e-3), position


@pytest.mark.parametrize("position", POSITIONS)
def test_parameters_learned_only_for_learned_positions(position):
    cfg = GPTConfig(**{**TINY, "position": position})
    model = GPT(cfg)
    assert count_parameters(model) == count_parameters(cfg) == analytic_parameter_count(cfg)
    table = TINY["max_seq_len"] * TINY["d_model"]
    learned = count_parameters(dataclasses.replace(cfg, position="learned"))
    assert count_parameters(cfg) == learned - (0 if position == "learned" else table)
    assert ("pos_emb.weight" in model.state_dict()) == (position == "learned")


@pytest.mark.parametrize("position", POSITIONS)
def test_cache_padding_and_backends_stay_exact(position):
    model = tiny(position)
    ids = ids_of((2, 20), seed=1)
    with torch.no_grad():
        full = model(ids).logits
        cache = model.new_cache()
        chunks = torch.cat([model(ids[:, :7], cache=cache).logits, model(ids[:, 7:15], cache=cache).logits,
                            model(ids[:, 15:], cache=cache).logits], dim=1)
        assert (chunks - full).abs().max() <= 1e-5
        # left padding: each row is computed as if it stood alone
        padded, mask = left_pad([ids[0].tolist(), ids[1, 6:].tolist()], pad_token_id=0)
        rows = model(padded, attention_mask=mask).logits
        assert (rows[1, 6:] - model(ids[1:, 6:]).logits[0]).abs().max() <= 1e-5
        manual = GPT(dataclasses.replace(model.config, attention_backend="manual")).eval()
        manual.load_state_dict(model.state_dict())
        assert (manual(ids).logits - full).abs().max() <= 1e-5
    # generation: cached and uncached agree, padded batches too
    prompt = ids[:, :5]
    assert torch.equal(model.generate(prompt, max_new_tokens=12, do_sample=False),
                       model.generate(prompt, max_new_tokens=12, do_sample=False, use_cache=False))


@pytest.mark.parametrize("position", ["sinusoidal", "rope", "alibi"])
def test_weights_without_a_position_table_run_on_longer_sequences(position, tmp_path):
    """Nothing in the weights depends on the context length, so a longer-context model takes them."""
    short = tiny(position)
    short.save_pretrained(tmp_path)
    longer = GPT(dataclasses.replace(short.config, max_seq_len=4 * TINY["max_seq_len"])).eval()
    longer.load_state_dict(GPT.from_pretrained(tmp_path).state_dict())  # strict: the same keys
    ids = ids_of((1, 3 * TINY["max_seq_len"]))
    with torch.no_grad():
        assert torch.allclose(longer(ids[:, :40]).logits, short(ids[:, :40]).logits, atol=1e-6)
        assert torch.isfinite(longer(ids).logits).all()
    with pytest.raises(ValueError, match="max_seq_len"):
        short(ids)


def test_learned_positions_cannot_grow():
    short = tiny("learned")
    longer = GPT(dataclasses.replace(short.config, max_seq_len=96))
    with pytest.raises(RuntimeError, match="pos_emb"):
        longer.load_state_dict(short.state_dict())


def test_config_and_input_errors():
    with pytest.raises(ValueError, match="position"):
        GPTConfig(**{**TINY, "position": "absolute"})
    with pytest.raises(ValueError, match="even"):
        GPTConfig(**{**TINY, "position": "rope", "d_model": 21})  # head size 7
    with pytest.raises(ValueError, match="rope_base"):
        GPTConfig(**{**TINY, "position": "rope", "rope_base": 0.5})
    model = tiny("alibi")
    cache = model.new_cache()
    model(ids_of((1, 4)), cache=cache)
    with pytest.raises(ValueError, match="ALiBi with a cache"):
        model(ids_of((1, 1)), cache=cache, position_ids=torch.tensor([[4]]))
    with pytest.raises(ValueError, match="position='rope'"):
        gpt2_interop.config_to_hf(GPTConfig(**{**TINY, "position": "rope"}))


@pytest.mark.parametrize("position", POSITIONS)
def test_every_scheme_learns_and_round_trips(position, tmp_path):
    model = tiny(position).train()
    ids = ids_of((4, 24), seed=2)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    first = None
    for _ in range(60):
        loss = model(ids, labels=ids).loss
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.3 * first
    model.eval().save_pretrained(tmp_path)
    back = GPT.from_pretrained(tmp_path)
    assert back.config.position == position
    with torch.no_grad():
        assert torch.equal(back(ids).logits, model(ids).logits)


# ---- a RoPE GPT is GPT-NeoX, and with parallel layers and partial rotary Pythia -----------------
def neox_pair(seed: int = 0, d_model: int = 24, n_heads: int = 3, n_layers: int = 2, base: float = 10000.0,
              parallel: bool = False, fraction: float = 1.0):
    """(ours, hf): transformers' GPTNeoXForCausalLM with random weights, and our RoPE GPT converted from it.

    By default the sequential residual and rotary on all of each head; ``parallel=True, fraction=0.25``
    is Pythia's shape. Exact GELU, untied head (``interop/gpt_neox.py``).
    """
    vocab, d_ff = 61, 2 * d_model + 6
    hf_cfg = transformers.GPTNeoXConfig(
        vocab_size=vocab, hidden_size=d_model, num_hidden_layers=n_layers, num_attention_heads=n_heads,
        intermediate_size=d_ff, hidden_act="gelu", use_parallel_residual=parallel, max_position_embeddings=64,
        rope_parameters={"rope_type": "default", "rope_theta": base, "partial_rotary_factor": fraction},
        tie_word_embeddings=False, layer_norm_eps=1e-5, bos_token_id=None, eos_token_id=None)
    torch.manual_seed(seed)
    hf = transformers.GPTNeoXForCausalLM._from_config(hf_cfg, attn_implementation="eager").eval()
    with torch.no_grad():
        for name, p in hf.named_parameters():
            if name.endswith("bias") or "layernorm" in name or "layer_norm" in name:
                p.add_(torch.randn_like(p) * 0.1)
    ours = mt.from_hf(hf)
    assert ours.config.position == "rope" and ours.config.rope_base == base
    assert ours.config.parallel_residual == parallel and ours.config.rotary_fraction == fraction
    return ours.eval(), hf


PYTHIA = dict(d_model=32, n_heads=2, parallel=True, fraction=0.25)  # head 16, RoPE on its first 4 features


@pytest.mark.parametrize("kw", [dict(), dict(d_model=32, n_heads=2, n_layers=1, base=500.0),
                                dict(d_model=36, n_heads=6, n_layers=3), PYTHIA,
                                dict(d_model=48, n_heads=3, parallel=True, fraction=0.5)])
@pytest.mark.parametrize("backend", ["sdpa", "manual"])
def test_rope_gpt_equals_gpt_neox(kw, backend):
    converted, hf = neox_pair(**kw)
    ours = GPT(dataclasses.replace(converted.config, attention_backend=backend)).eval()
    ours.load_state_dict(converted.state_dict())
    ids = torch.randint(0, 61, (3, 29), generator=torch.Generator().manual_seed(2))
    labels = ids.clone()
    labels[0, 4:9] = -100
    with torch.no_grad():
        a, b = ours(ids, labels=labels), hf(input_ids=ids, labels=labels)
    assert (a.logits - b.logits).abs().max().item() <= 1e-4
    assert abs(a.loss.item() - b.loss.item()) <= 1e-4


@pytest.mark.parametrize("kw", [dict(), PYTHIA])
def test_rope_gpt_generates_as_gpt_neox_also_left_padded(kw):
    ours, hf = neox_pair(seed=3, **kw)
    assert_generates_as_hf(ours, hf, *left_pad([[5, 9, 2, 44, 7, 1, 30], [8, 3, 12]], pad_token_id=0))


@pytest.mark.parametrize("position", POSITIONS)
def test_every_scheme_tells_word_order(position):
    """Without positions, one layer of causal attention sees its prefix as a bag: reordering the earlier
    tokens would not change the last token's logits (checked below with ALiBi switched off). With any
    scheme it must. Sharper attention (larger q, k weights) makes the difference plain."""
    model = tiny(position, n_layers=1)
    with torch.no_grad():
        model.layers[0].self_attn.qkv.weight.mul_(15)
    ids = ids_of((1, 12), seed=3)
    reordered = torch.cat([ids[:, :11].flip(1), ids[:, 11:]], dim=1)

    def change() -> float:
        with torch.no_grad():
            return (model(ids).logits[:, -1] - model(reordered).logits[:, -1]).abs().max().item()

    assert change() > 1e-4
    if position == "alibi":
        model.alibi = None  # no position information at all
        assert change() < 1e-6


@pytest.mark.parametrize("position", POSITIONS)
def test_what_enters_the_first_layer(position):
    """learned: token + table row; sinusoidal: token·√d_model + sin/cos (Vaswani et al. §3.4); rope and
    alibi: the token vector alone (their positions act inside attention)."""
    model = tiny(position)
    ids = ids_of((2, 9), seed=4)
    seen = {}
    model.layers[0].register_forward_pre_hook(lambda _, args: seen.setdefault("x", args[0]))
    with torch.no_grad():
        model(ids)
    token = model.tok_emb.weight[ids]  # (B, T, C)
    expected = {"learned": token + model.pos_emb.weight[:9] if position == "learned" else None,
                "sinusoidal": token * TINY["d_model"] ** 0.5 + model.pos_emb.pe[:9] if position == "sinusoidal" else None,
                "rope": token, "alibi": token}[position]
    assert torch.allclose(seen["x"], expected, atol=1e-6)


def test_rope_gpt_round_trips_through_gpt_neox_and_its_folders(tmp_path):
    torch.manual_seed(8)
    ours = GPT(GPTConfig(**{**TINY, "position": "rope", "rope_base": 2000.0, "tie_embeddings": False})).eval()
    hf = mt.to_hf_model(ours)
    assert type(hf).__name__ == "GPTNeoXForCausalLM"
    ids = ids_of((2, 17), seed=5)
    with torch.no_grad():
        assert (hf(input_ids=ids).logits - ours(ids).logits).abs().max() <= 1e-5
    back = mt.from_hf(hf)
    assert back.config == ours.config
    for key, value in ours.state_dict().items():
        assert torch.equal(back.state_dict()[key], value), key
    hf.save_pretrained(tmp_path / "neox")  # a local Hugging Face folder: GPT.from_pretrained reads it
    loaded = GPT.from_pretrained(tmp_path / "neox")
    with torch.no_grad():
        assert torch.equal(loaded(ids).logits, back(ids).logits)


def test_gpt_neox_shapes_we_do_not_build_are_refused():
    base = transformers.GPTNeoXConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2).to_dict()
    pythia = gpt_neox_interop.config_from_hf(base)  # the default config is Pythia's shape: it converts
    assert pythia.parallel_residual and pythia.rotary_fraction == 0.25 and pythia.rotary_dims == 4
    with pytest.raises(ValueError, match="RoPE scaling"):
        gpt_neox_interop.config_from_hf({**base, "rope_parameters": {"rope_type": "linear", "factor": 2.0,
                                                                     "rope_theta": 10000.0}})
    with pytest.raises(ValueError, match="without biases"):
        gpt_neox_interop.config_from_hf({**base, "attention_bias": False})
    with pytest.raises(ValueError, match="RoPE"):
        gpt_neox_interop.config_to_hf(GPTConfig(**TINY))  # learned positions are GPT-2's, not NeoX's
    with pytest.raises(ValueError, match="does not know"):
        gpt_neox_interop.state_dict_from_hf({"gpt_neox.layers.0.attention.extra.weight": torch.zeros(1)}, pythia)


def test_parallel_layer_and_partial_rotary_settings():
    """The parallel layer is x + Attn(LN1(x)) + FFN(LN2(x)); RoPE on a fraction turns only the first features."""
    model = tiny("rope", n_layers=1, parallel_residual=True)
    layer = model.layers[0]
    x = torch.randn(2, 7, TINY["d_model"])
    with torch.no_grad():
        by_hand = x + layer.self_attn(layer.self_attn_norm(x), is_causal=True)[0] + layer.ffn(layer.ffn_norm(x))
        assert torch.allclose(layer(x)[0], by_hand, atol=1e-6)
    from minitransformer.nn import RotaryEmbedding, apply_rotary

    q = torch.randn(1, 1, 5, 8)
    turned = apply_rotary(q, *RotaryEmbedding(4)(torch.arange(5)[None]))  # the first 4 of 8 features
    assert torch.equal(turned[..., 4:], q[..., 4:]) and not torch.allclose(turned[..., :4], q[..., :4])
    with pytest.raises(ValueError, match="rotary_fraction"):
        GPTConfig(**{**TINY, "rotary_fraction": 0.5})  # learned positions have nothing to turn
    with pytest.raises(ValueError, match="even and >= 2"):
        GPTConfig(**{**TINY, "position": "rope", "d_model": 32, "n_heads": 2, "rotary_fraction": 0.1})  # 1 feature
    with pytest.raises(ValueError, match="pre-LN"):
        mt.nn.EncoderLayer(8, 2, 16, pre_norm=False, parallel=True)
    with pytest.raises(ValueError, match="cross-attention"):
        mt.nn.DecoderLayer(8, 2, 16, cross_attention=True, parallel=True)


def test_tied_gpt_neox_converts_and_an_untied_head_is_not_dropped():
    torch.manual_seed(9)
    tied = GPT(GPTConfig(**{**TINY, "position": "rope"})).eval()
    hf = mt.to_hf_model(tied)
    back = mt.from_hf(hf)
    assert back.config.tie_embeddings and back.lm_head.weight is back.tok_emb.weight
    ids = ids_of((1, 11), seed=6)
    with torch.no_grad():
        assert torch.equal(back(ids).logits, tied(ids).logits)
    sd = dict(hf.state_dict())
    sd["lm_head.weight"] = sd["lm_head.weight"] + 1.0  # a head of its own, under a config that ties
    with pytest.raises(ValueError, match="untied head"):
        gpt_neox_interop.state_dict_from_hf(sd, tied.config)


def test_pythia_70m_preset_is_gpt_neox_s_shape_on_the_meta_device():
    """The preset converts to a GPTNeoXConfig whose model (built on the meta device) has our tensor shapes."""
    cfg = GPTConfig.preset("pythia-70m")
    with torch.device("meta"):
        hf = transformers.GPTNeoXForCausalLM(transformers.GPTNeoXConfig(**gpt_neox_interop.config_to_hf(cfg)))
        ours = GPT(cfg)
    assert sum(p.numel() for p in hf.parameters()) == count_parameters(cfg)
    converted = gpt_neox_interop.state_dict_to_hf(ours.state_dict(), cfg)
    assert {k: v.shape for k, v in converted.items()} == {k: v.shape for k, v in hf.state_dict().items()}
