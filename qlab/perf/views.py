"""How long the per-layer views take on each zoo model: `qlab.analysis.per_layer` (local and
accumulated) over the whole test split, timed in interleaved rounds so that machine drift spreads
over every model alike. The models and files are built (or loaded from the cache) before timing."""

from __future__ import annotations

import logging
import time

import numpy as np
import pandas as pd

from qlab import artifacts
from qlab.analysis import per_layer
from qlab.conversion.converter import ConversionError
from qlab.conversion.modes import NOTHING_QUANTIZED
from qlab.infra import progress
from qlab.tflite import flatbuffer
from qlab.training import data, models
from qlab.training.fit import TrainConfig

log = logging.getLogger(__name__)
MODES = ("full_integer", "int16x8", "dynamic_range")
"""The modes whose files have per-layer views (the quantized ones the converter makes after
training)."""


def time_views(
    names=None, modes=MODES, rounds: int = 3, seed: int = 0, progress_bar: bool = True
) -> pd.DataFrame:
    """Wall time of both per-layer views of every (zoo model, mode) over its test split.

    Each round times every cell once, in turn; a cell's figure is the median over rounds.

    Returns:
        DataFrame, one row per (model, mode): model, mode, images, rows (of the table returned),
        median_s, min_s, max_s (seconds of one `layer_errors` call, both views), note (why a
        cell was not timed, else "").

    Raises:
        ValueError: an unknown model, or rounds < 1."""
    names = list(models.ZOO) if names is None else [models.get(n).name for n in names]
    if rounds < 1:
        raise ValueError(f"rounds must be 1 or more, got {rounds}")
    cells, rows = [], []
    for name in names:
        config = TrainConfig(model=name, seed=seed)
        dataset = data.load(config.dataset)
        calibration = data.calibration(dataset.x_train, seed=seed)
        model = artifacts.convertible(artifacts.trained(config, dataset, progress=False))
        float_tflite = artifacts.quantized(config, "float32", dataset=dataset, progress=False)
        for mode in modes:
            row = {
                "model": name,
                "mode": mode,
                "images": len(dataset.x_test),
                "rows": 0,
                "note": "",
            }
            try:
                tflite = artifacts.quantized(config, mode, calibration, dataset, progress=False)
                if not any(t.quantized for t in flatbuffer.read(tflite).tensors):
                    raise ValueError(
                        f"{name}'s {mode} file has nothing quantized: {NOTHING_QUANTIZED}"
                    )
            except (ValueError, ConversionError) as exc:
                row["note"] = f"not computed, because {' '.join(str(exc).split())}"
                log.info("%s/%s: %s", name, mode, row["note"])
                rows.append(row)
                continue
            cells.append((row, tflite, float_tflite, dataset.x_test, model))
            rows.append(row)
    times = {id(row): [] for row, *_ in cells}
    with progress.bar(
        total=rounds * len(cells), desc="views", unit="call", show=progress_bar
    ) as bar:
        for _ in range(rounds):
            for row, tflite, float_tflite, x, model in cells:
                started = time.perf_counter()
                table = per_layer.layer_errors(tflite, float_tflite, x, keras_model=model)
                times[id(row)].append(time.perf_counter() - started)
                row["rows"] = len(table)
                bar.update()
    for row in rows:
        spent = times.get(id(row), [])
        row.update(
            median_s=float(np.median(spent)) if spent else np.nan,
            min_s=min(spent, default=np.nan),
            max_s=max(spent, default=np.nan),
        )
    columns = ["model", "mode", "images", "rows", "median_s", "min_s", "max_s", "note"]
    return pd.DataFrame(rows)[columns]
