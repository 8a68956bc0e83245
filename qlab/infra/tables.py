"""Result tables as pandas DataFrames, the published tables (`qlab/published/*.csv`, package data)
beside them, CSV/Markdown out."""

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
    """Returns the rows (accuracy in [0, 1], latency µs, loop ms, size bytes) as a DataFrame,
    `RESULT_COLUMNS` first, plus size_vs_float32 and latency_vs_float32 given a float/float32 row.

    Raises ValueError for rows that lack some of `RESULT_COLUMNS`.
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
    """Returns the names of the published tables that ship with qlab, sorted."""
    return sorted(
        p.name.removesuffix(".csv")
        for p in resources.files(PUBLISHED).iterdir()
        if p.name.endswith(".csv")
    )


def published(name: str = ARTICLE) -> pd.DataFrame:
    """Returns a published table as its CSV holds it, `source` column included.

    Raises FileNotFoundError, listing the known names, for an unknown one.
    """
    path = resources.files(PUBLISHED) / f"{name}.csv"
    if not path.is_file():
        raise FileNotFoundError(
            f"no published table {name!r} in qlab/published/; known: {published_names()}"
        )
    with path.open("r", encoding="utf-8") as f:
        return pd.read_csv(f)


def comparison(measured: pd.DataFrame, pub: pd.DataFrame | None = None) -> pd.DataFrame:
    """Returns the article's table beside ours: one row per mode it reports (float32 first);
    accuracy %, loop_ms (whole test set) and size_kb as `_pub`, measured and `_delta`; latency_x
    and size_x (ratios to float32) as `_pub` and measured.

    Raises ValueError if `measured` has no float/float32 row.
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
    """Returns a GitHub Markdown table: floats with `digits` decimals, ints with commas."""

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
    """Returns a plain-text table, no index: floats with `digits` decimals, or scientific where
    that would show a non-zero value as zero."""

    def number(v: float) -> str:
        return f"{v:.{digits}e}" if v and abs(v) < 0.5 * 10.0**-digits else f"{v:,.{digits}f}"

    return df.to_string(index=False, float_format=number)
