"""How much calibration data post-training integer quantization needs: accuracy and each
activation's range against the size of the representative dataset.

One float model per zoo model (trained with seed `MODEL_SEED`); the cell's seed only picks which
images are drawn (`qlab.training.data.calibration`), so the spread over seeds is the spread of the
draw. Each cell converts with the converter's integer_only mode (min-max calibration) and runs the
file on LiteRT; the activation ranges are read back from the file
(`qlab.analysis.calibration.file_ranges`). Besides sizes drawn from the training split, "test_10"
draws ten *test* images (with the seed, like every draw here), the choice of the example in
"Optimizing TensorFlow models with Quantization Techniques", whose representative dataset is the
first ten test images, `X_test[:10]`; "10" draws ten training images to set beside it."""

from __future__ import annotations

import numpy as np
import pandas as pd

from qlab import artifacts
from qlab.analysis import calibration
from qlab.studies.sweep import spread
from qlab.tflite.measure import accuracy as litert_accuracy
from qlab.training import data, models
from qlab.training.fit import TrainConfig

NAME = "calibration-size"
MODELS = ("digits_cnn", "mobilenet_mini")
SETTINGS = [1, 2, 5, 10, 20, 50, 100, 200, 500, "all", "test_10"]
"""Calibration sizes drawn from the training split, "all" of it, and "test_10": ten test images."""
VERSION = 1
MODEL_SEED = 0
"""The seed of the one float model per zoo model; cell seeds draw the calibration images."""
MODE = "integer_only"
FIXED_OUTPUT = ("SOFTMAX", "LOGISTIC", "TANH")
"""Ops whose int8 output grid LiteRT's kernels fix (scale 1/256 or 1/128), whatever calibration saw
(tensorflow/lite/kernels/activations.cc)."""
TOLERANCE_PP = 0.2
"""How close to full calibration's accuracy (percentage points) counts as enough."""
COLUMNS = (
    "model",
    "seed",
    "setting",
    "size",
    "split",
    "accuracy",
    "layer",
    "op",
    "tensor",
    "low",
    "high",
    "scale",
)
"""The tidy table: one row per (model, seed, setting, activation): the number of images and the
split they come from, the file's LiteRT accuracy (0..1, test split; the same on every row of a
cell), the activation's layer label, the op that writes it ("INPUT" for the model input) and
tensor name, and the real range [low, high] and scale (real units per step) the file gives it."""


def size_of(setting, train_size: int) -> tuple[int, str]:
    """The number of calibration images and the split they come from, for one setting.

    Returns (size, "train" or "test").

    Raises:
        ValueError: a setting that is neither a whole number from 1 to `train_size`, "all" nor
            "test_10" (the message gives the limit)."""
    if setting == "all":
        return train_size, "train"
    if setting == "test_10":
        return 10, "test"
    if isinstance(setting, bool) or not isinstance(setting, (int, np.integer)) or setting < 1:
        raise ValueError(
            f"a calibration-size setting is a whole number of images from 1, 'all' or 'test_10'; "
            f"got {setting!r}"
        )
    if setting > train_size:
        raise ValueError(
            f"calibration size {setting} is larger than the training split ({train_size} images); "
            f"give at most {train_size}, or 'all'"
        )
    return int(setting), "train"


def check(names, settings) -> None:
    """Refuse settings no model can take, before anything runs.

    Raises:
        ValueError: an unknown model, or a setting `size_of` refuses for one of the models."""
    for name in names:
        train_size = len(data.load(models.get(name).dataset).x_train)
        for setting in settings:
            size_of(setting, train_size)


def prepare_key(model: str, seed: int) -> tuple:
    """Returns (model, MODEL_SEED): every seed of a model shares one float model."""
    return model, MODEL_SEED


def prepare(model: str, seed: int) -> None:
    """Train (or load) the model's one float model into the cache."""
    config = TrainConfig(model=model, seed=MODEL_SEED)
    artifacts.trained(config, data.load(config.dataset), progress=False)


def measure(cell: dict) -> list[dict]:
    """One (model, seed, setting): draw the images, convert, run on LiteRT, read the ranges.

    Returns one row per quantized activation of the file (`COLUMNS`). Raises ValueError for an
    unknown model or a bad setting."""
    name, seed, setting = cell["model"], int(cell["seed"]), cell["setting"]
    config = TrainConfig(model=name, seed=MODEL_SEED)
    dataset = data.load(config.dataset)
    size, split = size_of(setting, len(dataset.x_train))
    pool = dataset.x_test if split == "test" else dataset.x_train
    images = (
        data.calibration(pool, size, seed) if size < len(pool) else np.asarray(pool, np.float32)
    )
    keras_model = artifacts.trained(config, dataset, progress=False)
    tflite = artifacts.quantized(config, MODE, images, dataset, progress=False)
    accuracy = litert_accuracy(tflite, dataset.x_test, dataset.y_test)
    ranges = calibration.file_ranges(tflite, keras_model)
    base = {
        "model": name,
        "seed": seed,
        "setting": setting,
        "size": size,
        "split": split,
        "accuracy": accuracy,
    }
    return [
        {**base, **{c: r[c] for c in ("layer", "op", "tensor", "low", "high", "scale")}}
        for _, r in ranges.iterrows()
    ]


def _cells(table: pd.DataFrame) -> pd.DataFrame:
    """One row per cell (accuracy), with its delta against full calibration of the same model."""
    cells = table.drop_duplicates(["model", "seed", "setting"])[
        ["model", "seed", "setting", "size", "split", "accuracy"]
    ]
    full = cells[cells.setting == "all"].groupby("model").accuracy.median()
    cells = cells.assign(
        delta_pp=[100 * (a - full.get(m, np.nan)) for m, a in zip(cells.model, cells.accuracy)]
    )
    return cells


def _range_ratio(table: pd.DataFrame) -> pd.DataFrame:
    """Per cell, the median over calibrated activations of each range's width against full
    calibration's (outputs whose grid the op fixes, such as softmax's, left out)."""
    if "op" in table:
        table = table[~table.op.isin(FIXED_OUTPUT)]
    full = (
        table[table.setting == "all"]
        .groupby(["model", "tensor"])
        .apply(lambda p: float((p.high - p.low).median()), include_groups=False)
    )
    width = table.high - table.low
    ratio = [w / full.get((m, t), np.nan) for w, m, t in zip(width, table.model, table.tensor)]
    return (
        table.assign(range_ratio=ratio)
        .groupby(["model", "seed", "setting"], sort=False)
        .range_ratio.median()
    )


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """Medians and spreads over seeds (the draws).

    Returns one row per (model, setting): model, setting, size, split, seeds, accuracy_pct with
    accuracy_min_pct and accuracy_max_pct, delta_pp with delta_min_pp and delta_max_pp (against full
    calibration's median accuracy), range_ratio (median over seeds of the median over activations of
    range width / full calibration's width; 1 = the same ranges)."""
    cells = _cells(table)
    ratio = _range_ratio(table)
    rows = []
    for (name, setting), part in cells.groupby(["model", "setting"], sort=False):
        acc, lo, hi = spread(100 * part.accuracy)
        delta, dlo, dhi = spread(part.delta_pp)
        ratios = [ratio.get((name, s, setting), np.nan) for s in part.seed]
        rows.append(
            {
                "model": name,
                "setting": setting,
                "size": int(part["size"].iloc[0]),
                "split": part.split.iloc[0],
                "seeds": len(part),
                "accuracy_pct": acc,
                "accuracy_min_pct": lo,
                "accuracy_max_pct": hi,
                "delta_pp": delta,
                "delta_min_pp": dlo,
                "delta_max_pp": dhi,
                "range_ratio": spread(ratios)[0],
            }
        )
    return pd.DataFrame(rows)


def enough(summary_: pd.DataFrame, name: str) -> pd.Series | None:
    """The smallest training-split size whose median accuracy, and that of every larger size, is
    within `TOLERANCE_PP` of full calibration's.

    Returns that size's summary row, or None if no size is (or there is no "all" row)."""
    rows = summary_[(summary_.model == name) & (summary_.split == "train")].sort_values("size")
    if "all" not in set(rows.setting) or rows.empty:
        return None
    ok = (rows.delta_pp >= -TOLERANCE_PP).to_numpy()
    for i in range(len(rows)):
        if ok[i:].all():
            return rows.iloc[i]
    return None


def headline(table: pd.DataFrame) -> str:
    """The smallest calibration set within `TOLERANCE_PP` of full calibration, per model, with its
    spread over draws, and ten test images against ten training images.

    Returns one sentence per model."""
    s = summary(table)
    said = []
    for name in dict.fromkeys(s.model):
        row = enough(s, name)
        if row is None:
            said.append(
                f"{name}: no size measured here is within {TOLERANCE_PP} pp of full calibration "
                "(or full calibration was not measured)"
            )
            continue
        text = (
            f"{name}: {int(row['size'])} image(s) reach full calibration's accuracy within "
            f"{TOLERANCE_PP} pp (median {row.delta_pp:+.2f} pp, "
            f"[{row.delta_min_pp:+.2f}, {row.delta_max_pp:+.2f}] over {int(row.seeds)} draws)"
        )
        by = s[s.model == name].set_index("setting")
        if "test_10" in by.index and 10 in by.index:
            t, r = by.loc["test_10"], by.loc[10]
            text += (
                f"; ten test images give {t.accuracy_pct:.2f} % "
                f"[{t.accuracy_min_pct:.2f}–{t.accuracy_max_pct:.2f}], ten training images "
                f"{r.accuracy_pct:.2f} % [{r.accuracy_min_pct:.2f}–{r.accuracy_max_pct:.2f}]"
            )
        said.append(text)
    return ". ".join(said) + "."
