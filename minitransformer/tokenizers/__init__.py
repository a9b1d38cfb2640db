"""Tokenizers written from scratch, each identical to the Hugging Face ``tokenizers`` reference.

- ``CharTokenizer``: one id per character (tiny character-level runs).
- ``BPETokenizer``: byte-level BPE as GPT-2 uses it.
- ``WordPieceTokenizer``: BERT's greedy longest-match-first subwords.
- ``UnigramTokenizer``: SentencePiece-style unigram language model, as T5 uses it.
"""
from minitransformer.tokenizers.base import (
    BERT_SPECIAL_TOKENS,
    GPT_SPECIAL_TOKENS,
    T5_SENTINELS,
    T5_SPECIAL_TOKENS,
    Tokenizer,
)
from minitransformer.tokenizers.bpe import BPETokenizer
from minitransformer.tokenizers.char import CharTokenizer
from minitransformer.tokenizers.io import load_tokenizer
from minitransformer.tokenizers.unigram import UnigramTokenizer
from minitransformer.tokenizers.wordpiece import WordPieceTokenizer

__all__ = [
    "Tokenizer", "CharTokenizer", "BPETokenizer", "WordPieceTokenizer", "UnigramTokenizer", "load_tokenizer",
    "BERT_SPECIAL_TOKENS", "GPT_SPECIAL_TOKENS", "T5_SPECIAL_TOKENS", "T5_SENTINELS",
]
