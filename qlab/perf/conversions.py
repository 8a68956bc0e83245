"""How long a conversion takes by TensorFlow's own Keras route and by qlab's, which saves a model
once for all its conversions (`qlab.conversion.saved_model`). Each round converts every zoo model
to every mode by both routes, in turn, so that machine drift spreads over both alike; the files
of both routes are compared byte for byte as they are made."""

from __future__ import annotations

import contextlib
import logging
import time

import numpy as np
import pandas as pd

from qlab import artifacts
from qlab.conversion import saved_model, to_tflite
from qlab.conversion.converter import ConversionError
from qlab.infra import progress
from qlab.training import data, models
from qlab.training.fit import TrainConfig

log = logging.getLogger(__name__)
MODES = ("float32", "dynamic_range", "float16", "full_integer", "integer_only", "int16x8")
"""The post-training modes a float model is converted to (one model, six files)."""
ROUTES = ("tensorflow", "qlab")
"""tf.lite.TFLiteConverter.from_keras_model as it is; and qlab's, which saves each model state
once."""


def time_conversions(
    names=None, modes=MODES, rounds: int = 3, seed: int = 0, progress_bar: bool = True
) -> pd.DataFrame:
    """Seconds to convert each zoo model to every mode, by TensorFlow's route and by qlab's.

    Which route goes first alternates by round; qlab's route starts each round with no saved folder
    (`saved_model.clear`), so its figure includes the one save a model needs. Modes the converter
    refuses for a model are left out of both routes and named in `note`.

    Returns:
        DataFrame, one row per model: model, conversions (per round and route), tensorflow_s and
        qlab_s (median over rounds of the seconds for all of them), speedup (median over rounds
        of the per-round ratio tensorflow / qlab), speedup_min, speedup_max, same_bytes (True if
        every file of both routes was identical), note.

    Raises:
        ValueError: an unknown model, or rounds < 1."""
    names = list(models.ZOO) if names is None else [models.get(n).name for n in names]
    if rounds < 1:
        raise ValueError(f"rounds must be 1 or more, got {rounds}")
    cells = []
    for name in names:
        config = TrainConfig(model=name, seed=seed)
        dataset = data.load(config.dataset)
        calibration = data.calibration(dataset.x_train, seed=seed)
        model = artifacts.convertible(artifacts.trained(config, dataset, progress=False))
        usable, refused = [], []
        for mode in modes:
            try:
                to_tflite.quantize(model, mode, calibration)
                usable.append(mode)
            except (ValueError, ConversionError) as exc:
                refused.append(
                    f"{mode}: {str(exc).splitlines()[0]}"
                )  # the diagnosis, not the converter's log
        cells.append(
            {
                "model": name,
                "keras": model,
                "calibration": calibration,
                "modes": usable,
                "note": "not converted by either route: " + "; ".join(refused) if refused else "",
                "seconds": {route: [] for route in ROUTES},
                "same": True,
            }
        )
    with progress.bar(
        total=rounds * len(cells), desc="conversions", unit="model", show=progress_bar
    ) as bar:
        for r in range(rounds):
            for cell in cells:
                files = {}
                for route in ROUTES if r % 2 == 0 else ROUTES[::-1]:
                    started = time.perf_counter()
                    files[route] = _convert(route, cell)
                    cell["seconds"][route].append(time.perf_counter() - started)
                cell["same"] &= files["tensorflow"] == files["qlab"]
                bar.update()
    return pd.DataFrame([_row(cell) for cell in cells])


def _convert(route: str, cell: dict) -> list[bytes]:
    saved_model.clear()
    with saved_model.turned_off() if route == "tensorflow" else contextlib.nullcontext():
        return [
            to_tflite.quantize(cell["keras"], mode, cell["calibration"]) for mode in cell["modes"]
        ]


def _row(cell: dict) -> dict:
    tf_s, ours = (np.array(cell["seconds"][route]) for route in ROUTES)
    ratio = tf_s / ours
    if not cell["same"]:
        log.warning("%s: the two routes gave different files", cell["model"])
    return {
        "model": cell["model"],
        "conversions": len(cell["modes"]),
        "tensorflow_s": float(np.median(tf_s)),
        "qlab_s": float(np.median(ours)),
        "speedup": float(np.median(ratio)),
        "speedup_min": float(ratio.min()),
        "speedup_max": float(ratio.max()),
        "same_bytes": bool(cell["same"]),
        "note": cell["note"],
    }
