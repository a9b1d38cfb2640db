"""``resize_token_embeddings`` on GPT (tied and untied), BERT, T5 v1.0 (tied) and v1.1 (untied), and ELECTRA.

What must hold after growing the vocabulary from V to V + 3: the old rows are untouched and every
new row is the mean of the old rows (Hewitt 2021), so the logits of the old ids do not move and
each new id scores the average of the old scores; tied matrices stay one Parameter; the new ids
train, generate, save and load; Hugging Face's own ``resize_token_embeddings`` agrees.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from torch import nn

import minitransformer as mt
from minitransformer.models.bert import Bert, ElectraPretraining
from minitransformer.models.config import BertConfig, GPTConfig, T5Config
from minitransformer.models.gpt import GPT
from minitransformer.models.t5 import T5
from minitransformer.nn.embeddings import resize_vocab_rows

V, GROWN, SHRUNK = 24, 27, 21  # V < d_model = 32: transformers then starts new rows at the exact mean (see below)
T5_SHAPE = dict(d_model=32, d_kv=8, n_heads=4, d_ff=64, n_layers=1, dropout=0.0, max_seq_len=16)
CONFIGS = {
    "gpt-tied": GPTConfig(vocab_size=V, max_seq_len=16, d_model=32, n_layers=1, n_heads=4, dropout=0.0),
    "gpt-untied": GPTConfig(vocab_size=V, max_seq_len=16, d_model=32, n_layers=1, n_heads=4, dropout=0.0,
                            tie_embeddings=False),
    "bert": BertConfig(vocab_size=V, max_seq_len=16, d_model=32, n_layers=1, n_heads=4, d_ff=64, dropout=0.0),
    "t5-v1.0": T5Config(vocab_size=V, **T5_SHAPE),
    "t5-v1.1": T5Config(vocab_size=V, feed_forward="gated-gelu", tie_embeddings=False, **T5_SHAPE),
}
# every parameter indexed by the vocabulary, by name (a tied one appears once, under its first name)
VOCAB_TABLES = {"gpt-tied": {"tok_emb.weight"}, "gpt-untied": {"tok_emb.weight", "lm_head.weight"},
                "bert": {"embeddings.word.weight", "mlm_head.bias"}, "t5-v1.0": {"shared.weight"},
                "t5-v1.1": {"shared.weight", "lm_head.weight"}}
TIED = {"gpt-tied", "bert", "t5-v1.0"}  # one matrix reads the ids in and scores them out


def make(name: str, seed: int = 0, **overrides) -> nn.Module:
    """A small model with random weights in eval mode; BERT's MLM bias is made far from 0 (its mean matters)."""
    cfg = dataclasses.replace(CONFIGS[name], **overrides)
    torch.manual_seed(seed)
    model = {GPTConfig: GPT, BertConfig: Bert, T5Config: T5}[type(cfg)](cfg)
    if isinstance(model, Bert):
        with torch.no_grad():
            model.mlm_head.bias.normal_(-1.0, 0.5)
    return model.eval()


def ids_of(vocab: int, shape=(2, 8), seed: int = 1) -> torch.Tensor:
    return torch.randint(0, vocab, shape, generator=torch.Generator().manual_seed(seed))


def new_ids() -> torch.Tensor:  # (2, 8): every added id, among old ones
    ids = ids_of(V)
    ids[0, 2], ids[1, 4], ids[1, 6] = V, V + 1, V + 2  # not last: a GPT reads the last id for nothing
    return ids


def scores(model: nn.Module, ids: torch.Tensor) -> torch.Tensor:
    """(B, T) ids -> (B, T, vocab) scores: GPT's next-token logits, BERT's MLM logits, T5's with ids as decoder input."""
    if isinstance(model, GPT):
        return model(ids).logits
    if isinstance(model, Bert):
        return model(ids).mlm_logits
    return model(ids, decoder_input_ids=ids).logits


def loss_of(model: nn.Module, ids: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """A training loss reading ``ids`` and predicting ``targets`` (each family's own objective)."""
    if isinstance(model, GPT):
        return model(ids, labels=targets).loss
    if isinstance(model, Bert):
        return model(ids, mlm_labels=targets).mlm_loss
    return model(ids, decoder_input_ids=ids, labels=targets).loss


def vocab_tables(model: nn.Module) -> dict[str, nn.Parameter]:
    return {name: p for name, p in model.named_parameters() if p.shape[0] == model.config.vocab_size}


def token_embedding(model: nn.Module) -> nn.Embedding:
    return {GPT: lambda m: m.tok_emb, Bert: lambda m: m.embeddings.word, T5: lambda m: m.shared}[type(model)](model)


# ---- the new rows ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", CONFIGS)
def test_growing_keeps_the_old_rows_and_starts_the_new_ones_at_their_mean(name):
    model = make(name)
    before = {k: p.detach().clone() for k, p in vocab_tables(model).items()}
    assert set(before) == VOCAB_TABLES[name]
    returned = model.resize_token_embeddings(GROWN)

    assert returned is token_embedding(model) and returned.num_embeddings == GROWN
    assert model.config.vocab_size == GROWN and type(model.config) is type(CONFIGS[name])
    assert CONFIGS[name].vocab_size == V  # the config the model was built from is left alone
    after = vocab_tables(model)
    assert set(after) == VOCAB_TABLES[name]  # every vocabulary table resized, ties kept (a tied head is no extra)
    for key, old in before.items():
        new = after[key]
        assert new.shape == (GROWN, *old.shape[1:]) and new.dtype == old.dtype and new.requires_grad
        assert torch.equal(new[:V], old), key
        torch.testing.assert_close(new[V:], old.mean(0).expand(3, *old.shape[1:]), rtol=0, atol=1e-7)
    if getattr(model, "lm_head", None) is not None:
        assert model.lm_head.out_features == GROWN


@pytest.mark.parametrize("name", CONFIGS)
def test_old_scores_stay_and_each_new_id_scores_the_average_of_the_old_ones(name):
    model = make(name)
    ids = ids_of(V)
    with torch.no_grad():
        old = scores(model, ids)  # (B, T, V)
        model.resize_token_embeddings(GROWN)
        new = scores(model, ids)  # (B, T, V + 3)
    assert new.shape == (*old.shape[:2], GROWN)
    torch.testing.assert_close(new[..., :V], old, rtol=0, atol=1e-5)
    # h·mean(W) + mean(b) = mean over the old ids of (h·w + b); BERT's bias mean is about -1, so a zero
    # new bias (or zero rows) would be far off
    torch.testing.assert_close(new[..., V:], old.mean(-1, keepdim=True).expand(-1, -1, 3), rtol=0, atol=1e-5)


@pytest.mark.parametrize("name", CONFIGS)
def test_tied_matrices_stay_one_parameter_and_learn_together(name):
    """A step whose inputs never hold the new ids but whose targets do moves the input row only if it is the head's."""
    model = make(name).train()
    model.resize_token_embeddings(GROWN)
    if name == "gpt-tied":
        assert model.lm_head.weight is model.tok_emb.weight
    emb = token_embedding(model).weight
    head = vocab_tables(model).get("lm_head.weight", emb)
    assert (head is emb) == (name in TIED)
    emb_before, head_before = emb.detach().clone(), head.detach().clone()

    inputs = ids_of(V)
    targets = torch.full_like(inputs, -100)
    targets[:, 3], targets[:, 6] = V, V + 2  # GPT: predicted at positions 2 and 5
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)  # built after the resize, as the docstring says
    loss_of(model, inputs, targets).backward()
    optimizer.step()

    assert not torch.equal(head[V], head_before[V]) and not torch.equal(head[V + 2], head_before[V + 2])
    assert torch.equal(emb[V], emb_before[V]) != (name in TIED)  # never read: it moved iff it is the head


# ---- using the new ids ----------------------------------------------------------------------
@pytest.mark.parametrize("name", CONFIGS)
def test_new_ids_are_refused_before_and_train_and_generate_after(name):
    model = make(name)
    ids = new_ids()
    with pytest.raises(ValueError, match=rf"\[0, {V}\)"):
        scores(model, ids)
    model.resize_token_embeddings(GROWN)

    loss = loss_of(model, ids, ids)  # the new ids both read and predicted
    assert torch.isfinite(loss)
    loss.backward()
    grad = token_embedding(model).weight.grad
    assert grad.shape == (GROWN, token_embedding(model).embedding_dim)
    assert bool(grad[V:].abs().sum(-1).gt(0).all())  # every new row learns
    with pytest.raises(ValueError, match=rf"\[0, {GROWN}\)"):
        scores(model, torch.full((1, 4), GROWN))

    if isinstance(model, (GPT, T5)):
        out = model.generate(ids, max_new_tokens=4, do_sample=False)
        assert out.shape[0] == 2 and int(out.max()) < GROWN


@pytest.mark.parametrize("name", ["gpt-tied", "gpt-untied", "bert"])
def test_gpu_padded_vocabulary_gives_the_same_loss_after_resizing(name):
    """GPT's and BERT's heads pad the vocabulary to a multiple of 8 on a GPU; 27 is padded to 32."""
    model = make(name)
    model.resize_token_embeddings(GROWN)
    ids = new_ids()
    if isinstance(model, GPT):
        plain = model(ids, labels=ids).loss
        model.logits_multiple_of = 8
        padded = model(ids, labels=ids)
        assert padded.logits.shape[-1] == GROWN
        padded = padded.loss
    else:
        plain = model(ids, mlm_labels=ids).mlm_loss
        model.mlm_head.logits_multiple_of = 8
        padded = model(ids, mlm_labels=ids, return_mlm_logits=False).mlm_loss  # the (N, V + pad) path
    torch.testing.assert_close(padded, plain, rtol=0, atol=1e-6)


def test_t5_tied_gradient_hand_over_after_resizing():
    """One row (16 ids < 27 rows) takes the TiedGradient path, the same row twice the plain one: same gradient."""
    grads = []
    for rows in (1, 2):
        model = make("t5-v1.0").train()
        model.resize_token_embeddings(GROWN)
        ids = new_ids()[1:].repeat(rows, 1)  # (rows, 8), holding V + 1 and V + 2
        model(ids, labels=ids).loss.backward()  # a mean over tokens: the same for one row or two equal ones
        grads.append(model.shared.weight.grad)
    assert grads[0].shape == (GROWN, 32)
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", CONFIGS)
def test_save_and_load_a_resized_model(name, tmp_path):
    model = make(name)
    model.resize_token_embeddings(GROWN)
    model.save_pretrained(tmp_path / "run")
    loaded = type(model).from_pretrained(tmp_path / "run")
    assert loaded.config == model.config
    assert set(vocab_tables(loaded)) == VOCAB_TABLES[name]  # tied ones tied again
    ours, theirs = model.state_dict(), loaded.state_dict()
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)
    ids = new_ids()
    with torch.no_grad():
        assert torch.equal(scores(loaded, ids), scores(model, ids))


# ---- against transformers -------------------------------------------------------------------
def hf_scores(hf: nn.Module, ids: torch.Tensor) -> torch.Tensor:
    if hf.config.model_type == "t5":
        return hf(input_ids=ids, decoder_input_ids=ids).logits
    out = hf(input_ids=ids)
    return out.logits if hf.config.model_type == "gpt2" else out.prediction_logits


@pytest.mark.parametrize("name", CONFIGS)
def test_matches_transformers_resize_token_embeddings(name):
    """Our resized model against transformers' resize_token_embeddings on the same weights.

    transformers 5's ``mean_resizing`` samples new rows around the old rows' mean with 1e-9 times
    their covariance, but falls back to the exact mean when that covariance is singular, which it
    is for V <= d_model rows: so the two are comparable exactly. Where transformers cannot give an
    independent answer (T5 v1.1: it ties the head to ``shared`` again; a tied BERT head: it pads
    the bias with zeros, where we use the mean), our resized model goes to transformers through
    our converter, and the difference in the bias is checked to be just that.
    """
    model = make(name)
    hf = mt.to_hf_model(model)
    model.resize_token_embeddings(GROWN)
    ids = new_ids()
    with torch.no_grad():
        ours = scores(model, ids)
        converted = hf_scores(mt.to_hf_model(model), ids)  # config and weights through our interop
        torch.testing.assert_close(converted, ours, rtol=0, atol=1e-5)
        if name == "t5-v1.1":
            return
        hf.resize_token_embeddings(GROWN)
        assert hf.config.vocab_size == GROWN
        theirs = hf_scores(hf, ids)
    if name == "bert":
        old_bias_mean = model.mlm_head.bias[:V].mean().detach()
        torch.testing.assert_close(theirs[..., :V], ours[..., :V], rtol=0, atol=1e-5)
        torch.testing.assert_close(theirs[..., V:], ours[..., V:] - old_bias_mean, rtol=0, atol=1e-5)
    else:
        torch.testing.assert_close(theirs, ours, rtol=0, atol=1e-5)
        with torch.no_grad():  # and transformers' resized model comes back as ours, equal
            torch.testing.assert_close(scores(mt.from_hf(hf).eval(), ids), ours, rtol=0, atol=1e-5)


# ---- shrinking, sizes, errors ----------------------------------------------------------------
@pytest.mark.parametrize("name", CONFIGS)
def test_shrinking_drops_the_last_ids(name):
    model = make(name)
    before = {k: p.detach().clone() for k, p in vocab_tables(model).items()}
    ids = ids_of(SHRUNK)
    with torch.no_grad():
        old = scores(model, ids)
        model.resize_token_embeddings(SHRUNK)
        new = scores(model, ids)
    after = vocab_tables(model)
    assert set(after) == VOCAB_TABLES[name] and model.config.vocab_size == SHRUNK
    assert all(torch.equal(after[k], old_table[:SHRUNK]) for k, old_table in before.items())
    torch.testing.assert_close(new, old[..., :SHRUNK], rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match=rf"\[0, {SHRUNK}\)"):
        scores(model, torch.full((1, 4), SHRUNK))


@pytest.mark.parametrize("name,overrides,size,field", [
    ("gpt-tied", dict(eos_token_id=V - 1), V - 1, "eos_token_id"),
    ("bert", dict(pad_token_id=1, position_offset=2), 1, "pad_token_id"),  # RoBERTa-style
    ("t5-v1.0", {}, 1, "eos_token_id"),
    ("t5-v1.1", dict(decoder_start_token_id=5), 5, "decoder_start_token_id"),
])
def test_shrinking_below_a_special_id_is_refused_and_changes_nothing(name, overrides, size, field):
    model = make(name, **overrides)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    config = model.config
    with pytest.raises(ValueError, match=rf"new_vocab_size={size}: the config's {field}=\d+ would lie outside"):
        model.resize_token_embeddings(size)
    assert model.config is config and all(torch.equal(v, state[k]) for k, v in model.state_dict().items())


@pytest.mark.parametrize("bad,error", [(True, TypeError), (27.0, TypeError), ("27", TypeError), (None, TypeError),
                                       (0, ValueError), (-3, ValueError)])
def test_bad_sizes_are_refused(bad, error):
    model = make("gpt-tied")
    with pytest.raises(error, match="new_vocab_size"):
        model.resize_token_embeddings(bad)
    assert model.config.vocab_size == V and model.tok_emb.weight.shape[0] == V


def test_the_same_size_keeps_the_same_parameters_and_numpy_sizes_work():
    model = make("gpt-untied")
    params = list(model.parameters())
    model.resize_token_embeddings(V)  # nothing to do: an optimizer built before keeps working
    assert all(a is b for a, b in zip(params, model.parameters(), strict=True))
    model.resize_token_embeddings(np.int64(GROWN))  # a tokenizer's length may be a numpy integer
    assert type(model.config.vocab_size) is int and model.config.vocab_size == GROWN


def test_dtype_device_and_requires_grad_are_kept():
    model = make("gpt-untied").to(torch.bfloat16)
    model.tok_emb.weight.requires_grad_(False)  # a frozen input embedding stays frozen
    old = model.lm_head.weight.detach().clone()
    model.resize_token_embeddings(GROWN)
    for p, frozen in ((model.tok_emb.weight, True), (model.lm_head.weight, False)):
        assert isinstance(p, nn.Parameter) and p.dtype == torch.bfloat16 and p.device == old.device
        assert p.requires_grad != frozen
    # the new row is the old rows' mean, rounded once to bfloat16
    assert torch.equal(model.lm_head.weight[V], old.float().mean(0).to(torch.bfloat16))
    assert model(new_ids(), labels=new_ids()).loss.dtype == torch.float32

    with torch.device("meta"):  # shapes only: parameter counting of a resized model
        big = GPT(GPTConfig.preset("gpt2-117m"))
    big.resize_token_embeddings(50304)
    assert mt.count_parameters(big) == mt.count_parameters(big.config) == 124_439_808 + 47 * 768


def test_resize_vocab_rows_on_a_bias_and_a_matrix():
    table = nn.Parameter(torch.arange(12.0).reshape(4, 3))
    grown = resize_vocab_rows(table, 6)
    assert torch.equal(grown, torch.tensor([[0.0, 1, 2], [3, 4, 5], [6, 7, 8], [9, 10, 11], [4.5, 5.5, 6.5],
                                            [4.5, 5.5, 6.5]]))
    assert torch.equal(resize_vocab_rows(table, 2), table[:2]) and resize_vocab_rows(table, 4) is table
    bias = nn.Parameter(torch.tensor([1.0, -3.0]), requires_grad=False)
    assert torch.equal(resize_vocab_rows(bias, 4), torch.tensor([1.0, -3.0, -1.0, -1.0]))
    assert not resize_vocab_rows(bias, 4).requires_grad


# ---- ELECTRA --------------------------------------------------------------------------------
def test_electra_pretraining_resizes_the_shared_table_once_and_both_configs():
    disc = BertConfig(vocab_size=V, max_seq_len=16, d_model=32, n_layers=1, n_heads=4, d_ff=64, dropout=0.0,
                      pooler=False, mlm_head=False, nsp_head=False, discriminator_head=True)
    torch.manual_seed(0)
    electra = ElectraPretraining(disc)
    word = electra.generator.embeddings.word.weight.detach().clone()
    table = electra.resize_token_embeddings(GROWN)
    assert table is electra.generator.embeddings.word is electra.discriminator.embeddings.word
    assert electra.generator.config.vocab_size == electra.discriminator.config.vocab_size == GROWN
    assert torch.equal(table.weight[:V], word)
    torch.testing.assert_close(table.weight[V:], word.mean(0).expand(3, -1), rtol=0, atol=1e-7)
    assert electra.generator.mlm_head.bias.shape == (GROWN,)

    ids = new_ids()
    labels = torch.full_like(ids, -100)
    labels[0, 2], labels[1, 4] = V, V + 1
    out = electra(ids, labels, generator=torch.Generator().manual_seed(0))
    out.loss.backward()
    assert torch.isfinite(out.loss) and table.weight.grad.shape == (GROWN, 32)


def test_new_tokens_end_to_end_tokenizer_then_model(tmp_path):
    """The workflow the README describes: add tokens to a trained WordPiece tokenizer, grow a BERT to
    match, mask without touching the new marker, train a step, save both, load both, same ids and scores."""
    from minitransformer.data.masking import mask_tokens
    from minitransformer.tokenizers import WordPieceTokenizer, load_tokenizer

    texts = ["select the name from the table where the age is large", "the table holds names and ages"] * 20
    tok = WordPieceTokenizer.train(texts, vocab_size=60, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
    old_size = tok.vocab_size
    assert tok.add_special_tokens(["<sql>"]) == 1 and tok.add_tokens(["NewWord"]) == 1
    sql_id, word_id = tok.token_to_id("<sql>"), tok.token_to_id("NewWord")  # found in the normalized text: "NEWWORD" below
    assert (sql_id, word_id) == (old_size, old_size + 1) and tok.vocab_size == old_size + 2
    text = "<sql> select NEWWORD from the table"
    ids = tok.encode_batch([text])["input_ids"]  # (1, T): [CLS] ... [SEP]
    assert sql_id in ids.tolist()[0] and word_id in ids.tolist()[0]

    cfg = BertConfig(vocab_size=old_size, max_seq_len=32, d_model=32, n_layers=1, n_heads=4, d_ff=64,
                     dropout=0.0, pad_token_id=tok.token_to_id("[PAD]"))
    torch.manual_seed(0)
    model = Bert(cfg)
    with pytest.raises(ValueError):
        model(ids)  # the new ids are outside the old table
    model.resize_token_embeddings(tok.vocab_size)
    inputs, labels = mask_tokens(ids, tok.vocab_size, tok.token_to_id("[MASK]"), tok.special_token_ids(),
                                 mlm_probability=1.0, generator=torch.Generator().manual_seed(0))
    picked = labels[0] != -100
    assert bool(picked[ids[0] == word_id].all()) and not bool(picked[ids[0] == sql_id].any())  # markers stay
    out = model(inputs, mlm_labels=labels)
    out.loss.backward()
    assert model.embeddings.word.weight.grad[word_id].abs().sum() > 0  # the new word learns

    tok.save(tmp_path / "tokenizer.json")
    model.save_pretrained(tmp_path / "model")
    tok2, model2 = load_tokenizer(tmp_path / "tokenizer.json"), Bert.from_pretrained(tmp_path / "model")
    assert tok2.encode(text) == tok.encode(text) and tok2.vocab_size == model2.config.vocab_size
    model.eval()
    torch.testing.assert_close(model2(ids).mlm_logits, model(ids).mlm_logits, rtol=0, atol=0)
