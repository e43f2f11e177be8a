"""Corpora, splits, fetching checks and calibration sampling (real local corpora, no network)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from clone.data import calibration, corpora, fetch, paths, tokens
from clone.data.corpora import CORPORA, SPLITS, Document, assign_splits, load_corpus, load_split, split_text
from clone.data.htmltext import html_to_text
from clone.errors import CloneError


class CharTokenizer:
    """One token per character (code points above 255 share id 255); counts encode calls."""

    name_or_fingerprint = "test-char-256"

    def __init__(self) -> None:
        self.calls = 0

    def encode(self, text: str) -> list[int]:
        self.calls += 1
        return [min(ord(c), 255) for c in text]


@pytest.fixture
def isolated_data(tmp_path, monkeypatch):
    """A fresh data dir that links to the real prepared corpora, so token caches land in tmp."""
    real = paths.data_dir()
    for name in ("shakespeare", "bible", "techprose"):
        fetch.ensure(name)
        (tmp_path / name).symlink_to(real / name)
    monkeypatch.setenv(paths.ENV_VAR, str(tmp_path))
    return tmp_path


# --- corpora and splits ---------------------------------------------------------------------------

@pytest.mark.parametrize("corpus", CORPORA)
def test_splits_are_disjoint_nonempty_and_cover_the_corpus(corpus):
    docs = load_corpus(corpus)
    names = [d.name for d in docs]
    assert len(names) == len(set(names)), "document names must be unique"
    per_split = {s: [d.name for d in load_split(corpus, s)] for s in SPLITS}
    for split, members in per_split.items():
        assert members, f"{corpus} {split} is empty"
    union = [n for members in per_split.values() for n in members]
    assert sorted(union) == sorted(names)  # disjoint (no repeats) and covering
    assert len(per_split["train"]) > len(per_split["validation"])
    assert len(per_split["train"]) > len(per_split["test"])


@pytest.mark.parametrize("corpus", CORPORA)
def test_split_text_joins_documents_with_blank_lines(corpus):
    docs = load_split(corpus, "validation")
    text = split_text(corpus, "validation")
    assert text == "\n\n".join(d.text.strip("\n") for d in docs) + "\n"
    assert all(d.text.strip() for d in docs)


def test_corpus_sizes_are_substantial():
    sizes = {c: sum(len(d.text) for d in load_corpus(c)) for c in CORPORA}
    assert len(load_corpus("shakespeare")) == 42
    assert len(load_corpus("bible")) == 66
    assert sizes["shakespeare"] > 4_000_000
    assert sizes["bible"] > 4_000_000
    assert sizes["fortunes"] > 2_000_000
    assert sizes["techprose"] > 1_000_000


def test_split_assignment_is_deterministic_and_stable_under_additions():
    names = [f"doc{i}" for i in range(2000)]
    first = assign_splits("x", names)
    assert first == assign_splits("x", list(reversed(names)))
    counts = {s: sum(1 for v in first.values() if v == s) for s in SPLITS}
    assert 1500 < counts["train"] < 1700 and 150 < counts["validation"] < 250 and 150 < counts["test"] < 250
    grown = assign_splits("x", names + [f"new{i}" for i in range(50)])
    assert all(grown[n] == first[n] for n in names), "adding documents must not move existing ones"
    # the hash includes the corpus name, so the same file names split differently per corpus
    assert assign_splits("y", names) != first


def test_tiny_corpus_still_gets_every_split():
    for n in range(3, 12):
        names = [f"d{i}" for i in range(n)]
        assignment = assign_splits("tiny", names)
        assert set(assignment.values()) == set(SPLITS), n
    with pytest.raises(CloneError, match="at least 3"):
        assign_splits("tiny", ["a", "b"])


def test_splits_do_not_change_between_loads():
    before = {s: [d.name for d in load_split("shakespeare", s)] for s in SPLITS}
    corpora._load.cache_clear()
    after = {s: [d.name for d in load_split("shakespeare", s)] for s in SPLITS}
    assert before == after


def test_unknown_corpus_and_split_name_the_value_and_the_choices():
    with pytest.raises(CloneError, match=r"'wikitext'.*shakespeare, fortunes, bible, techprose"):
        load_split("wikitext", "test")
    with pytest.raises(CloneError, match=r"'dev'.*train, validation, test"):
        split_text("shakespeare", "dev")


# --- cleaning -------------------------------------------------------------------------------------

def test_strip_gutenberg_removes_header_footer_and_licence_blocks():
    raw = (
        "The Project Gutenberg EBook of Hamlet\r\nRelease Date: 1998\r\n"
        "*** START OF THIS PROJECT GUTENBERG EBOOK HAMLET ***\r\n\r\n"
        "HAMLET\r\n\r\n<<THIS ELECTRONIC VERSION OF THE COMPLETE WORKS OF WILLIAM\r\n"
        "SHAKESPEARE IS COPYRIGHT 1990-1993 BY WORLD LIBRARY, INC.>>\r\n\r\n"
        "To be, or not to be\r\n"
        "*** END OF THIS PROJECT GUTENBERG EBOOK HAMLET ***\r\nThis file should be named...\r\n"
    )
    text = corpora.strip_gutenberg(raw)
    assert text == "HAMLET\n\nTo be, or not to be\n"


def test_shakespeare_documents_carry_no_boilerplate():
    for doc in load_corpus("shakespeare"):
        assert "Project Gutenberg" not in doc.text and "*** START" not in doc.text, doc.name
        assert "ELECTRONIC VERSION" not in doc.text and "\r" not in doc.text, doc.name
        assert not doc.name.endswith("_f"), "First Folio spellings are excluded"
    hamlet = next(d for d in load_corpus("shakespeare") if d.name == "hamlet")
    assert hamlet.text.startswith("HAMLET, PRINCE OF DENMARK")
    assert "To be, or not to be" in hamlet.text


def test_fortunes_are_clean_groups():
    docs = load_corpus("fortunes")
    assert all(re.fullmatch(r"[a-z0-9-]+/\d{3}", d.name) for d in docs)
    assert not any(d.name.startswith("ascii-art/") for d in docs)
    for doc in docs:
        assert "\x08" not in doc.text, doc.name
        assert not re.search(r"^%$", doc.text, re.M), doc.name
    assert corpora.remove_overstrike("it *_\x08is* ___\x08\x08\x08the B\x08Best") == "it *is* the Best"
    assert corpora.split_fortunes("one\n%\ntwo\nlines\n%\n") == ["one", "two\nlines"]


def test_bible_books_in_order_without_references():
    docs = {d.name: d.text for d in load_corpus("bible")}
    assert docs["Genesis"].startswith("In the beginning God created the heaven and the earth.\n")
    assert docs["Revelation"].rstrip().endswith("The grace of our Lord Jesus Christ be with you all. Amen.")
    assert docs["Psalms"].count("\n\n") == 149  # 150 chapters
    assert not any(re.search(r"^\d?[A-Za-z]+\d+:\d+ ", t, re.M) for t in docs.values())


def test_html_to_text_keeps_main_body_prose_and_code_indentation():
    html = """<html><head><title>t</title><script>var x=1;</script></head><body>
    <div class="related">Navigation junk</div>
    <div class="document"><div class="body" role="main">
    <h1>Classes<a class="headerlink" href="#c">\u00b6</a></h1>
    <p>Classes   bundle <code>data</code>
       and behaviour.</p>
    <div class="highlight"><pre>class A:
    x = 1
</pre></div>
    </div><div class="sphinxsidebar">Sidebar junk</div></div></body></html>"""
    text = html_to_text(html)
    assert text == "Classes\n\nClasses bundle data and behaviour.\n\nclass A:\n    x = 1\n"


def test_techprose_is_python_documentation():
    docs = {d.name: d.text for d in load_corpus("techprose")}
    assert "tutorial/classes" in docs and "library/os" in docs
    assert not any(n.startswith(("whatsnew/", "c-api/", "genindex")) for n in docs)
    assert "<div" not in docs["library/os"] and "\u00b6" not in docs["library/os"]


# --- data directory and fetching ------------------------------------------------------------------

def test_data_dir_default_and_override(monkeypatch, tmp_path):
    monkeypatch.delenv(paths.ENV_VAR, raising=False)
    repo = Path(__file__).resolve().parents[1]
    assert paths.data_dir() == repo / ".data"
    monkeypatch.setenv(paths.ENV_VAR, str(tmp_path))
    assert paths.data_dir() == tmp_path


def test_missing_debian_packages_are_named(monkeypatch, tmp_path):
    monkeypatch.setenv(paths.ENV_VAR, str(tmp_path))
    monkeypatch.setattr(fetch, "FORTUNES_DIR", tmp_path / "no-fortunes")
    with pytest.raises(CloneError, match="`fortunes`"):
        fetch.ensure("fortunes")
    monkeypatch.setattr(fetch.shutil, "which", lambda name: None)
    with pytest.raises(CloneError, match="`bible-kjv`"):
        fetch.ensure("bible")
    monkeypatch.setattr(fetch, "PYDOC_HTML_DIR", tmp_path / "no-doc")
    with pytest.raises(CloneError, match="`python3.11-doc`"):
        fetch.ensure("techprose")
    assert fetch.main(["fortunes"]) == 2


def test_fetch_is_a_no_op_when_prepared(monkeypatch):
    for name in CORPORA:
        fetch.ensure(name)

    def forbidden(*args, **kwargs):
        raise AssertionError("nothing may be downloaded or dumped again")

    monkeypatch.setattr(fetch.subprocess, "run", forbidden)
    assert fetch.main([]) == 0


def test_bible_dump_is_written_atomically_from_the_bible_command(isolated_data):
    (isolated_data / "bible").unlink()
    out = fetch.fetch_bible()
    assert out == isolated_data / "bible" / "kjv.txt"
    assert out.read_text().startswith("Ge1:1 In the beginning")
    assert [p.name for p in out.parent.iterdir()] == ["kjv.txt"]


# --- calibration ----------------------------------------------------------------------------------

def test_calibration_samples_are_seeded_windows_of_the_split(isolated_data):
    tok = CharTokenizer()
    a = calibration.calibration_samples(tok, "shakespeare", "validation", n_samples=8, seq_len=64, seed=0)
    b = calibration.calibration_samples(tok, "shakespeare", "validation", n_samples=8, seq_len=64, seed=0)
    c = calibration.calibration_samples(tok, "shakespeare", "validation", n_samples=8, seq_len=64, seed=1)
    assert a.shape == (8, 64) and a.dtype == torch.long
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    text = split_text("shakespeare", "validation")
    for row in a:
        assert "".join(map(chr, row.tolist())) in text


def test_tokenized_split_is_cached_on_disk(isolated_data):
    tok = CharTokenizer()
    first = tokens.tokenize_split(tok, "bible", "validation")
    assert tok.calls == 1
    second = tokens.tokenize_split(tok, "bible", "validation")
    assert tok.calls == 1, "the second call must come from the cache"
    assert torch.equal(first, second) and second.dtype == torch.long
    assert len(list((isolated_data / "tokens").rglob("bible-validation-*.npy"))) == 1
    corpora._load.cache_clear()


def test_tokenizer_fingerprint_falls_back_to_an_encoding_hash():
    class Plain:
        def __init__(self, shift):
            self.shift = shift

        def encode(self, text):
            return [ord(c) + self.shift for c in text]

    assert tokens.tokenizer_fingerprint(CharTokenizer()) == "test-char-256"
    assert tokens.tokenizer_fingerprint(Plain(0)) == tokens.tokenizer_fingerprint(Plain(0))
    assert tokens.tokenizer_fingerprint(Plain(0)) != tokens.tokenizer_fingerprint(Plain(1))


def test_calibration_rejects_impossible_requests():
    stream = torch.arange(10)
    with pytest.raises(CloneError, match="seq_len=11"):
        calibration.sample_windows(stream, 4, 11)
    with pytest.raises(CloneError, match="n_samples=0"):
        calibration.sample_windows(stream, 0, 4)
    windows = calibration.sample_windows(stream, 50, 10, seed=3)
    assert torch.equal(windows, torch.arange(10).expand(50, 10))


def test_document_is_a_plain_record():
    assert Document("a", "b") == Document("a", "b")
