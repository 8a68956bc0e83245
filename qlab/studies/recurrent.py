"""Recurrent models after quantization (the LSTM section of the TF Dev Summit 2020 model
optimization talk): a zoo model with an LSTM in every post-training mode and with QAT, over seeds;
LiteRT accuracy against the same seed's float32 file, size and latency against it, which of the
LSTM kernel's paths runs, the 16-bit cell state, and the per-layer error of the accumulated view at
the LSTM (over all its time steps, at the first and at the last step) and at the model's output.

A setting qlab cannot measure gets a row that says why (`note`, "not computed, because ..."):
int16x8, for which the converter has no 16x8 rule for UNIDIRECTIONAL_SEQUENCE_LSTM, and QAT, which
tfmot 0.8.1 cannot wrap an LSTM for. The study contract is `qlab.studies`'.
"""

from __future__ import annotations

import functools
import logging
import re

import numpy as np
import pandas as pd

from qlab import artifacts
from qlab.analysis import per_layer, recurrent
from qlab.conversion import modes
from qlab.conversion.converter import ConversionError
from qlab.perf import cpu
from qlab.tflite import flatbuffer
from qlab.tflite.measure import accuracy as litert_accuracy
from qlab.tflite.measure import latency_against
from qlab.training import data, models
from qlab.training.fit import TrainConfig

log = logging.getLogger(__name__)

NAME = "recurrent"
MODELS = ["lstm_rows"]
SETTINGS = ["float32", "dynamic_range", "full_integer", "integer_only", "int16x8", "qat"]
"""Post-training modes (float32 is the reference), and "qat": quantization-aware training, then
integer_only."""
VERSION = 2  # 2: the CPU columns
# interleaved rounds of (file, float32) timings, invokes per timing
LATENCY_ROUNDS, LATENCY_RUNS = 3, 50
ERRORS = (
    "lstm_local_steps",
    "lstm_accumulated_steps",
    "first_step_steps",
    "last_step_steps",
    "output_steps",
)
COLUMNS = (
    "model",
    "seed",
    "setting",
    "training",
    "mode",
    "accuracy",
    "float_accuracy",
    "delta_pp",
    "size_bytes",
    "size_x",
    "latency_us",
    "latency_x",
    "kernel",
    "cell_state_type",
    "cell_state_log2_scale",
    *ERRORS,
    *cpu.MACHINE_COLUMNS,
    "kernels",
    "threads",
    "note",
)
"""The tidy table's columns: accuracy and float_accuracy (0..1, the test split, the same seed's
float32 file), delta_pp (percentage points), size_bytes and size_x (against float32), latency_us
(median single-image invoke, XNNPACK, 1 thread) and latency_x (median over interleaved rounds of the
ratio to float32's), kernel (the LSTM's path, `qlab.analysis.recurrent.kernel_of`), the cell
state's type and the log2 of its scale, the per-layer errors in output steps (rmse/scale: the
LSTM's local and accumulated view over all time steps, the accumulated view at its first and last
time step, and at the model's output), cpu, cpu_features, int8_path, kernels (LiteRT's choice) and
threads: what the latency was measured on (`qlab.perf.cpu.columns`), note (why a row is empty, or
that nothing was quantized)."""


def check(names, settings) -> None:
    """Refuse models without a recurrent layer and unknown settings, before anything runs.

    Raises:
        ValueError: no models or settings; an unknown model (listing the zoo); a model with no
            recurrent layer (listing those that have one); an unknown setting (listing
            `SETTINGS`)."""
    if not list(names) or not list(settings):
        raise ValueError("the recurrent study needs at least one model and one setting")
    for name in names:
        models.get(name)
        if not _recurrent(name):
            with_rnn = [other for other in models.ZOO if _recurrent(other)]
            raise ValueError(
                f"the recurrent study takes zoo models with a recurrent layer; {name!r} has none "
                f"(models with one: {', '.join(with_rnn)})"
            )
    unknown = [s for s in settings if s not in SETTINGS]
    if unknown:
        raise ValueError(
            f"unknown setting {unknown[0]!r} for the recurrent study; valid: {', '.join(SETTINGS)}"
        )


@functools.cache
def _recurrent(name: str) -> bool:
    return bool(models.recurrent_layers(models.build(name)))


def prepare(model: str, seed: int) -> None:
    """Train (or load) the float model of (model, seed) and its float32 file, into the cache."""
    config = TrainConfig(model=model, seed=seed)
    artifacts.quantized(config, "float32", progress=False)


def measure(cell: dict) -> list[dict]:
    """One (model, seed, setting): converted (or trained with QAT), run on LiteRT beside the same
    seed's float32 file, its LSTM read from the file and its per-layer error measured.

    Returns one row, a dict of `COLUMNS`; measurements a setting cannot have are NaN and `note`
    says why. Raises ValueError for an unknown model or setting."""
    name, seed, setting = cell["model"], int(cell["seed"]), cell["setting"]
    check([name], [setting])
    dataset = data.load(models.get(name).dataset)
    calibration = data.calibration(dataset.x_train, seed=seed)  # as the zoo: its files are shared
    config = TrainConfig(model=name, seed=seed)
    float_tflite = artifacts.quantized(config, "float32", progress=False)
    float_accuracy = measure_accuracy(float_tflite, dataset)
    training, mode = ("qat", "integer_only") if setting == "qat" else ("float", setting)
    row = dict.fromkeys(COLUMNS, np.nan) | {
        "model": name,
        "seed": seed,
        "setting": setting,
        "training": training,
        "mode": mode,
        "float_accuracy": float_accuracy,
        "kernel": "",
        "cell_state_type": "",
        "note": "",
        **cpu.columns("xnnpack", 1),
    }
    try:
        if training == "qat":
            qat_config = TrainConfig(training="qat", model=name, seed=seed)
            artifacts.trained(qat_config, dataset, progress=False)  # tfmot refuses an LSTM here
            tflite = artifacts.quantized(qat_config, mode, calibration, dataset, progress=False)
        else:
            tflite = artifacts.quantized(config, mode, calibration, dataset, progress=False)
        row.update(_measured(tflite, float_tflite, dataset, float_accuracy))
        row.update(_errors(tflite, float_tflite, dataset, config, row))
    except (ValueError, ConversionError) as exc:
        row["note"] = f"not computed, because {' '.join(str(exc).split())}"
        log.info("%s/%s seed %d: %s", name, setting, seed, row["note"])
    return [row]


def measure_accuracy(tflite: bytes, dataset: data.Dataset) -> float:
    """Returns the LiteRT accuracy on the test split, the fraction classified right, in [0, 1]."""
    return litert_accuracy(tflite, dataset.x_test, dataset.y_test)


def _measured(
    tflite: bytes, float_tflite: bytes, dataset: data.Dataset, float_accuracy: float
) -> dict:
    accuracy = measure_accuracy(tflite, dataset)
    timed = latency_against(
        tflite, float_tflite, dataset.x_test, LATENCY_ROUNDS, LATENCY_RUNS
    )  # interleaved with float32
    cell = recurrent.lstm_tensors(tflite).query("role == 'cell_state'").iloc[0]
    return {
        "accuracy": accuracy,
        "delta_pp": 100 * (accuracy - float_accuracy),
        "size_bytes": len(tflite),
        "size_x": len(tflite) / len(float_tflite),
        "latency_us": timed["latency_us"],
        "latency_x": timed["latency_x"],
        "kernel": cell["kernel"],
        "cell_state_type": cell["dtype"],
        "cell_state_log2_scale": float(np.log2(cell["scale"])),
    }  # NaN for a float cell state


def _errors(
    tflite: bytes, float_tflite: bytes, dataset: data.Dataset, config: TrainConfig, row: dict
) -> dict:
    """The per-layer error columns; for a file with nothing quantized, a note instead."""
    if row["mode"] == "float32":
        return {}
    if not any(t.quantized for t in flatbuffer.read(tflite).tensors):
        return {"note": f"measured, but {modes.NOTHING_QUANTIZED}; no per-layer error to measure"}
    keras_model = artifacts.convertible(
        artifacts.trained(config, dataset, progress=False)
    )  # names the layers
    table = per_layer.layer_errors(tflite, float_tflite, dataset.x_test, keras_model=keras_model)
    steps = recurrent.error_over_time(tflite, float_tflite, dataset.x_test, keras_model=keras_model)
    lstm = steps.layer.iloc[0]
    steps = steps[steps.layer == lstm]["rmse/scale"]
    view = {v: table[table.view == v].set_index("layer")["rmse/scale"] for v in per_layer.VIEWS}
    return {
        "lstm_local_steps": view["local"][lstm],
        "lstm_accumulated_steps": view["accumulated"][lstm],
        "first_step_steps": steps.iloc[0],
        "last_step_steps": steps.iloc[-1],
        "output_steps": view["accumulated"].iloc[-1],
    }


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """Medians and spreads over seeds of `measure`'s rows.

    Returns:
        one row per (model, setting), in the order met: model, setting, training, mode, seeds
        (count measured), accuracy_pct, accuracy_min_pct, accuracy_max_pct, delta_pp,
        delta_min_pp, delta_max_pp (paired with the same seed's float32), size_x, latency_x
        (medians), kernel, cell_state_type, then each of `ERRORS` as a median, with
        first_step_steps and last_step_steps also as min and max; the CPU columns
        (`qlab.perf.cpu.carried`); note (the first non-empty)."""
    rows = []
    for (name, setting), part in table.groupby(["model", "setting"], sort=False):
        acc, delta = 100 * part.accuracy, part.delta_pp
        row = {
            "model": name,
            "setting": setting,
            "training": part.training.iloc[0],
            "mode": part["mode"].iloc[0],
            "seeds": int(acc.notna().sum()),
            "accuracy_pct": acc.median(),
            "accuracy_min_pct": acc.min(),
            "accuracy_max_pct": acc.max(),
            "delta_pp": delta.median(),
            "delta_min_pp": delta.min(),
            "delta_max_pp": delta.max(),
            "size_x": part.size_x.median(),
            "latency_x": part.latency_x.median(),
            "kernel": next((k for k in part.kernel if isinstance(k, str) and k), ""),
            "cell_state_type": next(
                (k for k in part.cell_state_type if isinstance(k, str) and k), ""
            ),
        }
        for column in ERRORS:
            row[column] = part[column].median()
        for column in ("first_step_steps", "last_step_steps"):
            row[column.replace("_steps", "_min_steps")] = part[column].min()
            row[column.replace("_steps", "_max_steps")] = part[column].max()
        row.update(cpu.carried(part))
        row["note"] = next((n for n in part.note if isinstance(n, str) and n), "")
        rows.append(row)
    return pd.DataFrame(rows)


def headline(table: pd.DataFrame) -> str:
    """What integer_only costs the LSTM against float32, what its state carries from the first time
    step to the last, and what was refused.

    Returns one sentence per model, with the figures (medians [min, max] over seeds)."""
    sentences = []
    for name, part in summary(table).groupby("model", sort=False):
        s = part.set_index("setting")
        said = []
        if "integer_only" in s.index and s.loc["integer_only", "seeds"]:
            r = s.loc["integer_only"]
            seeds = f"{int(r.seeds)} seed{'s' if r.seeds > 1 else ''}"
            said.append(
                f"integer_only ({r.kernel}, {r.cell_state_type} cell state) changes accuracy by "
                f"{r.delta_pp:+.2f} pp [{r.delta_min_pp:+.2f}, {r.delta_max_pp:+.2f}] against "
                f"float32 (median [min, max] over {seeds}) at {r.size_x:.2f}x its size, and the "
                f"LSTM's output drifts from {r.first_step_steps:.2f} output steps rms at the first "
                f"time step to {r.last_step_steps:.2f} "
                f"[{r.last_step_min_steps:.2f}, {r.last_step_max_steps:.2f}] at the last"
            )
        for setting in ("int16x8", "qat"):
            if setting in s.index and s.loc[setting, "note"].startswith("not computed"):
                said.append(f"{setting} is {re.split(r'; |[.] ', s.loc[setting, 'note'])[0]}")
        sentences.append(
            f"{name}: " + ("; ".join(said) if said else "no integer_only row measured") + "."
        )
    return " ".join(sentences)
