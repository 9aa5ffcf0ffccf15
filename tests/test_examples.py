"""Examples and benchmark scripts run in the test suite in their quick modes (as NumPyro's
``test/test_examples.py`` does), each in a fresh interpreter so that their own warning
filters and thread settings stay theirs."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

SCRIPTS = [
    ("examples/quickstart.py", ["--steps", "5"]),
    ("benchmarks/bench_concrete.py", ["--quick"]),
    ("benchmarks/acceptance_concrete.py", ["--quick"]),
    ("examples/sudoku_steps.py", ["--quick", "--out-dir", "."]),
]  # the estimator benchmarks run, and their tables are checked, in test_bench_estimators.py


@pytest.mark.parametrize("script,args", SCRIPTS, ids=[s for s, _ in SCRIPTS])
def test_script_runs_quick(script, args, tmp_path):
    env = dict(os.environ, MPLBACKEND="Agg", JAX_PLATFORMS="cpu", PYTHONPATH=str(ROOT))
    out = subprocess.run(
        [sys.executable, str(ROOT / script), *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-4000:]
    assert out.stdout.strip(), f"{script} printed nothing"
