"""`python -m qlab reproduce`: train, convert every mode, measure, write the tables."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import pandas as pd

from qlab import cache, data, measure, modes, quantize, tables, train


def plan() -> list[tuple[str, modes.Mode]]:
    """Every (training, mode) pair the table has: float in every mode, QAT in the integer ones."""
    return [(t, m) for t in modes.TRAININGS for m in modes.for_training(t)]


def reproduce(out: str | Path = "results", seed: int = 0, epochs: int = 10,
              calibration_size: int = 100, runs: int = 200, use_cache: bool = True,
              progress: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Measure every model of `plan()` and write results.csv/.md and models/ under `out`.

    Returns (results, comparison with the article's published table).
    """
    out = Path(out)
    (out / "models").mkdir(parents=True, exist_ok=True)
    digits = data.load()
    calibration = data.calibration(digits.x_train, n=calibration_size, seed=seed)
    started = time.perf_counter()
    rows, pairs = [], plan()
    for i, (training, mode) in enumerate(pairs, 1):
        config = train.TrainConfig(training=training, seed=seed, epochs=epochs)
        tflite = quantize.quantized(config, mode.name, calibration, digits, progress, use_cache)
        cache.write_atomic(out / "models" / f"{training}-{mode.name}.tflite", tflite)
        row = {"training": training, "mode": mode.name, "seed": seed, "epochs": epochs}
        row.update(measure.measure(tflite, digits.x_test, digits.y_test, runs=runs))
        rows.append(row)
        if progress:
            print(f"[{i:2d}/{len(pairs)}] {training}/{mode.name}: accuracy {100 * row['accuracy']:.2f} %, "
                  f"{row['latency_us']:.1f} µs, "
                  f"{row['size_bytes']:,} bytes", flush=True)
    results = tables.results(rows)
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
        print(f"\nWrote {out / 'results.csv'}, {out / 'results.md'}, {out / 'comparison.csv'} "
              f"and {len(pairs)} models under {out / 'models'}")
    return results, comparison


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
