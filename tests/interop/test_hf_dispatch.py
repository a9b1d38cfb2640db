"""mt.from_hf / mt.to_hf_state_dict pick the family and heads from what they are given."""
from __future__ import annotations

import pytest
import torch
import transformers

import minitransformer as mt
from minitransformer.accounting import build_model

TINY_BERT = dict(vocab_size=97, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64)


@pytest.mark.parametrize("hf_class,heads", [
    (transformers.BertModel, (True, False, False)),
    (transformers.BertForPreTraining, (True, True, True)),
    (transformers.BertForMaskedLM, (False, True, False)),
])
def test_from_hf_builds_the_heads_the_model_carries(hf_class, heads):
    torch.manual_seed(0)
    hf = hf_class(transformers.BertConfig(**TINY_BERT)).eval()
    ours = mt.from_hf(hf).eval()
    assert (ours.config.pooler, ours.config.mlm_head, ours.config.nsp_head) == heads
    ids = torch.randint(0, 97, (2, 9))
    expected = hf(ids, output_hidden_states=True).hidden_states[-1]
    torch.testing.assert_close(ours(ids).last_hidden_state, expected, atol=1e-5, rtol=0)
    # and back: every tensor of the HF model is reproduced exactly
    back = mt.to_hf_state_dict(ours)
    for key, value in hf.state_dict().items():
        if key in back:
            assert torch.equal(back[key], value), key


def test_from_hf_gpt2_and_state_dict_needs_config():
    hf = transformers.GPT2LMHeadModel(transformers.GPT2Config(vocab_size=61, n_positions=16, n_embd=24,
                                                              n_layer=1, n_head=3)).eval()
    ours = mt.from_hf(hf).eval()
    assert isinstance(ours, mt.GPT)
    ids = torch.randint(0, 61, (1, 8))
    torch.testing.assert_close(ours(ids).logits, hf(ids).logits, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="needs `config=`"):
        mt.from_hf(hf.state_dict())
    again = mt.from_hf(hf.state_dict(), config=ours.config)
    assert all(torch.equal(a, b) for a, b in zip(again.state_dict().values(), ours.state_dict().values(), strict=True))


def test_from_hf_rejects_other_things():
    with pytest.raises(TypeError, match="transformers model or a state dict"):
        mt.from_hf("gpt2")
    llama_like = transformers.OPTForCausalLM(transformers.OPTConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1,
                                                                   ffn_dim=32, num_attention_heads=2))
    with pytest.raises(ValueError, match="unsupported Hugging Face model_type 'opt'"):
        mt.from_hf(llama_like)


@pytest.mark.parametrize("cfg", [
    mt.GPTConfig.preset("tiny"),
    mt.GPTConfig.preset("tiny", tie_embeddings=False),
    mt.BertConfig.preset("tiny"),
    mt.BertConfig.preset("tiny", type_vocab_size=1, pad_token_id=1, position_offset=2, pooler=False, nsp_head=False,
                         activation="relu", mlm_head_activation="gelu"),  # RoBERTa-shaped
    mt.BertConfig.preset("tiny", embedding_size=32, pooler=False, nsp_head=False),  # ELECTRA generator
    mt.T5Config.preset("tiny"),
    mt.T5Config.preset("tiny", feed_forward="gated-gelu", tie_embeddings=False),  # v1.1: untied head
], ids=["gpt", "gpt-untied", "bert", "roberta", "electra-generator", "t5", "t5-v1.1-untied"])
def test_to_hf_model_computes_what_ours_computes(cfg):
    """Random weights, every one perturbed (so an untied head that was overwritten by `shared` shows)."""
    torch.manual_seed(0)
    ours = build_model(cfg).eval()
    with torch.no_grad():
        for p in ours.parameters():
            p.add_(0.05 * torch.randn_like(p))
    hf = mt.to_hf_model(ours)
    assert not hf.training
    ids = torch.randint(3, cfg.vocab_size, (2, 9))
    with torch.no_grad():
        if isinstance(cfg, mt.T5Config):
            labels = torch.randint(3, cfg.vocab_size, (2, 5))
            got, expected = ours(ids, labels=labels).logits, hf(input_ids=ids, labels=labels).logits
        elif isinstance(cfg, mt.GPTConfig):
            got, expected = ours(ids).logits, hf(ids).logits
        else:
            got, expected = ours(ids).mlm_logits, hf(ids)[0]  # the MLM logits come first
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=0)
