"""Result tables as pandas DataFrames, the published tables beside them, CSV/Markdown out.

The published tables ship inside the package (`qlab/published/*.csv`, package data) and are
read with `importlib.resources`, so they are there in any install, editable or not.
"""

from __future__ import annotations

from importlib import resources

import numpy as np
import pandas as pd

PUBLISHED = "qlab.published"  # the package that holds the published tables
ARTICLE = "optimizing-tf-models-with-quantization"
KB = 1024  # the article does not say; 1 KB = 1024 bytes here

RESULT_COLUMNS = [
    "training",
    "mode",
    "accuracy",
    "latency_us",
    "latency_p10_us",
    "latency_p90_us",
    "latency_runs",
    "loop_ms",
    "size_bytes",
]


def results(rows: list[dict]) -> pd.DataFrame:
    """One row per measured model, with size and latency relative to float/float32.

    Args:
        rows: dicts with at least `RESULT_COLUMNS` (accuracy in [0, 1], latency in µs, loop in
            ms, size in bytes).

    Returns:
        the rows as a DataFrame, `RESULT_COLUMNS` first, plus size_vs_float32 and
        latency_vs_float32 when a float/float32 row is present.

    Raises:
        ValueError: rows that lack some of `RESULT_COLUMNS`.
    """
    df = pd.DataFrame(rows)
    missing = [c for c in RESULT_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"result rows lack columns {missing}")
    df = df[RESULT_COLUMNS + [c for c in df.columns if c not in RESULT_COLUMNS]]
    base = df[(df.training == "float") & (df["mode"] == "float32")]
    if len(base):
        df["size_vs_float32"] = df.size_bytes / base.size_bytes.iloc[0]
        df["latency_vs_float32"] = df.latency_us / base.latency_us.iloc[0]
    return df.reset_index(drop=True)


def published_names() -> list[str]:
    """The published tables that ship with qlab.

    Returns:
        their names (the CSV file names without .csv), sorted.
    """
    return sorted(
        p.name.removesuffix(".csv")
        for p in resources.files(PUBLISHED).iterdir()
        if p.name.endswith(".csv")
    )


def published(name: str = ARTICLE) -> pd.DataFrame:
    """A published table, with its `source` column (which article, which table).

    Returns:
        the table as the CSV in `qlab/published/` holds it.

    Raises:
        FileNotFoundError: no table of that name (the message lists the known ones).
    """
    path = resources.files(PUBLISHED) / f"{name}.csv"
    if not path.is_file():
        raise FileNotFoundError(
            f"no published table {name!r} in qlab/published/; known: {published_names()}"
        )
    with path.open("r", encoding="utf-8") as f:
        return pd.read_csv(f)


def comparison(measured: pd.DataFrame, pub: pd.DataFrame | None = None) -> pd.DataFrame:
    """The article's table with our measurements beside it: published, measured, delta.

    Latency is the article's whole-test-set loop (ms); the `_x` columns are ratios to the
    float baseline, the fair way to compare across machines. Sizes in KB (1024 bytes).

    Returns:
        one row per mode the article reports (float32 first): accuracy in %, loop_ms, size_kb,
        each as `_pub`, measured and `_delta`, and latency_x and size_x as `_pub` and measured.

    Raises:
        ValueError: `measured` has no float/float32 row to take ratios to.
    """
    pub = published() if pub is None else pub
    float_rows = measured[measured.training == "float"].set_index("mode")
    if "float32" not in float_rows.index:
        raise ValueError("the comparison needs the float/float32 row as its baseline")
    base = float_rows.loc["float32"]
    first = pub.iloc[0]
    rows = [
        {
            "mode": "float32",
            "technique": "float baseline (Keras .h5 in the article)",
            "accuracy_pub": first.accuracy_from_pct,
            "accuracy": 100 * base.accuracy,
            "loop_ms_pub": first.latency_from_ms,
            "loop_ms": base.loop_ms,
            "latency_x_pub": 1.0,
            "latency_x": 1.0,
            "size_kb_pub": first.size_from_kb,
            "size_kb": base.size_bytes / KB,
            "size_x_pub": 1.0,
            "size_x": 1.0,
        }
    ]
    for p in pub.itertuples():
        if p.mode not in float_rows.index:
            continue
        m = float_rows.loc[p.mode]
        rows.append(
            {
                "mode": p.mode,
                "technique": p.technique,
                "accuracy_pub": p.accuracy_to_pct,
                "accuracy": 100 * m.accuracy,
                "loop_ms_pub": p.latency_to_ms,
                "loop_ms": m.loop_ms,
                "latency_x_pub": p.latency_to_ms / p.latency_from_ms,
                "latency_x": m.loop_ms / base.loop_ms,
                "size_kb_pub": p.size_to_kb,
                "size_kb": m.size_bytes / KB,
                "size_x_pub": p.size_to_kb / p.size_from_kb,
                "size_x": m.size_bytes / base.size_bytes,
            }
        )
    df = pd.DataFrame(rows)
    df.insert(df.columns.get_loc("accuracy") + 1, "accuracy_delta", df.accuracy - df.accuracy_pub)
    df.insert(df.columns.get_loc("loop_ms") + 1, "loop_ms_delta", df.loop_ms - df.loop_ms_pub)
    df.insert(df.columns.get_loc("size_kb") + 1, "size_kb_delta", df.size_kb - df.size_kb_pub)
    return df


def to_markdown(df: pd.DataFrame, digits: int = 2) -> str:
    """A GitHub-flavoured Markdown table (no extra dependency).

    Returns:
        the table's lines joined by newlines: floats with `digits` decimals, ints with commas.
    """

    def cell(v):
        if isinstance(v, (float, np.floating)):
            return f"{v:,.{digits}f}"
        if isinstance(v, (int, np.integer)):
            return f"{v:,}"
        return str(v)

    lines = ["| " + " | ".join(df.columns) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)


def to_text(df: pd.DataFrame, digits: int = 2) -> str:
    """A plain-text table for the terminal: floats with `digits` decimals (in scientific notation if
    that would show a non-zero value as zero, e.g. 3.54e-05), no index.

    Returns:
        the table as one string.
    """

    def number(v: float) -> str:
        return f"{v:.{digits}e}" if v and abs(v) < 0.5 * 10.0**-digits else f"{v:,.{digits}f}"

    return df.to_string(index=False, float_format=number)
