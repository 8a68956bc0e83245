"""`python -m qlab conversions`: seconds to convert each zoo model to every mode by TensorFlow's
Keras route and by qlab's (which saves a model once), files compared byte for byte."""

from __future__ import annotations

from pathlib import Path

from qlab.commands.views import Timed, timed
from qlab.infra import tables
from qlab.perf import conversions
from qlab.tflite import measure


def run(out: str | Path = "results", names=None, rounds: int = 3, progress: bool = True) -> Timed:
    """Writes OUT/conversions.csv. Returns the `Timed` table.

    Raises ValueError for an unknown model or rounds < 1, OSError if `out` cannot be written.
    """
    return timed(
        out,
        "conversions.csv",
        lambda: conversions.time_conversions(names, rounds=rounds, progress_bar=progress),
    )


def summary(result: Timed) -> str:
    """Returns text: the table, the speedup's spread, and whether the files were the same."""
    t, m = result.table, measure.machine()
    lines = [
        "Converting each model to every mode it takes "
        "(seconds for all of them; median of the rounds), "
        f"TensorFlow's Keras route against qlab's, interleaved, "
        f"on {m['cpu']} ({m['cores']} cores):\n",
        tables.to_text(t.drop(columns=["note"])),
        *(f"  {r.model}: {r.note}" for r in t.itertuples() if r.note),
        f"\nSpeedup per model from {t.speedup.min():.1f}x to {t.speedup.max():.1f}x (medians); "
        f"single rounds ranged {t.speedup_min.min():.1f}x to {t.speedup_max.max():.1f}x.",
        "Same bytes by both routes: "
        + (
            "every file."
            if t.same_bytes.all()
            else "NO, for " + ", ".join(t.model[~t.same_bytes]) + "."
        ),
        f"Took {result.elapsed:.0f} s; wrote {result.out / 'conversions.csv'}",
    ]
    return "\n".join(lines)
