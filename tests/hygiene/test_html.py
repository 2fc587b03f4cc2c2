"""Tests for reading HTML pages: main content from Sphinx- and MkDocs-built pages, the whole
visible text as the fallback, and the old parser's behaviours that the fallback keeps."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import parameters_of

from llm_pipeline.hygiene.html import visible_text
from llm_pipeline.hygiene.readers import FileReading, ReaderConfig, read_raw_file

PAGES = Path(__file__).parent / "html_pages"


def read(source: str, data: bytes) -> FileReading:
    config = ReaderConfig.model_validate(parameters_of("ingest.reader", env="base"))
    return read_raw_file(source, data, config)


def page_lines(name: str) -> tuple[str, list[str]]:
    """A fixture page's markup, and the lines ingest reads from it (one document)."""
    markup = (PAGES / name).read_text(encoding="utf-8")
    reading = read(name, markup.encode())
    assert reading.html_text_from == "main_content"
    assert [r.line for r in reading.records] == [1] and not reading.quarantined
    return markup, reading.records[0].fields["text"].split("\n")


# Lines of each page's navigation bars, sidebars, breadcrumbs, search box and footer, as the
# whole-page parser reads them.
SPHINX_FRAME = [
    "tidetable — Read and query tide tables — Harbour 2.4 documentation",
    "Navigation",
    "index",
    "modules |",
    "next |",
    "previous |",
    "Harbour 2.4 documentation »",
    "Library Reference »",
    "Table of Contents",
    "Previous topic",
    "charts — Nautical chart tiles",
    "Next topic",
    "moorings — Berth allocation",
    "This Page",
    "Report a Bug",
    "Show Source",
    "© Copyright 2024, The Harbour Authors. Created using Sphinx 7.2.6.",
]
MKDOCS_FRAME = [
    "Returns - Trailhead Handbook",
    "Skip to content",
    "Trailhead Handbook",
    "Initializing search",
    "Welcome",
    "Store hours and locations",
    "Exchanges and repairs",
    "Table of contents",
    "Previous",
    "Next",
    "Made with Material for MkDocs",
]


@pytest.mark.parametrize(
    ("name", "frame"),
    [("sphinx_page.html", SPHINX_FRAME), ("mkdocs_material_page.html", MKDOCS_FRAME)],
)
def test_a_built_docs_page_is_read_without_its_navigation(name, frame):
    markup, lines = page_lines(name)

    whole_page = visible_text(markup).split("\n")
    assert [line for line in frame if line not in whole_page] == []
    assert [line for line in frame if line in lines] == []


def test_a_sphinx_page_keeps_headings_paragraphs_lists_code_and_tables():
    _, lines = page_lines("sphinx_page.html")

    assert lines[0] == "tidetable — Read and query tide tables¶"
    for heading in ("Reading a table¶", "Depth windows¶"):
        assert heading in lines
    # Sphinx makes a section's id from its heading; trafilatura drops an element whose id says
    # "menu" or "nav", so this section is kept only because ids are removed first.
    menu = lines.index("The navigation menu of a report¶")
    assert lines[menu + 1].startswith("Every report opens with a menu of the stations")
    assert "- the harbour-master layout, which adds a column for the kind of extreme;" in lines
    code = lines.index('table = tidetable.read("falmouth-2024.csv")')
    assert lines[code + 1 : code + 3] == [
        'for extreme in table.day("2024-03-11"):',
        "    print(extreme.time, extreme.height)",
    ]
    assert "| Coastal ferry | 3.1 metres | 3.9 metres |" in lines
    assert lines[-1] == (
        "Surges caused by wind and air pressure are not in the tables; add a margin on stormy days."
    )


def test_a_mkdocs_material_page_keeps_its_article_from_the_first_heading_to_the_last_block():
    _, lines = page_lines("mkdocs_material_page.html")

    assert lines[0] == "Returns¶"
    assert "What can be returned¶" in lines
    assert "- Stoves and lamps, without fuel cartridges, which cannot be sent by post." in lines
    assert "| Gift card | Store credit |" in lines
    assert lines[-2:] == ["Order number: TH-2024-118", "Reason code: 04 (does not fit)"]


def sphinx_page_with(main: str) -> bytes:
    """The Sphinx fixture page with ``main`` as its whole main content."""
    markup = (PAGES / "sphinx_page.html").read_text(encoding="utf-8")
    start = markup.index('<div class="body" role="main">') + len('<div class="body" role="main">')
    end = markup.index('<div class="clearer">')
    return (markup[:start] + main + markup[end:]).encode()


def test_a_short_page_gives_its_one_paragraph_without_the_navigation_around_it():
    short = (
        '<section id="tide-gauges"><h1>Tide gauges</h1>'
        "<p>Gauges are now described in the station handbook.</p></section>"
    )

    reading = read("page.html", sphinx_page_with(short))

    # Under trafilatura's own 250-character minimum this page came out as every text node of
    # the page, menus included.
    assert reading.records[0].fields["text"] == (
        "Tide gauges\nGauges are now described in the station handbook."
    )


def test_each_line_of_a_line_block_is_a_line_of_its_own():
    # docutils' line block, as Sphinx writes it (a nested block indents its lines).
    block = (
        '<section id="fonts"><h1>Fonts</h1>'
        "<p>Each font is described in the configuration file by the keys below.</p>"
        '<div class="line-block">\n<div class="line">name - unique font name</div>\n'
        '<div class="line">exists - true if the font exists</div>\n'
        '<div class="line-block"><div class="line">size - in <em>points</em></div></div>\n'
        "</div></section>"
    )

    reading = read("page.html", sphinx_page_with(block))

    # The extractor dropped such lines or ran them together ("font nameexists").
    assert reading.records[0].fields["text"].split("\n") == [
        "Fonts",
        "Each font is described in the configuration file by the keys below.",
        "name - unique font name",
        "exists - true if the font exists",
        "size - in points",
    ]


def test_hidden_elements_in_the_main_content_are_left_out():
    markup = (PAGES / "sphinx_page.html").read_text(encoding="utf-8")
    hidden = (
        "<p hidden>Draft: check the surge figures.</p>"
        '<div style="Display: None">Internal reviewer note.</div>'
        "<template><p>Template row.</p></template>"
    )
    marked = markup.replace('<section id="depth-windows">', hidden + '<section id="depth-windows">')
    assert marked != markup

    reading = read("page.html", marked.encode())

    text = reading.records[0].fields["text"]
    assert reading.html_text_from == "main_content"
    assert "Depth windows¶" in text
    for invisible in ("Draft", "reviewer", "Template row"):
        assert invisible not in text


FRAGMENT = (
    "<h2>Opening hours</h2><p>Mon-Fri 9:00-17:30</p><ul><li>Sat 10-14</li><li>Sun closed</li></ul>"
)


@pytest.mark.parametrize("name", ["hours.html", "hours.HTM"])
def test_a_fragment_without_main_content_is_read_whole_by_the_old_parser(name):
    reading = read(name, FRAGMENT.encode())

    assert reading.html_text_from == "whole_page"
    assert reading.records[0].fields["text"] == "\n".join(
        ["Opening hours", "Mon-Fri 9:00-17:30", "Sat 10-14", "Sun closed"]
    )


def test_a_page_without_text_is_refused_as_empty_whichever_way_it_was_read():
    reading = read("script-only.html", b"<html><script>var x = 1;</script></html>")

    assert [(q.line, q.rule) for q in reading.quarantined] == [(1, "empty_file")]
    assert reading.html_text_from == "whole_page"


def test_other_formats_say_nothing_about_html():
    assert read("notes.txt", b"plain text here").html_text_from is None


# --- The whole-page parser (the fallback) ------------------------------------------------------

HTML = """<!DOCTYPE html>
<html><head><title>Returns
  policy</title><style>body { color: red; }</style>
<script>var secret = "tracking()";</script></head>
<body>
<nav><a href="/">Home</a> | <a href="/faq">FAQ</a></nav>
<!-- a comment nobody should read -->
<div><p>Items can be   returned
within <b>30 days</b>.</p>
<div><p>Nested <em>paragraph</em> here.<br>After a break.</p>
<ul><li>First</li><li>Second</li></ul></div></div>
<p hidden>Hidden text</p><div style="display: none">Also hidden</div>
<noscript>Enable JavaScript</noscript><template><p>Template</p></template>
<pre>  code
    indented</pre>
<table><tr><th>Size</th><th>Price</th></tr><tr><td>S</td><td>10 &euro;</td></tr></table>
<script>document.write("<p>injected</p>")</script>
</body></html>
"""


def test_visible_text_keeps_one_line_per_block():
    text = visible_text(HTML)

    assert text == "\n".join(
        [
            "Returns policy",
            "Home | FAQ",
            "Items can be returned within 30 days.",
            "Nested paragraph here.",
            "After a break.",
            "First",
            "Second",
            "  code\n    indented",
            "Size Price",
            "S 10 €",
        ]
    )
    hidden = ("<", "tracking", "color", "comment", "Hidden", "JavaScript", "Template", "injected")
    for invisible in hidden:
        assert invisible not in text
