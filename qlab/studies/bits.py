"""The bits curve: accuracy against the bit width of weights (2 to 8, activations at 8) and of
activations (4 to 8, weights at 8), by quantization-aware fine-tuning and by post-training
fake-quant (no training), side by side, on the same wrapping of the same trained float model.

A cell wraps the model with `qlab.training.schemes.quantize_bits` (tfmot's n-bit scheme), sets
every range from the calibration set (`qlab.analysis.fake_quant.calibrate`) and scores it: the
`post_training` row. It then fine-tunes that model with fake-quant on for `QAT_EPOCHS` (ranges
then move by tfmot's rules: weights' last value, activations' moving average) and scores it
again: the `qat` row. So the two rows differ by the training alone; tfmot's own QAT starts its
activation ranges at [-6, 6] instead.

Every QAT model (and the post-training one at 8/8) is converted to an integer_only `.tflite` and
run on LiteRT, and the row records what the file kept of the scheme: TFLite has int8 kernels (and
16x8), and tfmot issues #574 and #950 report 4-bit schemes converted to int8 weights. Measured
with TF 2.21 here: weights of 2 to 4 bits are written as INT4 tensors, weights of 5 to 7 bits as
int8 tensors holding at most 2^bits - 1 values, activations always as int8 (256 levels) over the
trained ranges, and 4-bit activations fail to convert to integer_only. At 4-bit weights,
ai-edge-quantizer's `weight_only_wi4_afp32` recipe deploys int4 weights with float activations
from the float model."""

from __future__ import annotations

import logging
import math
import re

import numpy as np
import pandas as pd

from qlab import artifacts
from qlab.analysis import fake_quant
from qlab.conversion import aeq, to_tflite
from qlab.conversion.converter import ConversionError
from qlab.studies.sweep import spread
from qlab.tflite import flatbuffer
from qlab.tflite.measure import accuracy as litert_accuracy
from qlab.training import data, fit, qat, schemes
from qlab.training.fit import TrainConfig

log = logging.getLogger(__name__)
NAME = "bits"
MODELS = ("digits_cnn", "mobilenet_mini")
SETTINGS = [[w, 8] for w in range(2, 9)] + [[8, a] for a in range(4, 8)]
"""[weight_bits, activation_bits]: weights 2..8 with activations at 8, activations 4..7 with
weights at 8."""
VERSION = 1
QAT_EPOCHS = 1
"""Fine-tuning epochs per cell (digits: 42 steps of 32 images), what 110 cells afford in 5
minutes."""
METHODS = ("post_training", "qat", "aeq_wi4_afp32")
WEIGHT_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
AEQ_NOTE = (
    "deployed with ai-edge-quantizer's weight_only_wi4_afp32 recipe on the float model's float32 "
    ".tflite: int4 weights (one scale per output channel), float32 activations"
)


def check(names, settings) -> None:
    """Raises ValueError for a setting that is not a pair [weight_bits, activation_bits] of whole
    numbers from 2 to 8, or a model with a layer tfmot cannot wrap for QAT (a recurrent one)."""
    for setting in settings:
        if not isinstance(setting, (list, tuple)) or len(setting) != 2:
            raise ValueError(
                f"a bits setting is a pair [weight_bits, activation_bits], got {setting!r}"
            )
        schemes.check_bits(setting[0], "weight_bits")
        schemes.check_bits(setting[1], "activation_bits")
    for name in names:
        qat.refuse_recurrent(name, "bits curve")


def prepare(model: str, seed: int) -> None:
    """Train (or load) the float model of (model, seed) and its float32 .tflite, into the cache."""
    config = TrainConfig(model=model, seed=seed)
    artifacts.trained(config, progress=False)
    artifacts.quantized(config, "float32", progress=False)


def measure(cell: dict) -> list[dict]:
    """One (model, seed, [weight_bits, activation_bits]) cell.

    Returns:
        rows with model, seed, setting, weight_bits, activation_bits, method (`METHODS`),
        keras_accuracy (the fake-quant Keras model on the test split, 0..1; NaN for the aeq row),
        deployed_accuracy (its .tflite on LiteRT, 0..1; NaN where none was made), size_bytes, the
        columns of `file_kept`, float_accuracy (the float Keras model), float32_bytes (its float32
        .tflite), qat_epochs, note (what the file kept of the scheme, or why there is no file). A
        `post_training` and a `qat` row always (the post-training model is converted at 8/8 only);
        the aeq row at [4, 8]."""
    name, seed = cell["model"], int(cell["seed"])
    weight_bits, activation_bits = (int(b) for b in cell["setting"])
    config = TrainConfig(model=name, seed=seed)
    dataset = data.load(config.dataset)
    calibration = data.calibration(dataset.x_train, seed=seed)
    float_model = artifacts.trained(config, dataset, progress=False)
    float32 = artifacts.quantized(config, "float32", progress=False)
    base = {
        "model": name,
        "seed": seed,
        "setting": [weight_bits, activation_bits],
        "weight_bits": weight_bits,
        "activation_bits": activation_bits,
        "float_accuracy": fit.keras_accuracy(float_model, dataset),
        "float32_bytes": len(float32),
        "qat_epochs": QAT_EPOCHS,
    }
    fit.seed_everything(seed)
    model = schemes.quantize_bits(float_model, weight_bits, activation_bits)
    fake_quant.calibrate(model, calibration)
    full = (weight_bits, activation_bits) == (8, 8)
    rows = [_scored(base, "post_training", model, dataset, calibration, deploy=full)]
    fine_tune(
        model,
        dataset,
        QAT_EPOCHS,
        config.qat_learning_rate,
        config.batch_size,
        fit.loss_for(float_model),
        seed,
    )
    rows.append(_scored(base, "qat", model, dataset, calibration, deploy=True))
    if (weight_bits, activation_bits) == (4, 8):
        rows.append(_aeq_row(base, float32, dataset))
    return rows


def fine_tune(model, dataset, epochs: int, learning_rate: float, batch_size: int, loss, seed: int):
    """QAT fine-tuning on the training split, in place: Adam at `learning_rate`, shuffled with
    `seed`, whole batches only (so the training step is traced once), no validation pass.

    Returns `model`, trained."""
    import tensorflow as tf  # TensorFlow's input pipeline

    fit.compile_model(model, learning_rate, loss)
    batches = (
        tf.data.Dataset.from_tensor_slices((dataset.x_train, dataset.y_train))
        .shuffle(len(dataset.x_train), seed=seed)
        .batch(batch_size, drop_remainder=True)
    )
    model.fit(batches, epochs=epochs, verbose=0)
    return model


def _row(base: dict, method: str) -> dict:
    return {
        **base,
        "method": method,
        "keras_accuracy": math.nan,
        "deployed_accuracy": math.nan,
        "size_bytes": math.nan,
        "file_weights": "",
        "file_weight_values": math.nan,
        "file_activation_levels": math.nan,
        "note": "",
    }


def _scored(base: dict, method: str, model, dataset, calibration, deploy: bool) -> dict:
    """The row of a fake-quant model, and of its integer_only file if `deploy`."""
    row = _row(base, method)
    row["keras_accuracy"] = fit.keras_accuracy(model, dataset)
    if not deploy:
        row["note"] = "Keras fake-quant only (the post-training model is converted at 8/8 only)"
        return row
    try:
        tflite = to_tflite.quantize(model, "integer_only", calibration)
    except (ValueError, ConversionError) as exc:
        row["note"] = f"not deployed, because {why_not_deployed(str(exc), base['activation_bits'])}"
        return row
    row.update(
        deployed_accuracy=litert_accuracy(tflite, dataset.x_test, dataset.y_test),
        size_bytes=len(tflite),
        **file_kept(tflite, model),
    )
    kept = f"weights as {row['file_weights']}" + (
        ""
        if math.isnan(row["file_weight_values"])
        else f" holding at most {row['file_weight_values']:.0f} values"
    )
    acts = row["file_activation_levels"]
    row["note"] = f"integer_only .tflite on LiteRT: {kept}, activations on {acts:.0f} levels" + (
        ""
        if acts <= 2 ** base["activation_bits"] + 0.5
        else f", not the {base['activation_bits']}-bit grid the Keras model simulates"
    )
    return row


def why_not_deployed(error: str, activation_bits: int) -> str:
    """Returns why a QAT model did not convert to integer_only, from qlab's conversion error: for
    an op whose input and output quantized types differ (tfmot's 4-bit activation grid feeding the
    softmax, whose output the converter keeps int8; 5 to 8 bits convert), that reason with the
    converter's own message, else qlab's error with it (qlab's advice about modes dropped)."""
    said = next(
        (ln.split("error:", 1)[1].strip() for ln in error.splitlines() if "error:" in ln), ""
    )
    op = re.search(
        r"'tfl\.(\w+)' op failed to verify that input and output must have same element type", said
    )
    if op:
        return (
            "the converter cannot deploy a tfmot QAT model with "
            f"{activation_bits}-bit activations to integer_only (nor full_integer): the "
            f"{op.group(1)}'s input and output grids differ in type (converter: {said})"
        )
    first = error.splitlines()[0].split(". Use mode")[0].rstrip(".")
    return f"{first} (converter: {said})" if said else first


def file_kept(tflite: bytes, model=None) -> dict:
    """What a converted file kept of a fake-quant model's scheme.

    Returns:
        {"file_weights": the types of the weight tensors of its conv and fully connected ops,
        followed back through a DEQUANTIZE op if there is one ("INT4", "INT8", joined by "+"),
        "file_weight_values": the most distinct values any int8 one holds (NaN if none is int8:
        qlab does not unpack INT4), "file_activation_levels": how many of the file input's levels
        span the fake-quant input range of `model` (256 when the file keeps 8-bit activations; NaN
        without a model, an input fake-quant op or a quantized file input)}."""
    file = flatbuffer.read(tflite)
    weights = _weight_tensors(file)
    int8 = [len(np.unique(t.data)) for t in weights if t.data is not None and t.type == "INT8"]
    return {
        "file_weights": "+".join(sorted({t.type for t in weights})),
        "file_weight_values": float(max(int8)) if int8 else math.nan,
        "file_activation_levels": _activation_levels(file, model),
    }


def _weight_tensors(file) -> list:
    """The weight tensors of the conv and fully connected ops, followed back through DEQUANTIZE."""
    producer = {out: op for op in file.ops for out in op.outputs}
    weights = []
    for op in file.ops:
        if op.name in WEIGHT_OPS:
            source = producer.get(op.inputs[1])
            weights.append(
                file.tensors[
                    source.inputs[0]
                    if source is not None and source.name == "DEQUANTIZE"
                    else op.inputs[1]
                ]
            )
    return weights


def _activation_levels(file, model) -> float:
    entry = (
        None
        if model is None
        else next((e for e in fake_quant.grids(model) if e.site.tensor == "input"), None)
    )
    scale = file.tensors[file.inputs[0]].scale
    levels = math.nan
    if entry is not None and scale.size:
        levels = round(float(entry.grid.high[0] - entry.grid.low[0]) / float(scale[0]) + 1, 1)
    return levels


def _aeq_row(base: dict, float32: bytes, dataset) -> dict:
    row = _row(base, "aeq_wi4_afp32")
    try:
        tflite = aeq_int4(float32)
        row.update(
            deployed_accuracy=litert_accuracy(tflite, dataset.x_test, dataset.y_test),
            size_bytes=len(tflite),
            **file_kept(tflite),
            note=AEQ_NOTE,
        )
    except (ValueError, RuntimeError, TypeError, KeyError, NotImplementedError) as exc:
        row["note"] = (
            f"not computed, because ai-edge-quantizer's weight_only_wi4_afp32 failed: {exc}"
        )
        log.info("%s aeq_wi4_afp32: %s", base["model"], row["note"])
    return row


def aeq_int4(float32_tflite: bytes) -> bytes:
    """A float32 .tflite with its weights in int4, by ai-edge-quantizer's `weight_only_wi4_afp32`
    recipe (min-max, symmetric, one scale per output channel; a DEQUANTIZE op before each float op).

    Returns the .tflite bytes. Raises qlab.conversion.aeq.AEQError when ai-edge-quantizer cannot
    quantize the model (its reason)."""
    return aeq.quantize(float32_tflite, "weight_only_wi4_afp32")


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """Medians and spreads over seeds.

    Returns:
        one row per (model, weight_bits, activation_bits, method): seeds, keras_pct,
        keras_min_pct, keras_max_pct, deployed_pct, deployed_min_pct, deployed_max_pct (%,
        median, min and max over seeds; NaN where not measured), gap_pp (deployed minus Keras,
        median of the per-seed differences, pp), float_pct, size_bytes, file_weight_values and
        file_activation_levels (medians), file_weights and note (the first seed's)."""
    rows = []
    for (name, wb, ab, method), part in table.groupby(
        ["model", "weight_bits", "activation_bits", "method"], sort=False
    ):
        keras_, deployed = spread(100 * part.keras_accuracy), spread(100 * part.deployed_accuracy)
        rows.append(
            {
                "model": name,
                "weight_bits": wb,
                "activation_bits": ab,
                "method": method,
                "seeds": len(part),
                "keras_pct": keras_[0],
                "keras_min_pct": keras_[1],
                "keras_max_pct": keras_[2],
                "deployed_pct": deployed[0],
                "deployed_min_pct": deployed[1],
                "deployed_max_pct": deployed[2],
                "gap_pp": spread(100 * (part.deployed_accuracy - part.keras_accuracy))[0],
                "float_pct": spread(100 * part.float_accuracy)[0],
                "size_bytes": spread(part.size_bytes)[0],
                "file_weights": part.file_weights.iloc[0],
                "file_weight_values": spread(part.file_weight_values)[0],
                "file_activation_levels": spread(part.file_activation_levels)[0],
                "note": part.note.iloc[0],
            }
        )
    return pd.DataFrame(rows)


def headline(table: pd.DataFrame) -> str:
    """The lowest weight width measured with 8-bit activations, QAT against post-training, per
    model; how far the QAT files deployed at 8/8 and at 4-bit weights are from their Keras models.

    Returns two or three sentences (median [min–max] over seeds); without 8-bit activations, the
    settings measured and how many QAT models deployed."""
    frame = summary(table)
    weights = frame[frame.activation_bits == 8]
    if weights.empty:
        measured = ", ".join(
            f"{w}/{a}" for w, a in sorted(set(zip(frame.weight_bits, frame.activation_bits)))
        )
        return (
            "No setting with 8-bit activations was measured "
            f"(weight/activation bits measured: {measured}); {_deployed(frame)}"
        )
    low, seeds = int(weights.weight_bits.min()), int(frame.seeds.max())
    parts = []
    for name, part in weights[weights.weight_bits == low].groupby("model", sort=False):
        by = part.set_index("method")
        parts.append(
            f"{name} {_pct(by, 'qat')} after QAT, {_pct(by, 'post_training')} after post-training "
            f"fake-quant (float {by.float_pct.iloc[0]:.2f} %)"
        )
    over = "1 seed" if seeds == 1 else f"median [min–max] over {seeds} seeds"
    text = f"At {low}-bit weights and 8-bit activations ({over}): {'; '.join(parts)}."
    for wb, what in ((8, "at 8/8"), (4, "at 4-bit weights")):
        rows = table[
            (table.method == "qat") & (table.weight_bits == wb) & (table.activation_bits == 8)
        ]
        gaps = (100 * (rows.deployed_accuracy - rows.keras_accuracy)).abs().dropna()
        if len(gaps):
            stored = "+".join(sorted(set(rows.file_weights) - {""}))
            text += (
                f" The QAT models {what}, converted to integer_only files ({stored} weights) "
                f"and run on LiteRT, score within {gaps.max():.2f} pp of Keras "
                f"({len(gaps)} file{'s' if len(gaps) != 1 else ''})."
            )
    return text


def _pct(by: pd.DataFrame, method: str) -> str:
    if method not in by.index:
        return "not measured"
    r = by.loc[method]
    if r.keras_min_pct == r.keras_max_pct:
        return f"{r.keras_pct:.2f} %"
    return f"{r.keras_pct:.2f} % [{r.keras_min_pct:.2f}–{r.keras_max_pct:.2f}]"


def _deployed(frame: pd.DataFrame) -> str:
    """Returns a clause on how many QAT models deployed, and the first reason one did not."""
    qat_ = frame[frame.method == "qat"]
    failed = qat_[qat_.deployed_pct.isna()]
    text = f"{len(qat_) - len(failed)} of {len(qat_)} QAT models deployed"
    return text + (f"; {failed.note.iloc[0]}." if len(failed) else ".")
