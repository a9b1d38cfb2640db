"""Our T5 against transformers' T5ForConditionalGeneration with the same random weights.

Every expected value comes from transformers itself: logits, losses, greedy and beam-search
generations must agree, and the weights map one to one in both directions (T5 v1.0 with ReLU and
a tied, rescaled LM head; v1.1 with gated GELU and an untied head; odd ``d_kv``; padded inputs).
"""
from __future__ import annotations

import functools

import pytest
import torch
import transformers

import minitransformer as mt
from minitransformer.accounting import analytic_parameter_count, count_parameters
from minitransformer.interop import t5 as t5_interop
from minitransformer.interop.files import load_state_dict_checked
from minitransformer.models.config import T5Config
from minitransformer.models.t5 import T5

TOL = 1e-4

# v1.0: ReLU, tied + rescaled head; v1.1: gated GELU, untied head. d_kv 5 and 7 are odd and
# unrelated to d_model / n_heads; few buckets and a short max_distance so sequences of ~30 tokens
# reach the logarithmic and the clipped buckets.
V10 = dict(vocab_size=71, d_model=24, d_kv=5, n_heads=3, d_ff=40, n_layers=2, feed_forward="relu",
           tie_embeddings=True, relative_attention_num_buckets=8, relative_attention_max_distance=16)
V11 = dict(vocab_size=83, d_model=32, d_kv=7, n_heads=4, d_ff=48, n_layers=3, n_decoder_layers=2,
           feed_forward="gated-gelu", tie_embeddings=False, relative_attention_num_buckets=10,
           relative_attention_max_distance=24)
CONFIGS = {"v1.0": V10, "v1.1": V11}
BACKENDS = [("sdpa", "sdpa"), ("manual", "eager")]  # (ours, transformers' attn_implementation)


@functools.cache
def make_pair(name: str, backend: str = "sdpa", hf_attn: str = "sdpa"):
    """(ours, hf) in eval mode: HF from a config with random weights, ours converted from it."""
    cfg = T5Config(dropout=0.0, attention_backend=backend, max_seq_len=64, **CONFIGS[name])
    torch.manual_seed(0)
    hf_cfg = transformers.T5Config(**t5_interop.config_to_hf(cfg))
    hf = transformers.T5ForConditionalGeneration._from_config(hf_cfg, attn_implementation=hf_attn).eval()
    with torch.no_grad():  # a livelier random model: varied generations, norms that are not all ones
        for pname, p in hf.named_parameters():
            if "layer_norm" in pname:
                p.uniform_(0.5, 1.5)
            elif "relative_attention_bias" in pname:
                p.normal_(0.0, 1.0)
            elif pname == "shared.weight":  # also the (untied, unscaled) head in v1.1: keep logits O(1)
                p.normal_(0.0, 1.0 if cfg.tie_embeddings else 0.3)
            else:  # linear maps (out, in): std 1.5 / sqrt(in) keeps activations O(1)
                p.normal_(0.0, 1.5 * p.shape[1] ** -0.5)
    ours = T5(cfg)
    load_state_dict_checked(ours, t5_interop.state_dict_from_hf(hf.state_dict(), cfg))
    return ours.eval(), hf


def batch(cfg: T5Config, seed: int = 1):
    """Inputs of 3 rows, the last two padded (to 22 and 6 real tokens), and labels with -100."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(2, cfg.vocab_size, (3, 30), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 22:] = 0
    mask[2, 6:] = 0
    ids = ids.masked_fill(mask == 0, cfg.pad_token_id)
    labels = torch.randint(0, cfg.vocab_size, (3, 35), generator=g)
    labels[0, 28:] = -100
    labels[2, 10:] = -100
    return ids, mask, labels


def hf_beam_padding(out: torch.Tensor, eos: int, pad: int) -> torch.Tensor:
    """Pad after the first generated eos, as our generate does.

    transformers' beam search fills the unused tail with ``pad_token_id or eos_token_id``, which
    treats T5's pad id 0 as missing and fills with eos; greedy fills with pad. We pad both ways.
    """
    after_eos = (out[:, 1:] == eos).long().cumsum(dim=1) - (out[:, 1:] == eos).long() > 0
    return torch.cat([out[:, :1], out[:, 1:].masked_fill(after_eos, pad)], dim=1)


@pytest.mark.parametrize("name", list(CONFIGS))
@pytest.mark.parametrize("backend,hf_attn", BACKENDS)
def test_logits_and_loss_match(name, backend, hf_attn):
    ours, hf = make_pair(name, backend, hf_attn)
    ids, mask, labels = batch(ours.config)
    with torch.no_grad():
        a = ours(ids, attention_mask=mask, labels=labels)
        b = hf(input_ids=ids, attention_mask=mask, labels=labels)
    assert a.logits.shape == b.logits.shape
    assert (a.logits - b.logits).abs().max().item() <= TOL
    assert abs(a.loss.item() - b.loss.item()) <= 1e-5 * max(1.0, abs(b.loss.item()))
    # explicit decoder inputs, no labels, no mask
    dec = hf._shift_right(labels)
    with torch.no_grad():
        a = ours(ids, decoder_input_ids=dec)
        b = hf(input_ids=ids, decoder_input_ids=dec)
    assert (a.logits - b.logits).abs().max().item() <= TOL


@pytest.mark.parametrize("name", list(CONFIGS))
def test_gradients_match(name):
    """One backward pass: the same gradient for every mapped tensor (fused q|k|v compared row-wise)."""
    ours, hf = make_pair(name)
    ids, mask, labels = batch(ours.config, seed=3)
    ours.zero_grad()
    hf.zero_grad()
    ours(ids, attention_mask=mask, labels=labels).loss.backward()
    hf(input_ids=ids, attention_mask=mask, labels=labels).loss.backward()
    ours_grads = {k: p.grad for k, p in ours.named_parameters()}
    hf_grads = {k: p.grad for k, p in hf.named_parameters()}
    if not ours.config.tie_embeddings:
        # transformers 5 ties the v1.1 head to `shared` (see interop/t5.py): its shared gradient is
        # the sum of our two
        ours_grads["shared.weight"] = ours_grads["shared.weight"] + ours_grads["lm_head.weight"]
        ours_grads["lm_head.weight"] = ours_grads["shared.weight"]
    mapped = t5_interop.state_dict_to_hf(ours_grads, ours.config)
    for key, g in hf_grads.items():
        assert (mapped[key] - g).abs().max().item() <= TOL, key
    ours.zero_grad()
    hf.zero_grad()


@pytest.mark.parametrize("name", list(CONFIGS))
@pytest.mark.parametrize("backend,hf_attn", BACKENDS)
def test_greedy_generation_matches(name, backend, hf_attn):
    ours, hf = make_pair(name, backend, hf_attn)
    ids, mask, _ = batch(ours.config, seed=4)
    # an eos the model actually produces, so that rows stop at different steps
    free = ours.generate(ids, attention_mask=mask, max_new_tokens=40)
    eos = int(free[0, 9])
    for kwargs in (dict(), dict(eos_token_id=eos)):
        expected = hf.generate(ids, attention_mask=mask, max_new_tokens=40, do_sample=False, num_beams=1, **kwargs)
        for use_cache in (True, False):
            got = ours.generate(ids, attention_mask=mask, max_new_tokens=40, use_cache=use_cache, **kwargs)
            assert torch.equal(got, expected), (use_cache, kwargs)
    assert (got[0] == eos).any() and got.shape[1] <= 41


@pytest.mark.parametrize("name,backend,hf_attn,length_penalty,early_stopping", [
    ("v1.0", "sdpa", "sdpa", 1.0, False),
    ("v1.1", "manual", "eager", 1.0, False),
    ("v1.1", "sdpa", "sdpa", 2.0, True),
    ("v1.0", "manual", "eager", -1.0, "never"),
    ("v1.1", "sdpa", "sdpa", 1.5, "never"),
])
def test_beam_search_matches(name, backend, hf_attn, length_penalty, early_stopping):
    ours, hf = make_pair(name, backend, hf_attn)
    ids, mask, _ = batch(ours.config, seed=5)
    kwargs = dict(max_new_tokens=40, num_beams=4, length_penalty=length_penalty, early_stopping=early_stopping)
    # An eos the model reaches in some rows (tried among its favourite tokens, with our model
    # only), so that finishing, competing finished hypotheses and padding are all exercised.
    free = ours.generate(ids, attention_mask=mask, **kwargs)
    values, counts = free[:, 1:].unique(return_counts=True)
    for eos in values[counts.argsort(descending=True)][:6].tolist():
        if (ours.generate(ids, attention_mask=mask, eos_token_id=eos, **kwargs)[:, 1:] == eos).any():
            break
    expected = hf.generate(ids, attention_mask=mask, do_sample=False, eos_token_id=eos, **kwargs)
    expected = hf_beam_padding(expected, eos, ours.config.pad_token_id)
    for use_cache in (True, False):
        got = ours.generate(ids, attention_mask=mask, use_cache=use_cache, eos_token_id=eos, **kwargs)
        assert torch.equal(got, expected), use_cache
    assert (got[:, 1:] == eos).any()


@pytest.mark.parametrize("name", list(CONFIGS))
def test_state_dict_round_trip_is_exact(name):
    ours, hf = make_pair(name)
    hf_sd = hf.state_dict()
    back = t5_interop.state_dict_to_hf(t5_interop.state_dict_from_hf(hf_sd, ours.config), ours.config)
    assert set(back) == set(hf_sd)
    assert all(torch.equal(back[k], hf_sd[k]) for k in hf_sd)
    ours_sd = ours.state_dict()
    again = t5_interop.state_dict_from_hf(t5_interop.state_dict_to_hf(ours_sd, ours.config), ours.config)
    assert set(again) == set(ours_sd)
    assert all(torch.equal(again[k], ours_sd[k]) for k in ours_sd)
    # transformers accepts the converted dict strictly
    hf2 = transformers.T5ForConditionalGeneration(hf.config).eval()
    hf2.load_state_dict(t5_interop.state_dict_to_hf(ours_sd, ours.config), strict=True)
    ids, mask, labels = batch(ours.config)
    with torch.no_grad():
        assert torch.equal(hf2(input_ids=ids, attention_mask=mask, labels=labels).logits,
                           hf(input_ids=ids, attention_mask=mask, labels=labels).logits)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_configs_convert_both_ways(name):
    ours, hf = make_pair(name)
    cfg = t5_interop.config_from_hf(hf.config.to_dict())
    assert cfg == T5Config(**{**ours.config.to_dict(), "dropout": 0.0, "attention_backend": "sdpa",
                              "max_seq_len": 512})
    # a v1.1 config.json as published (tie_word_embeddings false, no scale_decoder_outputs key)
    on_disk = {k: v for k, v in hf.config.to_dict().items() if k != "scale_decoder_outputs"}
    on_disk["tie_word_embeddings"] = ours.config.tie_embeddings
    assert t5_interop.config_from_hf(on_disk).tie_embeddings == ours.config.tie_embeddings
    # JSON nulls mean transformers' defaults; a missing size or a flag written as text is an error
    assert t5_interop.config_from_hf({**on_disk, "dropout_rate": None, "layer_norm_epsilon": None}).norm_eps == 1e-6
    with pytest.raises(ValueError, match="lacks d_kv"):
        t5_interop.config_from_hf({k: v for k, v in on_disk.items() if k != "d_kv"})
    with pytest.raises(ValueError, match="tie_embeddings must be True or False"):
        t5_interop.config_from_hf({**on_disk, "tie_word_embeddings": "false"})


def test_from_hf_and_from_pretrained_hf_folder(tmp_path):
    ours, hf = make_pair("v1.1")
    converted = mt.from_hf(hf)
    assert isinstance(converted, T5)
    hf.save_pretrained(tmp_path / "hf")
    loaded = T5.from_pretrained(tmp_path / "hf")
    ids, mask, labels = batch(ours.config)
    with torch.no_grad():
        expected = hf(input_ids=ids, attention_mask=mask, labels=labels).logits
        for model in (converted.eval(), loaded):
            assert (model(ids, attention_mask=mask, labels=labels).logits - expected).abs().max() <= TOL
    sd = mt.to_hf_state_dict(loaded)
    assert all(torch.equal(sd[k], v) for k, v in hf.state_dict().items())


def test_parameter_counts():
    assert count_parameters(T5Config.preset("t5-11b")) == 11_307_321_344
    for name in CONFIGS:
        ours, hf = make_pair(name)
        assert count_parameters(ours) == count_parameters(ours.config) == analytic_parameter_count(ours.config)
    ours, hf = make_pair("v1.0")  # transformers counts the tied embedding once, as we do
    assert count_parameters(ours) == sum(p.numel() for p in hf.parameters())
