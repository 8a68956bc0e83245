"""`python -m qlab sections NOTEBOOK...`: how long each section of executed notebooks ran."""

from __future__ import annotations

import pandas as pd

from qlab.infra import tables
from qlab_workshop import teaching


def run(paths) -> pd.DataFrame:
    """Returns a DataFrame of notebook, section, code_cells, seconds.

    Raises ValueError naming a file that is not an executed notebook.
    """
    return teaching.series_times(paths)


def summary(times: pd.DataFrame) -> str:
    """Returns the section table, one line per notebook's total, then the total in minutes."""
    per_notebook = times.groupby("notebook", sort=False)["seconds"].sum()
    lines = [tables.to_text(times.assign(seconds=times.seconds.round(1)), digits=1), ""]
    lines += [f"{name}: {seconds:.1f} s" for name, seconds in per_notebook.items()]
    lines.append(
        f"all {len(per_notebook)} notebooks: {per_notebook.sum():.1f} s "
        f"({per_notebook.sum() / 60:.1f} min of cell execution; kernel start-up not included)"
    )
    return "\n".join(lines)
