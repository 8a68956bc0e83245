"""How long each section of an executed notebook ran: the measured half of a teacher's plan.

nbclient (which nbmake, nbconvert and JupyterLab's executors use) records, in each executed code
cell's metadata, when the kernel received the cell and when it replied; summing those per `##`
section gives the minutes a class waits on the machine. Reading and talking time is the teacher's
to add (docs/teaching.md).
"""

from __future__ import annotations

import datetime
import json
import re
from pathlib import Path

import pandas as pd

START, END = "iopub.execute_input", "shell.execute_reply"  # nbclient's keys (nbclient/client.py)


def _seconds(cell: dict) -> float | None:
    stamps = cell.get("metadata", {}).get("execution", {})
    if START not in stamps or END not in stamps:
        return None
    start, end = (
        datetime.datetime.fromisoformat(stamps[k].replace("Z", "+00:00")) for k in (START, END)
    )
    return (end - start).total_seconds()


def section_times(path) -> pd.DataFrame:
    """Run time of each section of one executed notebook.

    A section starts at a `## ` heading line in a markdown cell (a cell may close one section and
    open the next); cells before the first heading count as "(title)".

    Args:
        path: an executed `.ipynb` (e.g. build/book/notebooks/02_post_training_modes.ipynb, made
            by `make test`).
    Returns:
        DataFrame, one row per section in notebook order: notebook (file stem), section (heading
        text), code_cells (int), seconds (float, sum over its code cells of reply minus start).
    Raises:
        ValueError: the file is missing or not a notebook, it has no code cell, or a code cell has
            no timing metadata (it was never executed, or by a tool that does not record timing).
        OSError: the file cannot be read.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such notebook file")
    try:
        cells = json.loads(path.read_text())["cells"]
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as error:
        raise ValueError(f"{path} is not a Jupyter notebook ({error})") from None
    if not any(
        cell.get("cell_type") == "code" and "".join(cell.get("source", "")).strip()
        for cell in cells
    ):
        raise ValueError(f"{path.name} has no code cell to time")
    rows, section = [], "(title)"
    for index, cell in enumerate(cells):
        source = "".join(cell.get("source", ""))
        headings = (
            re.findall(r"^##\s+(.+)$", source, re.M) if cell.get("cell_type") == "markdown" else []
        )
        for heading in headings:
            section = heading.strip()
            rows.append(
                {"notebook": path.stem, "section": section, "code_cells": 0, "seconds": 0.0}
            )
        if cell.get("cell_type") != "code" or not source.strip():
            continue
        seconds = _seconds(cell)
        if seconds is None:
            raise ValueError(
                f"{path.name}: code cell {index} has no execution timing; execute the notebook "
                "first (`make test` leaves executed copies in build/book/notebooks/)"
            )
        if not rows or rows[-1]["section"] != section:
            rows.append(
                {"notebook": path.stem, "section": section, "code_cells": 0, "seconds": 0.0}
            )
        rows[-1]["code_cells"] += 1
        rows[-1]["seconds"] += seconds
    return pd.DataFrame(rows, columns=["notebook", "section", "code_cells", "seconds"])


def series_times(paths) -> pd.DataFrame:
    """`section_times` of several notebooks, one after another.

    Returns:
        the rows of every notebook, in the order given (same columns as `section_times`).
    Raises:
        ValueError, OSError: as `section_times`, for the first notebook that fails.
    """
    frames = [section_times(p) for p in paths]
    if not frames:
        return pd.DataFrame(columns=["notebook", "section", "code_cells", "seconds"])
    return pd.concat(frames, ignore_index=True)
