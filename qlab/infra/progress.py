"""Progress bars (`tqdm.auto`) for qlab's long loops, and the one switch that turns them off:
`set_enabled(False)`, `with progress.off():`, or `QLAB_PROGRESS=0` (or false, no, off)."""

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
    """Returns a `tqdm.auto.tqdm` over `iterable` (or of `total` manual steps), hidden when bars
    are off or `show` is False, `leave=False` by default. Raises TypeError for options tqdm does
    not take."""
    kwargs.setdefault("leave", False)
    return tqdm(iterable, desc=desc, total=total, disable=not (show and enabled()), **kwargs)
