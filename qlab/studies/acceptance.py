"""Accuracy and size of every (training, mode) over several seeds, checked against the bands
the project promises (float >= 97 %, quantized modes close to float, int8 small).

The bands are code: `python -m qlab seeds` prints these checks, and the test suite runs them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import pandas as pd

from qlab import artifacts
from qlab.conversion import modes
from qlab.infra import progress
from qlab.tflite import measure
from qlab.training import data

log = logging.getLogger(__name__)
INT8_MODES = tuple(
    m.name for m in modes.MODES.values() if m.weights == "int8" and m.activations != "int16"
)
"""Modes with int8 weights and int8 (or float) activations: the ones held to the int8 size band."""


@dataclass
class SweepReport:
    """Accuracy and size of every model over seeds, and the promised bands checked on them."""

    per_seed: pd.DataFrame  # training, mode, seed, accuracy, size_bytes
    medians: pd.DataFrame  # training, mode, accuracy (median, min, max), size_bytes
    checks: pd.DataFrame  # check, value, bound, passed

    @property
    def passed(self) -> bool:
        """True if every check is within its band."""
        return bool(self.checks.passed.all())


def sweep(seeds=(0, 1, 2, 3, 4), progress: bool = True) -> SweepReport:
    """Train, convert and measure accuracy of every model of the plan for every seed.

    Returns:
        the `SweepReport`: per-seed rows (accuracy in [0, 1], size in bytes), medians with
        min and max over seeds, and `checks`.

    Raises:
        ValueError: no seeds.
    """
    seeds = list(seeds)
    if not seeds:
        raise ValueError("no seeds: pass at least one")
    digits = data.load()
    rows = []
    for seed in _bar(seeds, progress):
        for (training, mode), tflite in artifacts.convert_all(seed=seed, progress=False).items():
            rows.append(
                {
                    "training": training,
                    "mode": mode,
                    "seed": seed,
                    "accuracy": measure.accuracy(tflite, digits.x_test, digits.y_test),
                    "size_bytes": len(tflite),
                }
            )
        got = {(r["training"], r["mode"]): r["accuracy"] for r in rows if r["seed"] == seed}
        log.info(
            "seed %d: float %.2f %%, integer_only %.2f %%, qat integer_only %.2f %%",
            seed,
            100 * got["float", "float32"],
            100 * got["float", "integer_only"],
            100 * got["qat", "integer_only"],
        )
    per_seed = pd.DataFrame(rows)
    medians = (
        per_seed.groupby(["training", "mode"], sort=False)
        .agg(
            accuracy=("accuracy", "median"),
            accuracy_min=("accuracy", "min"),
            accuracy_max=("accuracy", "max"),
            size_bytes=("size_bytes", "median"),
        )
        .reset_index()
    )
    return SweepReport(per_seed, medians, checks(medians))


def _bar(seeds: list[int], show: bool):
    return progress.bar(seeds, desc="seeds", total=len(seeds), show=show, unit="seed")


def checks(medians: pd.DataFrame) -> pd.DataFrame:
    """The promised bands checked on the medians over seeds.

    Returns:
        one row per check: check (what), value (accuracy in %, a difference in percentage
        points, or a size ratio), bound (as text), passed (bool).
    """
    acc = {(r.training, r.mode): 100 * r.accuracy for r in medians.itertuples()}
    size = {(r.training, r.mode): r.size_bytes for r in medians.itertuples()}
    base = acc["float", "float32"]
    rows = [("float/float32 accuracy %", base, ">= 97.0", base >= 97.0)]
    for (training, mode), a in acc.items():
        if training == "float" and mode != "float32":
            rows.append(
                (f"float/{mode} - float32 (pp)", a - base, "|x| <= 0.5", abs(a - base) <= 0.5)
            )
        if training == "qat":
            rows.append((f"qat/{mode} - float32 (pp)", a - base, ">= -0.3", a - base >= -0.3))
    rows.append(
        (
            "float/integer_only accuracy %",
            acc["float", "integer_only"],
            ">= 97.0",
            acc["float", "integer_only"] >= 97.0,
        )
    )
    for (training, mode), s in size.items():
        ratio = s / size["float", "float32"]
        if mode in INT8_MODES:
            rows.append((f"{training}/{mode} size / float32", ratio, "<= 0.32", ratio <= 0.32))
        elif mode == "int16x8":  # int8 weights, but int64 biases and int16 activations
            rows.append((f"{training}/{mode} size / float32", ratio, "<= 0.35", ratio <= 0.35))
        elif mode == "float16":
            rows.append((f"{training}/{mode} size / float32", ratio, "<= 0.55", ratio <= 0.55))
    return pd.DataFrame(rows, columns=["check", "value", "bound", "passed"]).round({"value": 4})
