"""Quiet notebooks: the executed copies `make test` leaves in build/book/notebooks carry no stderr
output and no line of TensorFlow's C++ log anywhere in their outputs, although their kernels ran
with TF_CPP_MIN_LOG_LEVEL=0 (tests/conftest.py; `make site` does the same): each notebook silences
TensorFlow itself (docs/writing-notebooks.md, Setup).

Run by `make test` after the notebooks with `--built`; skipped without it."""

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted((ROOT / "notebooks").glob("*.ipynb"))
EXECUTED = ROOT / "build" / "book" / "notebooks"
TF_LOG = re.compile(
    r"\b[IWEF]\d{4} \d\d:\d\d:\d\d[\d.]*\s+\d+ [\w./-]+:\d+\]"  # absl's line prefix
    r"|[IWEF]0000 |WARNING: All log messages before absl::InitializeLog"
)
"""A line of TensorFlow's C++ log: `W0000 00:00:1732… 123 file.cc:45] …` (0000 before absl's logging
is set up, the date after), and absl's notice that comes with the first one."""


def executed(source: Path, request) -> dict:
    """The executed copy of notebook `source`, as JSON; skips unless --built."""
    if not request.config.getoption("--built"):
        pytest.skip(
            "reads the notebooks make test executed: run with --built after them (make test does)"
        )
    copy = EXECUTED / source.name
    assert copy.exists(), (
        f"{source.name} was not executed: no {copy.relative_to(ROOT)} (make test or make site)"
    )
    return json.loads(copy.read_text())


def output_texts(output: dict) -> list[str]:
    """Every text an output shows: a stream's text, each text-like representation, a traceback."""
    texts = []
    if "text" in output:
        texts.append(output["text"])
    for mime, value in output.get("data", {}).items():
        if mime.startswith("text/") or mime.endswith("json"):
            texts.append(value if isinstance(value, (str, list)) else json.dumps(value))
    texts += output.get("traceback", [])
    return ["".join(t) if isinstance(t, list) else t for t in texts]


@pytest.mark.parametrize("source", SOURCES, ids=[p.stem for p in SOURCES])
def test_executed_notebook_has_no_stderr_and_no_tensorflow_log(source, request):
    notebook = executed(source, request)
    problems = []
    code_cells = [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]
    assert code_cells, f"{source.name}: no code cell"
    for number, cell in enumerate(code_cells, 1):
        where = f"{source.name}, code cell {number} (In [{cell.get('execution_count')}])"
        if "".join(cell["source"]).strip() and not cell.get("execution_count"):
            problems.append(f"{where}: did not run (a cell before it failed?)")
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream" and output.get("name") == "stderr":
                text = "".join(output["text"]).strip()
                problems.append(f"{where}: stderr: {text[:300]!r}")
                continue
            for text in output_texts(output):
                if match := TF_LOG.search(text):
                    line = text[text.rfind("\n", 0, match.start()) + 1 :].split("\n", 1)[0]
                    problems.append(f"{where}: TensorFlow log line: {line[:300]!r}")
    assert not problems, "\n".join(problems)


def test_every_executed_copy_is_the_current_notebook(request):
    """The copies are the notebooks as they are now (same cells), so the site shows what is
    committed."""
    for source in SOURCES:
        copy = executed(source, request)
        committed = json.loads(source.read_text())
        assert ["".join(c["source"]) for c in copy["cells"]] == [
            "".join(c["source"]) for c in committed["cells"]
        ], f"{source.name}: the executed copy is stale (make test or make site executes it again)"
