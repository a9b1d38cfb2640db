"""``minitransformer tokenizer ...``: train a tokenizer on a corpus, or look at how one splits a text.

    minitransformer tokenizer train --kind bpe --vocab-size 4096 --corpus shakespeare --out tok.json
    minitransformer tokenizer encode --tokenizer tok.json "To be, or not to be"
    minitransformer tokenizer add --tokenizer tok.json --special "<sql>" "</sql>" --out tok-sql.json

User errors (a missing corpus, a vocabulary size the kind cannot have, a broken tokenizer file) are
raised as ValueError / FileNotFoundError; ``cli.main`` prints them as one line and exits with 2.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from minitransformer.tokenizers.base import MAX_VOCAB_SIZE

KINDS = ("char", "bpe", "wordpiece", "unigram")


def read_corpus(source: str) -> str:
    """The training text: ``"shakespeare"`` (embedded) or the user's file / folder / glob."""
    from minitransformer.data import load_corpus

    return load_corpus(source)


def train_tokenizer(kind: str, text: str, vocab_size: int | None, backend: str = "hf"):
    """Train a tokenizer of ``kind`` on ``text``; ``vocab_size`` is required except for "char"."""
    if kind not in KINDS:
        raise ValueError(f"unknown tokenizer kind {kind!r}; expected one of {KINDS}")
    if kind == "char":
        if vocab_size is not None:
            raise ValueError("--vocab-size does not apply to --kind char: its vocabulary is the corpus's characters")
        from minitransformer.tokenizers.char import CharTokenizer

        return CharTokenizer.train(text)
    if vocab_size is None:
        raise ValueError(f"--kind {kind} needs --vocab-size")
    if not 1 <= vocab_size <= MAX_VOCAB_SIZE:  # the trainer would allocate in proportion, and abort
        raise ValueError(f"--vocab-size must be in [1, {MAX_VOCAB_SIZE:,}], got {vocab_size}")
    if kind == "bpe":
        from minitransformer.tokenizers.bpe import BPETokenizer

        return BPETokenizer.train(text, vocab_size=vocab_size, backend=backend)
    lines = [line for line in text.splitlines() if line.strip()]
    if kind == "wordpiece":
        from minitransformer.tokenizers.wordpiece import WordPieceTokenizer

        return WordPieceTokenizer.train(lines, vocab_size=vocab_size, backend=backend)
    from minitransformer.tokenizers.unigram import UnigramTokenizer

    return UnigramTokenizer.train(lines, vocab_size=vocab_size, backend=backend)


def cmd_train(args: argparse.Namespace) -> int:
    text = read_corpus(args.corpus)
    tok = train_tokenizer(args.kind, text, args.vocab_size, args.backend)
    out = Path(args.out)
    if out.is_dir():
        raise IsADirectoryError(f"--out {out} is a folder; give a file name such as {out / 'tokenizer.json'}")
    out.parent.mkdir(parents=True, exist_ok=True)
    tok.save(out)
    print(f"wrote {out}: {args.kind} tokenizer, {tok.vocab_size} tokens, trained on {len(text):,} characters")
    return 0


def cmd_encode(args: argparse.Namespace) -> int:
    from minitransformer.tokenizers.io import load_tokenizer

    tok = load_tokenizer(args.tokenizer)
    ids = tok.encode(args.text)
    print(f"tokens: {[tok.id_to_token(i) for i in ids]}")
    print(f"ids: {ids}")
    return 0


def cmd_add(args: argparse.Namespace) -> int:
    from minitransformer.tokenizers.io import load_tokenizer

    tok = load_tokenizer(args.tokenizer)
    before = tok.vocab_size
    added = tok.add_tokens(args.tokens, special=args.special)  # checks the tokens before changing anything
    tok.save(args.out)
    kind = ("special " if args.special else "") + ("token" if added == 1 else "tokens")
    ids = "" if not added else f" (id {before})" if added == 1 else f" (ids {before}..{tok.vocab_size - 1})"
    print(f"wrote {args.out}: {added} new {kind}{ids}, {tok.vocab_size} tokens in all; "
          f"grow a model to match with model.resize_token_embeddings({tok.vocab_size})")
    return 0


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add ``tokenizer train``, ``encode`` and ``add`` to the ``minitransformer`` command line."""
    parser = subparsers.add_parser("tokenizer", help="train a tokenizer or encode a text with one")
    sub = parser.add_subparsers(dest="tokenizer_command", required=True)

    train = sub.add_parser("train", help="train a tokenizer on a corpus and write its tokenizer.json")
    train.add_argument("--kind", choices=KINDS, required=True)
    train.add_argument("--vocab-size", type=int, default=None,
                       help="number of tokens, special tokens included (not for --kind char)")
    train.add_argument("--corpus", default="shakespeare",
                       help="'shakespeare' (embedded, the default), a UTF-8 text file, a folder or a glob")
    train.add_argument("--out", required=True, help="the tokenizer.json to write")
    train.add_argument("--backend", choices=("python", "hf"), default="hf",
                       help="BPE only: train with the pure-Python reference or through `tokenizers` "
                            "(same result; hf is much faster)")
    train.set_defaults(func=cmd_train)

    encode = sub.add_parser("encode", help="print the tokens and ids of a text")
    encode.add_argument("--tokenizer", required=True, help="a tokenizer.json (ours or from `tokenizers`)")
    encode.add_argument("text")
    encode.set_defaults(func=cmd_encode)

    add = sub.add_parser("add", help="add tokens (words, or markers with --special) to a tokenizer.json")
    add.add_argument("--tokenizer", required=True, help="the tokenizer.json to start from")
    add.add_argument("tokens", nargs="+", help="the tokens to add; each gets the next free id")
    add.add_argument("--special", action="store_true",
                     help="markers: matched only as written, left out by decode(skip_special_tokens=True), "
                          "never masked by BERT pretraining")
    add.add_argument("--out", required=True, help="where to write the new tokenizer.json (may be the same file)")
    add.set_defaults(func=cmd_add)
