"""Progress bars for qlab's long loops, and the one switch that turns them off.

Bars come from `tqdm.auto`: a text bar in a terminal, a widget in Jupyter. They are on unless
switched off, by `set_enabled(False)`, inside `with progress.off():` (as the command line's
`--quiet` does), or for a whole process with the environment variable `QLAB_PROGRESS=0` (or
`false`, `no`, `off`).
Logs go through `logging.getLogger("qlab")`; silence them the usual way, e.g.
`logging.getLogger("qlab").setLevel(logging.WARNING)`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable

from tqdm.auto import tqdm

_switch: list[bool] = [True]  # set_enabled() and off() change it; innermost last
OFF = ("0", "false", "no", "off")  # values of QLAB_PROGRESS that switch bars off


def enabled() -> bool:
    """True if bars are shown: not switched off in code, and QLAB_PROGRESS is not "0"."""
    return _switch[-1] and os.environ.get("QLAB_PROGRESS", "1").strip().lower() not in OFF


def set_enabled(on: bool) -> None:
    """Show (True) or hide (False) every qlab progress bar from now on."""
    _switch[0] = bool(on)


@contextlib.contextmanager
def off():
    """No qlab progress bars inside the block."""
    _switch.append(False)
    try:
        yield
    finally:
        _switch.pop()


def bar(
    iterable: Iterable | None = None,
    desc: str = "",
    total: int | None = None,
    show: bool = True,
    **kwargs,
) -> tqdm:
    """A tqdm bar over `iterable` (or a manual one of `total` steps), hidden when bars are off
    or `show` is False; it disappears when done (`leave=False`) unless told otherwise.

    Returns:
        a `tqdm.auto.tqdm` instance: iterate it, or call `.update(n)` and `.close()`.

    Raises:
        TypeError: options tqdm does not take.
    """
    kwargs.setdefault("leave", False)
    return tqdm(iterable, desc=desc, total=total, disable=not (show and enabled()), **kwargs)
