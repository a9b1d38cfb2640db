"""Parameter counts (closed form vs the real modules on the meta device) and memory estimates.

The reference counts were measured with Hugging Face transformers' implementations; the test
``test_reference_counts_rederived_with_transformers`` measures them again here, on the meta
device, so every number below has an independent source.
"""
from __future__ import annotations

import dataclasses
import time

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from minitransformer import accounting
from minitransformer.accounting import (
    DTYPE_BYTES,
    MemoryEstimate,
    analytic_parameter_count,
    count_parameters,
    estimate_memory,
)
from minitransformer.models.config import BertConfig, GPTConfig, T5Config

REFERENCE = [  # (config class, preset, parameters of the HF model with the same heads)
    (GPTConfig, "gpt2-117m", 124_439_808),  # GPT2LMHeadModel
    (GPTConfig, "gpt2-1.5b", 1_557_611_200),
    (GPTConfig, "gpt3-175b", 174_604_259_328),
    (BertConfig, "bert-large", 336_226_108),  # BertForPreTraining (MLM + NSP)
    (BertConfig, "roberta-large", 355_412_057),  # RobertaForMaskedLM
    (BertConfig, "electra-large", 335_142_913),  # ElectraForPreTraining (discriminator)
    (T5Config, "t5-11b", 11_307_321_344),  # T5ForConditionalGeneration
]
IDS = [r[1] for r in REFERENCE]


def _hf_model(name: str):
    """The Hugging Face model of the same shape, built on the meta device (no memory, no download)."""
    import transformers as tf

    gpt2 = dict(vocab_size=50257)
    bert_large = dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096)
    makers = {
        "gpt2-117m": lambda: tf.GPT2LMHeadModel(tf.GPT2Config(**gpt2)),
        "gpt2-1.5b": lambda: tf.GPT2LMHeadModel(tf.GPT2Config(**gpt2, n_embd=1600, n_layer=48, n_head=25)),
        "gpt3-175b": lambda: tf.GPT2LMHeadModel(tf.GPT2Config(**gpt2, n_positions=2048, n_embd=12288, n_layer=96,
                                                              n_head=96)),
        "bert-large": lambda: tf.BertForPreTraining(tf.BertConfig(**bert_large)),
        "roberta-large": lambda: tf.RobertaForMaskedLM(tf.RobertaConfig(
            **bert_large, vocab_size=50265, max_position_embeddings=514, type_vocab_size=1, pad_token_id=1)),
        "electra-large": lambda: tf.ElectraForPreTraining(tf.ElectraConfig(**bert_large, embedding_size=1024)),
        "t5-11b": lambda: tf.T5ForConditionalGeneration(tf.T5Config(d_model=1024, d_kv=128, num_heads=128,
                                                                    d_ff=65536, num_layers=24)),
    }
    with torch.device("meta"):
        return makers[name]()


@pytest.mark.parametrize("cls,name,expected", REFERENCE, ids=IDS)
def test_reference_counts_rederived_with_transformers(cls, name, expected):
    hf = _hf_model(name)
    assert sum(p.numel() for p in hf.parameters()) == expected  # .parameters() counts tied weights once


@pytest.mark.parametrize("cls,name,expected", REFERENCE, ids=IDS)
def test_analytic_count_matches_reference(cls, name, expected):
    assert analytic_parameter_count(cls.preset(name)) == expected


def test_analytic_count_of_variants():
    """Switching a part on or off changes the count by exactly that part's size."""
    d, V = 768, 50257
    gpt = GPTConfig.preset("gpt2-117m")
    base = analytic_parameter_count(gpt)
    assert analytic_parameter_count(GPTConfig.preset("gpt2-117m", tie_embeddings=False)) == base + V * d
    no_bias = analytic_parameter_count(GPTConfig.preset("gpt2-117m", bias=False))
    # per layer: qkv 3d + out d + ffn 4d + d + 2 LayerNorm biases 2d; plus the final LayerNorm's bias
    assert base - no_bias == 12 * (3 * d + d + 4 * d + d + 2 * d) + d
    bert = BertConfig.preset("bert-large")
    assert analytic_parameter_count(bert) - analytic_parameter_count(
        BertConfig.preset("bert-large", nsp_head=False)) == 1024 * 2 + 2
    t5 = T5Config.preset("t5-small")
    gated = T5Config.preset("t5-small", feed_forward="gated-gelu")
    assert analytic_parameter_count(gated) - analytic_parameter_count(t5) == 12 * 512 * 2048  # 6 enc + 6 dec


def test_analytic_count_rejects_other_types():
    with pytest.raises(TypeError, match="GPTConfig"):
        analytic_parameter_count({"d_model": 8})


def test_count_parameters_of_a_module_counts_tied_weights_once():
    class Tied(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = torch.nn.Embedding(10, 4)
            self.head = torch.nn.Linear(4, 10, bias=False)
            self.head.weight = self.emb.weight

    assert count_parameters(Tied()) == 40


# ---- memory estimates (formulas documented on estimate_memory) ---------------------------------------
@pytest.fixture
def analytic_counts(monkeypatch):
    """Memory formulas are tested on their own: N comes from the closed form (proven equal below)."""
    monkeypatch.setattr(accounting, "count_parameters", analytic_parameter_count)


SMALL = [GPTConfig.preset("gpt2-117m"), BertConfig.preset("bert-base"), T5Config.preset("t5-small")]


@pytest.mark.parametrize("cfg", SMALL, ids=["gpt", "bert", "t5"])
@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16", "int8"])
def test_memory_weights_gradients_optimizer(analytic_counts, cfg, dtype):
    n, p = analytic_parameter_count(cfg), DTYPE_BYTES[dtype]
    inference = estimate_memory(cfg, batch_size=2, seq_len=128, dtype=dtype, training=False)
    training = estimate_memory(cfg, batch_size=2, seq_len=128, dtype=dtype, training=True)
    for m in (inference, training):
        assert isinstance(m, MemoryEstimate)
        assert m.weights == n * p
        assert m.total == m.weights + m.gradients + m.optimizer + m.activations + m.kv_cache
        assert m.gib()["total"] == m.total / 2**30
    assert inference.gradients == inference.optimizer == 0
    assert training.gradients == n * p
    assert training.optimizer == (8 * n if p == 4 else 12 * n)  # AdamW moments (+ fp32 master copy)
    assert training.kv_cache == 0  # no cache while training
    assert training.total > inference.total - inference.kv_cache


def test_memory_dtype_aliases(analytic_counts):
    cfg = SMALL[0]
    assert estimate_memory(cfg, dtype="fp16") == estimate_memory(cfg, dtype="float16")
    assert estimate_memory(cfg, dtype="bf16") == estimate_memory(cfg, dtype="bfloat16")


@given(b=st.integers(1, 16), s=st.integers(1, 2048), k=st.integers(2, 4), which=st.sampled_from([0, 2]))
def test_kv_cache_is_linear_in_batch_and_length(b, s, k, which):
    cfg = SMALL[which]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(accounting, "count_parameters", analytic_parameter_count)
        kv = estimate_memory(cfg, batch_size=b, seq_len=s).kv_cache
        assert kv > 0
        assert estimate_memory(cfg, batch_size=k * b, seq_len=s).kv_cache == k * kv
        assert estimate_memory(cfg, batch_size=b, seq_len=k * s).kv_cache == k * kv
        # activations grow with both, too
        assert estimate_memory(cfg, batch_size=b, seq_len=k * s).activations > estimate_memory(
            cfg, batch_size=b, seq_len=s).activations
        assert estimate_memory(cfg, batch_size=k * b, seq_len=s, training=True).activations > estimate_memory(
            cfg, batch_size=b, seq_len=s, training=True).activations


def test_kv_cache_formulas(analytic_counts):
    gpt2 = GPTConfig.preset("gpt2-117m")
    # GPT-2 small in fp16: 2 (K, V) x 12 layers x 768 x 2 bytes = 36 KiB per token
    assert estimate_memory(gpt2, batch_size=1, seq_len=1, dtype="float16").kv_cache == 36_864
    t5 = T5Config.preset("t5-small")  # decoder: self- and cross-attention caches, 6 layers, 8 x 64 wide
    assert estimate_memory(t5, batch_size=3, seq_len=10, dtype="float32").kv_cache == 2 * 2 * 6 * 3 * 10 * 512 * 4
    assert estimate_memory(BertConfig.preset("bert-base"), seq_len=512).kv_cache == 0  # an encoder caches nothing


@pytest.mark.parametrize("kwargs,match", [
    (dict(dtype="float64"), "dtype"), (dict(dtype="half"), "float16"), (dict(batch_size=0), "batch_size"),
    (dict(batch_size=-1), "batch_size"), (dict(batch_size=True), "batch_size"), (dict(seq_len=2.5), "seq_len"),
    (dict(seq_len=0), "seq_len"),
])
def test_memory_bad_arguments(analytic_counts, kwargs, match):
    with pytest.raises(ValueError, match=match):
        estimate_memory(SMALL[0], **kwargs)


# ---- the meta-device count equals the closed form (needs models/gpt.py, bert.py, t5.py) ---------------
@st.composite
def gpt_configs(draw):
    h = draw(st.integers(1, 4))
    return GPTConfig(vocab_size=draw(st.integers(1, 300)), max_seq_len=draw(st.integers(1, 64)),
                     d_model=h * draw(st.integers(1, 8)), n_heads=h, n_layers=draw(st.integers(1, 3)),
                     d_ff=draw(st.one_of(st.none(), st.integers(1, 40))), bias=draw(st.booleans()),
                     tie_embeddings=draw(st.booleans()), activation=draw(st.sampled_from(["gelu_tanh", "relu"])))


@st.composite
def bert_configs(draw):
    h = draw(st.integers(1, 4))
    pooler = draw(st.booleans())
    return BertConfig(vocab_size=draw(st.integers(2, 300)), max_seq_len=draw(st.integers(1, 64)),
                      d_model=h * draw(st.integers(1, 8)), n_heads=h, n_layers=draw(st.integers(1, 3)),
                      d_ff=draw(st.integers(1, 40)), type_vocab_size=draw(st.integers(1, 3)),
                      embedding_size=draw(st.one_of(st.none(), st.integers(1, 16))),
                      position_offset=draw(st.integers(0, 2)), pad_token_id=draw(st.integers(0, 1)),
                      pooler=pooler, nsp_head=pooler and draw(st.booleans()), mlm_head=draw(st.booleans()),
                      discriminator_head=draw(st.booleans()))


@st.composite
def t5_configs(draw):
    return T5Config(vocab_size=draw(st.integers(2, 300)), d_model=draw(st.integers(1, 24)), d_kv=draw(st.integers(1, 8)),
                    n_heads=draw(st.integers(1, 4)), d_ff=draw(st.integers(1, 40)), n_layers=draw(st.integers(1, 3)),
                    n_decoder_layers=draw(st.one_of(st.none(), st.integers(1, 3))),
                    relative_attention_num_buckets=draw(st.integers(4, 32)),
                    feed_forward=draw(st.sampled_from(["relu", "gated-gelu"])), tie_embeddings=draw(st.booleans()),
                    pad_token_id=0, eos_token_id=1, decoder_start_token_id=0)


@given(cfg=st.one_of(gpt_configs(), bert_configs(), t5_configs()))
def test_meta_device_count_equals_closed_form(cfg):
    assert count_parameters(cfg) == analytic_parameter_count(cfg)


@pytest.mark.parametrize("cls,name,expected", REFERENCE, ids=IDS)
def test_meta_device_count_of_reference_models(cls, name, expected):
    assert count_parameters(cls.preset(name)) == expected


def test_gpt3_count_allocates_nothing_and_is_quick():
    cfg = GPTConfig.preset("gpt3-175b")
    start = time.perf_counter()
    n = count_parameters(cfg)
    elapsed = time.perf_counter() - start
    assert n == 174_604_259_328
    assert elapsed < 3.0, f"count_parameters(gpt3-175b) took {elapsed:.2f}s; it should build on the meta device"


@pytest.mark.parametrize("cfg", [GPTConfig.preset("tiny"), BertConfig.preset("tiny"), T5Config.preset("tiny")],
                         ids=["gpt", "bert", "t5"])
def test_count_of_a_config_equals_the_allocated_model(cfg):
    model = accounting.build_model(cfg)
    allocated = {id(p): p.numel() for p in model.parameters() if p.device.type == "cpu"}
    assert count_parameters(cfg) == count_parameters(model) == sum(allocated.values())


def test_count_parameters_rejects_other_types():
    with pytest.raises(TypeError, match="GPTConfig"):
        count_parameters("gpt2")


def test_estimate_memory_with_the_real_count():
    assert estimate_memory(GPTConfig.preset("gpt2-117m"), dtype="float32").weights == 124_439_808 * 4


# ---- training activations: Korthikanti et al.'s count, generalised -----------------------------------
def _korthikanti(layers: int, d: int, a: int, s: int, b: int) -> float:
    """Their eq. 1 at 16 bits, per layer: 34·s·b·d + 5·a·s²·b."""
    return layers * (34 * s * b * d + 5 * a * s * s * b)


@pytest.mark.parametrize("cfg", SMALL[:2], ids=["gpt", "bert"])
def test_training_activations_are_korthikanti_where_its_assumptions_hold(analytic_counts, cfg):
    b, s, p = 2, 128, 2
    got = estimate_memory(cfg, batch_size=b, seq_len=s, dtype="bfloat16", training=True).activations
    assert got == int(_korthikanti(cfg.n_layers, cfg.d_model, cfg.n_heads, s, b)) + b * s * cfg.vocab_size * p


def test_t5_activations_add_the_decoders_cross_attention_and_follow_the_widths(analytic_counts):
    b, s = 1, 64
    cfg = T5Config.preset("t5-small")  # 8 heads x 64 = d_model, d_ff = 4 d_model: Korthikanti's shape
    d, a = cfg.d_model, cfg.n_heads
    cross = cfg.n_decoder_layers * (13 * s * b * d + 5 * a * s * s * b)  # norm, then 5d + 8w + 5as with w = d
    expected = _korthikanti(cfg.n_layers + cfg.n_decoder_layers, d, a, s, b) + cross
    got = estimate_memory(cfg, batch_size=b, seq_len=s, dtype="bfloat16", training=True).activations
    assert got == int(expected) + b * s * cfg.vocab_size * 2
    wide = dataclasses.replace(cfg, d_kv=128, d_ff=8 * d)  # wider attention and feed-forward keep more
    assert estimate_memory(wide, batch_size=b, seq_len=s, training=True).activations > estimate_memory(
        cfg, batch_size=b, seq_len=s, training=True).activations


def _saved_for_backward(model: torch.nn.Module, run) -> int:
    """Bytes of the distinct tensors autograd keeps for backward during ``run()``, weights excluded."""
    weights = {p.untyped_storage().data_ptr() for p in model.parameters()}
    kept: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in weights:
            kept[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        run()
    return sum(kept.values())


@pytest.mark.parametrize("family", ["gpt", "t5"])
def test_training_activations_are_the_right_size_for_our_models(family):
    """Measured, float32: what our models keep for backward is within a factor 1.5 of the estimate."""
    from minitransformer.accounting import build_model

    b, s = 2, 64
    if family == "gpt":
        cfg = GPTConfig(vocab_size=64, max_seq_len=s, d_model=64, n_layers=2, n_heads=4, dropout=0.1,
                        attention_backend="manual")
    else:
        cfg = T5Config(vocab_size=64, d_model=64, d_kv=16, n_heads=4, d_ff=256, n_layers=2, dropout=0.1)
    torch.manual_seed(0)
    model = build_model(cfg).train()
    ids = torch.randint(0, 64, (b, s))
    measured = _saved_for_backward(model, lambda: model(ids, labels=ids))
    estimated = estimate_memory(cfg, batch_size=b, seq_len=s, training=True).activations
    assert 0.67 < measured / estimated < 1.5, (measured, estimated)
