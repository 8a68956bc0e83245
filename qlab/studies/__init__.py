"""The studies: grids of independent cells (model × seed × setting), each cell measured on the
model it names, run by one sweep engine (`qlab.studies.sweep`) and written as one tidy table.

Every study is a module `qlab.studies.<module>` with:

- `NAME`: its name on the command line (`python -m qlab study NAME`);
- `MODELS`: the zoo models it runs by default; `SETTINGS`: its default settings (JSON values:
  numbers, strings or lists; what one means is the study's own, e.g. a bit width or a sparsity);
- `VERSION`: an int, bumped whenever `measure` changes what it returns (cached cells then rebuild);
- `check(models, settings)`: raises ValueError naming a model or setting the study cannot take;
- `prepare(model, seed)`: optional; builds what every cell of that (model, seed) shares (a trained
  float model, through `qlab.artifacts`' cache), run once per pair before the cells;
- `prepare_key(model, seed)`: optional; a JSON value naming what `prepare(model, seed)` builds.
  The engine then calls `prepare` once per distinct key (with the first pair of that key in grid
  order), so a study that uses the seed only for something else (say, which calibration images are
  drawn) returns `(model, 0)` and all seeds share one training. `prepare` must then build the same
  thing for every pair of a key (and `measure` must use that, e.g. train with seed 0);
- `measure(cell)`: `cell` is a dict {"model", "seed", "setting"}; returns a list of tidy row dicts,
  each with model, seed and setting columns and the measured ones. Silent, no progress bars,
  deterministic for a given cell whatever ran before in the process;
- `summary(table)`: medians and spreads over seeds, one row per (model, setting, ...);
- `headline(table)`: one sentence with the study's headline figure, computed from the table.

Figures are `qlab.plots.<name>_figures(table)` (hyphens as underscores); the command is
`qlab.commands.study`.
"""

from __future__ import annotations

import importlib

STUDIES = {
    "bits": "qlab.studies.bits",
    "delay": "qlab.studies.delay",
    "pruning": "qlab.studies.pruning",
    "clustering": "qlab.studies.clustering",
    "recurrent": "qlab.studies.recurrent",
    "calibration-size": "qlab.studies.calibration_size",
    "calibration-method": "qlab.studies.calibration_method",
    "aeq": "qlab.studies.aeq_recipes",
    "sensitivity": "qlab.studies.sensitivity",
    "mixed-precision": "qlab.studies.mixed_precision",
}
"""Study name → module."""


def get(name: str):
    """Returns the imported module of study `name` (the contract above). Raises ValueError for an
    unknown name, listing the studies."""
    if name not in STUDIES:
        raise ValueError(f"unknown study {name!r}; the studies are: {', '.join(STUDIES)}")
    return importlib.import_module(STUDIES[name])


from qlab import _submodules  # noqa: E402 (after the contract above)

__getattr__ = _submodules(__name__)
