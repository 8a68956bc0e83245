"""`python -m qlab sections NOTEBOOK...`: how long each section of executed notebooks ran."""

from __future__ import annotations

import pandas as pd

from qlab.infra import tables
from qlab_workshop import teaching


def run(paths) -> pd.DataFrame:
    """Section times of the executed notebooks `paths` (`qlab_workshop.teaching.series_times`).

    Returns:
        DataFrame: notebook, section, code_cells, seconds.
    Raises:
        ValueError: a file is not an executed notebook (the message names it).
    """
    return teaching.series_times(paths)


def summary(times: pd.DataFrame) -> str:
    """The table, each notebook's total and the series' total, as text.

    Returns:
        str: the section table, then one line per notebook and a last line with the total in minutes.
    """
    per_notebook = times.groupby("notebook", sort=False)["seconds"].sum()
    lines = [tables.to_text(times.assign(seconds=times.seconds.round(1)), digits=1), ""]
    lines += [f"{name}: {seconds:.1f} s" for name, seconds in per_notebook.items()]
    lines.append(
        f"all {len(per_notebook)} notebooks: {per_notebook.sum():.1f} s "
        f"({per_notebook.sum() / 60:.1f} min of cell execution; kernel start-up not included)"
    )
    return "\n".join(lines)
