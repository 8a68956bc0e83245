"""`python -m qlab zoo`: every zoo model in every mode over seeds, beside the articles' ImageNet
table."""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from qlab.infra import cache, tables
from qlab.perf import cpu
from qlab.studies import zoo
from qlab.tflite import measure


@dataclass
class Zooed:
    """What `run` measured and wrote."""

    per_seed: pd.DataFrame  # qlab.studies.zoo.sweep
    summary: pd.DataFrame  # qlab.studies.zoo.table
    published: pd.DataFrame  # qlab.studies.zoo.beside_published
    per_tensor: pd.DataFrame  # qlab.studies.zoo.per_tensor_effect
    out: Path
    elapsed: float  # seconds


def run(
    out: str | Path = "results", names=None, seeds=(0, 1, 2, 3, 4), progress: bool = True
) -> Zooed:
    """Writes zoo.csv (one row per model and mode), zoo_seeds.csv (per seed) and zoo.md.

    Returns the `Zooed` tables. Raises ValueError for an unknown model or no seeds, OSError if
    `out` cannot be written.
    """
    out = Path(out)
    started = time.perf_counter()
    per_seed = zoo.sweep(names, seeds, progress=progress)
    summary = zoo.table(per_seed)
    result = Zooed(
        per_seed,
        summary,
        zoo.beside_published(summary),
        zoo.per_tensor_effect(per_seed),
        out,
        time.perf_counter() - started,
    )
    cache.write_atomic(out / "zoo.csv", summary.to_csv(index=False).encode())
    cache.write_atomic(out / "zoo_seeds.csv", per_seed.to_csv(index=False).encode())
    cache.write_atomic(out / "zoo.md", report(result).encode())
    return result


def report(result: Zooed) -> str:
    """Returns zoo.md's Markdown: the table, the published one, the per-tensor finding."""
    m = measure.machine()
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    seeds = sorted(result.per_seed.seed.unique().tolist())
    return "\n".join(
        [
            "# qlab zoo",
            "",
            f"Measured {when} on {m['cpu']} ({m['cores']} cores), "
            f"TensorFlow {m['tensorflow']}, tfmot "
            f"{m['tensorflow_model_optimization']}, LiteRT {m['ai_edge_litert']}; "
            f"seeds {seeds}; took {result.elapsed:.0f} s.",
            "",
            "Accuracy on each model's test split: median over seeds [min, max]; "
            "`delta_pp` against the same model's float32; size and latency "
            "(median single-image invoke, XNNPACK, 1 thread) as ratios to float32 "
            "(median of per-seed ratios); `per_tensor_pct`: integer_only after training "
            "with one weight scale per tensor.",
            "",
            cpu.line(result.per_seed),
            "",
            tables.to_markdown(cpu.without_columns(result.summary)),
            "",
            "## Beside the published ImageNet table",
            "",
            "The published figures (`_pub`, ImageNet top-1, from "
            "`qlab/published/tfmot-post-training-integer-quantization.csv`) "
            "come from full-size networks; ours from miniatures on 8x8 digits. "
            "Compare the deltas, not the accuracies.",
            "",
            tables.to_markdown(result.published)
            if len(result.published)
            else "(no model of a published family)",
            "",
            "## One weight scale per tensor",
            "",
            tables.to_markdown(result.per_tensor),
            "",
            zoo.per_tensor_finding(result.per_tensor),
            "",
        ]
    )


def summary(result: Zooed) -> str:
    """Returns the terminal report: the zoo table, the published one, the per-tensor finding."""
    return "\n".join(
        [
            f"Zoo over seeds {sorted(result.per_seed.seed.unique().tolist())} "
            f"({result.elapsed:.0f} s):\n",
            cpu.line(result.per_seed) + "\n",
            tables.to_text(cpu.without_columns(result.summary.drop(columns=["note"]))),
            *(
                f"  {r.model} {r.training}/{r.mode}: {r.note}"
                for r in result.summary.itertuples()
                if r.note
            ),
            "\nBeside the published ImageNet table (compare the deltas):\n",
            tables.to_text(result.published) if len(result.published) else "(none)",
            "\nOne weight scale per tensor (integer_only after training, paired seed by seed):\n",
            tables.to_text(result.per_tensor),
            "\n" + zoo.per_tensor_finding(result.per_tensor),
            f"\nWrote {result.out / 'zoo.csv'}, {result.out / 'zoo_seeds.csv'} "
            f"and {result.out / 'zoo.md'}",
        ]
    )
