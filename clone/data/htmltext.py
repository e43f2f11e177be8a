"""Plain text from the main body of a Sphinx HTML page (the Python documentation), for the
technical-prose corpus: the rendered pages read like documentation, unlike the reST sources."""

from __future__ import annotations

import re
from html.parser import HTMLParser

_BLOCK_TAGS = {
    "p", "div", "section", "h1", "h2", "h3", "h4", "h5", "h6", "li", "dt", "dd", "dl", "ul", "ol",
    "pre", "table", "tr", "blockquote", "figure", "figcaption", "caption",
}
_SKIP_TAGS = {"script", "style", "head", "title"}


class _MainBodyText(HTMLParser):
    """Collects text inside `<div ... role="main">`, dropping permalink anchors and scripts."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._div_depth = 0
        self._main_depth: int | None = None  # div depth of the main body while inside it
        self._finished = False
        self._skip = 0
        self._in_headerlink = False
        self._pre = 0

    def _inside(self) -> bool:
        return self._main_depth is not None and not self._skip and not self._in_headerlink

    def _break(self, text: str) -> None:
        if self._inside():
            self.parts.append(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = dict(attrs)
        if tag == "div":
            self._div_depth += 1
            if self._main_depth is None and not self._finished and attr.get("role") == "main":
                self._main_depth = self._div_depth
        elif tag in _SKIP_TAGS:
            self._skip += 1
        elif tag == "a" and "headerlink" in (attr.get("class") or ""):
            self._in_headerlink = True
        elif tag == "pre":
            self._pre += 1
        if tag in _BLOCK_TAGS:
            self._break("\n\n")
        elif tag == "br":
            self._break("\n")
        elif tag in ("td", "th"):
            self._break(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP_TAGS:
            self._skip = max(0, self._skip - 1)
        elif tag == "a":
            self._in_headerlink = False
        elif tag == "pre":
            self._pre = max(0, self._pre - 1)
        if tag in _BLOCK_TAGS:
            self._break("\n\n")
        if tag == "div":
            if self._main_depth == self._div_depth:
                self._main_depth, self._finished = None, True
            self._div_depth -= 1

    def handle_data(self, data: str) -> None:
        if not self._inside():
            return
        if not self._pre:
            data = re.sub(r"\s+", " ", data)
            if not self.parts or self.parts[-1].endswith("\n"):
                data = data.lstrip()
        self.parts.append(data)


def html_to_text(html: str) -> str:
    """The main body of a Sphinx page as paragraphs separated by blank lines."""
    parser = _MainBodyText()
    parser.feed(html)
    parser.close()
    text = "".join(parser.parts).replace("\u00b6", "")
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip("\n") + "\n"
