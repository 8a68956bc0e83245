"""Which notebooks `make site` must execute: prints, one per line, the path in EXECUTED (argument 1,
e.g. build/book/notebooks) of every notebook in notebooks/ whose executed copy there is missing,
older than the notebook, or not executed through (a code cell without an execution count: a run
that was interrupted or failed)."""

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def executed_through(copy: Path) -> bool:
    """True if every non-empty code cell of `copy` ran."""
    try:
        cells = json.loads(copy.read_text())["cells"]
    except (OSError, ValueError, KeyError):
        return False
    return all(
        c.get("execution_count")
        for c in cells
        if c["cell_type"] == "code" and "".join(c["source"]).strip()
    )


def main(executed: str) -> None:
    for source in sorted((ROOT / "notebooks").glob("*.ipynb")):
        copy = Path(executed) / source.name
        if (
            not copy.exists()
            or copy.stat().st_mtime <= source.stat().st_mtime
            or not executed_through(copy)
        ):
            print(copy)


if __name__ == "__main__":
    main(sys.argv[1])
