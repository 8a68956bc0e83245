"""Per-layer sensitivity, ranked two ways (`qlab.analysis.precision.sensitivity`): quantize one
layer at a time with every other op in float, and keep one layer in float at a time with every
other op int8. Files are built by ai-edge-quantizer with one precision per op and min-max
activation ranges, and run on LiteRT; the ranking is by the error each layer adds to the model's
output (accuracy on a few hundred images moves in whole images)."""

from __future__ import annotations

import pandas as pd

from qlab import artifacts
from qlab.analysis import precision
from qlab.studies.sweep import spread
from qlab.training import data, models
from qlab.training.fit import TrainConfig

NAME = "sensitivity"
MODELS = ("digits_cnn", "mobilenet_mini")
SETTINGS = ["quantize_one", "float_one"]
VERSION = 1
COLUMNS = (
    "model",
    "seed",
    "setting",
    "layer",
    "rank",
    "accuracy",
    "float_accuracy",
    "int8_accuracy",
    "size_bytes",
    "output_mse",
    "effect_mse",
)
"""One row per (model, seed, setting, layer): rank (1 = most sensitive, by effect_mse); accuracy
(0..1, LiteRT, test split) and size_bytes of the file with that layer alone int8 ("quantize_one")
or alone float ("float_one"); float_accuracy and int8_accuracy (the float32 and all-int8 files);
output_mse (the file's output against float32's, real units squared) and effect_mse (the error the
layer adds alone, or removes when kept in float)."""


def check(names, settings) -> None:
    """Refuse unknown models and settings before anything runs.

    Raises ValueError for an unknown model or a setting not in `SETTINGS` (listing them)."""
    for name in names:
        models.get(name)
    for setting in settings:
        if setting not in SETTINGS:
            raise ValueError(
                f"unknown setting {setting!r} for the sensitivity study; "
                f"valid: {', '.join(SETTINGS)}"
            )


def prepare(model: str, seed: int) -> None:
    """Train (or load) the float model of (model, seed) and its float32 file into the cache."""
    artifacts.quantized(TrainConfig(model=model, seed=seed), "float32", progress=False)


def evaluator(name: str, seed: int, ranges: str = "minmax") -> precision.Evaluator:
    """The mixed-precision evaluator of (model, seed): its float32 file, 100 calibration images
    drawn with the seed, activation ranges from `ranges` ("minmax" or "aeq_calibrate"), measured on
    the test split.

    Returns a `qlab.analysis.precision.Evaluator`. Raises ValueError for an unknown model."""
    config = TrainConfig(model=name, seed=seed)
    dataset = data.load(config.dataset)
    keras_model = artifacts.trained(config, dataset, progress=False)
    float32 = artifacts.quantized(config, "float32", progress=False)
    return precision.Evaluator(
        float32,
        data.calibration(dataset.x_train, seed=seed),
        dataset.x_test,
        dataset.y_test,
        keras_model,
        ranges,
    )


def measure(cell: dict) -> list[dict]:
    """One (model, seed, way): every layer's file built, run and ranked.

    Returns one row per layer (`COLUMNS`).

    Raises:
        ValueError: an unknown model or setting.
        qlab.conversion.aeq.AEQError: AEQ refused a file."""
    name, seed, setting = cell["model"], int(cell["seed"]), cell["setting"]
    check([name], [setting])
    ev = evaluator(name, seed)
    base = {
        "model": name,
        "seed": seed,
        "setting": setting,
        "float_accuracy": ev.float_point()["accuracy"],
        "int8_accuracy": ev.evaluate({})["accuracy"],
    }
    return [{c: {**base, **r}[c] for c in COLUMNS} for r in precision.sensitivity(ev, setting)]


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """Ranks and effects over seeds.

    Returns:
        one row per (model, setting, layer), most sensitive first: median rank with min and max,
        effect_mse (median), accuracy_pct (median), top_seeds (how many seeds ranked it first).
    """
    rows = []
    for (name, setting, layer), part in table.groupby(["model", "setting", "layer"], sort=False):
        rank = spread(part["rank"])
        rows.append(
            {
                "model": name,
                "setting": setting,
                "layer": layer,
                "seeds": len(part),
                "rank": rank[0],
                "rank_min": rank[1],
                "rank_max": rank[2],
                "effect_mse": part.effect_mse.median(),
                "accuracy_pct": 100 * part.accuracy.median(),
                "top_seeds": int((part["rank"] == 1).sum()),
            }
        )
    out = pd.DataFrame(rows)
    return (
        out.sort_values(
            ["model", "setting", "rank", "effect_mse"],
            ascending=[True, True, True, False],
            kind="stable",
        ).reset_index(drop=True)
        if len(out)
        else out
    )


def headline(table: pd.DataFrame) -> str:
    """The most sensitive layer per model and way, and whether the two ways agree.

    Returns one sentence per model."""
    s = summary(table)
    said = []
    for name in dict.fromkeys(s.model):
        tops = {}
        for setting in SETTINGS:
            part = s[(s.model == name) & (s.setting == setting)]
            if len(part):
                tops[setting] = part.iloc[0]
        text = "; ".join(
            f"{k}: {r.layer} ranks first in {r.top_seeds} of {r.seeds} seeds "
            f"(median rank {r['rank']:g})"
            for k, r in tops.items()
        )
        if len(tops) == 2:
            same = tops["quantize_one"].layer == tops["float_one"].layer
            text += (
                "; the two ways "
                + ("agree" if same else "disagree")
                + " on the most sensitive layer"
            )
        said.append(f"{name}: {text}")
    return ". ".join(said) + "."
