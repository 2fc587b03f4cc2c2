"""The text of an HTML page: its main content, or all its visible text when it has none.

A documentation or wiki page is mostly its document, framed by navigation: a sidebar table of
contents, breadcrumbs, "next | previous" bars, a footer. trafilatura (a main-content extractor
made for web text) keeps the document's headings, paragraphs, lists, tables and code, and drops
the frame. A page where it finds no main content (one without text), and a bare fragment, are
read whole by ``visible_text``, the parser that reads every visible block. bs4 and trafilatura are
imported only when a page is read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal

# Elements a browser does not show; removed before the extractor sees the page. XPath 1.0 has
# no lower-case(): translate() folds the style attribute's case and drops its spaces.
_STYLE = "translate(@style, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ ', 'abcdefghijklmnopqrstuvwxyz')"
_HIDDEN_XPATH = [
    "//*[@hidden]",
    "//template",
    f"//*[contains({_STYLE}, 'display:none')]",
    f"//*[contains({_STYLE}, 'visibility:hidden')]",
]
_HEADING_IDS = (
    " | ".join(f"//{tag}[@id]" for tag in ("section", "h1", "h2", "h3", "h4", "h5", "h6"))
    + " | //div[contains(concat(' ', @class, ' '), ' section ')][@id]"
)
# reStructuredText line blocks (poems, addresses, "name - meaning" lists) as docutils and Sphinx
# write them: a div per line, which the extractor dropped or ran together ("font nameexists").
_LINE_BLOCK_LINES = (
    "//div[contains(concat(' ', @class, ' '), ' line-block ')]"
    "/div[contains(concat(' ', @class, ' '), ' line ')]"
)
_PAGE_TAG = re.compile(r"<(?:html|body)[\s>]", re.IGNORECASE)
# Chosen on bench/html_extraction.py (docs/figures.md): fast (no readability/jusText fallback
# extractors) kept more main text at the same navigation share, and is faster; favor_recall keeps
# short lists that the default drops. Comments sections are not the document; the de-duplication
# cache would make a page's text depend on the pages read before it.
_MIN_EXTRACTED_SIZE = 1
_EXTRACTOR_OPTIONS = {
    "output_format": "txt",
    "favor_recall": True,
    "fast": True,
    "include_tables": True,
    "include_comments": False,
    "include_links": False,
    "include_images": False,
    "deduplicate": False,
    "with_metadata": False,
}


@dataclass(frozen=True)
class PageText:
    """A page's text and where it came from: the extractor's main content, or the whole page."""

    text: str
    source: Literal["main_content", "whole_page"]


def page_text(markup: str) -> PageText:
    """The page's main content; its whole visible text when the extractor finds none, or when
    the markup is a fragment (no ``<html>`` or ``<body>`` tag): a fragment has no frame to drop,
    and the extractor would drop parts of it (a leading heading) as boilerplate."""
    main = main_content(markup) if _PAGE_TAG.search(markup) else None
    if main is not None:
        return PageText(main, "main_content")
    return PageText(visible_text(markup), "whole_page")


def main_content(markup: str) -> str | None:
    """The document of a page without its navigation, sidebars, breadcrumbs and footer, one
    block a line; ``None`` when trafilatura finds no main content."""
    import trafilatura

    tree = page_tree(markup)
    if tree is None:
        return None
    text = trafilatura.extract(
        tree, prune_xpath=_HIDDEN_XPATH, config=extractor_config(), **_EXTRACTOR_OPTIONS
    )
    if text is None or not text.strip():
        return None
    return "\n".join(line.rstrip() for line in text.split("\n"))


@cache
def extractor_config(min_extracted_size: int = _MIN_EXTRACTED_SIZE) -> Any:
    """trafilatura's settings with its minimum main-content size lowered.

    Below 250 characters it replaces what it found with a dump of every text node, navigation
    included: a short page's one paragraph came out between two copies of its menus.
    """
    from trafilatura.settings import use_config

    config = use_config()
    config.set("DEFAULT", "MIN_EXTRACTED_SIZE", str(min_extracted_size))
    return config


def page_tree(markup: str) -> Any:
    """The page as trafilatura parses it, without the ids of sections and headings, and with
    each line of a line block as a paragraph.

    trafilatura drops elements whose id says "menu" or "nav"; Sphinx and MkDocs make those ids
    from the heading's words, so a section headed "File menu" would vanish with its text.
    """
    from trafilatura import load_html

    tree = load_html(markup)
    if tree is not None:
        for element in tree.xpath(_HEADING_IDS):
            del element.attrib["id"]
        for line in tree.xpath(_LINE_BLOCK_LINES):
            line.tag = "p"
    return tree


# --- The whole page ----------------------------------------------------------------------------

_INVISIBLE_TAGS = ["script", "style", "noscript", "template", "head", "title"]
_BLOCK_TAGS = [
    "address", "article", "aside", "blockquote", "body", "caption", "dd", "details", "dialog",
    "div", "dl", "dt", "fieldset", "figcaption", "figure", "footer", "form", "h1", "h2", "h3",
    "h4", "h5", "h6", "header", "hgroup", "hr", "html", "li", "main", "nav", "ol", "p",
    "section", "summary", "table", "tbody", "tfoot", "thead", "tr", "ul",
]  # fmt: skip
_HIDDEN_STYLE = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden", re.IGNORECASE)
_HTML_SPACE = re.compile(r"[ \t\n\r\f]+")
_SPACES = re.compile(" {2,}")
_PRE_MARK = re.compile("\ue000([0-9]+)\ue000")


def visible_text(markup: str) -> str:
    """The text a browser shows: one line per block element, the title first if there is one.

    Scripts, styles, comments and hidden elements are left out; ``<pre>`` keeps its layout.
    """
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(markup, "html.parser")
    title = " ".join(soup.title.get_text().split()) if soup.title else ""
    _remove_invisible(soup)
    preformatted = []
    for pre in soup.find_all("pre"):
        if pre.find_parent("pre") is None:
            preformatted.append(pre.get_text().strip("\n"))
            pre.replace_with(f"\n\ue000{len(preformatted) - 1}\ue000\n")
    for string in soup.find_all(string=True):
        collapsed = _HTML_SPACE.sub(" ", string)
        if collapsed != string:
            string.replace_with(collapsed)
    for tag in soup.find_all("br"):
        tag.replace_with("\n")
    for tag in soup.find_all(["td", "th"]):
        tag.insert_after(" ")
    for tag in soup.find_all(_BLOCK_TAGS):
        tag.insert_before("\n")
        tag.insert_after("\n")
    lines = (_SPACES.sub(" ", line).strip() for line in soup.get_text().split("\n"))
    text = "\n".join(line for line in [title, *lines] if line)
    return _PRE_MARK.sub(lambda mark: preformatted[int(mark[1])], text)


def _remove_invisible(soup: Any) -> None:
    from bs4.element import PreformattedString

    hidden = soup.find_all(_INVISIBLE_TAGS) + soup.find_all(attrs={"hidden": True})
    for element in hidden + soup.find_all(style=_HIDDEN_STYLE):
        if not element.decomposed:  # already gone with a hidden ancestor
            element.decompose()
    for string in soup.find_all(string=lambda s: isinstance(s, PreformattedString)):
        string.extract()  # comments, doctype, CDATA, processing instructions
