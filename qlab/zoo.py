"""The articles' architecture table in miniature: every zoo model (`qlab.models.ZOO`) in float32,
dynamic_range, float16 and integer_only after training, and integer_only after quantization-aware
training, over several seeds; accuracy, size and latency against float32; the effect of one weight
scale per tensor; and the ImageNet figures of `tfmot-post-training-integer-quantization` beside.

A row qlab cannot fill says why in its `note` (a recurrent model tfmot cannot train with QAT, a
mode the converter refuses), and so does a row whose file the converter left all in float; nothing
is left out silently.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from qlab import artifacts, data, measure, models, modes, progress, tables, tflite_file
from qlab.converter import ConversionError
from qlab.train import TrainConfig

log = logging.getLogger(__name__)
PUBLISHED = "tfmot-post-training-integer-quantization"
ROWS = (("float", "float32"), ("float", "dynamic_range"), ("float", "float16"), ("float", "integer_only"),
        ("qat", "integer_only"))
"""(training, mode) of each model's rows: the articles' float baseline, the converter's post-training
modes, and quantization during training."""


def measure_model(name: str, seed: int, runs: int = 100) -> list[dict]:
    """Every row of one zoo model for one seed: trained (or loaded), converted, run on LiteRT.

    Args:
        runs: timed invokes per latency (median single-image latency, XNNPACK, 1 thread).

    Returns:
        one dict per (training, mode) of `ROWS`: model, training, mode, seed, accuracy (0..1, on
        the test split), size_bytes, latency_us, per_tensor_accuracy (integer_only after
        training only: the same conversion with one weight scale per tensor), note (why a row
        is empty, or that a quantizing mode quantized nothing; else "").
    """
    entry = models.get(name)
    dataset = data.load(entry.dataset)
    calibration = data.calibration(dataset.x_train, seed=seed)
    rows = []
    for training, mode in ROWS:
        row = {"model": name, "training": training, "mode": mode, "seed": seed, "accuracy": np.nan,
               "size_bytes": np.nan, "latency_us": np.nan, "per_tensor_accuracy": np.nan, "note": ""}
        config = TrainConfig(training=training, model=name, seed=seed)
        try:
            tflite = artifacts.quantized(config, mode, calibration, dataset, progress=False)
            row.update(accuracy=measure.accuracy(tflite, dataset.x_test, dataset.y_test), size_bytes=len(tflite),
                       latency_us=measure.latency(tflite, dataset.x_test, runs=runs)["latency_us"])
            if mode not in ("float32", "float16") and not any(t.quantized for t in tflite_file.read(tflite).tensors):
                row["note"] = f"measured, but {modes.NOTHING_QUANTIZED}"
            if (training, mode) == ("float", "integer_only"):
                per_tensor = artifacts.quantized(config, mode, calibration, dataset, False, per_channel=False)
                row["per_tensor_accuracy"] = measure.accuracy(per_tensor, dataset.x_test, dataset.y_test)
        except (ValueError, ConversionError) as exc:
            row["note"] = f"not computed, because {' '.join(str(exc).split())}"
            log.info("%s %s/%s: %s", name, training, mode, row["note"])
        rows.append(row)
    return rows


def sweep(names=None, seeds=(0, 1, 2, 3, 4), runs: int = 100, progress: bool = True) -> pd.DataFrame:
    """`measure_model` for every (model, seed).

    Args:
        names: zoo models (default: all of `qlab.models.ZOO`).

    Returns:
        the per-seed rows as a DataFrame (columns of `measure_model`).

    Raises:
        ValueError: an unknown model, or no seeds.
    """
    names = list(models.ZOO) if names is None else [models.get(n).name for n in names]
    seeds = list(seeds)
    if not seeds:
        raise ValueError("no seeds: pass at least one")
    cells = [(name, seed) for seed in seeds for name in names]
    rows = []
    for name, seed in _bar(cells, progress):
        rows += measure_model(name, seed, runs)
    return pd.DataFrame(rows)


def table(per_seed: pd.DataFrame) -> pd.DataFrame:
    """One row per (model, training, mode): accuracy as a median over seeds with its min and max,
    size and latency relative to the same model's float32 (median of the per-seed ratios).

    Returns:
        DataFrame: model, training, mode, seeds (count), accuracy_pct, accuracy_min_pct,
        accuracy_max_pct, delta_pp (median accuracy minus float32's, in percentage points),
        size_x, latency_x, per_tensor_pct (median), note.
    """
    frame = per_seed.copy()
    base = frame[(frame.training == "float") & (frame["mode"] == "float32")].set_index(["model", "seed"])
    keys = list(zip(frame.model, frame.seed))
    frame["size_x"] = frame.size_bytes.to_numpy() / base.size_bytes.reindex(keys).to_numpy()
    frame["latency_x"] = frame.latency_us.to_numpy() / base.latency_us.reindex(keys).to_numpy()
    rows = []
    for (name, training, mode), part in frame.groupby(["model", "training", "mode"], sort=False):
        acc = 100 * part.accuracy
        rows.append({"model": name, "training": training, "mode": mode, "seeds": int(acc.notna().sum()),
                     "accuracy_pct": acc.median(), "accuracy_min_pct": acc.min(), "accuracy_max_pct": acc.max(),
                     "size_x": part.size_x.median(), "latency_x": part.latency_x.median(),
                     "per_tensor_pct": 100 * part.per_tensor_accuracy.median(),
                     "note": next((n for n in part.note if n), "")})
    result = pd.DataFrame(rows)
    float_acc = result[(result.training == "float") & (result["mode"] == "float32")].set_index("model").accuracy_pct
    result.insert(result.columns.get_loc("accuracy_max_pct") + 1, "delta_pp",
                  result.accuracy_pct - float_acc.reindex(result.model).to_numpy())
    return result


def beside_published(summary: pd.DataFrame) -> pd.DataFrame:
    """Each zoo model standing in for a published family, beside the family's ImageNet figures.

    Returns:
        one row per family: family, model, float, qat and ptq accuracy published (%, ImageNet
        top-1) and measured here (median %, integer_only after QAT and after training), and
        the deltas from float (percentage points), published and measured.
    """
    published = tables.published(PUBLISHED).set_index("family")
    acc = summary.set_index(["model", "training", "mode"]).accuracy_pct
    rows = []
    for entry in models.ZOO.values():
        if entry.family is None or entry.family not in published.index or entry.name not in set(summary.model):
            continue
        p = published.loc[entry.family]
        get = lambda training, mode: acc.get((entry.name, training, mode), np.nan)  # noqa: E731
        rows.append({"family": entry.family, "model": entry.name,
                     "float_pct_pub": p.float_pct, "float_pct": get("float", "float32"),
                     "qat_pct_pub": p.qat_pct, "qat_pct": get("qat", "integer_only"),
                     "ptq_pct_pub": p.ptq_pct, "ptq_pct": get("float", "integer_only")})
    result = pd.DataFrame(rows)
    if len(result):
        for kind in ("qat", "ptq"):
            result[f"{kind}_delta_pp_pub"] = result[f"{kind}_pct_pub"] - result.float_pct_pub
            result[f"{kind}_delta_pp"] = result[f"{kind}_pct"] - result.float_pct
    return result


def per_tensor_effect(summary: pd.DataFrame) -> pd.DataFrame:
    """What one weight scale per tensor costs each model, after training, in integer_only.

    Returns:
        one row per model: model, per_channel_pct and per_tensor_pct (median accuracy %), cost_pp
        (per-channel minus per-tensor, percentage points; positive: per-tensor is worse).
    """
    rows = summary[(summary.training == "float") & (summary["mode"] == "integer_only")]
    return pd.DataFrame({"model": rows.model, "per_channel_pct": rows.accuracy_pct,
                         "per_tensor_pct": rows.per_tensor_pct,
                         "cost_pp": rows.accuracy_pct - rows.per_tensor_pct}).reset_index(drop=True)


def per_tensor_finding(per_tensor: pd.DataFrame) -> str:
    """One sentence on whether one weight scale per tensor hurts mobilenet_mini most, from the numbers.

    Returns:
        the sentence, with the costs it rests on.
    """
    costs = per_tensor.set_index("model").cost_pp.dropna()
    if "mobilenet_mini" not in costs or len(costs) < 2:
        return "Per-tensor weights: mobilenet_mini and another model are needed to compare."
    others = costs.drop("mobilenet_mini")
    mobile = costs["mobilenet_mini"]
    verdict = ("hurts mobilenet_mini most, as the literature says of MobileNet" if mobile > others.max()
               else "does not hurt mobilenet_mini most here, unlike what the literature says of MobileNet")
    return (f"One weight scale per tensor {verdict}: it costs mobilenet_mini {mobile:+.2f} pp (median over "
            f"seeds), the other models {others.min():+.2f} to {others.max():+.2f} pp.")


def _bar(cells: list, show: bool):
    return progress.bar(cells, desc="zoo", total=len(cells), show=show, unit="model")
