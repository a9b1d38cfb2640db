"""Our GPT against transformers' GPT2LMHeadModel with the same random weights.

The reference numbers come from transformers itself: logits, losses and greedy generations must
agree, which (with an exact one-to-one weight mapping) shows the architecture is GPT-2's.
"""
from __future__ import annotations

import dataclasses

import pytest
import torch
import transformers

import minitransformer as mt
from minitransformer.generation import left_pad
from minitransformer.interop import gpt2 as gpt2_interop
from minitransformer.interop.files import load_state_dict_checked
from minitransformer.models.config import GPTConfig
from minitransformer.models.gpt import GPT

TOL = 1e-4


# odd head sizes (7, 15, 9), 1-4 layers, vocabularies that are not multiples of 64
CONFIGS = [
    dict(vocab_size=101, max_seq_len=64, d_model=21, n_layers=1, n_heads=3),   # d_head 7
    dict(vocab_size=77, max_seq_len=80, d_model=45, n_layers=2, n_heads=3),    # d_head 15
    dict(vocab_size=131, max_seq_len=72, d_model=36, n_layers=3, n_heads=4),   # d_head 9
    dict(vocab_size=97, max_seq_len=64, d_model=32, n_layers=4, n_heads=2, d_ff=50),  # d_ff not 4·d
]


def make_pair(cfg_kwargs: dict, backend: str = "sdpa", hf_attn: str = "eager", seed: int = 0):
    """(ours, hf) in eval mode, HF built from a config with random weights, ours converted from it."""
    cfg = GPTConfig(dropout=0.0, attention_backend=backend, **cfg_kwargs)
    torch.manual_seed(seed)
    hf_cfg = transformers.GPT2Config(**gpt2_interop.config_to_hf(cfg), bos_token_id=None, eos_token_id=None)
    hf = transformers.GPT2LMHeadModel._from_config(hf_cfg, attn_implementation=hf_attn).eval()
    with torch.no_grad():  # make biases and norms non-trivial so a wrong mapping cannot hide
        for name, p in hf.named_parameters():
            if name.endswith("bias") or ".ln_" in name:
                p.add_(torch.randn_like(p) * 0.1)
    ours = GPT(cfg)
    load_state_dict_checked(ours, gpt2_interop.state_dict_from_hf(hf.state_dict(), cfg))
    return ours.eval(), hf


def padded_batch(vocab: int, lengths: list[int], seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    prompts = [torch.randint(0, vocab, (n,), generator=g).tolist() for n in lengths]
    return left_pad(prompts, pad_token_id=0)


@pytest.mark.parametrize("cfg_kwargs", CONFIGS)
@pytest.mark.parametrize("backend,hf_attn", [("sdpa", "sdpa"), ("manual", "eager")])
def test_logits_and_loss_match(cfg_kwargs, backend, hf_attn):
    ours, hf = make_pair(cfg_kwargs, backend, hf_attn)
    ids = torch.randint(0, cfg_kwargs["vocab_size"], (3, 29), generator=torch.Generator().manual_seed(2))
    labels = ids.clone()
    labels[0, 5:9] = -100
    with torch.no_grad():
        a, b = ours(ids, labels=labels), hf(input_ids=ids, labels=labels)
    assert (a.logits - b.logits).abs().max().item() <= TOL
    assert abs(a.loss.item() - b.loss.item()) <= TOL


@pytest.mark.parametrize("cfg_kwargs", CONFIGS[:2])
@pytest.mark.parametrize("backend,hf_attn", [("sdpa", "sdpa"), ("manual", "eager")])
def test_padded_batch_matches(cfg_kwargs, backend, hf_attn):
    """Left padding with a mask: HF given the mask-derived positions gives the same real-token logits."""
    ours, hf = make_pair(cfg_kwargs, backend, hf_attn)
    ids, mask = padded_batch(cfg_kwargs["vocab_size"], [17, 9, 3, 12])
    labels = ids.masked_fill(mask == 0, -100)
    position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
    # HF also scores the prediction made at the last padded position (of each row's first real
    # token); ours ignores predictions from padded positions. Tell HF the same with -100.
    hf_labels = labels.masked_fill(position_ids == 0, -100)
    with torch.no_grad():
        a = ours(ids, labels=labels, attention_mask=mask)
        b = hf(input_ids=ids, attention_mask=mask, position_ids=position_ids, labels=hf_labels)
    real = mask.bool()
    assert (a.logits - b.logits).abs()[real].max().item() <= TOL
    assert abs(a.loss.item() - b.loss.item()) <= TOL


@pytest.mark.parametrize("cfg_kwargs", CONFIGS)
def test_greedy_generation_matches_hf(cfg_kwargs):
    """40 greedy tokens: identical ids to transformers' generate, with and without our KV cache."""
    ours, hf = make_pair(cfg_kwargs, "sdpa", "sdpa", seed=3)
    prompt = torch.randint(0, cfg_kwargs["vocab_size"], (2, 7), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        expected = hf.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=40, min_new_tokens=40,
                               do_sample=False, pad_token_id=0, generation_config=transformers.GenerationConfig())
    assert expected.shape == (2, 47)
    for use_cache in (True, False):
        got = ours.generate(prompt, max_new_tokens=40, do_sample=False, use_cache=use_cache)
        assert torch.equal(got, expected), f"use_cache={use_cache}"


def assert_generates_as_hf(ours: GPT, hf, ids: torch.Tensor, mask: torch.Tensor) -> None:
    """40 greedy tokens from a left-padded batch: the ids of transformers' generate, with and without our cache."""
    with torch.no_grad():
        expected = hf.generate(ids, attention_mask=mask, max_new_tokens=40, min_new_tokens=40, do_sample=False,
                               pad_token_id=0, generation_config=transformers.GenerationConfig())
    for use_cache in (True, False):
        got = ours.generate(ids, attention_mask=mask, max_new_tokens=40, do_sample=False, use_cache=use_cache)
        assert torch.equal(got, expected), f"use_cache={use_cache}"


def test_greedy_generation_left_padded_matches_hf():
    """A batch of prompts of different lengths (left padding + mask) generates as transformers does."""
    cfg_kwargs = CONFIGS[1]
    ours, hf = make_pair(cfg_kwargs, "sdpa", "sdpa", seed=5)
    assert_generates_as_hf(ours, hf, *padded_batch(cfg_kwargs["vocab_size"], [11, 4, 8], seed=6))


def test_round_trip_ours_hf_ours_is_exact():
    cfg = GPTConfig(vocab_size=77, max_seq_len=32, d_model=45, n_layers=2, n_heads=3, dropout=0.0)
    torch.manual_seed(7)
    ours = GPT(cfg)
    hf = transformers.GPT2LMHeadModel(transformers.GPT2Config(**gpt2_interop.config_to_hf(cfg)))
    hf.load_state_dict(gpt2_interop.state_dict_to_hf(ours.state_dict(), cfg))  # strict: every HF key filled
    back = GPT(gpt2_interop.config_from_hf(hf.config.to_dict()))
    load_state_dict_checked(back, gpt2_interop.state_dict_from_hf(hf.state_dict(), back.config))
    assert back.config == cfg
    a, b = ours.state_dict(), back.state_dict()
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert back.lm_head.weight is back.tok_emb.weight


def test_untied_head_converts():
    cfg = GPTConfig(vocab_size=70, max_seq_len=16, d_model=24, n_layers=1, n_heads=2, dropout=0.0,
                    tie_embeddings=False)
    ours, hf = make_pair(dict(vocab_size=70, max_seq_len=16, d_model=24, n_layers=1, n_heads=2,
                              tie_embeddings=False))
    assert ours.config == cfg and ours.lm_head.weight is not ours.tok_emb.weight
    assert torch.equal(ours.lm_head.weight, hf.lm_head.weight)
    ids = torch.randint(0, 70, (2, 9))
    with torch.no_grad():
        assert (ours(ids).logits - hf(input_ids=ids).logits).abs().max().item() <= TOL
    # an untied checkpoint into a tied config used to lose its head without a word
    with pytest.raises(ValueError, match="untied head"):
        mt.from_hf(hf.state_dict(), config=dataclasses.replace(cfg, tie_embeddings=True))


def test_from_pretrained_reads_a_local_hf_folder(tmp_path):
    ours_ref, hf = make_pair(CONFIGS[2])
    hf.save_pretrained(tmp_path / "st")  # model.safetensors + config.json, as on the hub
    torch.save(hf.state_dict(), tmp_path / "bin.pt")
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "config.json").write_text((tmp_path / "st" / "config.json").read_text())
    (tmp_path / "bin.pt").rename(tmp_path / "bin" / "pytorch_model.bin")  # read with weights_only=True
    ids = torch.randint(0, CONFIGS[2]["vocab_size"], (2, 11))
    with torch.no_grad():
        expected = hf(input_ids=ids).logits
        for folder in ("st", "bin"):
            model = GPT.from_pretrained(tmp_path / folder)
            assert not model.training
            assert (model(ids).logits - expected).abs().max().item() <= TOL


def test_checkpoint_without_transformer_prefix():
    """OpenAI's GPT-2 checkpoints (GPT2Model layout, with causal-mask buffers) load too."""
    ours, hf = make_pair(CONFIGS[0])
    sd = {k.removeprefix("transformer."): v for k, v in hf.state_dict().items() if k != "lm_head.weight"}
    sd["h.0.attn.bias"] = torch.tril(torch.ones(1, 1, 64, 64))  # a buffer, not a weight: ignored
    back = GPT(ours.config)
    load_state_dict_checked(back, gpt2_interop.state_dict_from_hf(sd, ours.config))
    for key, value in ours.state_dict().items():
        assert torch.equal(back.state_dict()[key], value)


def test_conversion_errors():
    cfg = GPTConfig.preset("tiny")
    with pytest.raises(ValueError, match="not know"):
        gpt2_interop.state_dict_from_hf({"transformer.h.0.crossattention.c_attn.weight": torch.zeros(1)}, cfg)
    with pytest.raises(ValueError, match="add_cross_attention"):
        gpt2_interop.config_from_hf({"model_type": "gpt2", "add_cross_attention": True})
    with pytest.raises(ValueError, match="activation"):
        gpt2_interop.config_from_hf({"model_type": "gpt2", "activation_function": "swish"})
    with pytest.raises(ValueError, match="bias"):
        gpt2_interop.config_to_hf(GPTConfig.preset("tiny", bias=False))


def test_public_from_hf_and_to_hf_state_dict():
    import minitransformer as mt

    ours_ref, hf = make_pair(CONFIGS[1])
    model = mt.from_hf(hf)
    assert isinstance(model, GPT) and model.config == ours_ref.config
    ids = torch.randint(0, CONFIGS[1]["vocab_size"], (2, 13))
    with torch.no_grad():
        assert (model.eval()(ids).logits - hf(input_ids=ids).logits).abs().max().item() <= TOL
    back = mt.to_hf_state_dict(model)
    for key, value in hf.state_dict().items():
        assert torch.equal(back[key], value), key
