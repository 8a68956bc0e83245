"""Every checked exercise: its solution (solutions/NN_*.py) is right, each typical mistake is
rejected with a hint, a placeholder is "not answered yet", and every notebook has at least two."""

import importlib.util
import json
import re
from pathlib import Path

import numpy as np
import pytest

from qlab_workshop import exercises
from qlab_workshop.exercises import feedback

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = {p.name[:2]: p for p in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))}
CHECKS = exercises.all_checks()


def _load(path: Path):
    spec = importlib.util.spec_from_file_location(f"solutions_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SOLUTIONS, MISTAKES = {}, {}
for _path in sorted((ROOT / "solutions").glob("[0-9][0-9]_*.py")):
    _module = _load(_path)
    SOLUTIONS.update(_module.SOLUTIONS)
    MISTAKES.update(_module.MISTAKES)


def test_every_notebook_has_at_least_two_checked_exercises_and_calls_them():
    for number, path in NOTEBOOKS.items():
        source = "".join(
            "".join(c["source"])
            for c in json.loads(path.read_text())["cells"]
            if c["cell_type"] == "code"
        )
        mine = [name for name, check in CHECKS.items() if check.notebook == number]
        assert len(mine) >= 2, f"{path.name} has {len(mine)} checked exercises"
        for name in mine:
            assert re.search(rf"\b{name}\(", source), f"{path.name} never calls {name}"


def test_every_check_has_a_solution_and_a_mistake():
    assert sorted(SOLUTIONS) == sorted(CHECKS)
    assert sorted(MISTAKES) == sorted(CHECKS)
    assert all(MISTAKES[name] for name in CHECKS)


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_the_solution_is_right_and_each_mistake_is_wrong_with_a_hint(name):
    check = CHECKS[name].check
    verdict = check(SOLUTIONS[name])
    assert verdict.status == feedback.RIGHT, str(verdict)
    for mistake in MISTAKES[name]:
        verdict = check(mistake)
        assert verdict.status == feedback.WRONG, f"{name} accepted a mistake: {verdict}"
        assert verdict.message and verdict.hint, str(verdict)
    assert check(None).status == feedback.UNANSWERED


def test_a_check_never_raises_on_the_learners_behalf():
    @feedback.checked("99", hint="look at the sign")
    def check_probe(answer):
        feedback.expect_close(answer(np.arange(3)), np.arange(3), "the values")
        return "all three values match"

    try:
        assert check_probe(lambda x: x).status == feedback.RIGHT
        assert check_probe(lambda x: -x).status == feedback.WRONG
        assert "index (1,)" in check_probe(lambda x: -x).message
        assert check_probe(lambda x: x[:2]).message.startswith("the values have shape (2,)")
        raised = check_probe(lambda x: 1 / 0)
        assert raised.status == feedback.WRONG and "ZeroDivisionError" in raised.message
        assert check_probe(lambda x: None).status == feedback.UNANSWERED
        assert check_probe(...).status == feedback.UNANSWERED
        assert not check_probe(lambda x: -x) and check_probe(lambda x: x)
        assert check_probe(lambda x: -x)._repr_markdown_().startswith("❌ **Wrong:**")
        assert "Hint: look at the sign" in str(check_probe(lambda x: -x))
    finally:
        feedback.REGISTRY.pop("check_probe")
