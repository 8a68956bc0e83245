"""Mixed precision: each op int8, int16 activations or float, found by a greedy search from
all-int8 (`qlab.analysis.precision.search`); every configuration tried is a real
ai-edge-quantizer file run on LiteRT. Reported: the cheapest configuration (by size) within
`TOLERANCE_PP` of float accuracy, and every point tried with the uniform configurations (all int8,
all int16 activations, float32) and the converter's post-training files of the same model beside
them, for the Pareto front of accuracy against size."""

from __future__ import annotations

import numpy as np
import pandas as pd

from qlab import artifacts
from qlab.analysis import precision
from qlab.conversion.converter import ConversionError
from qlab.studies import sensitivity
from qlab.studies.sweep import spread
from qlab.tflite.measure import accuracy as litert_accuracy
from qlab.training import data, models
from qlab.training.fit import TrainConfig

NAME = "mixed-precision"
MODELS = ("digits_cnn", "mobilenet_mini")
SETTINGS = ["minmax", "aeq_calibrate"]
"""Where the activation ranges come from: min-max (the converter's rule, computed by qlab), or
AEQ's own calibration (a moving average of each image's min and max, which clips: the regime where
all-int8 loses accuracy and the search has something to recover). The cost minimised is file
size."""
VERSION = 1
TOLERANCE_PP = 0.1
UNIFORM = {"all_int8": "int8", "all_int16": "int16"}
CONVERTER = ("dynamic_range", "float16", "full_integer", "int16x8")
COLUMNS = (
    "model",
    "seed",
    "setting",
    "kind",
    "config",
    "accuracy",
    "float_accuracy",
    "size_bytes",
    "output_mse",
    "step",
    "chosen",
    "pareto",
    "cheapest",
    "note",
)
"""One row per configuration of a (model, seed): kind ("search": tried by the search; "uniform": all
ops at one precision, config all_int8 / all_int16 / float32; "converter": the converter's mode named
in config), config (JSON {layer: precision} of the ops not int8, for search rows), accuracy (0..1,
LiteRT, test split), float_accuracy, size_bytes, output_mse (real units squared; NaN for converter
rows), step and chosen (the search's path), pareto (on the front of accuracy against size among all
rows of the cell), cheapest (the smallest AEQ configuration within `TOLERANCE_PP` of float), note
(why a converter row has no file: "not computed, because ...")."""


def check(names, settings) -> None:
    """Refuse unknown models and costs before anything runs.

    Raises ValueError for an unknown model or a setting not in `SETTINGS`."""
    for name in names:
        models.get(name)
    for setting in settings:
        if setting not in SETTINGS:
            raise ValueError(
                f"unknown setting {setting!r} for the mixed-precision study; "
                f"valid: {', '.join(SETTINGS)}"
            )


def prepare(model: str, seed: int) -> None:
    """Train (or load) the float model of (model, seed) and its float32 file into the cache."""
    sensitivity.prepare(model, seed)


def measure(cell: dict) -> list[dict]:
    """One (model, seed): the search, the uniform configurations and the converter's files.

    Returns one row per configuration (`COLUMNS`).

    Raises:
        ValueError: an unknown model or setting.
        qlab.conversion.aeq.AEQError: AEQ refused a file."""
    name, seed, setting = cell["model"], int(cell["seed"]), cell["setting"]
    check([name], [setting])
    ev = sensitivity.evaluator(name, seed, setting)
    float_point = ev.float_point()
    points = [p | {"kind": "search"} for p in precision.search(ev)]
    for label, level in UNIFORM.items():
        points.append(
            ev.evaluate(dict.fromkeys(ev.layers, level)) | {"kind": "uniform", "config": label}
        )
    points.append(float_point | {"kind": "uniform"})
    config = TrainConfig(model=name, seed=seed)
    dataset = data.load(config.dataset)
    images = data.calibration(dataset.x_train, seed=seed)
    refused = []
    for mode in CONVERTER:
        try:
            tflite = artifacts.quantized(config, mode, images, dataset, progress=False)
        except (ConversionError, ValueError) as exc:
            refused.append(
                {
                    "kind": "converter",
                    "config": mode,
                    "accuracy": np.nan,
                    "size_bytes": np.nan,
                    "output_mse": np.nan,
                    "note": f"not computed, because the converter refused: "
                    f"{' '.join(str(exc).split())}",
                }
            )
            continue
        points.append(
            {
                "kind": "converter",
                "config": mode,
                "accuracy": litert_accuracy(tflite, ev.x, ev.y),
                "size_bytes": len(tflite),
                "output_mse": np.nan,
            }
        )
    best = precision.cheapest(
        [p for p in points if p["kind"] != "converter"], float_point["accuracy"], TOLERANCE_PP
    )
    front = precision.pareto(points) + [False] * len(refused)
    return [
        {
            "model": name,
            "seed": seed,
            "setting": setting,
            "kind": p["kind"],
            "config": p["config"],
            "accuracy": p["accuracy"],
            "float_accuracy": float_point["accuracy"],
            "size_bytes": p["size_bytes"],
            "output_mse": p["output_mse"],
            "step": p.get("step", np.nan),
            "chosen": bool(p.get("chosen", False)),
            "pareto": on,
            "cheapest": p is best,
            "note": p.get("note", ""),
        }
        for p, on in zip(points + refused, front)
    ]


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """The cheapest configuration per (model, ranges, seed), and its spread over seeds.

    Returns:
        one row per (model, setting, seed) and one "all seeds" row per (model, setting): config,
        accuracy_pct, float_accuracy_pct, size_bytes, size_x_int8 (against all-int8's size),
        size_x_float (against float32's); the all-seeds row gives medians and [min, max] in
        size_x_int8_min / size_x_int8_max; tried (configurations built)."""
    rows = []
    for (name, setting, seed), part in table.groupby(["model", "setting", "seed"], sort=False):
        uniform = part[part.kind == "uniform"].set_index("config").size_bytes
        best = part[part.cheapest]
        row = {
            "model": name,
            "setting": setting,
            "seed": seed,
            "tried": int((part.kind == "search").sum()),
        }
        if len(best):
            b = best.iloc[0]
            row.update(
                config=b.config,
                accuracy_pct=100 * b.accuracy,
                float_accuracy_pct=100 * b.float_accuracy,
                size_bytes=b.size_bytes,
                size_x_int8=b.size_bytes / uniform.get("all_int8", np.nan),
                size_x_float=b.size_bytes / uniform.get("float32", np.nan),
            )
        rows.append(row)
    out = pd.DataFrame(rows)
    for name, setting in dict.fromkeys(zip(out.model, out.setting)) if len(out) else []:
        part = out[(out.model == name) & (out.setting == setting)]
        x = spread(part.get("size_x_int8", pd.Series(dtype=float)))
        rows.append(
            {
                "model": name,
                "setting": setting,
                "seed": "all seeds",
                "tried": int(part.tried.median()),
                "accuracy_pct": spread(part.get("accuracy_pct", []))[0],
                "float_accuracy_pct": spread(part.get("float_accuracy_pct", []))[0],
                "size_bytes": spread(part.get("size_bytes", []))[0],
                "size_x_int8": x[0],
                "size_x_int8_min": x[1],
                "size_x_int8_max": x[2],
                "size_x_float": spread(part.get("size_x_float", []))[0],
            }
        )
    return pd.DataFrame(rows)


def headline(table: pd.DataFrame) -> str:
    """Returns one sentence per (model, setting) on the cheapest configuration within tolerance."""
    s = summary(table)
    said = []
    for _, r in s[s.seed == "all seeds"].iterrows():
        per_seed = s[(s.model == r.model) & (s.setting == r.setting) & (s.seed != "all seeds")]
        configs = per_seed.config.value_counts() if "config" in per_seed else pd.Series(dtype=int)
        common = configs.index[0] if len(configs) else "none"
        common = "every op int8" if common == "{}" else common
        said.append(
            f"{r.model}, {r.setting} ranges: the cheapest configuration within {TOLERANCE_PP} pp "
            f"of float is {r.size_x_int8:.2f}x all-int8's size "
            f"[{r.size_x_int8_min:.2f}–{r.size_x_int8_max:.2f}] over {len(per_seed)} seeds; "
            f"most often {common} (ops not listed stay int8; "
            f"{configs.iloc[0] if len(configs) else 0} of {len(per_seed)} seeds)"
        )
    return ". ".join(said) + "."
