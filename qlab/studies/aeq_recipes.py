"""ai-edge-quantizer's recipes beside the converter's post-training modes, in one table: every file
run on LiteRT for accuracy, size and latency (interleaved with the float32 file), and the same
per-layer views (`qlab.analysis.per_layer`, local and accumulated), with AEQ's own `validate()`
metrics beside qlab's accumulated error for the same tensor.

Tensors are matched across files by name: the converter names a quantized file's tensors as in the
float32 file, and AEQ rewrites the float32 file keeping every tensor's name, so a tensor name from
the float file finds the same tensor in both (`qlab.conversion.aeq` module docstring).

A setting a model cannot take (a mode the converter refuses, a recipe AEQ refuses) gets a row
"not computed, because ..." with the tool's reason.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from qlab import artifacts
from qlab.analysis import per_layer
from qlab.conversion import aeq, modes
from qlab.conversion.converter import ConversionError
from qlab.perf import cpu
from qlab.studies.sweep import spread
from qlab.tflite import flatbuffer, naming
from qlab.tflite.measure import accuracy as litert_accuracy
from qlab.tflite.measure import latency_against
from qlab.training import data, models
from qlab.training.fit import TrainConfig

log = logging.getLogger(__name__)

NAME = "aeq"
MODELS = ("digits_cnn", "mobilenet_mini")
CONVERTER = ["float32", "float16", "dynamic_range", "full_integer", "int16x8"]
SETTINGS = CONVERTER + list(aeq.RECIPES)
"""The converter's post-training modes, then AEQ's recipes (`qlab.conversion.aeq.RECIPES`), all
from the same float model of the seed."""
VERSION = 3  # 2: latency_x_round_min and latency_x_round_max; 3: the CPU columns
ERROR_SAMPLES = 100  # test images the per-layer views and AEQ's validate() run on
LATENCY_ROUNDS, LATENCY_RUNS = 3, 50
FILE_COLUMNS = (
    "model",
    "seed",
    "setting",
    "route",
    "accuracy",
    "float_accuracy",
    "size_bytes",
    "latency_us",
    "latency_x",
    "latency_x_round_min",
    "latency_x_round_max",
    *cpu.MACHINE_COLUMNS,
    "kernels",
    "threads",
    "note",
)
LAYER_COLUMNS = (
    "layer",
    "op",
    "tensor",
    "local_rmse_steps",
    "local_mse",
    "accumulated_rmse_steps",
    "accumulated_mse",
    "aeq_mse",
    "aeq_snr",
    "aeq_cosine",
)
COLUMNS = FILE_COLUMNS + LAYER_COLUMNS
"""One row per (model, seed, setting, layer); the file's columns repeat on its layers' rows (a
setting that was not computed has one row, layer empty). route: "converter" or "aeq"; accuracy
and float_accuracy (0..1, LiteRT, test split); size_bytes; latency_us (median single-image invoke,
XNNPACK, 1 thread), latency_x (median ratio to float32's over interleaved rounds) and
latency_x_round_min, latency_x_round_max (that ratio's spread over the rounds); cpu, cpu_features,
int8_path, kernels, threads: what the latency was measured on (`qlab.perf.cpu.columns`); per layer:
the local and accumulated views' rmse/scale (output steps; NaN where the output is float) and
mean_squared_error (real units squared), and AEQ's validate() mse, snr (a power ratio, P_signal /
P_noise, not dB) and cosine similarity for the same tensor (AEQ recipes only)."""


def check(names, settings) -> None:
    """Refuse unknown models and settings before anything runs.

    Raises:
        ValueError: an unknown model, or a setting that is neither a converter mode of `CONVERTER`
            nor an AEQ recipe (listing both)."""
    for name in names:
        models.get(name)
    for setting in settings:
        if setting not in SETTINGS:
            raise ValueError(
                f"unknown setting {setting!r} for the aeq study: converter modes "
                f"{', '.join(CONVERTER)}; ai-edge-quantizer recipes {', '.join(aeq.RECIPES)}"
            )


def prepare(model: str, seed: int) -> None:
    """Train (or load) the float model of (model, seed) and its float32 file into the cache."""
    artifacts.quantized(TrainConfig(model=model, seed=seed), "float32", progress=False)


def quantized_file(
    config: TrainConfig, setting: str, float32: bytes, images: np.ndarray, dataset
) -> bytes:
    """The .tflite bytes of one setting: a converter mode (cached, `qlab.artifacts.quantized`) or
    an AEQ recipe applied to the float32 file.

    Returns the .tflite bytes. Raises ConversionError when the converter refused,
    qlab.conversion.aeq.AEQError when AEQ refused."""
    if setting in aeq.RECIPES:
        return aeq.quantize(float32, setting, calibration=images if setting in aeq.STATIC else None)
    return artifacts.quantized(config, setting, images, dataset, progress=False)


def measure(cell: dict) -> list[dict]:
    """One (model, seed, setting): the file made, run, timed and compared layer by layer.

    Returns rows of `COLUMNS`, one per compute op (one row with a note if not computed). Raises
    ValueError for an unknown model or setting."""
    name, seed, setting = cell["model"], int(cell["seed"]), cell["setting"]
    check([name], [setting])
    config = TrainConfig(model=name, seed=seed)
    dataset = data.load(config.dataset)
    images = data.calibration(dataset.x_train, seed=seed)
    keras_model = artifacts.trained(config, dataset, progress=False)
    float32 = artifacts.quantized(config, "float32", progress=False)
    base = dict.fromkeys(COLUMNS, np.nan) | {
        "model": name,
        "seed": seed,
        "setting": setting,
        "route": "aeq" if setting in aeq.RECIPES else "converter",
        "float_accuracy": litert_accuracy(float32, dataset.x_test, dataset.y_test),
        "note": "",
        "layer": "",
        "op": "",
        "tensor": "",
        **cpu.columns("xnnpack", 1),
    }
    try:
        tflite = quantized_file(config, setting, float32, images, dataset)
    except (ConversionError, aeq.AEQError, ValueError) as exc:
        tool = "ai-edge-quantizer" if setting in aeq.RECIPES else "the converter"
        log.info("%s/%s seed %d: %s", name, setting, seed, exc)
        return [
            base | {"note": f"not computed, because {tool} refused: {' '.join(str(exc).split())}"}
        ]
    timed = latency_against(tflite, float32, dataset.x_test, LATENCY_ROUNDS, LATENCY_RUNS)
    base.update(
        accuracy=litert_accuracy(tflite, dataset.x_test, dataset.y_test),
        size_bytes=len(tflite),
        latency_us=timed["latency_us"],
        latency_x=timed["latency_x"],
        latency_x_round_min=timed["latency_x_min"],
        latency_x_round_max=timed["latency_x_max"],
    )
    if setting == "float32":
        return [base]
    if setting in ("float16",) or not any(t.quantized for t in flatbuffer.read(tflite).tensors):
        base["note"] = (
            "weights stored in lower precision, every op computes in float: "
            "no per-layer error to show"
            if setting == "float16"
            else f"measured, but {modes.NOTHING_QUANTIZED}"
        )
        return [base]
    if setting in aeq.STATIC:
        base["note"] = left_in_float(tflite, keras_model)
    x = dataset.x_test[:ERROR_SAMPLES]
    return [
        base | row for row in layer_rows(tflite, float32, x, keras_model, setting in aeq.RECIPES)
    ]


def left_in_float(tflite: bytes, keras_model=None) -> str:
    """What a static file still computes in float (ops whose output stays FLOAT32 between the
    edges).

    Returns "" if every compute op's output is quantized, else a note naming the layers and ops,
    e.g. "ai-edge-quantizer left in float: lstm (UNIDIRECTIONAL_SEQUENCE_LSTM)"."""
    model = flatbuffer.read(tflite)
    labels = naming.labels(model, keras_model)
    left = [
        f"{labels[op.index]} ({op.name})"
        for op in naming.compute_ops(model)
        if not model.tensors[op.outputs[0]].quantized
    ]
    return f"ai-edge-quantizer left in float: {', '.join(left)}" if left else ""


def layer_rows(
    tflite: bytes, float32: bytes, x: np.ndarray, keras_model=None, validate: bool = True
) -> list[dict]:
    """qlab's two per-layer views of a file, with AEQ's validate() metrics for the same tensors.

    Returns one dict per compute op with `LAYER_COLUMNS` (aeq_* NaN unless `validate`).

    Raises:
        ValueError: a float32 file that is not the float_tflite of `tflite`.
        qlab.conversion.aeq.AEQError: from validate."""
    table = per_layer.layer_errors(tflite, float32, x, keras_model=keras_model)
    local = table[table.view == "local"].set_index("layer")
    checked = {r["tensor"]: r for r in aeq.validate(float32, tflite, x)} if validate else {}
    rows = []
    for _, r in table[table.view == "accumulated"].iterrows():
        theirs = checked.get(r.tensor, {})
        rows.append(
            {
                "layer": r.layer,
                "op": r.op,
                "tensor": r.tensor,
                "local_rmse_steps": local.loc[r.layer, "rmse/scale"],
                "local_mse": local.loc[r.layer, "mean_squared_error"],
                "accumulated_rmse_steps": r["rmse/scale"],
                "accumulated_mse": r.mean_squared_error,
                "aeq_mse": theirs.get("mse", np.nan),
                "aeq_snr": theirs.get("snr", np.nan),
                "aeq_cosine": theirs.get("cosine_similarity", np.nan),
            }
        )
    return rows


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """Medians and spreads over seeds, one row per (model, setting).

    Returns:
        model, setting, route, seeds, accuracy_pct (median) with accuracy_min_pct and
        accuracy_max_pct, delta_pp (paired with the seed's float32), size_bytes, latency_x (median)
        with latency_x_min and latency_x_max over seeds, output_rmse_steps (accumulated view at the
        last op), aeq_vs_qlab (the largest relative gap between AEQ's mse and qlab's accumulated
        mse over the tensors of the AEQ files), note (the first non-empty), and the CPU columns
        (`qlab.perf.cpu.carried`)."""
    files = table.drop_duplicates(["model", "seed", "setting"])
    rows = []
    for (name, setting), part in files.groupby(["model", "setting"], sort=False):
        acc, delta, lat = (
            spread(100 * part.accuracy),
            spread(100 * (part.accuracy - part.float_accuracy)),
            spread(part.latency_x),
        )
        layers = table[(table.model == name) & (table.setting == setting) & (table.layer != "")]
        last = layers.groupby("seed").accumulated_rmse_steps.last()
        gap = (layers.aeq_mse - layers.accumulated_mse).abs() / layers.accumulated_mse.where(
            layers.accumulated_mse > 0
        )
        rows.append(
            {
                "model": name,
                "setting": setting,
                "route": part.route.iloc[0],
                "seeds": len(part),
                "accuracy_pct": acc[0],
                "accuracy_min_pct": acc[1],
                "accuracy_max_pct": acc[2],
                "delta_pp": delta[0],
                "size_bytes": part.size_bytes.median(),
                "latency_x": lat[0],
                "latency_x_min": lat[1],
                "latency_x_max": lat[2],
                "output_rmse_steps": last.median(),
                "aeq_vs_qlab": gap.max() if gap.notna().any() else np.nan,
                "note": next((n for n in part.note if isinstance(n, str) and n), ""),
                **cpu.carried(part),
            }
        )
    return pd.DataFrame(rows)


def headline(table: pd.DataFrame) -> str:
    """The static int8 recipe against the converter's full-integer file, and how AEQ's validate()
    agrees with qlab's accumulated view.

    Returns one sentence per model, then one on validate()."""
    s = summary(table)
    said = []
    for name in dict.fromkeys(s.model):
        by = s[s.model == name].set_index("setting")
        parts = [
            f"{k} {by.loc[k, 'accuracy_pct']:.2f} % [{by.loc[k, 'accuracy_min_pct']:.2f}–"
            f"{by.loc[k, 'accuracy_max_pct']:.2f}] at {by.loc[k, 'size_bytes']:,.0f} bytes"
            for k in ("full_integer", "static_wi8_ai8", "static_wi8_ai16", "weight_only_wi4_afp32")
            if k in by.index and np.isfinite(by.loc[k, "accuracy_pct"])
        ]
        if parts:
            said.append(f"{name}: " + "; ".join(parts))
    gap = s.aeq_vs_qlab.max()
    if np.isfinite(gap):
        said.append(
            f"AEQ's validate() mse matches qlab's accumulated view within {gap:.1e} (relative) "
            "on every tensor"
        )
    return ". ".join(said) + "."
