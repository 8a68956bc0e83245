"""Accuracy and size of every (training, mode) over several seeds, checked against the bands
the project promises (float >= 97 %, quantized modes close to float, int8 small)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from qlab import data, measure, reproduce

INT8_MODES = ("dynamic_range", "full_integer", "integer_only", "integer_only_uint8")


@dataclass
class SweepReport:
    per_seed: pd.DataFrame  # training, mode, seed, accuracy, size_bytes
    medians: pd.DataFrame  # training, mode, accuracy (median), size_bytes
    checks: pd.DataFrame  # check, value, bound, passed

    @property
    def passed(self) -> bool:
        return bool(self.checks.passed.all())


def sweep(seeds=(0, 1, 2, 3, 4), out: str | Path | None = None, progress: bool = True) -> SweepReport:
    """Train, convert and measure accuracy for every seed; return medians and band checks."""
    digits = data.load()
    rows = []
    for seed in seeds:
        for (training, mode), tflite in reproduce.convert_plan(seed=seed, progress=False).items():
            rows.append({"training": training, "mode": mode, "seed": seed,
                         "accuracy": measure.accuracy(tflite, digits.x_test, digits.y_test),
                         "size_bytes": len(tflite)})
        if progress:
            got = {(r["training"], r["mode"]): r["accuracy"] for r in rows if r["seed"] == seed}
            print(f"seed {seed}: float {100 * got['float', 'float32']:.2f} %, "
                  f"integer_only {100 * got['float', 'integer_only']:.2f} %, "
                  f"qat integer_only {100 * got['qat', 'integer_only']:.2f} %", flush=True)
    per_seed = pd.DataFrame(rows)
    medians = (per_seed.groupby(["training", "mode"], sort=False)
               .agg(accuracy=("accuracy", "median"), accuracy_min=("accuracy", "min"),
                    accuracy_max=("accuracy", "max"), size_bytes=("size_bytes", "median"))
               .reset_index())
    report = SweepReport(per_seed, medians, checks(medians))
    if out is not None:
        Path(out).mkdir(parents=True, exist_ok=True)
        per_seed.to_csv(Path(out) / "seeds.csv", index=False)
    if progress:
        print(f"\nMedians over seeds {list(seeds)}:\n")
        print(medians.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
        print("\nChecks:\n")
        print(report.checks.to_string(index=False))
    return report


def checks(medians: pd.DataFrame) -> pd.DataFrame:
    """The promised bands, each as (check, value, bound, passed)."""
    acc = {(r.training, r.mode): 100 * r.accuracy for r in medians.itertuples()}
    size = {(r.training, r.mode): r.size_bytes for r in medians.itertuples()}
    base = acc["float", "float32"]
    rows = [("float/float32 accuracy %", base, ">= 97.0", base >= 97.0)]
    for (training, mode), a in acc.items():
        if training == "float" and mode != "float32":
            rows.append((f"float/{mode} - float32 (pp)", a - base, "|x| <= 0.5", abs(a - base) <= 0.5))
        if training == "qat":
            rows.append((f"qat/{mode} - float32 (pp)", a - base, ">= -0.3", a - base >= -0.3))
    rows.append(("float/integer_only accuracy %", acc["float", "integer_only"], ">= 97.0",
                 acc["float", "integer_only"] >= 97.0))
    for (training, mode), s in size.items():
        ratio = s / size["float", "float32"]
        if mode in INT8_MODES:
            rows.append((f"{training}/{mode} size / float32", ratio, "<= 0.32", ratio <= 0.32))
        elif mode == "int16x8":  # int8 weights, but int64 biases and int16 activations
            rows.append((f"{training}/{mode} size / float32", ratio, "<= 0.35", ratio <= 0.35))
        elif mode == "float16":
            rows.append((f"{training}/{mode} size / float32", ratio, "<= 0.55", ratio <= 0.55))
    return pd.DataFrame(rows, columns=["check", "value", "bound", "passed"]).round({"value": 4})


