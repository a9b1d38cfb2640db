"""GPT on its own: parameter counts, initialisation, loss, masks, KV cache, bad input, files, training."""
from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

from minitransformer.accounting import analytic_parameter_count, count_parameters
from minitransformer.generation import left_pad
from minitransformer.models.config import GPTConfig
from minitransformer.models.gpt import GPT
from minitransformer.optim import make_adamw, param_groups

TINY = dict(vocab_size=53, max_seq_len=32, d_model=24, n_layers=2, n_heads=3, dropout=0.0)


def tiny(seed: int = 0, **kw) -> GPT:
    torch.manual_seed(seed)
    return GPT(GPTConfig(**{**TINY, **kw})).eval()


def ids_of(shape, vocab=TINY["vocab_size"], seed=0):
    return torch.randint(0, vocab, shape, generator=torch.Generator().manual_seed(seed))


# ---- size -----------------------------------------------------------------------------------
@pytest.mark.parametrize("preset,expected", [
    ("gpt2-117m", 124_439_808),     # the released GPT-2 "small", as transformers counts it
    ("gpt2-1.5b", 1_557_611_200),   # GPT-2 XL
    ("gpt3-175b", 174_604_259_328),  # GPT-3 Table 2.1 shape on GPT-2's vocabulary
    ("pythia-70m", 70_426_624),     # Pythia's published total (Biderman et al. 2023, its model table)
])
def test_parameter_counts_on_meta_device(preset, expected):
    cfg = GPTConfig.preset(preset)
    with torch.device("meta"):
        model = GPT(cfg)
    assert sum(p.numel() for p in model.parameters()) == expected
    assert count_parameters(cfg) == expected == analytic_parameter_count(cfg)


def test_gpt2_small_count_matches_transformers_on_meta():
    import transformers

    with torch.device("meta"):
        hf = transformers.GPT2LMHeadModel(transformers.GPT2Config())
    assert sum(p.numel() for p in hf.parameters()) == count_parameters(GPTConfig.preset("gpt2-117m"))


# ---- structure and initialisation -----------------------------------------------------------
def test_structure_and_tied_head():
    model = tiny()
    assert model.lm_head.weight is model.tok_emb.weight
    assert len(model.layers) == 2 and all(layer.cross_attn is None and layer.pre_norm for layer in model.layers)
    assert model.layers[0].ffn.activation == "gelu_tanh"
    untied = tiny(tie_embeddings=False)
    assert untied.lm_head.weight is not untied.tok_emb.weight


def test_gpt2_initialisation():
    torch.manual_seed(0)
    cfg = GPTConfig(vocab_size=512, max_seq_len=256, d_model=256, n_layers=8, n_heads=4)
    model = GPT(cfg)
    resid_std = 0.02 / math.sqrt(2 * cfg.n_layers)
    for name, p in model.named_parameters():
        if name.endswith(("self_attn.out.weight", "ffn.fc_out.weight")):
            assert abs(p.std().item() - resid_std) < 0.1 * resid_std, name
        elif name.endswith("norm.weight"):
            assert torch.equal(p, torch.ones_like(p)), name
        elif name.endswith("bias"):
            assert torch.equal(p, torch.zeros_like(p)), name
        else:  # embeddings, qkv, fc_in
            assert abs(p.std().item() - 0.02) < 0.002, name
            assert abs(p.mean().item()) < 0.002, name


# ---- forward, loss ----------------------------------------------------------------------------
def test_loss_is_shifted_cross_entropy_with_ignore():
    model = tiny()
    ids = ids_of((3, 10))
    labels = ids.clone()
    labels[1, 4:] = -100
    out = model(ids, labels=labels)
    assert out.logits.shape == (3, 10, TINY["vocab_size"])
    # independent: predict labels[t+1] at position t, drop ignored ones, average
    logits, targets = out.logits[:, :-1].reshape(-1, TINY["vocab_size"]), labels[:, 1:].reshape(-1)
    keep = targets != -100
    manual = -torch.log_softmax(logits[keep], -1).gather(1, targets[keep, None]).mean()
    assert torch.allclose(out.loss, manual, atol=1e-6)
    assert model(ids).loss is None


def test_attention_backends_agree():
    sdpa, manual = tiny(attention_backend="sdpa"), tiny(attention_backend="manual")
    manual.load_state_dict(sdpa.state_dict())
    ids, mask = left_pad([ids_of((9,), seed=1).tolist(), ids_of((5,), seed=2).tolist()])
    for m in (None, mask):
        assert torch.allclose(sdpa(ids, attention_mask=m).logits, manual(ids, attention_mask=m).logits, atol=1e-5)


def test_need_weights_are_causal():
    model = tiny()
    out = model(ids_of((2, 7)), need_weights=True)
    assert len(out.attentions) == 2
    w = out.attentions[0]  # (B, h, T, T)
    assert w.shape == (2, 3, 7, 7)
    assert torch.all(w.triu(diagonal=1) == 0)
    assert torch.allclose(w.sum(-1), torch.ones(2, 3, 7))


# ---- padding ----------------------------------------------------------------------------------
def test_left_padding_equals_unpadded_rows():
    """A left-padded row gives the same logits as the same prompt alone (positions from the first real token)."""
    model = tiny()
    prompts = [ids_of((12,), seed=1).tolist(), ids_of((5,), seed=2).tolist()]
    ids, mask = left_pad(prompts, pad_token_id=7)
    padded = model(ids, attention_mask=mask).logits
    for i, p in enumerate(prompts):
        alone = model(torch.tensor([p])).logits[0]
        assert torch.allclose(padded[i, -len(p):], alone, atol=1e-5)


@pytest.mark.parametrize("autocast", [False, True])
def test_vocabulary_padded_for_the_gpu_changes_nothing(autocast):
    """On a GPU the LM head pads the vocabulary (53 here) to a multiple of 8; forced on here on the CPU,
    it gives the same logits, loss (with padding masks), gradients and greedy generation."""
    plain, padded = tiny(seed=3).train(), tiny(seed=3).train()
    padded.logits_multiple_of = 8
    ids, mask = left_pad([ids_of((12,), seed=1).tolist(), ids_of((7,), seed=2).tolist()], pad_token_id=0)
    outs = []
    for model in (plain, padded):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            out = model(ids, labels=ids, attention_mask=mask)
        out.loss.backward()
        outs.append(out)
    assert outs[1].logits.shape == outs[0].logits.shape == (2, 12, TINY["vocab_size"])
    torch.testing.assert_close(outs[1].logits, outs[0].logits)
    torch.testing.assert_close(outs[1].loss, outs[0].loss)
    for (name, p), q in zip(plain.named_parameters(), padded.parameters(), strict=True):
        torch.testing.assert_close(q.grad, p.grad, msg=name)
    prompt = ids_of((1, 4), seed=5)
    greedy = [m.eval().generate(prompt, max_new_tokens=12, do_sample=False) for m in (plain, padded)]
    assert torch.equal(greedy[0], greedy[1])


def test_real_tokens_never_see_padding():
    model = tiny()
    ids, mask = left_pad([[1, 2, 3, 4, 5, 6], [9, 8, 7]])
    other = ids.clone()
    other[mask == 0] = 42  # change what sits in the padding
    a, b = model(ids, attention_mask=mask).logits, model(other, attention_mask=mask).logits
    assert torch.allclose(a[mask.bool()], b[mask.bool()], atol=1e-6)
    w = model(ids, attention_mask=mask, need_weights=True).attentions[1]  # (B, h, T, T)
    assert torch.all(w[1][:, 3:, :3] == 0)  # real queries of row 1 give padding zero weight


def test_padded_positions_do_not_count_in_loss():
    model = tiny()
    ids, mask = left_pad([[1, 2, 3, 4, 5, 6], [9, 8, 7]])
    labels = ids.masked_fill(mask == 0, -100)
    padded_loss = model(ids, labels=labels, attention_mask=mask).loss
    # same targets, computed row by row without padding
    rows = [model(torch.tensor([r]), labels=torch.tensor([r])) for r in ([1, 2, 3, 4, 5, 6], [9, 8, 7])]
    total = rows[0].loss * 5 + rows[1].loss * 2
    assert torch.allclose(padded_loss, total / 7, atol=1e-5)


def test_right_padding_scores_no_pad_targets():
    """The last real token must not be scored on predicting the pad after it (it was, before)."""
    model = tiny()
    row = [10, 20, 30]
    alone = model(torch.tensor([row]), labels=torch.tensor([row])).loss
    padded = torch.tensor([row + [0, 0]])
    mask = torch.tensor([[1, 1, 1, 0, 0]])
    torch.testing.assert_close(model(padded, labels=padded, attention_mask=mask).loss, alone)
    left, left_mask = left_pad([row, [1, 2, 3, 4, 5]])
    torch.testing.assert_close(model(left[:1, 2:], labels=left[:1, 2:]).loss, alone)  # the same row, unpadded


def test_padding_under_bf16_autocast_has_no_nan():
    model = tiny()
    ids, mask = left_pad([[1, 2, 3, 4, 5, 6], [9, 8]])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(ids, attention_mask=mask).logits
    assert torch.isfinite(logits[mask.bool()]).all()


# ---- KV cache -----------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["sdpa", "manual"])
def test_cache_chunks_equal_full_forward(backend):
    """Feeding 6 + 3 + 1 + 1 tokens through the cache equals one forward of all 11 (bottom-right causal mask)."""
    model = tiny(attention_backend=backend)
    ids = ids_of((2, 11))
    full = model(ids).logits
    cache = model.new_cache()
    pieces = [model(ids[:, a:b], cache=cache).logits for a, b in ((0, 6), (6, 9), (9, 10), (10, 11))]
    assert cache.length == 11
    assert torch.allclose(torch.cat(pieces, dim=1), full, atol=1e-5)


def test_cache_with_padding_equals_full_forward():
    model = tiny()
    ids, mask = left_pad([ids_of((10,), seed=3).tolist(), ids_of((4,), seed=4).tolist()])
    full = model(ids, attention_mask=mask).logits
    cache = model.new_cache()
    first = model(ids[:, :7], attention_mask=mask[:, :7], cache=cache).logits
    rest = model(ids[:, 7:], attention_mask=mask, cache=cache).logits
    got = torch.cat([first, rest], dim=1)
    assert torch.allclose(got[mask.bool()], full[mask.bool()], atol=1e-5)


# ---- bad input -------------------------------------------------------------------------------
def test_bad_input_is_a_clear_error():
    model = tiny()
    V, L = TINY["vocab_size"], TINY["max_seq_len"]
    with pytest.raises(ValueError, match=r"\[0, 53\)"):
        model(torch.tensor([[1, V]]))
    with pytest.raises(ValueError, match=r"\[0, 53\)"):
        model(torch.tensor([[-1, 2]]))
    with pytest.raises(ValueError, match="empty"):
        model(torch.zeros(1, 0, dtype=torch.long))
    with pytest.raises(ValueError, match="max_seq_len=32"):
        model(torch.zeros(1, L + 1, dtype=torch.long))
    with pytest.raises(TypeError, match="integer"):
        model(torch.zeros(1, 3))
    with pytest.raises(ValueError, match="shape"):
        model(torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="labels"):
        model(torch.zeros(1, 3, dtype=torch.long), labels=torch.tensor([[0, V, 1]]))
    with pytest.raises(ValueError, match="labels"):
        model(torch.zeros(1, 3, dtype=torch.long), labels=torch.zeros(1, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="last_only"):
        model(torch.zeros(1, 3, dtype=torch.long), labels=torch.zeros(1, 3, dtype=torch.long), last_only=True)
    with pytest.raises(ValueError, match="attention_mask"):
        model(torch.zeros(2, 3, dtype=torch.long), attention_mask=torch.ones(2, 4))
    cache = model.new_cache()
    model(torch.zeros(1, L - 1, dtype=torch.long), cache=cache)
    with pytest.raises(ValueError, match="cached"):
        model(torch.zeros(1, 2, dtype=torch.long), cache=cache)
    with pytest.raises(ValueError, match="position table"):  # explicit positions are checked against the table
        model(torch.zeros(1, 2, dtype=torch.long), position_ids=torch.tensor([[0, L]]))
    with pytest.raises(TypeError, match="GPTConfig"):
        GPT({"d_model": 8})
    # positions come from the mask's running sum: a 2 or a 0.9 would shift them without a word
    for bad in ([[0, 2, 2]], [[0, 0.9, 0.9]], [[-1, 1, 1]]):
        with pytest.raises(ValueError, match="only 0 .padding. and 1"):
            model(torch.ones(1, 3, dtype=torch.long), attention_mask=torch.tensor(bad))
    with pytest.raises(ValueError, match="no position has a target"):  # the mean over nothing is NaN
        model(torch.ones(1, 3, dtype=torch.long), labels=torch.full((1, 3), -100))
    with pytest.raises(ValueError, match="no position has a target"):
        model(torch.ones(1, 1, dtype=torch.long), labels=torch.ones(1, 1, dtype=torch.long))
    with pytest.raises(TypeError, match="torch.long"):  # the lookup would fail deep inside torch
        model(torch.ones(1, 3, dtype=torch.uint8))
    cache = model.new_cache()
    model(torch.ones(2, 3, dtype=torch.long), cache=cache)
    with pytest.raises(ValueError, match="the cache holds 2 rows but input_ids has 1"):  # was a torch.cat error
        model(torch.ones(1, 1, dtype=torch.long), cache=cache)
    with pytest.raises(ValueError, match="DecoderCache"):  # a cache of another depth was an IndexError
        model(torch.ones(1, 1, dtype=torch.long), cache=tiny(n_layers=3).new_cache())
    with pytest.raises(ValueError, match="position_ids must be >= 0"):  # was an IndexError
        model(torch.ones(1, 2, dtype=torch.long), position_ids=torch.tensor([[-1, 0]]))
    with pytest.raises(TypeError, match="position_ids must be a torch.long"):
        model(torch.ones(1, 2, dtype=torch.long), position_ids=torch.tensor([[0.0, 1.0]]))


# ---- optimizer groups -------------------------------------------------------------------------
def test_param_groups_split():
    model = tiny()
    decay, no_decay = param_groups(model, 0.1)
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert set(no_decay["names"]) >= {"tok_emb.weight", "pos_emb.weight", "final_norm.weight", "final_norm.bias",
                                      "layers.0.self_attn.qkv.bias", "layers.1.ffn_norm.weight"}
    assert "lm_head.weight" not in decay["names"] + no_decay["names"]  # tied: counted once, as tok_emb
    assert all(n.endswith(".weight") and "norm" not in n for n in decay["names"])
    assert {"layers.0.self_attn.qkv.weight", "layers.1.ffn.fc_out.weight"} <= set(decay["names"])
    every = [id(p) for g in (decay, no_decay) for p in g["params"]]
    assert len(every) == len(set(every)) == len(list(model.parameters()))
    assert model.optimizer_groups(0.1)[0]["names"] == decay["names"]


def test_param_groups_any_module():
    net = nn.Sequential(nn.Embedding(10, 4), nn.Linear(4, 4), nn.LayerNorm(4))
    decay, no_decay = param_groups(net, 0.01)
    assert decay["names"] == ["1.weight"]
    assert sorted(no_decay["names"]) == ["0.weight", "1.bias", "2.bias", "2.weight"]
    with pytest.raises(ValueError, match="weight_decay"):
        param_groups(net, -1.0)


# ---- training ----------------------------------------------------------------------------------
def test_overfits_a_fixed_batch():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=32, max_seq_len=16, d_model=32, n_layers=2, n_heads=4, dropout=0.0)).train()
    opt = make_adamw(model, lr=1e-2, weight_decay=0.0)
    batch = ids_of((4, 16), vocab=32, seed=5)
    first = None
    for _ in range(120):
        loss = model(batch, labels=batch).loss
        first = loss.item() if first is None else first
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    assert first > 3.0  # about ln(32) at the start
    assert loss.item() < 0.05


def test_dropout_is_active_in_training_only():
    model = tiny(dropout=0.5)
    ids = ids_of((2, 8))
    model.train()
    assert not torch.allclose(model(ids).logits, model(ids).logits)
    model.eval()
    assert torch.equal(model(ids).logits, model(ids).logits)


# ---- files -------------------------------------------------------------------------------------
def test_save_and_load_round_trip(tmp_path):
    model = tiny(seed=1)
    model.save_pretrained(tmp_path / "run")
    assert json.loads((tmp_path / "run" / "config.json").read_text())["family"] == "gpt"
    back = GPT.from_pretrained(tmp_path / "run")
    assert back.config == model.config and back.lm_head.weight is back.tok_emb.weight
    for key, value in model.state_dict().items():
        assert torch.equal(back.state_dict()[key], value), key


class _CompiledLike(nn.Module):
    """Stands in for torch.compile's OptimizedModule: the model sits at ``_orig_mod``, attributes forward."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self._orig_mod = model

    def __getattr__(self, name):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self._orig_mod, name)


def test_compiled_model_saves_without_orig_mod_prefix(tmp_path):
    from safetensors.torch import load_file

    model = tiny(seed=2)
    wrapped = _CompiledLike(model)
    assert all(k.startswith("_orig_mod.") for k in wrapped.state_dict())  # the trap
    GPT.save_pretrained(wrapped, tmp_path / "run")  # even called with the wrapper as self
    keys = load_file(str(tmp_path / "run" / "model.safetensors")).keys()
    assert keys and not any("_orig_mod" in k for k in keys)
    assert "layers.0.self_attn.qkv.weight" in keys
    back = GPT.from_pretrained(tmp_path / "run")
    assert torch.equal(back.tok_emb.weight, model.tok_emb.weight)


def test_from_pretrained_refuses_other_families(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"family": "bert", "d_model": 8}))
    with pytest.raises(ValueError, match="bert"):
        GPT.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "t5"}))
    with pytest.raises(ValueError, match="t5"):
        GPT.from_pretrained(tmp_path)


def test_loss_gradient_flows_to_tied_embedding():
    model = tiny().train()
    ids = ids_of((2, 6))
    model(ids, labels=ids).loss.backward()
    assert model.tok_emb.weight.grad is not None and model.tok_emb.weight.grad.abs().sum() > 0
    assert model.pos_emb.weight.grad.abs().sum() > 0


# ---- FLOPs / MFU helpers (minitransformer.flops) ---------------------------------------------------
def test_flops_per_token_and_mfu():
    from minitransformer.flops import gpt_flops_per_token, measure_matmul_peak, mfu

    cfg = GPTConfig(**TINY)
    model = GPT(cfg)
    n_matmul = sum(p.numel() for p in model.parameters()) - model.pos_emb.weight.numel()
    assert gpt_flops_per_token(cfg, seq_len=16) == 6 * n_matmul + 12 * cfg.n_layers * 16 * cfg.d_model
    assert mfu(1000.0, 2e6, 4e9) == pytest.approx(0.5)
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    peak = measure_matmul_peak("cpu", torch.float32, size=64, seconds=0.05)
    assert peak > 0 and torch.equal(torch.rand(3), expected)  # the caller's RNG stream is untouched


def test_the_cache_after_a_prompt_holds_just_its_keys_and_values():
    """The cache's K and V are not views into the fused q|k|v output (which would keep Q alive too):
    its memory is what accounting.estimate_memory says, 2 x layers x B x T x d_model values."""
    from minitransformer.accounting import estimate_memory

    model = tiny().eval()
    cache = model.new_cache()
    ids = torch.randint(0, model.config.vocab_size, (2, 10))
    with torch.no_grad():
        model(ids, cache=cache)
    storages = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes()
                for layer in cache.self_attn for t in (layer.k, layer.v)}
    assert sum(storages.values()) == estimate_memory(model.config, batch_size=2, seq_len=10).kv_cache
