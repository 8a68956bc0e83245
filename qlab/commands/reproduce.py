"""`python -m qlab reproduce`: train, convert every mode, measure, look inside, write the tables."""

from __future__ import annotations

import contextlib
import datetime as dt
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from qlab import artifacts, plots
from qlab.analysis import buckets, capture, per_layer
from qlab.conversion import modes
from qlab.infra import cache, progress, tables
from qlab.perf import cpu
from qlab.tflite import measure
from qlab.training import data
from qlab.training.fit import TrainConfig


@dataclass
class Reproduced:
    """What `reproduce` measured and wrote."""

    # one row per model (qlab.artifacts.measure_models), with the CPU columns
    results: pd.DataFrame
    # the article's table beside ours (qlab.infra.tables.comparison), with them too
    comparison: pd.DataFrame
    out: Path
    models: list[Path]  # OUT/models/<training>-<mode>.tflite
    layer_tables: list[Path]  # OUT/layer_errors_<training>-<mode>.csv
    figures: list[Path]  # OUT/figures/*.png
    elapsed: float  # seconds


def reproduce(
    out: str | Path = "results",
    seed: int = 0,
    epochs: int = 10,
    calibration_size: int = 100,
    runs: int = 200,
    use_cache: bool = True,
    progress: bool = True,
) -> Reproduced:
    """Measures every model of `artifacts.conversions()`; writes results.csv/.md, comparison.csv,
    models/, the per-layer error tables and figures/ under `out` (`use_cache=False`: all rebuilt in
    a scratch cache). The latency tables carry the CPU columns (`qlab.perf.cpu.columns`).

    Returns the `Reproduced` tables and paths. Raises ValueError for a calibration size outside
    1..the training split, OSError if `out` cannot be written.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with contextlib.nullcontext() if use_cache else cache.scratch():
        results = artifacts.measure_models(
            artifacts.conversions(), seed, epochs, calibration_size, runs, progress
        )
        tflites = artifacts.convert_all(
            artifacts.conversions(), seed, epochs, calibration_size, progress=False
        )
        written = []
        for (training, mode), tflite in tflites.items():
            written.append(out / "models" / f"{training}-{mode}.tflite")
            cache.write_atomic(written[-1], tflite)
        layer_tables, figures = inside(out, tflites, seed, epochs, progress)
    comparison = cpu.with_columns(tables.comparison(results))
    results = cpu.with_columns(results)
    results.to_csv(out / "results.csv", index=False)
    comparison.to_csv(out / "comparison.csv", index=False)
    elapsed = time.perf_counter() - started
    (out / "results.md").write_text(
        report(results, comparison, seed, epochs, calibration_size, runs, elapsed)
    )
    return Reproduced(results, comparison, out, written, layer_tables, figures, elapsed)


def inside(
    out: Path,
    tflites: dict[tuple[str, str], bytes],
    seed: int = 0,
    epochs: int = 10,
    progress: bool = True,
) -> tuple[list[Path], list[Path]]:
    """Writes the per-layer error of every model with int8 weights (OUT/layer_errors_*.csv; QAT
    models also against deployed) and the key figures (OUT/figures/).

    Returns (the CSV paths, the figure paths).
    """
    digits = data.load()
    configs = {t: TrainConfig(training=t, seed=seed, epochs=epochs) for t in ("float", "qat")}
    qat_model = artifacts.trained(configs["qat"], progress=False)
    float_tflites = {
        "float": artifacts.float_tflite(configs["float"]),
        "qat": artifacts.float_tflite(configs["qat"], qat_model),
    }
    # float ones: nothing to compare
    quantized = [key for key in tflites if modes.get(key[1]).weights == "int8"]
    written, by_model = [], {}
    for training, mode in _bar(quantized, progress):
        table = per_layer.layer_errors(
            tflites[training, mode], float_tflites[training], digits.x_test
        )
        if training == "qat":
            table = pd.concat(
                [
                    table,
                    per_layer.qat_vs_deployed(qat_model, tflites[training, mode], digits.x_test),
                ],
                ignore_index=True,
            )
        by_model[training, mode] = table
        written.append(out / f"layer_errors_{training}-{mode}.csv")
        cache.write_atomic(written[-1], table.to_csv(index=False).encode())
    pair = capture.pair(tflites["float", "full_integer"], float_tflites["float"])
    figures = {
        "layer_errors_float-full_integer": plots.layer_errors(
            by_model["float", "full_integer"],
            "float/full_integer: error per layer, in output levels",
        ),
        "error_growth_float": plots.error_growth(
            {m: t for (tr, m), t in by_model.items() if tr == "float"}
        ),
        "qat_vs_deployed": plots.qat_vs_deployed(
            by_model["qat", "integer_only"].query("view == 'qat'")
        ),
        "weight_histograms": plots.weight_histograms(pair),
        "rounding_vs_clipping": plots.rounding_vs_clipping(
            buckets.activation_table(pair, digits.x_test)
        ),
    }
    (out / "figures").mkdir(parents=True, exist_ok=True)
    paths = []
    for name, fig in figures.items():
        paths.append(out / "figures" / f"{name}.png")
        fig.savefig(paths[-1], dpi=110)
    return written, paths


def _bar(items: list, show: bool):
    return progress.bar(items, desc="per-layer error", total=len(items), show=show, unit="model")


def report(
    results: pd.DataFrame,
    comparison: pd.DataFrame,
    seed: int,
    epochs: int,
    calibration_size: int,
    runs: int,
    elapsed: float,
) -> str:
    """Returns results.md's Markdown: both tables and what they were measured on."""
    m = measure.machine()
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return "\n".join(
        [
            "# qlab reproduce",
            "",
            f"Measured {when} on {m['cpu']} ({m['cores']} cores), Python {m['python']}, "
            f"TensorFlow {m['tensorflow']}, tfmot {m['tensorflow_model_optimization']}, "
            f"LiteRT {m['ai_edge_litert']}. Seed {seed}, {epochs} float epochs, "
            f"{calibration_size} calibration "
            f"images, {runs} timed invokes per latency; took {elapsed:.0f} s.",
            "",
            "Accuracy on the 450 test images; latency: median of single-image invokes after "
            "warm-up (LiteRT, default XNNPACK delegate, 1 thread), p10/p90 beside it; "
            "`loop_ms`: the article's loop over all 450 images (set_tensor, invoke, get_tensor).",
            "",
            "## Results",
            "",
            cpu.line(results),
            "",
            tables.to_markdown(
                cpu.without_columns(results.drop(columns=["seed", "epochs"])), digits=4
            ),
            "",
            "## Beside the published table",
            "",
            "The article's figures (`_pub`) come from `qlab/published/`. Its float size (440 KB) "
            "is a Keras .h5 file with optimizer state; ours is the float32 .tflite. Latencies are "
            "machine bound: compare the ratios (`_x`), not the milliseconds.",
            "",
            cpu.line(comparison),
            "",
            tables.to_markdown(cpu.without_columns(comparison)),
            "",
        ]
    )


def summary(result: Reproduced) -> str:
    """Returns the terminal report: results, the comparison with the article, what was written."""
    out = result.out
    return "\n".join(
        [
            f"Measured ({result.elapsed:.0f} s), LiteRT with XNNPACK, 1 thread. "
            f"{cpu.line(result.results)}\n",
            tables.to_text(
                cpu.without_columns(result.results).drop(
                    columns=["seed", "epochs", "latency_runs"]
                ),
                digits=4,
            ),
            "\nBeside the article's table "
            "(accuracy %, loop ms over 450 images, size KB; _x: ratio to float32):\n",
            tables.to_text(cpu.without_columns(result.comparison.drop(columns=["technique"]))),
            f"\nWrote {out / 'results.csv'}, {out / 'results.md'}, {out / 'comparison.csv'}, "
            f"{len(result.models)} models under {out / 'models'}, "
            f"{len(result.layer_tables)} layer-error tables "
            f"and {len(result.figures)} figures under {out / 'figures'}",
        ]
    )
