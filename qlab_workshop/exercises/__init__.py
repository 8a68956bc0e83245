"""Checked exercises: one module of checks per notebook, each check saying right or wrong (and why).

A notebook imports its module (``from qlab_workshop.exercises import buckets``), leaves a
placeholder for the learner to replace, and calls the check on it. Each check compares the answer
with qlab's own functions or with the LiteRT runtime, never with a stored number. Solutions live in
the repository's ``solutions/`` folder, one file per notebook, apart from the learner's notebooks.
"""

import importlib
import pkgutil

from qlab_workshop.exercises.feedback import REGISTRY, Check, Feedback


def all_checks() -> dict[str, Check]:
    """Every check of every exercise module.

    Returns:
        {check name: `Check`} (imports each module of this package once to register its checks).
    """
    for info in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{info.name}")
    return dict(REGISTRY)


__all__ = ["Check", "Feedback", "all_checks"]
