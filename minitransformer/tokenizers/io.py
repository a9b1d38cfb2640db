"""Open any ``tokenizer.json`` as the right minitransformer tokenizer.

The file's ``model.type`` says which algorithm wrote it:

=============  ===========================================================
``BPE``        ``BPETokenizer`` (byte-level BPE: GPT-2, RoBERTa, ours)
``WordLevel``  ``CharTokenizer`` (our character tokenizer's format)
``WordPiece``  ``WordPieceTokenizer`` (BERT)
``Unigram``    ``UnigramTokenizer`` (T5 / SentencePiece)
=============  ===========================================================
"""
from __future__ import annotations

from pathlib import Path

from minitransformer.tokenizers.base import Tokenizer, read_tokenizer_json

MODEL_TYPES = ("BPE", "WordLevel", "WordPiece", "Unigram")


def load_tokenizer(path: str | Path) -> Tokenizer:
    """Read a tokenizer.json (ours or one written by ``tokenizers``) as the matching tokenizer class.

    A missing file is a FileNotFoundError; a file that is not JSON, not a tokenizer.json, of a model
    type we do not implement, or with options we do not support is a ValueError naming the file.
    """
    data = read_tokenizer_json(path)
    kind = data["model"]["type"]
    # Imported here, not at the top: each class lives in its own module and this file must not
    # depend on all of them being importable.
    if kind == "BPE":
        from minitransformer.tokenizers.bpe import BPETokenizer as cls
    elif kind == "WordLevel":
        from minitransformer.tokenizers.char import CharTokenizer as cls
    elif kind == "WordPiece":
        from minitransformer.tokenizers.wordpiece import WordPieceTokenizer as cls
    elif kind == "Unigram":
        from minitransformer.tokenizers.unigram import UnigramTokenizer as cls
    else:
        raise ValueError(f"{path}: tokenizer model type {kind!r} is not supported; expected one of {MODEL_TYPES}")
    try:
        return cls.from_hf_dict(data)
    except (KeyError, TypeError, ValueError, AttributeError) as e:  # a field of the wrong type
        detail = f"missing field {e}" if isinstance(e, KeyError) else str(e)
        raise ValueError(f"{path}: cannot read this {kind} tokenizer: {detail}") from e
