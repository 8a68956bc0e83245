"""The project's wiring: pins agree, the commands the README and docs name exist, CI calls them,
every relative link of the README and the docs resolves, and data/ is tracked but not its cache."""

import re
import subprocess
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def pyproject_pins() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    specs = project["dependencies"] + [s for group in extras.values() for s in group]
    pins = {}
    for spec in specs:
        if own := re.fullmatch(
            r"qlab\[([\w,-]+)\]", spec
        ):  # an extra of qlab's own: its pins are listed there
            assert set(own.group(1).split(",")) <= set(extras), (
                f"pyproject.toml: {spec!r} names no extra"
            )
            continue
        name, sep, version = spec.partition("==")
        assert sep, f"pyproject.toml: {spec!r} is not pinned with =="
        pins[name.strip().lower()] = version.strip()
    return pins


def environment_pins() -> dict[str, str]:
    text = (ROOT / "environment.yml").read_text()
    pins = {}
    for name, version in re.findall(
        r"^\s*-\s*([A-Za-z0-9_.\-]+(?:\[[\w,-]+\])?)==([^\s#]+)", text, re.M
    ):
        pins[name.lower()] = version
    return pins


def test_environment_yml_agrees_with_pyproject():
    assert environment_pins() == pyproject_pins()


def test_dev_installs_the_dask_extra():
    """`make test` installs `.[dev]`; the sweep engine's dask tests need the dask extra."""
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    assert "qlab[dask]" in extras["dev"] and {s.partition("==")[0] for s in extras["dask"]} == {
        "dask[distributed]",
        "distributed",
    }


SUPPORTED = ["3.11", "3.12", "3.13"]
"""The Python versions for which every pinned wheel exists (TensorFlow 2.21: cp310–cp313; NumPy 2.4,
pandas 3.1, scikit-learn 1.9, matplotlib 3.11: cp311 and later)."""


def test_python_versions_agree_everywhere():
    """requires-python, environment.yml's python spec and the versions the Makefile looks for."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["requires-python"] == ">=3.11,<3.14"
    assert re.search(
        r"^\s*-\s*python>=3\.11,<3\.14\s*$", (ROOT / "environment.yml").read_text(), re.M
    )
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^PYTHON_VERSIONS\s*:=\s*(.+)$", makefile, re.M).group(1).split() == SUPPORTED


README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
PROSE = [README, *DOCS, *(ROOT / n for n in ("CONTRIBUTING.md", "CHANGELOG.md", "data/README.md"))]
"""The project's Markdown: the README, the pages of docs/ and the other guides."""


def test_readme_commands_and_ci():
    """The README gives the two commands and where to start; the install and command pages name
    the rest; every `make X` the prose names is a target of the Makefile."""
    readme = README.read_text()
    makefile = (ROOT / "Makefile").read_text()
    for command in ("make reproduce", "make test", "make lab"):
        assert command in readme, command
    install = (ROOT / "docs" / "install.md").read_text()
    commands = (ROOT / "docs" / "commands.md").read_text()
    for command in ("make site", "make smoke", "make wheelhouse", "make venv WHEELHOUSE="):
        assert command in install, command
    for command in ("make test", "make test-fast", "make lint", "make reproduce", "make bench"):
        assert command in commands, command
    targets = set(re.findall(r"^([\w-]+):", makefile, re.M))
    for path in PROSE:
        for target in re.findall(r"(?<![\w-])make ([a-z][\w-]*)", code_of(path.read_text())):
            assert target in targets, f"{path.relative_to(ROOT)}: make {target} is no target"
    for version in SUPPORTED:
        assert version in readme and version in install
    ci = (ROOT / ".ci" / "run").read_text()
    assert ci.index("make test") < ci.index("make smoke")
    assert "PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1" in ci  # never a downloaded browser


LINK = re.compile(r"\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
SLUG_DROP = re.compile(r"[^\w\u4e00-\u9fff\- ]")


def slug(heading: str) -> str:
    """A heading's anchor, as MyST (myst_heading_anchors, site/conf.py) and GitHub make it."""
    return SLUG_DROP.sub("", heading.strip().lower()).replace(" ", "-")


CODE = re.compile(r"^(```|~~~).*?^\1|(`+).*?\2", re.M | re.S)
"""A fenced code block or an inline code span."""


def code_of(markdown: str) -> str:
    """The code blocks and inline code of `markdown`, one after another."""
    return "\n".join(m.group(0) for m in CODE.finditer(markdown))


def without_code(markdown: str) -> str:
    """`markdown` without fenced code blocks and inline code (a link shown as code is no link)."""
    return CODE.sub("", markdown)


def anchors(path: Path) -> set[str]:
    """The anchors of a Markdown file's headings."""
    headings = re.findall(r"^#{1,6}\s+(.+?)\s*#*$", without_code(path.read_text()), re.M)
    return {slug(re.sub(r"[`*_]", "", h)) for h in headings}


def relative_links(path: Path) -> list[tuple[str, Path, str]]:
    """Each relative link of a Markdown file: (as written, the file it names, its #fragment)."""
    found = []
    for url in LINK.findall(without_code(path.read_text())):
        if re.match(r"[a-z][a-z0-9+.-]*:", url, re.I) or url.startswith("//"):
            continue  # another host, mailto:, ...
        target, _, fragment = url.partition("#")
        found.append((url, (path.parent / target).resolve() if target else path, fragment))
    return found


def site_docs() -> list[Path]:
    """The pages of docs/ that the Makefile's SITE_DOCS copies into the site."""
    done = subprocess.run(
        [
            "make",
            "-s",
            "--no-print-directory",
            "-C",
            str(ROOT),
            "--eval",
            "print-site-docs: ; @echo $(SITE_DOCS)",
            "print-site-docs",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return [ROOT / name for name in done.stdout.split()]


@pytest.mark.parametrize("path", PROSE, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_names_a_file_that_exists(path):
    broken = []
    for url, target, fragment in relative_links(path):
        if not target.exists():
            broken.append(f"{url}: no file {target}")
        elif fragment and target.suffix == ".md" and fragment not in anchors(target):
            broken.append(f"{url}: no heading #{fragment} in {target.relative_to(ROOT)}")
    assert not broken, f"{path.relative_to(ROOT)}:\n" + "\n".join(broken)


def test_the_readme_links_every_page_of_the_docs():
    """Everything moved out of the README is reachable from it."""
    linked = {target for _, target, _ in relative_links(README)}
    assert not [p.name for p in DOCS if p.resolve() not in linked]


def test_the_pages_on_the_site_link_only_to_what_the_site_holds():
    """The site holds the executed notebooks, the pages of SITE_DOCS and solutions/: a page on it
    that links elsewhere (the README, the design notes, a source file) breaks the site's build."""
    on_site = {p.resolve() for p in site_docs()}
    outside = []
    for page in on_site:
        for url, target, _ in relative_links(page):
            folder = target.relative_to(ROOT).parts[0] if target.is_relative_to(ROOT) else None
            if target not in on_site and folder not in ("notebooks", "solutions"):
                outside.append(f"{page.relative_to(ROOT)}: {url}")
    assert not outside, "\n".join(outside)


def test_the_package_page_lists_the_front_door():
    import qlab

    page = (ROOT / "docs" / "package.md").read_text()
    assert not [name for name in qlab.__all__ if f"`{name}`" not in page]


def test_make_test_executes_each_notebook_once_and_builds_the_site_from_those_copies():
    makefile = (ROOT / "Makefile").read_text()
    recipe = re.search(r"^test: .*?(?=^\S)", makefile, re.M | re.S).group(0)
    assert re.search(
        r"^NBMAKE\s*:=.*--overwrite", makefile, re.M
    )  # the executed copies keep their outputs
    assert "$(EXECUTED)/*.ipynb $(NBMAKE)" in recipe and "$(SITE_BUILD)" in recipe
    assert " notebooks " not in recipe.replace(
        "cp notebooks/", ""
    )  # the sources are not run as well
    assert (
        'nb_execution_mode = "off"' in (ROOT / "site" / "conf.py").read_text()
    )  # Sphinx runs nothing


def test_gitignore_covers_what_the_make_targets_write():
    ignored = (ROOT / ".gitignore").read_text().split()
    for entry in (
        ".venv/",
        ".venv-smoke/",
        "build/",
        "test-artifacts/",
        "wheelhouse/",
        "data/cache/",
        "results/",
    ):
        assert entry in ignored, entry


def test_the_data_folder_is_tracked_and_its_cache_is_not():
    """A fresh clone has data/ with its README; the cache beside it is never committed."""
    assert (ROOT / "data" / "README.md").exists()
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")

    def ignored(path: str) -> bool:
        done = subprocess.run(["git", "-C", str(ROOT), "check-ignore", "-q", "--no-index", path])
        return done.returncode == 0

    assert not ignored("data/README.md")
    assert ignored("data/cache/model-0123.bin") and ignored("data/cache/model-0123.json")


def test_notebooks_committed_without_outputs():
    import json

    notebooks = sorted((ROOT / "notebooks").glob("*.ipynb"))
    assert len(notebooks) >= 3
    for path in notebooks:
        for cell in json.loads(path.read_text())["cells"]:
            if cell["cell_type"] == "code":
                assert not cell.get("outputs") and not cell.get("execution_count"), path.name


def test_make_lab_starts_as_root_too():
    recipe = re.search(r"^lab:.*\n\t(.*)", (ROOT / "Makefile").read_text(), flags=re.M).group(1)
    assert "--allow-root" in recipe and "id -u" in recipe
