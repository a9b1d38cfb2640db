"""Our T5 on its own: shapes, the loss, caching, padding, backends, files, training, bad input.

(Agreement with transformers is in test_t5_parity.py.)
"""
from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from minitransformer.accounting import analytic_parameter_count, count_parameters
from minitransformer.models.config import T5Config
from minitransformer.models.t5 import T5
from minitransformer.nn.layers import DecoderCache

TINY = dict(vocab_size=50, d_model=32, d_kv=8, n_heads=4, d_ff=64, n_layers=2, dropout=0.0, max_seq_len=48,
            relative_attention_num_buckets=8, relative_attention_max_distance=16)


def tiny(seed: int = 0, **overrides) -> T5:
    torch.manual_seed(seed)
    return T5(T5Config(**{**TINY, **overrides})).eval()


def ids_like(shape, vocab=50, seed=1, low=2):
    return torch.randint(low, vocab, shape, generator=torch.Generator().manual_seed(seed))


def test_forward_shapes_and_loss_ignores_minus_100():
    model = tiny()
    x, labels = ids_like((3, 11)), ids_like((3, 7), seed=2)
    labels[1, 4:] = -100
    out = model(x, labels=labels)
    assert out.logits.shape == (3, 7, 50)
    assert out.encoder_last_hidden_state.shape == (3, 11, 32)
    keep = labels != -100
    expected = F.cross_entropy(out.logits[keep], labels[keep])
    assert torch.allclose(out.loss, expected, atol=1e-6)
    # the decoder input is the labels shifted right, starting from decoder_start_token_id (= pad)
    dec = model.shift_right(labels)
    assert dec[:, 0].eq(model.config.decoder_start_token_id).all()
    assert torch.equal(dec[0, 1:], labels[0, :-1])
    assert dec[1, 5:].eq(model.config.pad_token_id).all()  # -100 becomes pad
    assert torch.equal(model(x, decoder_input_ids=dec).logits, out.logits)


@pytest.mark.parametrize("feed_forward,tie", [("relu", True), ("gated-gelu", False)])
def test_incremental_decoding_with_cache_matches_full_pass(feed_forward, tie):
    """Feeding the decoder one token at a time through DecoderCache gives the full pass's logits."""
    model = tiny(feed_forward=feed_forward, tie_embeddings=tie)
    x, dec = ids_like((2, 9)), ids_like((2, 21), seed=3)  # 21 > max_distance: clipped buckets too
    mask = torch.ones_like(x)
    mask[1, 6:] = 0
    with torch.no_grad():
        full = model(x, attention_mask=mask, decoder_input_ids=dec).logits
        memory = model.encode(x, attention_mask=mask)
        memory_bias = torch.zeros(2, 1, 1, 9).masked_fill(mask[:, None, None, :] == 0, torch.finfo(torch.float32).min)
        cache = DecoderCache(model.config.n_decoder_layers, cross_attention=True)
        steps = [model.lm_logits(model.decode(dec[:, :5], memory, memory_bias, cache=cache))]  # a prefill of 5
        for t in range(5, 21):
            steps.append(model.lm_logits(model.decode(dec[:, t:t + 1], memory, memory_bias, cache=cache)))
    assert cache.length == 21
    assert (torch.cat(steps, dim=1) - full).abs().max() < 1e-5


def test_padding_does_not_change_real_outputs():
    """A padded row (with its mask) gives the same logits as the same row unpadded."""
    model = tiny()
    x, dec = ids_like((1, 7)), ids_like((1, 5), seed=4)
    padded = torch.cat([x, torch.zeros(1, 4, dtype=torch.long)], dim=1)
    mask = torch.cat([torch.ones(1, 7), torch.zeros(1, 4)], dim=1).long()
    with torch.no_grad():
        a = model(x, decoder_input_ids=dec).logits
        b = model(padded, attention_mask=mask, decoder_input_ids=dec).logits
    assert (a - b).abs().max() < 1e-5
    assert torch.equal(model.generate(x, max_new_tokens=6), model.generate(padded, attention_mask=mask,
                                                                          max_new_tokens=6))


def test_attention_backends_agree():
    sdpa, manual = tiny(attention_backend="sdpa"), tiny(attention_backend="manual")
    manual.load_state_dict(sdpa.state_dict())
    x, labels = ids_like((2, 10)), ids_like((2, 8), seed=5)
    mask = torch.ones_like(x)
    mask[0, 7:] = 0
    a, b = sdpa(x, attention_mask=mask, labels=labels), manual(x, attention_mask=mask, labels=labels)
    assert (a.logits - b.logits).abs().max() < 1e-5
    a.loss.backward()
    b.loss.backward()
    for (name, p), q in zip(sdpa.named_parameters(), manual.parameters(), strict=True):
        assert (p.grad - q.grad).abs().max() < 1e-5, name


def test_relative_bias_is_shared_by_the_layers_of_a_stack():
    """One bias table per stack (bidirectional encoder, causal decoder), passed to every layer."""
    model = tiny(n_layers=3)
    assert model.encoder_rel_bias.bidirectional and not model.decoder_rel_bias.bidirectional
    names = [n for n, _ in model.named_parameters() if "rel_bias" in n]
    assert names == ["encoder_rel_bias.bias.weight", "decoder_rel_bias.bias.weight"]
    assert not any(n.endswith(".bias") for n, _ in model.named_parameters())  # no biases in linears
    seen: dict[str, list[torch.Tensor]] = {"encoder": [], "decoder": []}

    def recorder(stack):
        def hook(module, args, kwargs):
            seen[stack].append(kwargs["attn_bias"])
        return hook

    for stack in ("encoder", "decoder"):
        for layer in getattr(model, f"{stack}_layers"):
            layer.self_attn.register_forward_pre_hook(recorder(stack), with_kwargs=True)
    x, dec = ids_like((2, 6)), ids_like((2, 9), seed=6)
    mask = torch.ones_like(x)
    mask[1, 4:] = 0
    with torch.no_grad():
        model(x, attention_mask=mask, decoder_input_ids=dec)
        enc_bias = model.encoder_rel_bias(6, 6)
        dec_bias = model.decoder_rel_bias(9, 9)
    assert len(seen["encoder"]) == 3 and all(b is seen["encoder"][0] for b in seen["encoder"])
    assert len(seen["decoder"]) == 3 and all(b is seen["decoder"][0] for b in seen["decoder"])
    # the encoder's table plus the padding bias (padded keys of row 1 pushed to ~-inf), once
    combined = seen["encoder"][0]
    assert combined.shape == (2, 4, 6, 6)
    assert torch.equal(combined[0], enc_bias[0]) and torch.equal(combined[1, :, :, :4], enc_bias[0, :, :, :4])
    assert (combined[1, :, :, 4:] < -1e30).all()
    assert torch.equal(seen["decoder"][0], dec_bias)


def test_tied_and_untied_heads():
    tied, untied = tiny(), tiny(feed_forward="gated-gelu", tie_embeddings=False)
    assert tied.lm_head is None and untied.lm_head is not None
    assert untied.lm_head.weight.data_ptr() != untied.shared.weight.data_ptr()
    assert untied.encoder_layers[0].ffn.fc_gate is not None and tied.encoder_layers[0].ffn.fc_gate is None
    h = torch.randn(2, 3, 32)
    # v1.0 rescales by d_model^-0.5 before the tied head; v1.1 does not rescale
    assert torch.allclose(tied.lm_logits(h), h @ tied.shared.weight.T * 32 ** -0.5, atol=1e-5)
    assert torch.allclose(untied.lm_logits(h), h @ untied.lm_head.weight.T, atol=1e-5)


@pytest.mark.parametrize("tie", [True, False])
@pytest.mark.parametrize("rows", [3, 6])  # 45 ids (fewer than the 50 table rows) or 90 (more)
def test_shared_embedding_gradient_is_dense_and_equals_separate_lookups(tie, rows):
    """``forward`` looks up encoder and decoder ids at once (and, with the tied head, lets the head hand
    its gradient table to the lookup), only to save work: ``shared`` must end with the ordinary dense
    gradient, the one separate plain lookups and a plain head give, and AdamW must step."""
    model = tiny(tie_embeddings=tie).train()
    x, labels = ids_like((rows, 9)), ids_like((rows, 6), seed=2)
    model(x, labels=labels).loss.backward()
    grad = model.shared.weight.grad
    assert grad.layout == torch.strided and not grad.is_sparse
    # the same loss written with the public pieces: two ordinary lookups (each builds a dense gradient)
    reference = tiny(tie_embeddings=tie).train()
    memory = reference.encode(x)
    logits = reference.lm_logits(reference.decode(reference.shift_right(labels), memory))
    F.cross_entropy(logits.reshape(-1, 50), labels.reshape(-1)).backward()
    assert (grad - reference.shared.weight.grad).abs().max() < 1e-6
    torch.optim.AdamW(model.parameters(), fused=True).step()  # refuses sparse gradients


@settings(max_examples=10)
@given(d_model=st.integers(4, 40), d_kv=st.integers(1, 9), n_heads=st.integers(1, 5), d_ff=st.integers(1, 50),
       n_layers=st.integers(1, 3), n_dec=st.integers(1, 3), buckets=st.integers(4, 40),
       gated=st.booleans(), tie=st.booleans())
def test_parameter_count_matches_the_closed_form(d_model, d_kv, n_heads, d_ff, n_layers, n_dec, buckets, gated, tie):
    cfg = T5Config(vocab_size=37, d_model=d_model, d_kv=d_kv, n_heads=n_heads, d_ff=d_ff, n_layers=n_layers,
                   n_decoder_layers=n_dec, relative_attention_num_buckets=buckets,
                   feed_forward="gated-gelu" if gated else "relu", tie_embeddings=tie)
    assert count_parameters(cfg) == analytic_parameter_count(cfg)


def test_generate_greedy_and_beam_basics():
    model = tiny()
    model.train()
    x = ids_like((3, 8))
    out = model.generate(x, max_new_tokens=12)
    assert model.training  # the mode is restored
    assert out.shape[0] == 3 and 2 <= out.shape[1] <= 13
    assert out[:, 0].eq(model.config.decoder_start_token_id).all()
    # greedy = repeatedly taking the argmax of a full forward pass
    seq = torch.full((3, 1), model.config.decoder_start_token_id)
    done = torch.zeros(3, dtype=torch.bool)
    with torch.no_grad():
        for _ in range(out.shape[1] - 1):
            nxt = model.eval()(x, decoder_input_ids=seq).logits[:, -1].argmax(-1)
            nxt = torch.where(done, torch.zeros_like(nxt), nxt)
            seq = torch.cat([seq, nxt[:, None]], dim=1)
            done |= nxt == model.config.eos_token_id
    assert torch.equal(out, seq)
    beams = model.generate(x, max_new_tokens=12, num_beams=3)
    assert torch.equal(beams, model.generate(x, max_new_tokens=12, num_beams=3, use_cache=False))
    # one row at a time gives the same beams as the batch
    for i in range(3):
        row = model.generate(x[i:i + 1], max_new_tokens=12, num_beams=3)
        assert torch.equal(row[0], beams[i, : row.shape[1]])
        assert beams[i, row.shape[1]:].eq(model.config.pad_token_id).all()


def test_sampling():
    model = tiny()
    x = ids_like((2, 8))
    a = model.generate(x, max_new_tokens=10, do_sample=True, generator=torch.Generator().manual_seed(0))
    b = model.generate(x, max_new_tokens=10, do_sample=True, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a, b)  # reproducible with a generator
    greedy = model.generate(x, max_new_tokens=10)
    assert torch.equal(model.generate(x, max_new_tokens=10, do_sample=True, top_k=1), greedy)
    assert torch.equal(model.generate(x, max_new_tokens=10, do_sample=True, temperature=0), greedy)
    with pytest.raises(ValueError, match="num_beams=1"):
        model.generate(x, max_new_tokens=5, num_beams=2, do_sample=True)
    with pytest.raises(ValueError, match="top_p"):
        model.generate(x, max_new_tokens=5, do_sample=True, top_p=1.5)


def test_tiny_t5_overfits_a_fixed_batch():
    torch.manual_seed(0)
    model = T5(T5Config(**{**TINY, "vocab_size": 30}))
    x = ids_like((4, 10), vocab=30, seed=7)
    labels = torch.cat([ids_like((4, 6), vocab=30, seed=8), torch.full((4, 1), 1)], dim=1)  # targets end with eos
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    first = None
    for _ in range(120):
        loss = model(x, labels=labels).loss
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.05 < first
    out = model.generate(x, max_new_tokens=10)
    assert torch.equal(out[:, 1:], labels)


def test_save_and_load_our_folder(tmp_path):
    model = tiny(feed_forward="gated-gelu", tie_embeddings=False)
    model.save_pretrained(tmp_path / "run")
    loaded = T5.from_pretrained(tmp_path / "run")
    assert loaded.config == model.config and not loaded.training
    x, labels = ids_like((2, 6)), ids_like((2, 4), seed=9)
    assert torch.equal(loaded(x, labels=labels).logits, model(x, labels=labels).logits)
    with pytest.raises(FileNotFoundError):
        T5.from_pretrained(tmp_path / "missing")


# ---- bad input -----------------------------------------------------------------------------
def test_missing_labels_and_decoder_inputs():
    with pytest.raises(ValueError, match="labels.*decoder_input_ids"):
        tiny()(ids_like((1, 5)))


def test_too_long_inputs():
    model = tiny()
    with pytest.raises(ValueError, match="max_seq_len=48"):
        model(ids_like((1, 5)), decoder_input_ids=ids_like((1, 49)))
    with pytest.raises(ValueError, match="max_seq_len=48"):
        model(ids_like((1, 49)), labels=ids_like((1, 3)))
    with pytest.raises(ValueError, match="max_new_tokens"):
        model.generate(ids_like((1, 5)), max_new_tokens=49)


def test_ids_outside_the_vocabulary():
    """E.g. sentinel ids from a tokenizer larger than the model: a clear error, never garbage."""
    model = tiny()
    x = ids_like((1, 5))
    x[0, 2] = 50  # one past the last id, where a sentinel of a bigger tokenizer would land
    with pytest.raises(ValueError, match=r"input_ids must be in \[0, 50\)"):
        model(x, labels=ids_like((1, 3)))
    with pytest.raises(ValueError, match=r"labels must be in \[0, 50\) or -100"):
        model(ids_like((1, 5)), labels=torch.tensor([[3, 50, -100]]))
    with pytest.raises(ValueError, match="decoder_input_ids"):
        model(ids_like((1, 5)), decoder_input_ids=torch.tensor([[0, -1]]))
    with pytest.raises(TypeError, match="integer"):
        model(x.float(), labels=ids_like((1, 3)))


def test_small_integer_labels_mean_the_same_as_long_labels():
    """In uint8, -100 and 156 are the same byte: labels are read as long before -100 is looked for."""
    model = tiny(vocab_size=200)
    x, labels = ids_like((2, 5)), torch.tensor([[5, 156, 7, 1], [3, 4, 199, 1]])
    expected = model(x, labels=labels).loss
    for dtype in (torch.uint8, torch.int16, torch.int32):
        torch.testing.assert_close(model(x, labels=labels.to(dtype)).loss, expected, rtol=0, atol=0)
    assert model.shift_right(labels.to(torch.uint8).long())[0, 2] == 156  # a real token, not pad


def test_labels_that_leave_nothing_to_score():
    model = tiny()
    with pytest.raises(ValueError, match="every label is -100"):
        model(ids_like((2, 5)), labels=torch.full((2, 4), -100))
    with pytest.raises(ValueError, match="target_len >= 1"):
        model(ids_like((2, 5)), labels=torch.zeros(2, 0, dtype=torch.long))
    with pytest.raises(ValueError, match="at least one row"):
        model(ids_like((0, 5)), labels=torch.zeros(0, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="at least one row"):
        model.generate(ids_like((0, 5)), max_new_tokens=4, num_beams=2)


@pytest.mark.parametrize("num_beams", [0, -2, 1.5, True])
def test_bad_beam_counts(num_beams):
    with pytest.raises(ValueError, match="num_beams"):
        tiny().generate(ids_like((1, 5)), max_new_tokens=5, num_beams=num_beams)


def test_other_bad_arguments():
    model = tiny()
    x = ids_like((2, 5))
    with pytest.raises(ValueError, match="attention_mask"):
        model(x, attention_mask=torch.ones(2, 4), labels=ids_like((2, 3)))
    with pytest.raises(ValueError, match="attention_mask"):
        model(x, attention_mask=torch.full((2, 5), 2), labels=ids_like((2, 3)))
    with pytest.raises(ValueError, match="batch size"):
        model(x, decoder_input_ids=ids_like((3, 3)))
    with pytest.raises(ValueError, match="same shape"):
        model(x, decoder_input_ids=ids_like((2, 3)), labels=ids_like((2, 4)))
    with pytest.raises(ValueError, match="early_stopping"):
        model.generate(x, max_new_tokens=5, num_beams=2, early_stopping="sometimes")
    with pytest.raises(ValueError, match="eos_token_id"):
        model.generate(x, max_new_tokens=5, eos_token_id=50)
    with pytest.raises(TypeError, match="T5Config"):
        T5(dataclasses.asdict(model.config))
