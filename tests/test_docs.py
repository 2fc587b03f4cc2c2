"""The manual: docs/ builds with MkDocs in strict mode, every page is in the nav, the README
stays short and its links resolve, and measured figures live on docs/figures.md only."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from support import PROJECT_ROOT, run_command, tool

DOCS = PROJECT_ROOT / "docs"
README = PROJECT_ROOT / "README.md"
# A bootstrap interval as the reports write it: "[0.54, 0.74]", "[+0.03, +0.23]".
INTERVAL = re.compile(r"\[[+\-\u2212]?\d+\.\d+, [+\-\u2212]?\d+\.\d+\]")


def _nav_pages(nav: list) -> set[str]:
    pages: set[str] = set()
    for entry in nav:
        value = next(iter(entry.values())) if isinstance(entry, dict) else entry
        pages |= _nav_pages(value) if isinstance(value, list) else {value}
    return pages


def test_docs_build_strict(tmp_path: Path):
    site = tmp_path / "site"
    result = run_command(
        [tool("mkdocs"), "build", "--strict", "--site-dir", str(site)],
        cwd=PROJECT_ROOT,
        NO_MKDOCS_2_WARNING="1",
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for page in DOCS.glob("*.md"):
        built = "index.html" if page.stem == "index" else f"{page.stem}/index.html"
        assert (site / built).is_file(), f"{page.name} was not built"


def test_every_docs_page_is_in_the_nav():
    config = yaml.safe_load((PROJECT_ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    pages = {page.name for page in DOCS.glob("*.md")}
    nav = _nav_pages(config["nav"])
    assert pages - nav == set(), "pages missing from mkdocs.yml's nav"
    assert nav - pages == set(), "nav entries without a page"


def test_readme_is_short():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 220, f"README.md has {len(lines)} lines: move detail into docs/"


def test_readme_links_resolve():
    text = README.read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)\s]+)\)", text)
    local = [target.split("#")[0] for target in targets if "://" not in target]
    assert any(target.startswith("docs/") for target in local)
    missing = [target for target in local if target and not (PROJECT_ROOT / target).exists()]
    assert missing == [], f"README.md links to files that do not exist: {missing}"


def test_measured_figures_are_on_the_figures_page_only():
    pages = [README, *DOCS.glob("*.md")]
    with_intervals = [
        page.name
        for page in pages
        if page.name != "figures.md" and INTERVAL.search(page.read_text(encoding="utf-8"))
    ]
    assert with_intervals == [], "measured figures belong on docs/figures.md; link to it instead"
    assert INTERVAL.search((DOCS / "figures.md").read_text(encoding="utf-8"))
