"""What a check tells the learner: right, wrong (because ..., with a hint), or not answered yet.

A check never raises on the learner's behalf. Whatever the learner's code does (returns None,
raises, returns the wrong shape), the check returns a `Feedback`, shown as one line of Markdown.
"""

from __future__ import annotations

import dataclasses
import functools
import sys
import traceback
from pathlib import Path

import numpy as np

RIGHT, WRONG, UNANSWERED = "right", "wrong", "not answered yet"
STATUSES = (RIGHT, WRONG, UNANSWERED)


@dataclasses.dataclass(frozen=True)
class Feedback:
    """One check's verdict on one answer.

    Attributes:
        exercise: the check's name (``check_...``).
        status: "right", "wrong" or "not answered yet".
        message: what was found, e.g. "3 of 64 values differ; the first at index 5: expected
            -128, got 127".
        hint: what to look at next (empty when right).
    Truthy only when right, so ``assert check_x(answer)`` works in a script.
    """

    exercise: str
    status: str
    message: str
    hint: str = ""

    def __bool__(self) -> bool:
        return self.status == RIGHT

    def __str__(self) -> str:
        text = f"{self.exercise}: {self.status}. {self.message}".rstrip()
        return f"{text} Hint: {self.hint}" if self.hint else text

    def _repr_markdown_(self) -> str:
        mark = {
            RIGHT: "✅ **Right.**",
            WRONG: "❌ **Wrong:**",
            UNANSWERED: "✏️ **Not answered yet.**",
        }[self.status]
        text = f"{mark} {self.message}"
        return f"{text}<br>*Hint:* {self.hint}" if self.hint else text


class Wrong(Exception):
    """Raised inside a check to end it with a "wrong" verdict (message, hint)."""

    def __init__(self, message: str, hint: str = ""):
        super().__init__(message)
        self.message, self.hint = message, hint


class Unanswered(Exception):
    """Raised inside a check when the answer is still the notebook's placeholder."""


REGISTRY: dict[str, Check] = {}
"""Every check, by name (``check_...``), as `checked` registered it."""


@dataclasses.dataclass(frozen=True)
class Check:
    """A registered check: its function, the notebook it belongs to, and its default hint.

    Attributes:
        name: ``check_...``.
        notebook: the notebook's number, e.g. "04".
        hint: the hint given with a wrong verdict that brings no hint of its own.
        check: the decorated check: takes the learner's answer, returns a `Feedback`, never raises.
    """

    name: str
    notebook: str
    hint: str
    check: object


def checked(notebook: str, hint: str):
    """Decorator: register a check and turn whatever happens inside it into a `Feedback`.

    The decorated function takes the learner's answer, raises `Wrong` (or uses `expect_close`,
    `expect_equal`, `answered`) when it is wrong, and returns a short message when it is right.

    Args:
        notebook: the notebook's two-digit number ("00".."14").
        hint: the hint for a wrong answer whose `Wrong` gives none, and for an unanswered one.
    Returns:
        a decorator; the check it returns gives a `Feedback` and never raises.
    """

    def decorate(function):
        name = function.__name__

        @functools.wraps(function)
        def check(answer=None, *args, **kwargs) -> Feedback:
            if answer is None or answer is Ellipsis:
                return Feedback(
                    name,
                    UNANSWERED,
                    "Replace the placeholder with your answer, then run the cell again.",
                    hint,
                )
            try:
                message = function(answer, *args, **kwargs)
            except Unanswered:
                return Feedback(
                    name, UNANSWERED, "Your code still returns the placeholder (None or ...).", hint
                )
            except Wrong as wrong:
                return Feedback(name, WRONG, wrong.message, wrong.hint or hint)
            except NotImplementedError:
                return Feedback(
                    name, UNANSWERED, "Your code still raises NotImplementedError.", hint
                )
            except Exception as error:  # say what and where, do not raise
                return Feedback(name, WRONG, _raised(error), hint)
            return Feedback(name, RIGHT, message or "")

        REGISTRY[name] = Check(name, notebook, hint, check)
        return check

    return decorate


_PREFIXES = {sys.prefix, sys.base_prefix, sys.exec_prefix}
_LIBRARY = tuple(str(Path(p).resolve()) for p in _PREFIXES) + (
    str(Path(__file__).resolve().parents[1]),  # qlab_workshop
    str(Path(__file__).resolve().parents[2] / "qlab"),
)
"""Where code that is not the learner's lives: the interpreter's and venv's packages, qlab and
the workshop."""


def _raised(error: Exception) -> str:
    """What to tell the learner about an exception inside a check: where their own code raised it,
    or, when it came from the check or a library reading the answer, that the answer's form is not
    the one asked for."""
    frames = traceback.extract_tb(error.__traceback__)
    own = [f for f in frames if not str(Path(f.filename).resolve()).startswith(_LIBRARY)]
    text = f"{type(error).__name__}: {error}"
    if own:
        return f"your code raised {text} (line {own[-1].lineno} of {own[-1].name})"
    return (
        f"your answer could not be checked ({text}); give it the form the exercise asks for "
        "(the type, shape and order of what to return)"
    )


def answered(value):
    """The value, or `Unanswered` raised if it is still a placeholder (None or ...).

    Returns:
        `value` unchanged.
    Raises:
        Unanswered: `value` is None or Ellipsis.
    """
    if value is None or value is Ellipsis:
        raise Unanswered()
    return value


def whole(value, what: str, hint: str = "") -> int:
    """The answer `value` as an int, if it is a whole number (int, or a float or NumPy number with
    no fractional part); anything else is wrong, not truncated.

    Returns:
        int(value).
    Raises:
        Unanswered: `value` is a placeholder.
        Wrong: `value` is a string, a bool, not a number, or not whole (the message shows it).
    """
    value = answered(value)
    if isinstance(value, (bool, np.bool_, str, bytes)) or not isinstance(
        value, (int, float, np.number)
    ):
        raise Wrong(
            f"{what} should be a whole number, got {_shown(value)} ({type(value).__name__}).", hint
        )
    if not np.isfinite(value) or float(value) != int(value):
        raise Wrong(f"{what} should be a whole number, got {_shown(value)}.", hint)
    return int(value)


def _shown(value) -> str:
    """A value as a learner reads it: NumPy scalars as plain numbers, not `np.float64(0.5)`."""
    if isinstance(value, np.generic):
        value = value.item()
    return repr(value)


def expect_close(
    got, expected, what: str, rtol: float = 1e-6, atol: float = 0.0, hint: str = ""
) -> None:
    """Compare an array answer with the truth, element by element.

    Args:
        got: the learner's array (anything np.asarray takes); None or ... means unanswered.
        expected: the truth (array-like).
        what: what the values are, for the message ("the int8 values").
        rtol, atol: the tolerance, as in np.allclose (0, 0 means exactly equal).
    Returns:
        None.
    Raises:
        Unanswered: `got` is a placeholder.
        Wrong: the shapes differ, or any value is outside the tolerance; the message names the
            first such index, the value expected and the value got.
    """
    got = np.asarray(answered(got))
    expected = np.asarray(expected)
    if got.shape != expected.shape:
        raise Wrong(f"{what} have shape {got.shape}; expected {expected.shape}.", hint)
    try:
        bad = ~np.isclose(got.astype(np.float64), expected.astype(np.float64), rtol=rtol, atol=atol)
    except (TypeError, ValueError):
        raise Wrong(f"{what} are not numbers (dtype {got.dtype}).", hint) from None
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise Wrong(
            f"{int(bad.sum())} of {bad.size} of {what} differ; the first at index {first}: "
            f"expected {_shown(expected[first])}, got {_shown(got[first])}.",
            hint,
        )


def expect_equal(got, expected, what: str, hint: str = "") -> None:
    """Compare a scalar, string or tuple answer with the truth.

    Returns:
        None.
    Raises:
        Unanswered: `got` is a placeholder.
        Wrong: `got != expected`; the message shows both.
    """
    got = answered(got)
    if isinstance(got, np.generic):
        got = got.item()
    if got != expected:
        raise Wrong(f"{what}: expected {_shown(expected)}, got {_shown(got)}.", hint)
