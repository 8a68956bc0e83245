"""`python -m qlab seeds`: accuracy and size of every model over several seeds, medians, and the
promised bands checked (`qlab.studies.acceptance`)."""

from __future__ import annotations

from pathlib import Path

from qlab.infra import cache
from qlab.studies import acceptance


def seeds(seed_list, out: str | Path = "results", progress: bool = True) -> acceptance.SweepReport:
    """Writes the per-seed rows to OUT/seeds.csv. Returns the `SweepReport`.

    Raises ValueError for no seeds, OSError if `out` cannot be written.
    """
    report = acceptance.sweep(seed_list, progress)
    cache.write_atomic(Path(out) / "seeds.csv", report.per_seed.to_csv(index=False).encode())
    return report


def summary(report: acceptance.SweepReport) -> str:
    """Returns the terminal report: accuracy per seed of three key models, medians, checks."""
    per_seed = report.per_seed.pivot(index="seed", columns=["training", "mode"], values="accuracy")
    key = [("float", "float32"), ("float", "integer_only"), ("qat", "integer_only")]
    return "\n".join(
        [
            "Accuracy % per seed:\n",
            (100 * per_seed[key]).to_string(float_format=lambda v: f"{v:.2f}"),
            f"\nMedians over seeds {sorted(report.per_seed.seed.unique().tolist())}:\n",
            report.medians.to_string(index=False, float_format=lambda v: f"{v:.4f}"),
            "\nChecks:\n",
            report.checks.to_string(index=False),
            f"\n{'All checks pass.' if report.passed else 'Some checks FAIL.'}",
        ]
    )
