"""Configs: validation with clear errors, JSON round trip, presets with the published shapes."""
from __future__ import annotations

import dataclasses
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from minitransformer.models.config import BertConfig, GPTConfig, T5Config

CONFIGS = (GPTConfig, BertConfig, T5Config)


# ---- presets: the shapes published in the papers / model cards ---------------------------------------
# (vocab, context, d_model, layers, heads, d_ff) — Radford et al. 2019 Table 2 and the released GPT-2
# checkpoints; Brown et al. 2020 Table 2.1; Devlin et al. 2019 §3; Liu et al. 2019; Clark et al. 2020
# Table 6; Raffel et al. 2020 §3.7 / Table 14; Wang et al. 2020 (MiniLM).
PUBLISHED = [
    (GPTConfig, "gpt2-117m", dict(vocab_size=50257, max_seq_len=1024, d_model=768, n_layers=12, n_heads=12, d_ff=3072)),
    (GPTConfig, "gpt2-1.5b", dict(vocab_size=50257, max_seq_len=1024, d_model=1600, n_layers=48, n_heads=25,
                                  d_ff=6400)),
    (GPTConfig, "gpt3-175b", dict(max_seq_len=2048, d_model=12288, n_layers=96, n_heads=96, d_ff=49152)),
    (BertConfig, "bert-base", dict(vocab_size=30522, max_seq_len=512, d_model=768, n_layers=12, n_heads=12,
                                   d_ff=3072, type_vocab_size=2)),
    (BertConfig, "bert-large", dict(vocab_size=30522, max_seq_len=512, d_model=1024, n_layers=24, n_heads=16,
                                    d_ff=4096, type_vocab_size=2)),
    (BertConfig, "roberta-large", dict(vocab_size=50265, d_model=1024, n_layers=24, n_heads=16, d_ff=4096,
                                       type_vocab_size=1, pad_token_id=1, position_offset=2)),
    (BertConfig, "electra-large", dict(vocab_size=30522, d_model=1024, n_layers=24, n_heads=16, d_ff=4096,
                                       embedding_size=1024, discriminator_head=True)),
    (BertConfig, "minilm-l6-h384", dict(d_model=384, n_layers=6, n_heads=12, d_ff=1536)),
    (T5Config, "t5-small", dict(vocab_size=32128, d_model=512, d_kv=64, n_heads=8, d_ff=2048, n_layers=6,
                                n_decoder_layers=6)),
    (T5Config, "t5-base", dict(d_model=768, d_kv=64, n_heads=12, d_ff=3072, n_layers=12)),
    (T5Config, "t5-11b", dict(vocab_size=32128, d_model=1024, d_kv=128, n_heads=128, d_ff=65536, n_layers=24,
                              n_decoder_layers=24, feed_forward="relu", tie_embeddings=True)),
]


@pytest.mark.parametrize("cls,name,shape", PUBLISHED, ids=[p[1] for p in PUBLISHED])
def test_presets_have_the_published_shapes(cls, name, shape):
    cfg = cls.preset(name)
    assert {k: getattr(cfg, k) for k in shape} == shape


def test_family_specific_defaults():
    gpt = GPTConfig.preset("gpt2-117m")
    assert gpt.activation == "gelu_tanh" and gpt.tie_embeddings and gpt.norm_eps == 1e-5
    bert = BertConfig.preset("bert-large")
    assert bert.activation == "gelu" and bert.norm_eps == 1e-12 and bert.pooler and bert.mlm_head and bert.nsp_head
    roberta = BertConfig.preset("roberta-large")
    assert roberta.norm_eps == 1e-5 and not roberta.nsp_head and not roberta.pooler and roberta.mlm_head
    t5 = T5Config.preset("t5-11b")
    assert t5.relative_attention_num_buckets == 32 and t5.relative_attention_max_distance == 128
    assert t5.norm_eps == 1e-6


@pytest.mark.parametrize("cls", CONFIGS)
def test_every_preset_builds_and_round_trips_through_json(cls):
    for name in cls.PRESETS:
        cfg = cls.preset(name)
        data = json.loads(json.dumps(cfg.to_dict()))
        assert cls.from_dict(data) == cfg
        assert cls.from_dict({**data, "family": "whatever"}) == cfg  # folders store the family beside the fields


def test_preset_overrides_and_unknown_preset():
    cfg = GPTConfig.preset("tiny", n_layers=3, d_model=128)
    assert cfg.n_layers == 3 and cfg.d_ff == 512  # the d_ff default follows the overridden d_model
    with pytest.raises(ValueError, match="gpt2-117m"):  # the message lists what exists
        GPTConfig.preset("gpt5")


@pytest.mark.parametrize("cls", CONFIGS)
def test_from_dict_errors(cls):
    with pytest.raises(ValueError, match="n_layer"):
        cls.from_dict({"n_layer": 3})  # a typo is an error, not silently ignored
    with pytest.raises(TypeError, match="dict"):
        cls.from_dict([("d_model", 8)])


# ---- validation --------------------------------------------------------------------------------------
POSITIVE_FIELDS = {
    GPTConfig: ["vocab_size", "max_seq_len", "d_model", "n_layers", "n_heads", "d_ff"],
    BertConfig: ["vocab_size", "max_seq_len", "d_model", "n_layers", "n_heads", "d_ff", "type_vocab_size",
                 "embedding_size"],
    T5Config: ["vocab_size", "d_model", "d_kv", "n_heads", "d_ff", "n_layers", "n_decoder_layers",
               "relative_attention_num_buckets", "relative_attention_max_distance", "max_seq_len"],
}
BAD_SIZES = st.one_of(st.integers(max_value=0), st.just(True), st.just(2.0), st.just("8"))


@given(data=st.data())
def test_non_positive_or_non_integer_sizes_are_rejected(data):
    cls = data.draw(st.sampled_from(CONFIGS))
    name = data.draw(st.sampled_from(POSITIVE_FIELDS[cls]))
    value = data.draw(BAD_SIZES)
    with pytest.raises(ValueError, match=name):
        cls.preset("tiny", **{name: value})


@pytest.mark.parametrize("cls", [GPTConfig, BertConfig])
def test_missing_d_model_is_a_clear_error(cls):
    """d_model=None must name d_model, not crash deriving d_ff = 4 * d_model."""
    with pytest.raises(ValueError, match="d_model"):
        cls.preset("tiny", d_model=None)


@given(data=st.data())
def test_dropout_outside_unit_interval_is_rejected(data):
    cls = data.draw(st.sampled_from(CONFIGS))
    value = data.draw(st.one_of(st.floats(max_value=-1e-9), st.floats(min_value=1.0), st.just(float("nan")),
                                st.just("0.1"), st.just(True)))
    with pytest.raises(ValueError, match="dropout"):
        cls.preset("tiny", dropout=value)


@given(data=st.data())
def test_dropout_inside_unit_interval_is_accepted(data):
    cls = data.draw(st.sampled_from(CONFIGS))
    p = data.draw(st.floats(min_value=0.0, max_value=1.0, exclude_max=True))
    assert cls.preset("tiny", dropout=p).dropout == p


@pytest.mark.parametrize("cls", [GPTConfig, BertConfig])
def test_d_model_must_be_divisible_by_n_heads(cls):
    with pytest.raises(ValueError, match="divisible"):
        cls.preset("tiny", d_model=66, n_heads=4)


def test_t5_heads_need_not_divide_d_model():
    assert T5Config.preset("tiny", d_model=66, n_heads=4, d_kv=16).d_model == 66  # T5 sets d_kv on its own


@pytest.mark.parametrize("cls,field,value", [
    (GPTConfig, "activation", "swish"), (BertConfig, "activation", "tanh"), (T5Config, "feed_forward", "gelu"),
    (GPTConfig, "attention_backend", "flash"), (BertConfig, "attention_backend", "xformers"),
    (T5Config, "attention_backend", "Manual"),
    (GPTConfig, "norm_eps", 0.0), (BertConfig, "norm_eps", -1e-12), (T5Config, "norm_eps", 0),
    (GPTConfig, "eos_token_id", 256), (BertConfig, "pad_token_id", -1), (T5Config, "eos_token_id", 512),
    (T5Config, "decoder_start_token_id", -1), (BertConfig, "position_offset", -2),
])
def test_bad_choices_are_rejected_with_the_field_name(cls, field, value):
    with pytest.raises(ValueError, match=field):
        cls.preset("tiny", **{field: value})


@pytest.mark.parametrize("num_buckets,max_distance", [(32, 8), (32, 16), (2, 128), (4, 2)])
def test_t5_bucket_settings_without_log_buckets_are_rejected(num_buckets, max_distance):
    """The decoder's exact buckets reach num_buckets // 2; the log-spaced ones need room above that."""
    with pytest.raises(ValueError, match="relative_attention_max_distance"):
        T5Config.preset("tiny", relative_attention_num_buckets=num_buckets,
                        relative_attention_max_distance=max_distance)
    T5Config.preset("tiny", relative_attention_num_buckets=max(num_buckets, 4),
                    relative_attention_max_distance=max(num_buckets, 4) // 2 + 1)  # the smallest allowed


@pytest.mark.parametrize("cls,field,value", [
    (GPTConfig, "tie_embeddings", "no"), (T5Config, "tie_embeddings", "false"), (GPTConfig, "bias", 1),
    (BertConfig, "pooler", None), (BertConfig, "nsp_head", "yes"),
])
def test_flags_must_be_true_or_false(cls, field, value):
    """A non-empty string is truthy: "no" would silently mean yes. A ValueError, like every bad config value."""
    with pytest.raises(ValueError, match=f"{field} must be True or False"):
        cls.preset("tiny", **{field: value})


@pytest.mark.parametrize("cls,field,value", [
    (T5Config, "pad_token_id", 1.0), (T5Config, "decoder_start_token_id", True), (GPTConfig, "eos_token_id", True),
    (BertConfig, "pad_token_id", "0"), (T5Config, "eos_token_id", None),
    (T5Config, "norm_eps", float("inf")), (GPTConfig, "norm_eps", True), (BertConfig, "norm_eps", "1e-12"),
    (T5Config, "norm_eps", None), (GPTConfig, "norm_eps", float("nan")), (BertConfig, "position_offset", 1.5),
])
def test_ids_and_eps_of_the_wrong_type_are_rejected_with_the_field_name(cls, field, value):
    with pytest.raises(ValueError, match=field):
        cls.preset("tiny", **{field: value})


def test_unknown_choice_message_lists_the_allowed_values():
    with pytest.raises(ValueError, match="manual.*sdpa"):
        GPTConfig(attention_backend="flash")
    with pytest.raises(ValueError, match="gelu_tanh"):
        GPTConfig(activation="swish")


def test_nsp_head_needs_the_pooler():
    with pytest.raises(ValueError, match="pooler"):
        BertConfig.preset("tiny", pooler=False, nsp_head=True)


def test_dataclasses_replace_revalidates():
    cfg = GPTConfig.preset("tiny")
    assert dataclasses.replace(cfg, n_layers=5).n_layers == 5
    with pytest.raises(ValueError, match="divisible"):
        dataclasses.replace(cfg, n_heads=3)


def test_derived_defaults():
    assert GPTConfig(d_model=64, n_heads=4).d_ff == 256
    bert = BertConfig(d_model=64, n_heads=4)
    assert bert.d_ff == 256 and bert.embedding_size == 64
    t5 = T5Config(n_layers=3)
    assert t5.n_decoder_layers == 3
    assert T5Config(n_layers=3, n_decoder_layers=1).n_decoder_layers == 1
