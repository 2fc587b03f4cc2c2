"""Navigation left in, and main text kept, by ingest's HTML reader: old parser against extractor.

Real sites, built or installed locally (no network): this project's MkDocs Material manual
(built from docs/ into a temporary folder), and whichever of these Debian packages are installed
(`apt-get install --no-install-recommends python3.11-doc python-django-filters-doc
python-django-reversion-doc ikiwiki`): CPython's Sphinx docs (python-docs-theme), two Sphinx
sites in the Read the Docs theme, and ikiwiki's own documentation wiki. More sites:
``--site NAME=FOLDER`` (e.g. a site built here with ``sphinx-build`` in the default theme);
``--only NAME`` measures only the sites named.

Each page's frame and document are found from its own HTML, not by either reader:
- navigation: the text of its nav, header, footer and aside elements, of elements whose ARIA
  role is navigation, banner, contentinfo, complementary or search, and of Sphinx's and
  ikiwiki's footer and page header (``.footer``, ``.pageheader``); lines that also occur in the
  main content do not count as navigation (a page title repeated in the breadcrumbs);
- main content: the ``[role=main]``, else ``<main>``, else ``div.body`` element, less any
  navigation inside it (Material puts its sidebars in ``<main>``).

Per reader: the share of output lines (with a letter or digit) that are navigation lines, the
share of the main content's words that the output keeps (word recall, each word counted at most
as often as in the main content), pages per second and MB/s (one core), and for the shipped
reader how many pages fell back to the whole page. ``visible_text`` (the old reader) is the
baseline; the trafilatura variants show why the shipped options were chosen.

    .venv/bin/python bench/html_extraction.py [--pages-per-site 150] [--site NAME=FOLDER ...]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bs4 import BeautifulSoup

from llm_pipeline.hygiene import html

DEBIAN_SITES = {
    "sphinx-cpython": "/usr/share/doc/python3.11/html",
    "sphinx-rtd-django-filters": "/usr/share/doc/python-django-filters-doc/html",
    "sphinx-rtd-django-reversion": "/usr/share/doc/python-django-reversion-doc/html",
    "wiki-ikiwiki": "/usr/share/doc/ikiwiki/html",
}
NAVIGATION = (
    "nav, header, footer, aside, [role=navigation], [role=banner], [role=contentinfo], "
    "[role=complementary], [role=search], .footer, .pageheader"
)
MAIN = ("[role=main]", "main", "div.body")
WORD = re.compile(r"\w+")
SPACE = re.compile(r"\s+")


def trafilatura_reader(
    strip_ids: bool = True, min_extracted_size: int = html._MIN_EXTRACTED_SIZE, **changes: object
) -> Callable[[str], str]:
    """The shipped extractor with ``changes`` to its options (unless ``strip_ids``, with the
    page's section and heading ids left in), falling back like the shipped one."""
    import trafilatura

    options = {**html._EXTRACTOR_OPTIONS, **changes}
    config = html.extractor_config(min_extracted_size)

    def read(markup: str) -> str:
        page = html.page_tree(markup) if strip_ids else markup
        text = trafilatura.extract(page, prune_xpath=html._HIDDEN_XPATH, config=config, **options)
        return text if text and text.strip() else html.visible_text(markup)

    return read


READERS: dict[str, Callable[[str], str]] = {
    "old: visible_text": html.visible_text,
    "new: page_text (shipped)": lambda markup: html.page_text(markup).text,
    "new, section ids kept": trafilatura_reader(strip_ids=False),
    "new, trafilatura's minimum size 250": trafilatura_reader(min_extracted_size=250),
    "new, with fallback extractors": trafilatura_reader(fast=False),
    "new, without favor_recall": trafilatura_reader(favor_recall=False),
    "new, favor_precision instead": trafilatura_reader(favor_recall=False, favor_precision=True),
}


def normalised(line: str) -> str:
    return SPACE.sub(" ", line).strip().rstrip("¶").strip()


def text_lines(text: str) -> set[str]:
    return {normalised(line) for line in text.split("\n")} - {""}


def string_lines(element) -> set[str]:
    """Every text node of ``element`` and every line in it: the pieces a reader may emit."""
    found = set()
    for string in element.find_all(string=True):
        found.add(normalised(string))
        found |= text_lines(string)
    return found - {""}


@dataclass
class Page:
    markup: str
    navigation: set[str]
    main_words: Counter


def page_structure(markup: str) -> Page | None:
    """Navigation lines and main-content words from the page's own structure; ``None`` for a
    page without a main element."""
    soup = BeautifulSoup(markup, "html.parser")
    main = next((found for selector in MAIN if (found := soup.select_one(selector))), None)
    if main is None:
        return None
    frames = soup.select(NAVIGATION)
    navigation: set[str] = set()
    for frame in frames:
        navigation |= text_lines(html.visible_text(str(frame))) | string_lines(frame)
    for frame in main.select(NAVIGATION):
        if not frame.decomposed:
            frame.decompose()
    main_text = html.visible_text(str(main))
    navigation -= text_lines(main_text) | string_lines(main)
    return Page(markup, navigation, Counter(WORD.findall(main_text.lower())))


@dataclass
class Tally:
    lines: int = 0
    navigation_lines: int = 0
    main_words: int = 0
    kept_words: int = 0
    seconds: float = 0.0
    pages: int = 0
    megabytes: float = 0.0
    fallbacks: int = 0
    examples: list[str] = field(default_factory=list)

    def add(self, page: Page, text: str, seconds: float) -> None:
        lines = [normalised(line) for line in text.split("\n")]
        lines = [line for line in lines if WORD.search(line)]
        navigation = [line for line in lines if line in page.navigation]
        self.lines += len(lines)
        self.navigation_lines += len(navigation)
        self.examples += navigation[:2]
        words = Counter(WORD.findall(text.lower()))
        self.main_words += sum(page.main_words.values())
        self.kept_words += sum(min(n, words[w]) for w, n in page.main_words.items())
        self.seconds += seconds
        self.pages += 1
        self.megabytes += len(page.markup.encode()) / 1e6

    @property
    def navigation_share(self) -> float:
        return self.navigation_lines / max(self.lines, 1)

    @property
    def recall(self) -> float:
        return self.kept_words / max(self.main_words, 1)

    def row(self, name: str) -> str:
        return (
            f"  {name:34} {self.navigation_share:9.1%} {self.recall:10.1%} "
            f"{self.pages / self.seconds:8.1f} {self.megabytes / self.seconds:6.2f}"
        )


def site_pages(folder: Path, limit: int) -> list[Path]:
    """Up to ``limit`` pages spread evenly over the site's sorted page list."""
    pages = sorted(p for p in folder.rglob("*.html") if p.name not in ("search.html", "404.html"))
    step = max(1, len(pages) // limit)
    return pages[::step][:limit]


def build_mkdocs_site(target: Path) -> Path:
    root = Path(__file__).resolve().parents[1]
    subprocess.run(
        [
            sys.executable,
            "-m",
            "mkdocs",
            "build",
            "-q",
            "-f",
            str(root / "mkdocs.yml"),
            "-d",
            target,
        ],
        check=True,
        capture_output=True,
    )
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pages-per-site", type=int, default=150)
    parser.add_argument("--site", action="append", default=[], help="NAME=FOLDER")
    parser.add_argument("--only", action="append", help="measure only the sites NAME")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        sites = {"mkdocs-material-this-manual": Path(tmp) / "site"}
        sites |= {name: Path(f) for name, f in DEBIAN_SITES.items() if Path(f).is_dir()}
        sites |= {name: Path(f) for name, f in (s.split("=", 1) for s in args.site)}
        missing = sorted(set(DEBIAN_SITES) - set(sites))
        if missing:
            print(f"not installed, left out: {', '.join(missing)}")
        sites = {name: f for name, f in sites.items() if name in (args.only or sites)}
        totals = {name: Tally() for name in READERS}
        if "mkdocs-material-this-manual" in sites:
            build_mkdocs_site(sites["mkdocs-material-this-manual"])
        for site, folder in sites.items():
            report_site(site, folder, args.pages_per_site, totals)
    print("\nall sites")
    print_header()
    for name, tally in totals.items():
        print(tally.row(name))
    old, new = totals["old: visible_text"], totals["new: page_text (shipped)"]
    print(f"  shipped reader: {new.fallbacks} of {new.pages} pages read whole")
    print(
        f"navigation lines {old.navigation_share:.1%} -> {new.navigation_share:.1%}, "
        f"main text kept {old.recall:.1%} -> {new.recall:.1%}, "
        f"pages/s new/old {(new.pages / new.seconds) / (old.pages / old.seconds):.2f}"
    )


def print_header() -> None:
    print(f"  {'reader':34} {'nav lines':>9} {'main kept':>10} {'pages/s':>8} {'MB/s':>6}")


def report_site(site: str, folder: Path, limit: int, totals: dict[str, Tally]) -> None:
    tallies = {name: Tally() for name in READERS}
    paths = site_pages(folder, limit)
    pages = [page_structure(p.read_text(encoding="utf-8", errors="replace")) for p in paths]
    pages = [page for page in pages if page is not None]
    for page in pages:
        for name, read in READERS.items():
            start = time.process_time()
            text = read(page.markup)
            seconds = time.process_time() - start
            for tally in (tallies[name], totals[name]):
                tally.add(page, text, seconds)
        if html.main_content(page.markup) is None:
            for tally in (tallies["new: page_text (shipped)"], totals["new: page_text (shipped)"]):
                tally.fallbacks += 1
    print(f"\n{site}: {len(pages)} pages with a main element, of {len(paths)} read from {folder}")
    print_header()
    for name, tally in tallies.items():
        print(tally.row(name))
    old = tallies["old: visible_text"]
    print(f"  e.g. navigation lines the old reader keeps: {sorted(set(old.examples))[:6]}")
    new = tallies["new: page_text (shipped)"]
    if new.examples:
        print(f"  e.g. navigation lines the new reader keeps: {sorted(set(new.examples))[:6]}")


if __name__ == "__main__":
    main()
