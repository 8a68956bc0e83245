"""Which activation range to calibrate: min-max (the converter's rule), percentiles, the MSE-optimal
range and entropy (KL) calibration, each computed by qlab from the float32 file's captured
activations (`qlab.analysis.ranges`) and put into a deployable int8 file through ai-edge-quantizer's
`static_wi8_ai8` recipe (`qlab.analysis.calibration.method_file`: why that route, and the check
that the file holds each chosen range). "aeq_calibrate" is AEQ's own calibration (a moving
average of each sample's min and max) for comparison.

Per cell (model × seed × method; the seed trains the model and draws its 100 calibration images):
LiteRT accuracy, and per activation the chosen range, the scale the file holds against AEQ's rule
on that range, and the error of the test split's float activations on that grid, split into
rounding and clipping.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from qlab import artifacts
from qlab.analysis import calibration, ranges
from qlab.conversion import aeq
from qlab.studies.sweep import spread
from qlab.tflite import flatbuffer
from qlab.tflite.measure import accuracy as litert_accuracy
from qlab.training import data, models
from qlab.training.fit import TrainConfig

NAME = "calibration-method"
MODELS = ("digits_cnn", "mobilenet_mini")
SETTINGS = ["minmax", "percentile_99.9", "percentile_99.99", "mse", "entropy", "aeq_calibrate"]
"""The range methods (`qlab.analysis.ranges.parse` names), and AEQ's own calibration."""
VERSION = 1
CALIBRATION_SIZE = 100
SPLIT_COLUMNS = ("rounding_mse", "clipping_mse", "total_mse", "clipped_fraction", "rmse/scale")
COLUMNS = (
    "model",
    "seed",
    "setting",
    "accuracy",
    "float_accuracy",
    "layer",
    "tensor",
    "low",
    "high",
    "scale",
    "expected_scale",
    "scale_rel_error",
    "constraint",
    *SPLIT_COLUMNS,
)
"""One row per (model, seed, setting, activation): LiteRT accuracy of the int8 file and of the
float32 file (0..1, test split, the same on every row of a cell); the activation's layer label
("input" for the model input) and tensor name; the chosen range [low, high] (real units), the
scale the file holds and the one AEQ's rule gives for that range (`qlab.analysis.ranges.aeq_grid`)
with their relative difference, and constraint (AEQ's rule that ties or fixes that tensor's grid
instead, `qlab.conversion.aeq.constraints`; empty if the chosen range alone sets it); the test
split's float activations on the file's grid: rounding_mse, clipping_mse, total_mse (real units
squared), clipped_fraction (0..1), rmse/scale (steps)."""


def check(names, settings) -> None:
    """Refuse unknown models and methods before anything runs.

    Raises:
        ValueError: an unknown model; a setting that is not "aeq_calibrate" nor a range method
            (`qlab.analysis.ranges.parse`: names the valid forms, and a percentile outside
            (50, 100])."""
    for name in names:
        models.get(name)
    for setting in settings:
        if setting != "aeq_calibrate":
            ranges.parse(setting)


def prepare(model: str, seed: int) -> None:
    """Train (or load) the float model of (model, seed) and its float32 file into the cache."""
    artifacts.quantized(TrainConfig(model=model, seed=seed), "float32", progress=False)


def measure(cell: dict) -> list[dict]:
    """One (model, seed, method).

    Returns one row per activation AEQ quantizes (`COLUMNS`).

    Raises:
        ValueError: an unknown model or method.
        qlab.conversion.aeq.AEQError: AEQ refused the model."""
    name, seed, setting = cell["model"], int(cell["seed"]), cell["setting"]
    check([name], [setting])
    config = TrainConfig(model=name, seed=seed)
    dataset = data.load(config.dataset)
    images = data.calibration(dataset.x_train, CALIBRATION_SIZE, seed)
    keras_model = artifacts.trained(config, dataset, progress=False)
    float32 = artifacts.quantized(config, "float32", progress=False)
    if setting == "aeq_calibrate":
        tflite = aeq.quantize(float32, "static_wi8_ai8", calibration=images)
        held = calibration.file_ranges(tflite, keras_model)
        tied = calibration.constrained(flatbuffer.read(float32))
        checked = held.assign(
            expected_scale=np.nan,
            scale_rel_error=np.nan,
            constraint=[tied.get(t, "") for t in held.tensor],
        )[["tensor", "low", "high", "scale", "expected_scale", "scale_rel_error", "constraint"]]
    else:
        tflite, checked = calibration.method_file(float32, images, setting)
    held = calibration.file_ranges(tflite, keras_model)
    labels = dict(zip(held.tensor, held.layer))
    splits = calibration.layer_splits(tflite, float32, dataset.x_test, keras_model).set_index(
        "tensor"
    )
    base = {
        "model": name,
        "seed": seed,
        "setting": setting,
        "accuracy": litert_accuracy(tflite, dataset.x_test, dataset.y_test),
        "float_accuracy": litert_accuracy(float32, dataset.x_test, dataset.y_test),
    }
    rows = []
    for _, r in checked.iterrows():
        if r.tensor not in labels:
            continue  # a range AEQ was given for a tensor it left in float
        row = {
            **base,
            "layer": labels[r.tensor],
            "tensor": r.tensor,
            **{
                c: float(r[c])
                for c in ("low", "high", "scale", "expected_scale", "scale_rel_error")
            },
            "constraint": r.constraint,
        }
        row.update(
            {
                c: float(splits.loc[r.tensor, c]) if r.tensor in splits.index else np.nan
                for c in SPLIT_COLUMNS
            }
        )
        rows.append(row)
    return rows


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """Medians and spreads over seeds.

    Returns:
        one row per (model, setting): model, setting, seeds, accuracy_pct with min and max,
        delta_pp against minmax (paired by seed; median, min, max), clipped_fraction, rounding_mse
        and clipping_mse (medians over seeds of the mean over the activations whose grid the chosen
        range alone sets: no AEQ constraint), and max_scale_rel_error (the largest difference
        between a file's scale and AEQ's rule on the chosen range, over the tensors no AEQ
        constraint ties)."""
    # grids the chosen range alone sets (no repeats, no fixed ones)
    own = table[table.constraint.fillna("") == ""]
    cells = (
        own.groupby(["model", "seed", "setting"], sort=False)
        .agg(
            accuracy=("accuracy", "first"),
            clipped_fraction=("clipped_fraction", "mean"),
            rounding_mse=("rounding_mse", "mean"),
            clipping_mse=("clipping_mse", "mean"),
            scale_rel_error=("scale_rel_error", "max"),
        )
        .reset_index()
    )
    base = cells[cells.setting == "minmax"].set_index(["model", "seed"]).accuracy
    rows = []
    for (name, setting), part in cells.groupby(["model", "setting"], sort=False):
        acc = spread(100 * part.accuracy)
        delta = spread(
            [100 * (a - base.get((name, s), np.nan)) for a, s in zip(part.accuracy, part.seed)]
        )
        rows.append(
            {
                "model": name,
                "setting": setting,
                "seeds": len(part),
                "accuracy_pct": acc[0],
                "accuracy_min_pct": acc[1],
                "accuracy_max_pct": acc[2],
                "delta_pp": delta[0],
                "delta_min_pp": delta[1],
                "delta_max_pp": delta[2],
                "clipped_fraction": part.clipped_fraction.median(),
                "rounding_mse": part.rounding_mse.median(),
                "clipping_mse": part.clipping_mse.median(),
                "max_scale_rel_error": part.scale_rel_error.max(),
            }
        )
    return pd.DataFrame(rows)


def headline(table: pd.DataFrame) -> str:
    """Each method against min-max, paired by seed, per model, and how exactly the files hold the
    ranges.

    Returns one sentence per model, then one on the scales."""
    s = summary(table)
    said = []
    for name in dict.fromkeys(s.model):
        part = s[(s.model == name) & (s.setting != "minmax")]
        n = int(s[s.model == name].seeds.max())
        over = f"median [min, max] over {n} seeds" if n > 1 else "one seed"
        base = s[(s.model == name) & (s.setting == "minmax")]
        start = (
            f"{name} (min-max {base.accuracy_pct.iloc[0]:.2f} %): " if len(base) else f"{name}: "
        )
        said.append(
            start
            + ", ".join(
                f"{r.setting} {r.delta_pp:+.2f} pp"
                + (f" [{r.delta_min_pp:+.2f}, {r.delta_max_pp:+.2f}]" if n > 1 else "")
                for r in part.itertuples()
            )
            + f" against min-max ({over}"
            + (", paired by seed)" if n > 1 else ")")
        )
    worst = s.max_scale_rel_error.max()
    if np.isfinite(worst):
        said.append(
            "every file holds its chosen ranges: "
            f"scales within {worst:.1e} (relative) of AEQ's rule"
        )
    return ". ".join(said) + "."
