"""`python -m qlab reproduce`: train, convert every mode, measure, write the tables."""

from __future__ import annotations

import contextlib
import datetime as dt
import time
from pathlib import Path

import pandas as pd

from qlab import cache, data, measure, modes, quantize, tables, train


def plan() -> list[tuple[str, modes.Mode]]:
    """Every (training, mode) pair the table has: float in every mode, QAT in the integer ones."""
    return [(t, m) for t in modes.TRAININGS for m in modes.for_training(t)]


def convert_plan(pairs=None, seed: int = 0, epochs: int = 10, calibration_size: int = 100,
                 progress: bool = True) -> dict[tuple[str, str], bytes]:
    """The .tflite of each (training, mode) of `pairs` (default: the whole plan), from the cache
    or trained and converted now; calibration is drawn from the training split with `seed`."""
    pairs = plan() if pairs is None else [(t, modes.get(m)) for t, m in pairs]
    digits = data.load()
    calibration = data.calibration(digits.x_train, n=calibration_size, seed=seed)
    return {(training, mode.name): quantize.quantized(
                train.TrainConfig(training=training, seed=seed, epochs=epochs),
                mode.name, calibration, digits, progress)
            for training, mode in pairs}


def measure_models(pairs=None, seed: int = 0, epochs: int = 10, calibration_size: int = 100,
                   runs: int = 200, progress: bool = True,
                   models_dir: Path | None = None) -> pd.DataFrame:
    """Convert (or load from the cache) and measure each (training, mode) of `pairs`.

    One row per model; with `models_dir`, each .tflite is also written there as measured.
    """
    tflites = convert_plan(pairs, seed, epochs, calibration_size, progress)
    digits = data.load()
    rows = []
    for i, ((training, mode), tflite) in enumerate(tflites.items(), 1):
        if models_dir is not None:
            cache.write_atomic(Path(models_dir) / f"{training}-{mode}.tflite", tflite)
        row = {"training": training, "mode": mode, "seed": seed, "epochs": epochs}
        row.update(measure.measure(tflite, digits.x_test, digits.y_test, runs=runs))
        rows.append(row)
        if progress:
            print(f"[{i:2d}/{len(tflites)}] {training}/{mode}: accuracy {100 * row['accuracy']:.2f} %, "
                  f"{row['latency_us']:.1f} µs, {row['size_bytes']:,} bytes", flush=True)
    return tables.results(rows)


def reproduce(out: str | Path = "results", seed: int = 0, epochs: int = 10,
              calibration_size: int = 100, runs: int = 200, use_cache: bool = True,
              progress: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Measure every model of `plan()` and write results.csv/.md, comparison.csv and models/.

    With `use_cache=False` everything is retrained and reconverted in a scratch cache.
    Returns (results, comparison with the article's published table).
    """
    out = Path(out)
    started = time.perf_counter()
    with contextlib.nullcontext() if use_cache else cache.scratch():
        results = measure_models(plan(), seed, epochs, calibration_size, runs, progress,
                                 models_dir=out / "models")
        written = inside(out, seed, epochs, calibration_size, progress)
    comparison = tables.comparison(results)
    results.to_csv(out / "results.csv", index=False)
    comparison.to_csv(out / "comparison.csv", index=False)
    elapsed = time.perf_counter() - started
    (out / "results.md").write_text(report(results, comparison, seed, epochs, elapsed))
    if progress:
        print(f"\nMeasured ({elapsed:.0f} s), LiteRT with XNNPACK, 1 thread:\n")
        print(tables.to_text(results.drop(columns=["seed", "epochs", "latency_runs"]), digits=4))
        print("\nBeside the article's table (accuracy %, loop ms over 450 images, size KB; "
              "_x: ratio to float32):\n")
        print(tables.to_text(comparison.drop(columns=["technique"])))
        print(f"\nWrote {out / 'results.csv'}, {out / 'results.md'}, {out / 'comparison.csv'}, "
              f"{len(results)} models under {out / 'models'}, {len(written)} layer-error tables "
              f"and figures under {out / 'figures'}")
    return results, comparison


def twin_of(training: str, seed: int = 0, epochs: int = 10, qat_model=None) -> bytes:
    """The float twin for models of `training`: float32 of the float model, or of the QAT
    model's float weights with fake-quant taken out."""
    config = train.TrainConfig(training=training, seed=seed, epochs=epochs)
    if training == "float":
        return quantize.quantized(config, "float32", progress=False)
    qat_model = qat_model or train.trained(config, progress=False)
    return quantize.quantize(train.float_copy(qat_model), "float32")


def inside(out: str | Path, seed: int = 0, epochs: int = 10, calibration_size: int = 100,
           progress: bool = True) -> list[Path]:
    """Per-layer error of every quantized model of the plan on the test images, one CSV each
    (OUT/layer_errors_<training>-<mode>.csv: local and accumulated views, plus QAT against
    deployed for QAT models), and the key figures under OUT/figures/."""
    from qlab import capture, layer_errors, plots_layers

    out = Path(out)
    digits = data.load()
    tflites = convert_plan(plan(), seed, epochs, calibration_size, progress=False)
    qat_model = train.trained(train.TrainConfig(training="qat", seed=seed, epochs=epochs), progress=False)
    twins = {"float": twin_of("float", seed, epochs), "qat": twin_of("qat", seed, epochs, qat_model)}
    written, tables = [], {}
    for (training, mode), tflite in tflites.items():
        if modes.get(mode).weights != "int8":
            continue  # float32 and float16 have nothing quantized to compare
        table = layer_errors.layer_errors(tflite, twins[training], digits.x_test)
        if training == "qat":
            table = pd.concat([table, layer_errors.qat_vs_deployed(qat_model, tflite, digits.x_test)],
                              ignore_index=True)
        tables[(training, mode)] = table
        path = out / f"layer_errors_{training}-{mode}.csv"
        cache.write_atomic(path, table.to_csv(index=False).encode())
        written.append(path)
    pair = capture.pair(tflites[("float", "full_integer")], twins["float"])
    figures = {
        "layer_errors_float-full_integer": plots_layers.layer_errors(
            tables[("float", "full_integer")], "float/full_integer: error per layer, in output levels"),
        "error_growth_float": plots_layers.error_growth(
            {m: t for (tr, m), t in tables.items() if tr == "float"}),
        "qat_vs_deployed": plots_layers.qat_vs_deployed(
            tables[("qat", "integer_only")].query("view == 'qat'")),
        **grid_figures(pair, digits.x_test),
    }
    (out / "figures").mkdir(parents=True, exist_ok=True)
    for name, fig in figures.items():
        fig.savefig(out / "figures" / f"{name}.png", dpi=110)
    if progress:
        print(f"per-layer error of {len(written)} models and {len(figures)} figures written")
    return written


def grid_figures(pair, x) -> dict:
    """Weight histograms over the int8 grid and rounding vs clipping per layer (notebook 04)."""
    from qlab import buckets, plots_grid

    return {"weight_histograms": plots_grid.weight_histograms(pair),
            "rounding_vs_clipping": plots_grid.rounding_vs_clipping(buckets.activation_table(pair, x))}


def report(results: pd.DataFrame, comparison: pd.DataFrame, seed: int, epochs: int,
           elapsed: float) -> str:
    """results.md: both tables and what they were measured on."""
    m = measure.machine()
    when = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return "\n".join([
        "# qlab reproduce",
        "",
        f"Measured {when} on {m['cpu']} ({m['cores']} cores), Python {m['python']}, "
        f"TensorFlow {m['tensorflow']}, tfmot {m['tensorflow_model_optimization']}, "
        f"LiteRT {m['ai_edge_litert']}. Seed {seed}, {epochs} float epochs; took {elapsed:.0f} s.",
        "",
        "Accuracy on the 450 test images; latency: median of single-image invokes after warm-up "
        "(LiteRT, default XNNPACK delegate, 1 thread), p10/p90 beside it; `loop_ms`: the article's "
        "loop over all 450 images (set_tensor, invoke, get_tensor).",
        "",
        "## Results",
        "",
        tables.to_markdown(results.drop(columns=["seed", "epochs"]), digits=4),
        "",
        "## Beside the published table",
        "",
        "The article's figures (`_pub`) come from `data/published/`. Its float size (440 KB) is a "
        "Keras .h5 file with optimizer state; ours is the float32 .tflite. Latencies are machine "
        "bound: compare the ratios (`_x`), not the milliseconds.",
        "",
        tables.to_markdown(comparison),
        "",
    ])
