"""The project's wiring: pins agree, the README's commands exist, CI calls them."""

import re
import tomllib
from pathlib import Path

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


def test_readme_commands_and_ci():
    readme = (ROOT / "README.md").read_text()
    makefile = (ROOT / "Makefile").read_text()
    for command in (
        "make test",
        "make reproduce",
        "make lab",
        "make site",
        "make smoke",
        "make wheelhouse",
        "make venv WHEELHOUSE=",
    ):
        assert command in readme, command
        assert re.search(rf"^{command.split()[1].partition('=')[0]}:", makefile, re.M), command
    for version in SUPPORTED:
        assert version in readme
    ci = (ROOT / ".ci" / "run").read_text()
    assert ci.index("make test") < ci.index("make smoke")
    assert "PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1" in ci  # never a downloaded browser


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


def test_notebooks_committed_without_outputs():
    import json

    notebooks = sorted((ROOT / "notebooks").glob("*.ipynb"))
    assert len(notebooks) >= 3
    for path in notebooks:
        for cell in json.loads(path.read_text())["cells"]:
            if cell["cell_type"] == "code":
                assert not cell.get("outputs") and not cell.get("execution_count"), path.name
