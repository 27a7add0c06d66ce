"""Shared helpers; the OpInfo summary printed at the end of the run."""

import numpy as np
import pytest

#: Filled by test_opinfo.py: op name -> outcome -> count.
OPINFO_SUMMARY = {}


def rel_err(ours, ref):
    """The project's conformance measure: max|ours - ref| / max(1, max|ref|)."""
    ours = np.asarray(ours, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    assert ours.shape == ref.shape, f"shape {ours.shape} != {ref.shape}"
    if ref.size == 0:
        return 0.0
    return float(np.max(np.abs(ours - ref)) / max(1.0, float(np.max(np.abs(ref)))))


def assert_close(ours, ref, tol=1e-4):
    err = rel_err(ours, ref)
    assert err <= tol, f"relative error {err:.3g} > {tol}"


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def pytest_terminal_summary(terminalreporter):
    if not OPINFO_SUMMARY:
        return
    tr = terminalreporter
    tr.section("OpInfo samples through convlab.torch.patch()")
    cols = ("routed", "refused", "fell_back", "errors_refused", "errors_fell_back")
    tr.write_line(f"{'op':<42}" + "".join(f"{c:>18}" for c in cols))
    totals = dict.fromkeys(cols, 0)
    for op, counts in sorted(OPINFO_SUMMARY.items()):
        tr.write_line(f"{op:<42}" + "".join(f"{counts.get(c, 0):>18}" for c in cols))
        for c in cols:
            totals[c] += counts.get(c, 0)
    tr.write_line(f"{'total':<42}" + "".join(f"{totals[c]:>18}" for c in cols))
