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
        if own := re.fullmatch(r"qlab\[([\w,-]+)\]", spec):  # an extra of qlab's own: its pins are listed there
            assert set(own.group(1).split(",")) <= set(extras), f"pyproject.toml: {spec!r} names no extra"
            continue
        name, sep, version = spec.partition("==")
        assert sep, f"pyproject.toml: {spec!r} is not pinned with =="
        pins[name.strip().lower()] = version.strip()
    return pins


def environment_pins() -> dict[str, str]:
    text = (ROOT / "environment.yml").read_text()
    pins = {}
    for name, version in re.findall(r"^\s*-\s*([A-Za-z0-9_.\-]+(?:\[[\w,-]+\])?)==([^\s#]+)", text, re.M):
        pins[name.lower()] = version
    return pins


def test_environment_yml_agrees_with_pyproject():
    assert environment_pins() == pyproject_pins()


def test_dev_installs_the_dask_extra():
    """`make test` installs `.[dev]`; the sweep engine's dask tests need the dask extra."""
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert "qlab[dask]" in extras["dev"] and {s.partition("==")[0] for s in extras["dask"]} == {"dask[distributed]",
                                                                                               "distributed"}


def test_environment_yml_python_matches_requires_python():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["requires-python"] == "==3.11.*"
    assert re.search(r"^\s*-\s*python=3\.11\s*$", (ROOT / "environment.yml").read_text(), re.M)


def test_readme_commands_and_ci():
    readme = (ROOT / "README.md").read_text()
    for command in ("make test", "make reproduce", "make lab"):
        assert command in readme
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_notebooks_committed_without_outputs():
    import json

    notebooks = sorted((ROOT / "notebooks").glob("*.ipynb"))
    assert len(notebooks) >= 3
    for path in notebooks:
        for cell in json.loads(path.read_text())["cells"]:
            if cell["cell_type"] == "code":
                assert not cell.get("outputs") and not cell.get("execution_count"), path.name
