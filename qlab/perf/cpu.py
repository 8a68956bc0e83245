"""The CPU a latency was measured on, and what its instruction set means for int8 speed.

Whether an int8 model runs faster than float32 is mostly decided by one question: can the CPU
multiply int8 values *and sum several products into an int32* in one instruction?

- x86 with VNNI (VPDPBUSD, AVX-512 VNNI or AVX-VNNI) and ARM with the dot product (SDOT/UDOT) do:
  each 32-bit lane takes four int8 products per instruction where a float32 FMA lane takes one,
  so int8 kernels can reach several times float32's MAC rate. ARM's i8mm (SMMLA) doubles that.
- x86 with AVX2 (or AVX-512F) but no VNNI does not: XNNPACK widens int8 to int16 and multiplies
  with VPMADDWD (two products per int32 lane, then an add), about as many multiply-adds per
  instruction as a float32 FMA, plus the requantization work; int8 is then no faster than
  float32, often slower.

`int8_path` reads a CPU's flags (`qlab.tflite.measure.machine`, via archspec) against `FEATURES`;
`columns` and `line` put the CPU, these features, the path and the LiteRT kernels beside every
latency qlab writes."""

from __future__ import annotations

import pandas as pd

from qlab.tflite import measure

FEATURES = {
    "amx_int8": {
        "isa": "x86",
        "name": "AMX-INT8",
        "path": "AMX",
        "int8": "tile instructions (TDPBSSD) multiply whole int8 matrices into int32 tiles, "
        "1,024 multiply-adds each; only kernels written for AMX use them",
        "meaning": "int8 matrix tiles: int8 can be many times float32's speed where the kernels "
        "use AMX; elsewhere the CPU's AVX-512 VNNI applies",
    },
    "avx512_vnni": {
        "isa": "x86",
        "name": "AVX-512 VNNI",
        "path": "AVX-512 VNNI",
        "int8": "VPDPBUSD: 4 int8 products summed into each of 16 int32 lanes in one instruction "
        "(64 multiply-adds, against 16 for a float32 FMA)",
        "meaning": "int8 does 4 products per lane where float32 does 1: int8 can be 2–4× faster",
    },
    "avx_vnni": {
        "isa": "x86",
        "name": "AVX-VNNI",
        "path": "AVX-VNNI",
        "int8": "VPDPBUSD on 256-bit registers: 4 int8 products into each of 8 int32 lanes "
        "(32 multiply-adds, against 8 for a float32 FMA)",
        "meaning": "int8 does 4 products per lane where float32 does 1 (256-bit): int8 can be 2–4× "
        "faster",
    },
    "avx512f": {
        "isa": "x86",
        "name": "AVX-512F",
        "path": "AVX-512 (no VNNI)",
        "int8": "512-bit registers: twice AVX2's lanes, for float32 and int8 alike",
        "meaning": "no int8 dot product: int8 is widened to int16 (VPMADDWD), about float32 FMA's "
        "multiply-adds per instruction plus requantization: int8 about as fast as float32 "
        "or slower",
    },
    "avx2": {
        "isa": "x86",
        "name": "AVX2",
        "path": "AVX2 (no VNNI)",
        "int8": "256-bit integer SIMD: int8 widened to int16 (VPMOVSXBW), multiplied with VPMADDWD "
        "(16 products summed in pairs into 8 int32s) and added to the accumulators with another "
        "instruction: about the multiply-adds per cycle of float32's 8-lane FMAs",
        "meaning": "no int8 dot product: int8 widened to int16 (VPMADDWD) does about float32 FMA's "
        "multiply-adds per instruction plus requantization: int8 no faster, often slower",
    },
    "fma": {
        "isa": "x86",
        "name": "FMA",
        "path": None,
        "int8": "float32 fused multiply-add (VFMADD231PS): float32's fast path; nothing for int8",
        "meaning": "",
    },
    "i8mm": {
        "isa": "arm",
        "name": "i8mm",
        "path": "ARM i8mm",
        "int8": "SMMLA: a 2x8 by 8x2 int8 block product into 4 int32s, 32 multiply-adds per "
        "128-bit instruction (SDOT: 16; float32 FMLA: 4)",
        "meaning": "int8 matrix-multiply instructions, twice the dot product's products: int8 well "
        "ahead of float32",
    },
    "asimddp": {
        "isa": "arm",
        "name": "dot product (SDOT/UDOT)",
        "path": "ARM dot product",
        "int8": "SDOT/UDOT: 4 int8 products summed into each of 4 int32 lanes, 16 multiply-adds "
        "per 128-bit instruction (float32 FMLA: 4)",
        "meaning": "int8 does 4 products per lane where float32 does 1: int8 can be 2–4× faster "
        "(the phones behind the articles' figures)",
    },
    "asimd": {
        "isa": "arm",
        "name": "NEON (ASIMD)",
        "path": "ARM NEON only",
        "int8": "128-bit SIMD: int8 multiplied by widening to int16 (SMLAL, 8 products per "
        "instruction) and added into int32 (float32 FMLA: 4)",
        "meaning": "no int8 dot product: widening multiplies give int8 a modest edge over float32 "
        "at best",
    },
}
"""The instruction-set features that decide int8 speed, by the flag name Linux gives them, best
int8 path first: isa ("x86" or "arm"), name, int8 (what the feature does for int8 arithmetic),
path (the `int8_path` a CPU gets when this is the best feature it has; None: no path of its own)
and meaning (that path in one line)."""

UNKNOWN = "unknown"
UNKNOWN_MEANING = (
    "no feature qlab knows: whether int8 beats float32 cannot be said in advance; measure it"
)
MACHINE_COLUMNS = ("cpu", "cpu_features", "int8_path")
"""The columns every latency table carries, beside its `kernels` and `threads`."""


def features(flags) -> list[str]:
    """The flags of `FEATURES` among `flags` (an iterable of strings, or one space-separated string
    as the `cpu_features` column stores them; either case).

    Returns their names in the table's order, e.g. ["avx512_vnni", "avx512f", "avx2", "fma"]."""
    have = {flag.lower() for flag in (flags.split() if isinstance(flags, str) else flags)}
    return [flag for flag in FEATURES if flag in have]


def int8_path(flags) -> str:
    """The int8 path of a CPU with `flags`: the path of the first feature of `FEATURES` it has.

    Returns "AMX", "AVX-512 VNNI", "AVX-VNNI", "AVX-512 (no VNNI)", "AVX2 (no VNNI)", "ARM i8mm",
    "ARM dot product", "ARM NEON only", or `UNKNOWN`."""
    return next((FEATURES[f]["path"] for f in features(flags) if FEATURES[f]["path"]), UNKNOWN)


def meaning(path: str) -> str:
    """Returns what an int8 path means for int8 against float32, in one line.

    Raises:
        ValueError: a path that is not one of `int8_path`'s answers."""
    if path == UNKNOWN:
        return UNKNOWN_MEANING
    found = next((row["meaning"] for row in FEATURES.values() if row["path"] == path), None)
    if found is None:
        known = [row["path"] for row in FEATURES.values() if row["path"]] + [UNKNOWN]
        raise ValueError(f"unknown int8 path {path!r}; known: {', '.join(known)}")
    return found


def describe(machine: dict | None = None) -> dict:
    """This machine's CPU (or `machine`, a `qlab.tflite.measure.machine()` dict) as tables say it.

    Returns {"cpu": model name, with archspec's microarchitecture after it when known,
    "cpu_features": the `FEATURES` flags it has, space-separated ("none" if none), "int8_path",
    "meaning": the path in one line}."""
    m = measure.machine() if machine is None else machine
    found = features(m.get("cpu_flags", ()))
    path = int8_path(found)
    cpu = f"{m['cpu']} (archspec's nearest: {m['cpu_uarch']})" if m.get("cpu_uarch") else m["cpu"]
    return {
        "cpu": cpu,
        "cpu_features": " ".join(found) or "none",
        "int8_path": path,
        "meaning": meaning(path),
    }


def columns(
    kernels: str | None = "xnnpack", threads: int | None = 1, machine: dict | None = None
) -> dict:
    """The columns a latency row carries: the CPU, its int8 features and path, the LiteRT setting.

    Returns {"cpu", "cpu_features", "int8_path"} plus "kernels" and "threads" unless None (None
    leaves the column out, for a table that has its own)."""
    d = describe(machine)
    row = {c: d[c] for c in MACHINE_COLUMNS}
    row.update({k: v for k, v in (("kernels", kernels), ("threads", threads)) if v is not None})
    return row


def with_columns(
    frame: pd.DataFrame,
    kernels: str | None = "xnnpack",
    threads: int | None = 1,
    machine: dict | None = None,
) -> pd.DataFrame:
    """Returns a copy of `frame` with `columns` appended to every row (existing ones are kept)."""
    out = frame.copy()
    for name, value in columns(kernels, threads, machine).items():
        if name not in out.columns:
            out[name] = value
    return out


def without_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """Returns `frame` without the columns `columns` adds, for under a `line` that states them."""
    return frame.drop(
        columns=[c for c in (*MACHINE_COLUMNS, "kernels", "threads") if c in frame.columns]
    )


def carried(part: pd.DataFrame) -> dict:
    """The machine columns of a group of rows, for a summary row.

    Returns {column: value} for the columns of `MACHINE_COLUMNS`, "kernels" and "threads" that
    `part` has: each column's one value, or its distinct values joined by " | "."""
    found = {}
    for c in (c for c in (*MACHINE_COLUMNS, "kernels", "threads") if c in part.columns):
        values = list(dict.fromkeys(part[c].dropna()))
        found[c] = values[0] if len(values) == 1 else " | ".join(str(v) for v in values)
    return found


def line(frame: pd.DataFrame | None = None, machine: dict | None = None) -> str:
    """One line, for above a table, that says what the latencies of `frame` (every distinct value)
    were measured on; None: this machine.

    Returns e.g. "CPU: Intel(R) Xeon(R) Processor (archspec's nearest: icelake); int8 features:
    AVX-512 VNNI, AVX-VNNI, AVX-512F, AVX2, FMA; int8 path: AVX-512 VNNI (int8 does 4 products
    per lane ...); LiteRT kernels: xnnpack, 1 thread."
    """
    if frame is None or not set(MACHINE_COLUMNS) <= set(frame.columns):
        d = describe(machine)
        values = {
            "cpu": [d["cpu"]],
            "cpu_features": [d["cpu_features"]],
            "int8_path": [d["int8_path"]],
        }
        setting = []
    else:
        values = {c: list(dict.fromkeys(frame[c].dropna().astype(str))) for c in MACHINE_COLUMNS}
        setting = (
            [
                f"{k}, {t} thread{'s' if int(t) > 1 else ''}"
                for k, t in dict.fromkeys(zip(frame.kernels, frame.threads))
            ]
            if {"kernels", "threads"} <= set(frame.columns)
            else []
        )
    names = [
        ", ".join(FEATURES[f]["name"] for f in flags.split() if f in FEATURES)
        or "none that qlab knows"
        for flags in values["cpu_features"]
    ]
    paths = [f"{p} ({meaning(p)})" if _known(p) else p for p in values["int8_path"]]
    text = (
        f"CPU: {' | '.join(values['cpu'])}; int8 features: {' | '.join(names)}; "
        f"int8 path: {' | '.join(paths)}"
    )
    return text + (f"; LiteRT kernels: {' | '.join(setting)}." if setting else ".")


def _known(path: str) -> bool:
    return path == UNKNOWN or any(row["path"] == path for row in FEATURES.values())
