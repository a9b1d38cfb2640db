"""Bert vs Hugging Face transformers: BERT, RoBERTa and ELECTRA with random weights, both attention backends.

The reference models are built from configs (never downloaded); weights go HF -> ours through
``minitransformer.interop.bert``, and every output is compared in float32.
"""
from __future__ import annotations

import dataclasses

import pytest
import torch
import transformers
from hypothesis import given
from hypothesis import strategies as st

import minitransformer.interop.bert as bert_interop
from minitransformer.accounting import count_parameters
from minitransformer.interop.files import load_state_dict_checked
from minitransformer.models.bert import Bert
from minitransformer.models.config import BertConfig

TOL = 1e-4


SMALL = dict(vocab_size=101, hidden_size=48, num_hidden_layers=2, num_attention_heads=4, intermediate_size=80,
             max_position_embeddings=40, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)

# name -> (HF model class, HF config class, extra config kwargs)
CASES = {
    "bert": (transformers.BertForPreTraining, transformers.BertConfig, {}),
    "bert-3-heads-relu": (transformers.BertForPreTraining, transformers.BertConfig,
                          dict(num_attention_heads=3, hidden_act="relu", type_vocab_size=3, layer_norm_eps=1e-5)),
    "roberta": (transformers.RobertaForMaskedLM, transformers.RobertaConfig,
                dict(type_vocab_size=1, pad_token_id=1, max_position_embeddings=42, layer_norm_eps=1e-5)),
    "electra-narrow-embeddings": (transformers.ElectraForPreTraining, transformers.ElectraConfig,
                                  dict(embedding_size=24)),
    "electra": (transformers.ElectraForPreTraining, transformers.ElectraConfig, dict(embedding_size=48)),
    "electra-generator": (transformers.ElectraForMaskedLM, transformers.ElectraConfig,
                          dict(embedding_size=24, architectures=["ElectraForMaskedLM"])),
    # RoBERTa's LM head and ELECTRA's generator use exact GELU whatever hidden_act says
    "roberta-relu": (transformers.RobertaForMaskedLM, transformers.RobertaConfig,
                     dict(type_vocab_size=1, pad_token_id=1, max_position_embeddings=42, hidden_act="relu")),
    "electra-generator-gelu-new": (transformers.ElectraForMaskedLM, transformers.ElectraConfig,
                                   dict(embedding_size=24, hidden_act="gelu_new", architectures=["ElectraForMaskedLM"])),
}
BACKENDS = [("eager", "manual"), ("sdpa", "sdpa")]  # (HF attn_implementation, ours)


def build_pair(case: str, hf_impl: str, backend: str, seed: int = 0):
    """A random HF model and our model holding the same weights."""
    hf_cls, cfg_cls, extra = CASES[case]
    torch.manual_seed(seed)
    hf_config = cfg_cls(**{**SMALL, **extra})
    hf_config._attn_implementation = hf_impl
    hf = hf_cls(hf_config).eval()
    with torch.no_grad():  # random non-trivial LayerNorm and bias values, so a swapped name would show
        for name, p in hf.named_parameters():
            if "LayerNorm" in name or "layer_norm" in name or name.endswith("bias"):
                p.add_(0.1 * torch.randn_like(p))
    cfg = dataclasses.replace(bert_interop.config_from_hf(hf_config.to_dict()), attention_backend=backend)
    ours = Bert(cfg).eval()
    load_state_dict_checked(ours, bert_interop.state_dict_from_hf(hf.state_dict(), cfg))
    return hf, ours


def make_inputs(cfg: BertConfig, batch: int = 3, length: int = 13, seed: int = 1):
    """Ids with right padding of different lengths (pad ids where the mask is 0) and two segments."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, cfg.vocab_size, (batch, length), generator=g)
    mask = torch.ones(batch, length, dtype=torch.long)
    for row in range(1, batch):
        mask[row, length - 3 * row:] = 0
    ids[mask == 0] = cfg.pad_token_id
    types = torch.zeros(batch, length, dtype=torch.long)
    if cfg.type_vocab_size > 1:
        types[:, length // 2:] = torch.randint(1, cfg.type_vocab_size, (batch, 1), generator=g)
    return ids, types, mask


def hf_outputs(hf, ids, types, mask):
    """The HF reference tensors we compare: last hidden state, pooled, MLM, NSP, discriminator logits."""
    base = getattr(hf, hf.base_model_prefix)
    with torch.no_grad():
        out = hf(input_ids=ids, token_type_ids=types, attention_mask=mask, output_hidden_states=True)
        ref = {"last_hidden_state": out.hidden_states[-1]}
        if getattr(base, "pooler", None) is not None:
            ref["pooled"] = base(input_ids=ids, token_type_ids=types, attention_mask=mask).pooler_output
        if isinstance(hf, transformers.BertForPreTraining):
            ref["mlm_logits"], ref["nsp_logits"] = out.prediction_logits, out.seq_relationship_logits
        elif isinstance(hf, transformers.ElectraForPreTraining):
            ref["discriminator_logits"] = out.logits
        else:
            ref["mlm_logits"] = out.logits
    return ref


@pytest.mark.parametrize("hf_impl,backend", BACKENDS)
@pytest.mark.parametrize("case", list(CASES))
def test_outputs_match_transformers(case, hf_impl, backend):
    hf, ours = build_pair(case, hf_impl, backend)
    ids, types, mask = make_inputs(ours.config)
    ref = hf_outputs(hf, ids, types, mask)
    with torch.no_grad():
        out = ours(ids, types, mask)
    assert ref.keys() >= {"last_hidden_state"} and len(ref) >= 2
    for field, expected in ref.items():
        got = getattr(out, field)
        assert got is not None, field
        assert got.shape == expected.shape, field
        diff = (got - expected).abs().max().item()
        assert diff <= TOL, f"{case} {backend}: {field} differs by {diff:.2e}"
    # every head we have is one HF has (nothing unchecked)
    ours_fields = {f for f in ("pooled", "mlm_logits", "nsp_logits", "discriminator_logits")
                   if getattr(out, f) is not None}
    assert ours_fields == set(ref) - {"last_hidden_state"}


def test_pretraining_losses_match_transformers():
    """Same MLM (+ NSP) loss as BertForPreTraining, and the same ELECTRA discriminator loss."""
    hf, ours = build_pair("bert", "sdpa", "sdpa")
    ids, types, mask = make_inputs(ours.config)
    g = torch.Generator().manual_seed(5)
    mlm_labels = torch.where((torch.rand(ids.shape, generator=g) < 0.3) & (mask == 1), ids, -100)
    nsp_labels = torch.tensor([0, 1, 1])
    with torch.no_grad():
        ref = hf(input_ids=ids, token_type_ids=types, attention_mask=mask, labels=mlm_labels,
                 next_sentence_label=nsp_labels)
        out = ours(ids, types, mask, mlm_labels=mlm_labels, nsp_labels=nsp_labels)
        fast = ours(ids, types, mask, mlm_labels=mlm_labels, nsp_labels=nsp_labels, return_mlm_logits=False)
    assert abs(out.loss.item() - ref.loss.item()) <= TOL
    assert abs(fast.loss.item() - ref.loss.item()) <= TOL and fast.mlm_logits is None

    hf, ours = build_pair("electra-narrow-embeddings", "sdpa", "sdpa")
    replaced = (torch.rand(ids.shape, generator=g) < 0.2).long()
    with torch.no_grad():
        ref = hf(input_ids=ids, token_type_ids=types, attention_mask=mask, labels=replaced)
        out = ours(ids, types, mask, discriminator_labels=replaced)
    assert abs(out.loss.item() - ref.loss.item()) <= TOL


@pytest.mark.parametrize("case", list(CASES))
def test_round_trip_ours_hf_ours_is_exact(case):
    hf, ours = build_pair(case, "sdpa", "sdpa")
    cfg = ours.config
    hf_sd = bert_interop.state_dict_to_hf(ours.state_dict(), cfg)
    # the HF dict is exactly HF's own (names, shapes, values), tied copies included
    reference = hf.state_dict()
    assert set(hf_sd) == set(reference)
    for key, value in reference.items():
        assert torch.equal(hf_sd[key], value), key
    # the config converts back to an equivalent transformers config
    hf_config = type(hf.config)(**bert_interop.config_to_hf(cfg))
    assert bert_interop.config_from_hf(hf_config.to_dict()) == dataclasses.replace(cfg, attention_backend="sdpa")
    fresh = type(hf)(hf_config)
    fresh.load_state_dict(hf_sd, strict=True)
    back = Bert(cfg)
    load_state_dict_checked(back, bert_interop.state_dict_from_hf(fresh.state_dict(), cfg))
    for key, value in ours.state_dict().items():
        assert torch.equal(back.state_dict()[key], value), key


def test_public_from_hf_and_to_hf_state_dict():
    """The lead's ``from_hf`` / ``to_hf_state_dict`` dispatch to our converters."""
    from minitransformer.interop.hf import from_hf, to_hf_state_dict

    hf, _ = build_pair("roberta", "sdpa", "sdpa")
    ours = from_hf(hf).eval()
    assert ours.config.position_offset == 2 and not ours.config.nsp_head
    ids, types, mask = make_inputs(ours.config)
    with torch.no_grad():
        diff = (ours(ids, types, mask).mlm_logits - hf(input_ids=ids, attention_mask=mask).logits).abs().max()
    assert diff <= TOL
    back = to_hf_state_dict(ours)
    assert all(torch.equal(back[k], v) for k, v in hf.state_dict().items())


@given(lengths=st.lists(st.integers(min_value=1, max_value=12), min_size=1, max_size=4),
       left=st.booleans())
def test_roberta_position_ids_match_transformers(lengths, left):
    """RoBERTa numbers real tokens from pad+1 and gives padding the pad row, wherever the padding sits."""
    cfg = BertConfig(vocab_size=50, max_seq_len=12, d_model=16, n_layers=1, n_heads=2, type_vocab_size=1,
                     pad_token_id=1, position_offset=2, pooler=False, nsp_head=False)
    model = Bert(cfg)
    width = max(lengths)
    ids = torch.full((len(lengths), width), 1)
    for row, n in enumerate(lengths):
        real = torch.arange(n) % 45 + 3
        if left:
            ids[row, width - n:] = real
        else:
            ids[row, :n] = real
    expected = transformers.models.roberta.modeling_roberta.RobertaEmbeddings.create_position_ids_from_input_ids(
        ids, padding_idx=1)
    assert torch.equal(model.position_ids(ids) + cfg.position_offset, expected)


def test_left_padded_roberta_matches_transformers():
    hf, ours = build_pair("roberta", "sdpa", "sdpa")
    ids = torch.randint(3, 101, (2, 11))
    ids[0, :4] = 1  # left padding
    mask = (ids != 1).long()
    with torch.no_grad():
        diff = (ours(ids, attention_mask=mask).mlm_logits - hf(input_ids=ids, attention_mask=mask).logits)
    assert diff[mask.bool()].abs().max() <= TOL


# published sizes: BERT-Large with MLM + NSP heads, RoBERTa-Large with its MLM head, ELECTRA-Large discriminator
REFERENCE_COUNTS = [
    ("bert-large", 336_226_108, lambda: transformers.BertForPreTraining(transformers.BertConfig(
        hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096))),
    ("roberta-large", 355_412_057, lambda: transformers.RobertaForMaskedLM(transformers.RobertaConfig(
        vocab_size=50265, hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096,
        max_position_embeddings=514, type_vocab_size=1, layer_norm_eps=1e-5))),
    ("electra-large", 335_142_913, lambda: transformers.ElectraForPreTraining(transformers.ElectraConfig(
        embedding_size=1024, hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096))),
]


@pytest.mark.parametrize("preset,published,build_hf", REFERENCE_COUNTS, ids=[r[0] for r in REFERENCE_COUNTS])
def test_parameter_counts_on_meta_device(preset, published, build_hf):
    with torch.device("meta"):
        hf_count = sum(p.numel() for p in build_hf().parameters())
    assert count_parameters(BertConfig.preset(preset)) == hf_count == published


def test_mlm_head_activations_transformers_cannot_represent_are_refused_on_export():
    roberta = dataclasses.replace(BertConfig.preset("roberta-large"), activation="relu")  # head stays exact GELU
    assert roberta.mlm_head_activation == "gelu"
    assert bert_interop.config_to_hf(roberta)["hidden_act"] == "relu"
    bert = dataclasses.replace(BertConfig.preset("bert-base"), activation="relu")  # BERT's head follows
    assert bert.mlm_head_activation is None and bert_interop.config_to_hf(bert)["hidden_act"] == "relu"
    with pytest.raises(ValueError, match="MLM head uses 'gelu'"):
        bert_interop.config_to_hf(BertConfig.preset("roberta-large", activation="relu", mlm_head_activation="relu"))
    with pytest.raises(ValueError, match="MLM head uses 'relu'"):  # BERT's head follows hidden_act
        bert_interop.config_to_hf(BertConfig.preset("bert-base", activation="relu", mlm_head_activation="gelu"))
    with pytest.raises(ValueError, match="integer pad_token_id"):
        bert_interop.config_from_hf({**transformers.RobertaConfig(**SMALL).to_dict(), "pad_token_id": None})
