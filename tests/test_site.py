"""The site `make test` and `make site` build in build/site (Sphinx, site/conf.py): every notebook
in order with the outputs of the run that executed it, then the pages of docs/ in the order
site/index.md lists them; every page of docs/ the README links to is on it; every relative link and
resource of every page resolves (a file, and the id a `#fragment` names); no page loads anything
from another host, so the site works with no network.

The tests of the built site run in `make test` and `make site` after the build, with `--built`, and
are skipped without it. (Sphinx's warnings-as-errors build already refuses a Markdown link to a
missing page or heading; this reads the HTML it wrote, raw HTML and theme links included.) The
others check before any build that the Makefile's SITE_DOCS and site/index.md name one set of
pages."""

import json
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from test_project import README, relative_links, site_docs

ROOT = Path(__file__).resolve().parents[1]
SITE = ROOT / "build" / "site"
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
OFF_SITE = {"design-notes.md"}
"""Pages of docs/ kept off the site: the maintainers' design notes, read in the repository."""
DOCS = site_docs()
"""The pages of docs/ the site holds: the Makefile's SITE_DOCS."""


def toctree_pages() -> list[str]:
    """The docs pages site/index.md's toctrees list, in order (names without .md)."""
    index = (ROOT / "site" / "index.md").read_text()
    blocks = re.findall(r"^```\{toctree\}\n(.*?)^```", index, re.M | re.S)
    lines = [line.strip() for block in blocks for line in block.splitlines()]
    return [line for line in lines if line.startswith("docs/")]


def test_the_site_holds_every_page_of_the_docs_but_the_design_notes():
    assert {p.name for p in (ROOT / "docs").glob("*.md")} - {p.name for p in DOCS} == OFF_SITE


def test_the_index_lists_every_page_on_the_site_teaching_notes_first():
    listed = toctree_pages()
    assert sorted(listed) == sorted(f"docs/{p.stem}" for p in DOCS), (
        "site/index.md's toctree and the Makefile's SITE_DOCS name different pages"
    )
    assert listed[0] == "docs/teaching"


LINKING = {
    "a": "href",
    "link": "href",
    "script": "src",
    "img": "src",
    "iframe": "src",
    "source": "src",
    "video": "src",
    "audio": "src",
    "embed": "src",
    "object": "data",
}


class Page(HTMLParser):
    """One HTML file's ids (and anchor names) and the URLs it links or loads, with their tags."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.ids: set[str] = set()
        self.urls: list[tuple[str, str, dict]] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for name in ("id", "name") if tag == "a" else ("id",):
            if attrs.get(name):
                self.ids.add(attrs[name])
        if (attr := LINKING.get(tag)) and attrs.get(attr) is not None:
            self.urls.append((tag, attrs[attr], attrs))


@pytest.fixture(scope="module")
def pages(request) -> dict[Path, Page]:
    if not request.config.getoption("--built"):
        pytest.skip(
            "reads the built site: run with --built after `make site-html` (make test and make "
            "site do)"
        )
    assert (SITE / "index.html").exists(), (
        f"no site: {SITE.relative_to(ROOT)}/index.html (make site builds it)"
    )
    return {
        path: Page(path.read_text(errors="replace"))
        for path in sorted(SITE.rglob("*.html"))
        if "_static" not in path.relative_to(SITE).parts
    }  # the theme's template fragments there are no pages


def test_every_notebook_in_order_then_the_docs(pages):
    index = pages[SITE / "index.html"]
    order = []
    for tag, url, _ in index.urls:
        path = urlsplit(url).path
        if tag == "a" and re.fullmatch(r"(notebooks|docs)/[^/]+\.html", path) and path not in order:
            order.append(path)
    expected = [f"notebooks/{p.stem}.html" for p in NOTEBOOKS]
    assert order[: len(expected)] == expected
    assert order[len(expected) :] == [f"{page}.html" for page in toctree_pages()]
    for page in order:
        assert SITE / page in pages, page


def test_every_page_of_the_docs_the_readme_links_to_is_on_the_site(pages):
    """Everything moved out of the README is reachable from it and on the site."""
    docs = (ROOT / "docs").resolve()
    linked = {t for _, t, _ in relative_links(README) if t.parent == docs and t.suffix == ".md"}
    missing = [
        t.name
        for t in sorted(linked)
        if t.name not in OFF_SITE and SITE / "docs" / f"{t.stem}.html" not in pages
    ]
    assert not missing, f"linked from README.md but not built into the site: {missing}"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_each_notebook_page_shows_the_outputs_of_the_run(notebook, pages):
    copy = json.loads((ROOT / "build" / "book" / "notebooks" / notebook.name).read_text())
    outputs = sum(len(c.get("outputs", [])) for c in copy["cells"] if c["cell_type"] == "code")
    assert outputs, f"{notebook.name}: the executed copy has no outputs"
    html = (SITE / "notebooks" / f"{notebook.stem}.html").read_text()
    assert html.count('class="cell_output') > 0, f"{notebook.name}: its page shows no output"


def test_every_internal_link_resolves(pages):
    broken = []
    for path, page in pages.items():
        for tag, url, _ in page.urls:
            parts = urlsplit(url)
            if parts.scheme or parts.netloc or not (parts.path or parts.fragment):
                continue  # another host, mailto:, data:, or a bare "#"
            target = (path.parent / unquote(parts.path)).resolve() if parts.path else path
            where = f"{path.relative_to(SITE)}: <{tag}> {url!r}"
            if target.is_dir():
                target = target / "index.html"
            if not target.is_relative_to(SITE):
                broken.append(f"{where} points outside the site")
            elif not target.exists():
                broken.append(f"{where}: no file {target.relative_to(SITE)}")
            elif parts.fragment and target.suffix == ".html":
                ids = (
                    pages[target].ids
                    if target in pages
                    else Page(target.read_text(errors="replace")).ids
                )
                if unquote(parts.fragment) not in ids:
                    broken.append(
                        f"{where}: no id {parts.fragment!r} in {target.relative_to(SITE)}"
                    )
    assert not broken, f"{len(broken)} broken link(s):\n" + "\n".join(broken[:50])


def test_no_page_loads_anything_from_another_host(pages):
    """Scripts, styles, images and frames come from the site itself (links to read elsewhere are
    fine). Sphinx takes MathJax from a CDN when a page has maths: give it a local copy
    (`mathjax_path` in site/conf.py) if a notebook starts using `$…$`."""
    remote = []
    for path, page in pages.items():
        for tag, url, attrs in page.urls:
            loads = tag != "a" and not (
                tag == "link" and attrs.get("rel") not in ("stylesheet", "preload", "icon")
            )
            if loads and (urlsplit(url).netloc or url.startswith("//")):
                remote.append(f"{path.relative_to(SITE)}: <{tag}> {url}")
    assert not remote, "\n".join(remote[:20])
