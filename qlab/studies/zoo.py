"""The articles' architecture table in miniature: every zoo model (`qlab.training.models.ZOO`) in
float32, dynamic_range, float16 and integer_only after training, and integer_only after
quantization-aware training, over several seeds; accuracy, size and latency against float32; the
effect of one weight scale per tensor; and the ImageNet figures of
`tfmot-post-training-integer-quantization` beside.

A row qlab cannot fill says why in its `note` (a recurrent model tfmot cannot train with QAT, a
mode the converter refuses), and so does a row whose file the converter left all in float; nothing
is left out silently."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from qlab import artifacts
from qlab.analysis import variants
from qlab.conversion import modes
from qlab.conversion.converter import ConversionError
from qlab.infra import progress, tables
from qlab.perf import cpu
from qlab.tflite import flatbuffer, measure
from qlab.training import data, models
from qlab.training.fit import TrainConfig

log = logging.getLogger(__name__)
PUBLISHED = "tfmot-post-training-integer-quantization"
ROWS = (
    ("float", "float32"),
    ("float", "dynamic_range"),
    ("float", "float16"),
    ("float", "integer_only"),
    ("qat", "integer_only"),
)
"""(training, mode) of each model's rows: the articles' float baseline, the converter's
post-training modes, and quantization during training."""


def measure_model(
    name: str, seed: int, runs: int = 100, rows=ROWS, per_tensor: bool = True
) -> list[dict]:
    """Every row of one zoo model for one seed: trained (or loaded), converted, run on LiteRT.
    Latency is the median single-image time of `runs` invokes, XNNPACK, 1 thread; `table` needs
    ("float", "float32") among `rows`; `per_tensor` False leaves the per-tensor columns NaN.

    Returns:
        one dict per (training, mode) of `rows`: model, training, mode, seed, accuracy (0..1, on
        the test split), size_bytes, latency_us, per_tensor_accuracy and per_tensor_min_levels
        (integer_only after training only: the accuracy with one weight scale per tensor, and the
        fewest int8 levels any weight channel then spans), note (why a row is empty, or that a
        quantizing mode quantized nothing; else ""), and the columns of `qlab.perf.cpu.columns`."""
    entry = models.get(name)
    dataset = data.load(entry.dataset)
    calibration = data.calibration(dataset.x_train, seed=seed)
    measured = []
    for training, mode in rows:
        row = {
            "model": name,
            "training": training,
            "mode": mode,
            "seed": seed,
            "accuracy": np.nan,
            "size_bytes": np.nan,
            "latency_us": np.nan,
            "per_tensor_accuracy": np.nan,
            "per_tensor_min_levels": np.nan,
            "note": "",
            **cpu.columns("xnnpack", 1),
        }
        config = TrainConfig(training=training, model=name, seed=seed)
        try:
            tflite = artifacts.quantized(config, mode, calibration, dataset, progress=False)
            row.update(
                accuracy=measure.accuracy(tflite, dataset.x_test, dataset.y_test),
                size_bytes=len(tflite),
                latency_us=measure.latency(tflite, dataset.x_test, runs=runs)["latency_us"],
            )
            if mode not in ("float32", "float16") and not any(
                t.quantized for t in flatbuffer.read(tflite).tensors
            ):
                row["note"] = f"measured, but {modes.NOTHING_QUANTIZED}"
            if (training, mode) == ("float", "integer_only") and per_tensor:
                one_scale = artifacts.quantized(
                    config, mode, calibration, dataset, False, per_channel=False
                )
                float_tflite = artifacts.quantized(config, "float32", progress=False)
                row.update(
                    per_tensor_accuracy=measure.accuracy(one_scale, dataset.x_test, dataset.y_test),
                    per_tensor_min_levels=variants.channel_ranges(
                        float_tflite
                    ).levels_per_tensor.min(),
                )
        except (ValueError, ConversionError) as exc:
            row["note"] = f"not computed, because {' '.join(str(exc).split())}"
            log.info("%s %s/%s: %s", name, training, mode, row["note"])
        measured.append(row)
    return measured


def sweep(
    names=None,
    seeds=(0, 1, 2, 3, 4),
    runs: int = 100,
    progress: bool = True,
    rows=ROWS,
    per_tensor: bool = True,
) -> pd.DataFrame:
    """`measure_model` for every (model, seed) (default models: all of the zoo).

    Returns the per-seed rows as a DataFrame. Raises ValueError: an unknown model, or no seeds."""
    names = list(models.ZOO) if names is None else [models.get(n).name for n in names]
    seeds = list(seeds)
    if not seeds:
        raise ValueError("no seeds: pass at least one")
    cells = [(name, seed) for seed in seeds for name in names]
    found = []
    for name, seed in _bar(cells, progress):
        found += measure_model(name, seed, runs, rows, per_tensor)
    return pd.DataFrame(found)


def table(per_seed: pd.DataFrame) -> pd.DataFrame:
    """One row per (model, training, mode) of `sweep`'s rows.

    Returns:
        DataFrame: model, training, mode, seeds (count), accuracy_pct, accuracy_min_pct,
        accuracy_max_pct (over seeds), delta_pp (median accuracy minus float32's, pp), size_x and
        latency_x (median of the per-seed ratios to the same model's float32), per_tensor_pct
        (median), note, and the CPU columns of the rows (`qlab.perf.cpu.carried`) when present."""
    frame = per_seed.copy()
    base = frame[(frame.training == "float") & (frame["mode"] == "float32")].set_index(
        ["model", "seed"]
    )
    keys = list(zip(frame.model, frame.seed))
    frame["size_x"] = frame.size_bytes.to_numpy() / base.size_bytes.reindex(keys).to_numpy()
    frame["latency_x"] = frame.latency_us.to_numpy() / base.latency_us.reindex(keys).to_numpy()
    rows = []
    for (name, training, mode), part in frame.groupby(["model", "training", "mode"], sort=False):
        acc = 100 * part.accuracy
        rows.append(
            {
                "model": name,
                "training": training,
                "mode": mode,
                "seeds": int(acc.notna().sum()),
                "accuracy_pct": acc.median(),
                "accuracy_min_pct": acc.min(),
                "accuracy_max_pct": acc.max(),
                "size_x": part.size_x.median(),
                "latency_x": part.latency_x.median(),
                "per_tensor_pct": 100 * part.per_tensor_accuracy.median(),
                "note": next((n for n in part.note if n), ""),
                **cpu.carried(part),
            }
        )
    result = pd.DataFrame(rows)
    float_acc = (
        result[(result.training == "float") & (result["mode"] == "float32")]
        .set_index("model")
        .accuracy_pct
    )
    result.insert(
        result.columns.get_loc("accuracy_max_pct") + 1,
        "delta_pp",
        result.accuracy_pct - float_acc.reindex(result.model).to_numpy(),
    )
    return result


def beside_published(summary: pd.DataFrame) -> pd.DataFrame:
    """Each zoo model standing in for a published family, beside the family's ImageNet figures.

    Returns one row per family: family, model, float, qat and ptq accuracy published (%, ImageNet
    top-1) and measured here (median %, integer_only after QAT and after training), and the deltas
    from float (pp), published and measured."""
    published = tables.published(PUBLISHED).set_index("family")
    acc = summary.set_index(["model", "training", "mode"]).accuracy_pct
    rows = []
    for entry in models.ZOO.values():
        if (
            entry.family is None
            or entry.family not in published.index
            or entry.name not in set(summary.model)
        ):
            continue
        p = published.loc[entry.family]

        def get(training, mode, name=entry.name):
            return acc.get((name, training, mode), np.nan)

        rows.append(
            {
                "family": entry.family,
                "model": entry.name,
                "float_pct_pub": p.float_pct,
                "float_pct": get("float", "float32"),
                "qat_pct_pub": p.qat_pct,
                "qat_pct": get("qat", "integer_only"),
                "ptq_pct_pub": p.ptq_pct,
                "ptq_pct": get("float", "integer_only"),
            }
        )
    result = pd.DataFrame(rows)
    if len(result):
        for kind in ("qat", "ptq"):
            result[f"{kind}_delta_pp_pub"] = result[f"{kind}_pct_pub"] - result.float_pct_pub
            result[f"{kind}_delta_pp"] = result[f"{kind}_pct"] - result.float_pct
    return result


def per_tensor_effect(per_seed: pd.DataFrame) -> pd.DataFrame:
    """What one weight scale per tensor costs each model, after training, in integer_only, paired
    seed by seed (the same trained model converted both ways), from `sweep`'s rows.

    Returns one row per model: model, seeds, per_channel_pct and per_tensor_pct (median accuracy
    %), cost_pp, cost_min_pp, cost_max_pp (per-channel minus per-tensor accuracy of each seed, pp;
    positive: per-tensor is worse), min_levels (the fewest int8 levels a weight channel spans under
    one scale per tensor, median over seeds)."""
    rows = per_seed[(per_seed.training == "float") & (per_seed["mode"] == "integer_only")].dropna(
        subset=["accuracy", "per_tensor_accuracy"]
    )
    cost = 100 * (rows.accuracy - rows.per_tensor_accuracy)
    grouped = rows.assign(cost=cost).groupby("model", sort=False)
    return pd.DataFrame(
        {
            "seeds": grouped.size(),
            "per_channel_pct": 100 * grouped.accuracy.median(),
            "per_tensor_pct": 100 * grouped.per_tensor_accuracy.median(),
            "cost_pp": grouped.cost.median(),
            "cost_min_pp": grouped.cost.min(),
            "cost_max_pp": grouped.cost.max(),
            "min_levels": grouped.per_tensor_min_levels.median(),
        }
    ).reset_index()


def per_tensor_finding(per_tensor: pd.DataFrame) -> str:
    """Whether one weight scale per tensor hurts mobilenet_mini most, from `per_tensor_effect`'s
    table, and the levels its narrowest channel keeps (the mechanism the literature gives for
    MobileNet: channels of very different ranges, of which the narrow ones keep few levels).

    Returns two sentences, with the figures they rest on."""
    effect = per_tensor.set_index("model")
    if "mobilenet_mini" not in effect.index or len(effect.cost_pp.dropna()) < 2:
        return "Per-tensor weights: mobilenet_mini and another model are needed to compare."
    mobile, others = (
        effect.loc["mobilenet_mini"],
        effect.drop("mobilenet_mini").dropna(subset=["cost_pp"]),
    )
    verdict = (
        "hurts mobilenet_mini most, as the literature says of MobileNet"
        if mobile.cost_pp > others.cost_pp.max()
        else "does not hurt mobilenet_mini most here, unlike what the literature says of MobileNet"
    )
    return (
        f"One weight scale per tensor {verdict}: it costs mobilenet_mini {mobile.cost_pp:+.2f} pp "
        f"[{mobile.cost_min_pp:+.2f}, {mobile.cost_max_pp:+.2f}] (median [min, max] over "
        f"{int(mobile.seeds)} seeds of the paired difference per-channel − per-tensor accuracy; "
        "negative: per-tensor was the more accurate), the other models "
        f"{others.cost_pp.min():+.2f} to {others.cost_pp.max():+.2f} pp. Under one scale per "
        "tensor, mobilenet_mini's narrowest weight channel still spans "
        f"{mobile.min_levels:.0f} of the 255 int8 levels (the other models' "
        f"{others.min_levels.min():.0f} to {others.min_levels.max():.0f})."
    )


def _bar(cells: list, show: bool):
    return progress.bar(cells, desc="zoo", total=len(cells), show=show, unit="model")
