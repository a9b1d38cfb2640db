"""Bert on its own: losses, training, bad input, files, ELECTRA's objective. (Parity with HF: test_bert_parity.py.)"""
from __future__ import annotations

import dataclasses
import json
import time

import pytest
import torch
import torch.nn.functional as F
import transformers
from safetensors.torch import load_file, save_file

from minitransformer.data import mask_tokens
from minitransformer.models.bert import Bert, ElectraPretraining
from minitransformer.models.config import BertConfig

TINY = BertConfig.preset("tiny")  # vocab 512, d_model 64, 2 layers, dropout 0


def tiny(**overrides) -> Bert:
    torch.manual_seed(0)
    return Bert(dataclasses.replace(TINY, **overrides))


def padded_batch(cfg: BertConfig = TINY, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, cfg.vocab_size, (3, 10), generator=g)
    mask = torch.ones(3, 10, dtype=torch.long)
    mask[1, 7:] = 0
    mask[2, 4:] = 0
    ids[mask == 0] = cfg.pad_token_id
    return ids, mask


def test_output_shapes_and_fields():
    model = tiny()
    ids, mask = padded_batch()
    out = model(ids, torch.zeros_like(ids), mask)
    assert out.last_hidden_state.shape == (3, 10, 64)
    assert out.pooled.shape == (3, 64)
    assert out.mlm_logits.shape == (3, 10, 512)
    assert out.nsp_logits.shape == (3, 2)
    assert out.discriminator_logits is None and out.loss is None


@pytest.mark.parametrize("return_mlm_logits", [True, False])
@pytest.mark.parametrize("autocast", [False, True])
def test_vocabulary_padded_for_the_gpu_changes_nothing(return_mlm_logits, autocast):
    """On a GPU the MLM head pads the vocabulary (509 here) to a multiple of 8 (padded_vocab_logits);
    forced on here on the CPU, it gives the same logits, losses and gradients."""
    plain, padded = tiny(vocab_size=509), tiny(vocab_size=509)
    padded.mlm_head.logits_multiple_of = 8
    ids, mask = padded_batch(plain.config)
    labels = torch.full_like(ids, -100)
    labels[0, 2], labels[1, 5], labels[2, 1] = 7, 508, 300
    outs = []
    for model in (plain, padded):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            out = model(ids, attention_mask=mask, mlm_labels=labels, nsp_labels=torch.tensor([0, 1, 0]),
                        return_mlm_logits=return_mlm_logits)
        out.loss.backward()
        outs.append(out)
    if return_mlm_logits:
        assert outs[1].mlm_logits.shape == (3, 10, 509)
        torch.testing.assert_close(outs[1].mlm_logits, outs[0].mlm_logits)
    torch.testing.assert_close(outs[1].mlm_loss, outs[0].mlm_loss)
    for (name, p), q in zip(plain.named_parameters(), padded.parameters(), strict=True):
        torch.testing.assert_close(q.grad, p.grad, msg=name)


# ---- the MLM loss ---------------------------------------------------------------------------
def test_mlm_loss_averages_over_selected_positions_only():
    model = tiny()
    ids, mask = padded_batch()
    labels = torch.full_like(ids, -100)
    chosen = [(0, 1), (0, 8), (1, 3), (2, 0)]  # all real tokens
    for r, c in chosen:
        labels[r, c] = ids[r, c]
    out = model(ids, attention_mask=mask, mlm_labels=labels)
    out.mlm_logits.retain_grad()
    # independent value: mean of the per-position cross-entropies at the chosen positions
    per_position = torch.stack([F.cross_entropy(out.mlm_logits[r, c], ids[r, c]) for r, c in chosen])
    assert torch.allclose(out.mlm_loss, per_position.mean(), atol=1e-6)
    # averaging over every position (padding included), as a popular course does, gives another number
    all_positions = F.cross_entropy(out.mlm_logits.reshape(-1, 512), labels.reshape(-1), reduction="sum") / ids.numel()
    assert not torch.allclose(out.mlm_loss, all_positions)
    # padding and unselected positions get exactly zero gradient
    out.mlm_loss.backward()
    grad_norm = out.mlm_logits.grad.abs().sum(-1)  # (B, T)
    selected = labels != -100
    assert (grad_norm[~selected] == 0).all() and (grad_norm[selected] > 0).all()


def test_mlm_loss_ignores_what_is_at_unselected_positions():
    model = tiny()
    ids, mask = padded_batch()
    labels = torch.full_like(ids, -100)
    labels[0, 2], labels[1, 5] = ids[0, 2], ids[1, 5]
    other = labels.clone()
    with torch.no_grad():
        a = model(ids, attention_mask=mask, mlm_labels=labels, return_mlm_logits=False).mlm_loss
        full = model(ids, attention_mask=mask, mlm_labels=labels).mlm_loss
        b = model(ids, attention_mask=mask, mlm_labels=other, return_mlm_logits=False).mlm_loss
        none = model(ids, attention_mask=mask, mlm_labels=torch.full_like(ids, -100)).mlm_loss
    assert torch.allclose(a, full, atol=1e-6) and torch.equal(a, b)
    assert none.item() == 0.0  # no selected position: zero, not NaN


def test_every_loss_of_nothing_is_zero_and_int32_labels_work():
    """NSP with every pair -100, or a discriminator over no real token, was NaN (and so was the total)."""
    model = tiny()
    ids, mask = padded_batch()
    labels = torch.full_like(ids, -100)
    labels[0, 2] = ids[0, 2]
    with torch.no_grad():
        out = model(ids, attention_mask=mask, mlm_labels=labels, nsp_labels=torch.full((ids.shape[0],), -100))
        assert out.nsp_loss.item() == 0.0 and torch.isfinite(out.loss)
        nsp = torch.arange(ids.shape[0]) % 2
        as_int32 = model(ids, attention_mask=mask, mlm_labels=labels.int(), nsp_labels=nsp.int())
        as_long = model(ids, attention_mask=mask, mlm_labels=labels, nsp_labels=nsp)
        assert torch.equal(as_int32.loss, as_long.loss)
        electra = tiny(pooler=False, mlm_head=False, nsp_head=False, discriminator_head=True)
        zero_mask = torch.zeros_like(mask)
        assert electra(ids, attention_mask=zero_mask, discriminator_labels=torch.zeros_like(ids)).loss.item() == 0.0


def test_padding_changes_nothing_for_real_tokens():
    """A sequence padded into a batch gives the same hidden states as alone (both backends)."""
    for backend in ("manual", "sdpa"):
        model = tiny(attention_backend=backend).eval()
        ids, mask = padded_batch()
        with torch.no_grad():
            batched = model(ids, attention_mask=mask).last_hidden_state
            alone = model(ids[2:, :4]).last_hidden_state
        assert (batched[2, :4] - alone[0]).abs().max() < 1e-5


def test_backends_agree_and_weights_are_returned():
    ids, mask = padded_batch()
    manual, fused = tiny(attention_backend="manual").eval(), tiny(attention_backend="sdpa").eval()
    with torch.no_grad():
        a = manual(ids, attention_mask=mask, need_weights=True)
        b = fused(ids, attention_mask=mask)
    assert (a.mlm_logits - b.mlm_logits).abs().max() < 1e-5
    assert len(a.attentions) == 2 and a.attentions[0].shape == (3, 4, 10, 10)
    assert torch.allclose(a.attentions[0].sum(-1), torch.ones(3, 4, 10))
    assert a.attentions[0][2, :, :, 4:].abs().max() == 0  # padded keys get no weight


def test_tiny_bert_overfits_a_fixed_mlm_nsp_batch():
    torch.manual_seed(0)
    cfg = dataclasses.replace(TINY, vocab_size=64, max_seq_len=16)
    model = Bert(cfg)
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(5, 64, (8, 16), generator=g)
    ids[:, 0] = 2  # [CLS]-like
    types = torch.zeros_like(ids)
    types[:, 8:] = 1
    corrupted, labels = mask_tokens(ids, vocab_size=64, mask_token_id=4, special_token_ids=[0, 1, 2, 3, 4],
                                    mlm_probability=0.3, generator=g)
    nsp = torch.tensor([0, 1, 0, 1, 1, 0, 0, 1])
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    first = None
    for _ in range(150):
        out = model(corrupted, types, mlm_labels=labels, nsp_labels=nsp, return_mlm_logits=False)
        first = first if first is not None else out.loss.item()
        opt.zero_grad()
        out.loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        out = model(corrupted, types, mlm_labels=labels, nsp_labels=nsp)
    assert out.loss.item() < 0.05 * first
    selected = labels != -100
    assert (out.mlm_logits.argmax(-1)[selected] == labels[selected]).all()
    assert (out.nsp_logits.argmax(-1) == nsp).all()


# ---- bad input ------------------------------------------------------------------------------
@pytest.mark.parametrize("make_kwargs,error,words", [
    (lambda ids: dict(token_type_ids=torch.full_like(ids, 2)), ValueError, "token_type_ids"),
    (lambda ids: dict(token_type_ids=torch.zeros(3, 9, dtype=torch.long)), ValueError, "token_type_ids"),
    (lambda ids: dict(attention_mask=torch.ones(3, 9)), ValueError, "attention_mask"),
    (lambda ids: dict(attention_mask=torch.ones(10)), ValueError, "attention_mask"),
    (lambda ids: dict(attention_mask=torch.full(ids.shape, 2)), ValueError, r"only 0 \(padding\) and 1"),
    (lambda ids: dict(mlm_labels=torch.full((3, 9), -100)), ValueError, "mlm_labels"),
    (lambda ids: dict(mlm_labels=torch.full(ids.shape, 512)), ValueError, "mlm_labels"),
    (lambda ids: dict(nsp_labels=torch.tensor([0, 2, 1])), ValueError, "nsp_labels"),
    (lambda ids: dict(nsp_labels=torch.tensor([0.0, 1.0, 1.0])), TypeError, "nsp_labels"),
    (lambda ids: dict(discriminator_labels=torch.zeros_like(ids)), ValueError, "no such head"),
])
def test_bad_inputs_raise_clear_errors(make_kwargs, error, words):
    model = tiny()
    ids, _ = padded_batch()
    with pytest.raises(error, match=words):
        model(ids, **make_kwargs(ids))


def test_bad_input_ids_and_too_long():
    model = tiny()
    with pytest.raises(ValueError, match=r"input_ids must be in \[0, 512\)"):
        model(torch.tensor([[1, 512]]))
    with pytest.raises(TypeError, match="integer"):
        model(torch.ones(1, 4))
    with pytest.raises(ValueError, match="at least one row and one token"):  # was an IndexError in the pooler
        model(torch.zeros(2, 0, dtype=torch.long))
    with pytest.raises(ValueError, match="batch, seq_len"):
        model(torch.ones(4, dtype=torch.long))
    with pytest.raises(ValueError, match="max_seq_len=128"):
        model(torch.ones(1, 129, dtype=torch.long))


# ---- files ----------------------------------------------------------------------------------
def test_save_and_load_our_folder(tmp_path):
    model = tiny().eval()
    ids, mask = padded_batch()
    model.save_pretrained(tmp_path / "run")
    assert json.loads((tmp_path / "run" / "config.json").read_text())["family"] == "bert"
    loaded = Bert.from_pretrained(tmp_path / "run")
    assert not loaded.training  # ready to use, like GPT's and T5's from_pretrained: dropout off
    assert loaded.absent_heads == []
    with torch.no_grad():
        assert torch.equal(model(ids, attention_mask=mask).mlm_logits, loaded(ids, attention_mask=mask).mlm_logits)


def _hf_folder(tmp_path, cls=transformers.BertForPreTraining, **extra):
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                     intermediate_size=64, max_position_embeddings=24, **extra)
    hf = cls(config).eval()
    hf.save_pretrained(tmp_path / "hf")
    return hf, tmp_path / "hf"


def test_from_pretrained_hf_folder_with_heads(tmp_path):
    hf, folder = _hf_folder(tmp_path)
    model = Bert.from_pretrained(folder).eval()
    assert model.absent_heads == [] and model.config.nsp_head and model.config.mlm_head
    ids = torch.randint(0, 99, (2, 7))
    with torch.no_grad():
        assert (model(ids).mlm_logits - hf(ids).prediction_logits).abs().max() < 1e-4


def test_from_pretrained_bare_encoder_reports_absent_heads(tmp_path):
    hf, folder = _hf_folder(tmp_path, cls=transformers.BertModel)
    with pytest.warns(UserWarning, match="MLM head, NSP head"):
        model = Bert.from_pretrained(folder)
    assert model.absent_heads == ["mlm_head", "nsp_head"]
    assert model.mlm_head is None and model.nsp_head is None and model.pooler is not None
    ids = torch.randint(0, 99, (2, 7))
    with torch.no_grad():
        ref = hf(ids)
        out = model.eval()(ids)
    assert (out.last_hidden_state - ref.last_hidden_state).abs().max() < 1e-4
    assert (out.pooled - ref.pooler_output).abs().max() < 1e-4


def test_from_pretrained_missing_weights_names_them(tmp_path):
    _, folder = _hf_folder(tmp_path)
    weights = load_file(str(folder / "model.safetensors"))
    del weights["bert.encoder.layer.1.attention.self.key.weight"]
    del weights["bert.encoder.layer.0.output.dense.bias"]
    save_file(weights, str(folder / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(ValueError, match="missing keys") as info:
        Bert.from_pretrained(folder)
    assert "bert.encoder.layer.1.attention.self.key.weight" in str(info.value)
    assert "bert.encoder.layer.0.output.dense.bias" in str(info.value)


def test_from_pretrained_mismatched_weights_names_them(tmp_path):
    _, folder = _hf_folder(tmp_path)
    config = json.loads((folder / "config.json").read_text())
    config["intermediate_size"] = 48  # the weights say 64
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"shape mismatches: layers\.0\.ffn\.fc_in\.weight"):
        Bert.from_pretrained(folder)


def test_from_pretrained_unknown_keys_and_bad_folders(tmp_path):
    _, folder = _hf_folder(tmp_path)
    weights = load_file(str(folder / "model.safetensors"))
    weights["bert.encoder.layer.7.output.dense.bias"] = torch.zeros(32)
    save_file(weights, str(folder / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(ValueError, match=r"unexpected keys: bert\.encoder\.layer\.7"):
        Bert.from_pretrained(folder)
    with pytest.raises(FileNotFoundError):
        Bert.from_pretrained(tmp_path / "nowhere")
    (tmp_path / "gpt").mkdir()
    (tmp_path / "gpt" / "config.json").write_text(json.dumps({"family": "gpt"}))
    save_file({"x": torch.zeros(1)}, str(tmp_path / "gpt" / "model.safetensors"))
    with pytest.raises(ValueError, match="family='gpt'"):
        Bert.from_pretrained(tmp_path / "gpt")


# ---- construction ---------------------------------------------------------------------------
def test_meta_device_construction_is_fast():
    start = time.perf_counter()
    with torch.device("meta"):
        model = Bert(BertConfig.preset("bert-large"))
    assert time.perf_counter() - start < 2.0
    assert next(model.parameters()).device.type == "meta"


def test_init_is_berts():
    model = Bert(BertConfig.preset("tiny", vocab_size=2000, d_model=128))
    w = model.layers[0].ffn.fc_in.weight
    assert abs(w.std().item() - 0.02) < 0.002 and model.layers[0].ffn.fc_in.bias.abs().max() == 0
    assert model.embeddings.word.weight[0].abs().max() == 0  # the padding row


# ---- ELECTRA ----------------------------------------------------------------------------------
def test_electra_pretraining_objective():
    disc = BertConfig(vocab_size=80, max_seq_len=16, d_model=64, n_layers=2, n_heads=4, embedding_size=32, dropout=0.0,
                      pooler=False, mlm_head=False, nsp_head=False, discriminator_head=True)
    torch.manual_seed(0)
    electra = ElectraPretraining(disc)
    assert electra.generator.config.d_model == 16 and electra.generator.embeddings is electra.discriminator.embeddings
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(5, 80, (6, 16), generator=g)
    masked, labels = mask_tokens(ids, vocab_size=80, mask_token_id=4, special_token_ids=[0, 1, 2, 3, 4],
                                 mlm_probability=0.25, generator=g)
    out = electra(masked, labels, generator=torch.Generator().manual_seed(1))
    selected = labels != -100
    assert torch.equal(out.corrupted_ids[~selected], ids[~selected])  # only masked positions are resampled
    assert torch.equal(out.replaced, out.corrupted_ids != ids)
    assert torch.allclose(out.loss, out.mlm_loss + 50 * out.discriminator_loss)
    opt = torch.optim.AdamW(electra.parameters(), lr=3e-3)
    mlm, disc_losses = [], []
    for step in range(50):
        out = electra(masked, labels, generator=torch.Generator().manual_seed(step))
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        mlm.append(out.mlm_loss.item())
        disc_losses.append(out.discriminator_loss.item())
    assert mlm[-1] < 0.7 * mlm[0]  # the generator learns to fill the blanks
    assert sum(disc_losses[-5:]) / 5 < 0.6 * disc_losses[0]  # the discriminator learns to spot replacements
    with pytest.raises(ValueError, match="embedding_size must be equal"):
        ElectraPretraining(disc, dataclasses.replace(ElectraPretraining.generator_config(disc), embedding_size=16))
