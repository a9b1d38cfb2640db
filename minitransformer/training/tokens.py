"""Token cache: tokenize a corpus once, keep the ids on disk as a memory-mapped array.

Tokenizing a megabyte of text takes a moment; reading it back should take none. So a run
tokenizes its corpus once, with the Rust backend of Hugging Face ``tokenizers`` where our
tokenizer's ``tokenizer.json`` gives the same ids, and writes the ids next to the run the way
nanoGPT's ``prepare.py`` does: a raw little-endian array in a ``.bin`` file (``uint16`` when the
vocabulary fits, else ``uint32``) with a small JSON header beside it saying what is inside.
``np.memmap`` then maps the file without reading it: batches are slices of the map.

A split is stored as three arrays, enough for every family's objective:

- ``tokens``: the ids of all texts of the split, one after another;
- ``segments``: where each text piece starts in ``tokens`` (``int64``, one more entry than pieces);
  a piece is a sentence for BERT (next-sentence prediction needs sentences), a chunk of a document
  otherwise;
- ``documents``: where each document starts, counted in pieces (``int64``, one more than documents).

The header carries a ``fingerprint`` (a hash of the texts and the tokenizer), so a stale cache
is never read by mistake: a different corpus or tokenizer gives a different fingerprint and the
cache is rebuilt.
"""
from __future__ import annotations

import hashlib
import json
import os
import warnings
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FORMAT = "minitransformer-tokens"
VERSION = 1
CHUNK_CHARS = 1 << 20  # documents longer than this are tokenized in pieces (bounded memory)


def token_dtype(vocab_size: int) -> np.dtype:
    """The smallest unsigned integer type that holds every id: ``uint16`` up to 65,536 ids."""
    if vocab_size <= 1 << 16:
        return np.dtype(np.uint16)
    if vocab_size <= 1 << 32:
        return np.dtype(np.uint32)
    raise ValueError(f"vocab_size {vocab_size} does not fit in 32-bit token ids")


# ---- one array on disk -------------------------------------------------------------------------

def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_array(path: str | os.PathLike, array: np.ndarray, **meta: object) -> None:
    """Write ``array`` as ``path`` (raw bytes) plus ``path.json`` (header), each atomically.

    The header is written last: an array without its header is treated as absent.
    """
    path = Path(path)
    data = np.ascontiguousarray(array).tobytes()
    header = {"format": FORMAT, "version": VERSION, "dtype": array.dtype.str, "shape": list(array.shape),
              "crc32": zlib.crc32(data), **meta}
    header_path = path.with_name(path.name + ".json")
    header_path.unlink(missing_ok=True)  # a header never describes a file being replaced
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    tmp = header_path.with_name(f".{header_path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(header, indent=1) + "\n", encoding="utf-8")
    _fsync_file(tmp)
    os.replace(tmp, header_path)


def read_header(path: str | os.PathLike) -> dict | None:
    """The JSON header of an array file, or None if there is none (or it is unreadable)."""
    header_path = Path(str(path) + ".json")
    try:
        header = json.loads(header_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return header if isinstance(header, dict) and header.get("format") == FORMAT else None


def read_array(path: str | os.PathLike) -> np.ndarray:
    """Memory-map an array written by ``write_array`` (read-only); checks its size and checksum against the header."""
    path = Path(path)
    header = read_header(path)
    if header is None:
        raise FileNotFoundError(f"no token array header {path}.json")
    dtype = np.dtype(header["dtype"])
    shape = tuple(int(n) for n in header["shape"])
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if not path.is_file() or path.stat().st_size != expected:
        raise ValueError(f"{path} is damaged: expected {expected} bytes for {shape} {dtype}")
    if expected == 0:
        return np.zeros(shape, dtype=dtype)
    array = np.memmap(path, dtype=dtype, mode="r", shape=shape)
    # The right size is not enough: bytes overwritten in place would train or evaluate on garbage.
    # (Headers written before the checksum was added have none; those files are read as they are.)
    if "crc32" in header and zlib.crc32(array) != header["crc32"]:
        raise ValueError(f"{path} is damaged: its contents do not match the checksum in its header")
    return array


# ---- tokenizing --------------------------------------------------------------------------------

def fast_encoder(tokenizer, probe: str = "") -> Callable[[list[str]], list[list[int]]]:
    """A function ``texts -> ids per text`` that gives ``tokenizer.encode``'s ids, fast.

    Our tokenizers save Hugging Face ``tokenizer.json``; the Rust ``tokenizers`` library reads it
    and encodes a megabyte in well under a second. We check that it agrees with ``tokenizer.encode``
    on ``probe`` (a sample of the text to encode) before trusting it, and fall back to
    ``tokenizer.encode`` otherwise.
    """

    def slow(texts: list[str]) -> list[list[int]]:
        return [list(tokenizer.encode(t)) for t in texts]

    try:
        from tokenizers import Tokenizer as HFTokenizer

        hf = HFTokenizer.from_str(json.dumps(tokenizer.to_hf_dict()))
    except Exception as e:  # noqa: BLE001 - any failure just means: use the Python encoder
        warnings.warn(f"tokenizing with the Python encoder (the fast backend could not load it: {e})", stacklevel=2)
        return slow

    def fast(texts: list[str]) -> list[list[int]]:
        try:
            return [enc.ids for enc in hf.encode_batch(texts, add_special_tokens=False)]
        except Exception:  # noqa: BLE001 - e.g. a character the vocabulary lacks: the Python encoder says which
            return slow(texts)

    sample = probe or "ROMEO.\nBut soft, what light through yonder window breaks?\n\n  It is the east.\n"
    try:
        expected = slow([sample])
    except ValueError:
        if probe:
            raise  # the text to encode cannot be encoded (say, a character the vocabulary lacks): say why now
        expected = None
    agrees = expected is not None and fast([sample]) == expected
    if not agrees:
        warnings.warn("tokenizing with the Python encoder (the fast backend gives different ids)", stacklevel=2)
        return slow
    return fast


def _chunks(text: str, max_chars: int = CHUNK_CHARS) -> list[str]:
    """Cut a long text into pieces of at most ~``max_chars`` at line ends (a token never spans one
    for our tokenizers' pre-tokenizers, except runs of blank lines, which we avoid cutting)."""
    pieces, start = [], 0
    while len(text) - start > max_chars:
        cut = text.rfind("\n", start, start + max_chars)
        while cut > start and text[cut - 1] == "\n":
            cut -= 1
        if cut <= start:
            cut = start + max_chars
        else:
            cut += 1
        pieces.append(text[start:cut])
        start = cut
    pieces.append(text[start:])
    return [p for p in pieces if p]


@dataclass
class TokenSplit:
    """One split of a tokenized corpus (arrays may be memory maps)."""

    tokens: np.ndarray      # (N,) uint16/uint32 ids
    segments: np.ndarray    # (n_pieces + 1,) int64 start of each piece in ``tokens``
    documents: np.ndarray   # (n_docs + 1,) int64 start of each document in ``segments``

    def __len__(self) -> int:
        return int(self.tokens.shape[0])

    def document_sentences(self) -> list[list[list[int]]]:
        """Documents as lists of pieces (sentences) of ids: the input ``make_nsp_pairs`` wants."""
        tokens = np.asarray(self.tokens, dtype=np.int64)
        seg, docs = self.segments, self.documents
        out = []
        for d in range(len(docs) - 1):
            out.append([tokens[seg[s]:seg[s + 1]].tolist() for s in range(int(docs[d]), int(docs[d + 1]))])
        return out


def tokenize_documents(documents: Sequence[Sequence[str]], encode: Callable[[list[str]], list[list[int]]],
                       vocab_size: int) -> TokenSplit:
    """Documents (each a list of text pieces) -> a ``TokenSplit`` in memory."""
    dtype = token_dtype(vocab_size)
    ids_parts: list[np.ndarray] = []
    segments = [0]
    doc_starts = [0]
    for pieces in documents:
        batch = [c for p in pieces for c in _chunks(p)] if any(len(p) > CHUNK_CHARS for p in pieces) else list(pieces)
        for ids in encode(batch):
            ids_parts.append(np.asarray(ids, dtype=dtype))
            segments.append(segments[-1] + len(ids))
        doc_starts.append(len(segments) - 1)
    tokens = np.concatenate(ids_parts) if ids_parts else np.zeros(0, dtype=dtype)
    return TokenSplit(tokens, np.asarray(segments, dtype=np.int64), np.asarray(doc_starts, dtype=np.int64))


def fingerprint(documents_by_split: dict[str, Sequence[Sequence[str]]], tokenizer_json: str) -> str:
    """A hash of the texts (and how they are cut) and the tokenizer: the cache's identity."""
    h = hashlib.sha256()
    h.update(f"{FORMAT}/{VERSION}\n".encode())
    h.update(tokenizer_json.encode("utf-8"))
    for split in sorted(documents_by_split):
        h.update(f"\0split:{split}".encode())
        for pieces in documents_by_split[split]:
            h.update(b"\0doc")
            for p in pieces:
                h.update(b"\0" + p.encode("utf-8"))
    return h.hexdigest()


def load_or_build_cache(folder: str | os.PathLike, documents_by_split: dict[str, Sequence[Sequence[str]]],
                        tokenizer, tokenizer_json: str | None = None,
                        must_match: bool = False) -> dict[str, TokenSplit]:
    """Return each split's tokens, reading ``folder/<split>.*.bin`` if they match, else building them.

    ``documents_by_split`` maps a split name ("train", "val") to its documents, each a list of text
    pieces. The cache matches when its header's fingerprint equals ``fingerprint(...)`` of the
    same texts and tokenizer. With ``must_match`` (resuming a run), a cache made from other texts
    is an error rather than rebuilt: the run would silently change its data.
    """
    folder = Path(folder)
    tokenizer_json = tokenizer_json if tokenizer_json is not None else json.dumps(tokenizer.to_hf_dict())
    key = fingerprint(documents_by_split, tokenizer_json)
    out: dict[str, TokenSplit] = {}
    encode = None
    for split, documents in documents_by_split.items():
        paths = [folder / f"{split}.{name}.bin" for name in ("tokens", "segments", "documents")]
        headers = [read_header(p) for p in paths]
        if all(h is not None and h.get("fingerprint") == key for h in headers):
            try:
                out[split] = TokenSplit(*(read_array(p) for p in paths))
                continue
            except (OSError, ValueError):
                pass  # damaged: rebuild below
        elif must_match and any(h is not None and h.get("fingerprint") != key for h in headers):
            raise ValueError(f"the corpus or tokenizer differs from the one this run was trained on "
                             f"(token cache {folder} does not match); use the run's own corpus file, unchanged")
        if encode is None:
            sample = "\n".join(p for doc in documents[:50] for p in doc[:50])[:20000]
            encode = fast_encoder(tokenizer, sample)
        built = tokenize_documents(documents, encode, tokenizer.vocab_size)
        folder.mkdir(parents=True, exist_ok=True)
        for path, array in zip(paths, (built.tokens, built.segments, built.documents), strict=True):
            write_array(path, array, fingerprint=key, split=split, vocab_size=tokenizer.vocab_size)
        out[split] = TokenSplit(*(read_array(p) for p in paths))
    return out
