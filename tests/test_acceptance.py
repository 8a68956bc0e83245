"""The promised figures, median over seeds 0-4: every model is trained, converted and run."""

import pytest

from qlab.studies import acceptance


@pytest.mark.slow
def test_median_over_five_seeds_is_in_the_bands():
    report = acceptance.sweep(range(5), progress=False)
    failed = report.checks[~report.checks.passed]
    assert failed.empty, f"\n{failed.to_string()}\n\nmedians:\n{report.medians.to_string()}"
