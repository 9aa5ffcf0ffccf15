"""The estimator speed benchmarks (``benchmarks/bench_estimators_torch.py`` and
``bench_estimators_jax.py``) in their quick modes, each in a fresh interpreter as in
``test_examples.py``: every row and sweep point they promise is in the markdown they write,
with finite, positive timings and ratios.

Timings of one call on tiny logits are noise, so nothing here compares them (one warm-up call
keeps first-call set-up, hundreds of times a call, out of the ratios); memory on such
sizes rounds to 0.0 MiB, so it is only checked to be finite and non-negative.
"""

import importlib.util
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ESTIMATORS = ("st", "gumbel", "reinmax", "redge", "redge_cov", "reindge")


def run(script: str, *args: str, cwd: Path) -> None:
    env = dict(os.environ, MPLBACKEND="Agg", JAX_PLATFORMS="cpu", PYTHONPATH=str(ROOT))
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-4000:]


def table_rows(text: str) -> list[list[str]]:
    """The body rows of every markdown table in ``text``, as lists of stripped cells."""
    lines = [line for line in text.splitlines() if line.startswith("|")]
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]
    return [row for row in rows if not set(row[0]) <= set("-: ")]


def positive(cell: str) -> bool:
    return math.isfinite(value := float(cell)) and value > 0


def test_torch_sizes_with_classes(tmp_path):
    pytest.importorskip("pyro")  # the pyro_ext classes import Pyro
    out = tmp_path / "torch.md"
    run(
        "bench_estimators_torch.py",
        "--sizes",
        "8x4x5",
        "--repeats",
        "1",
        "--warmup",
        "1",
        "--min-time",
        "0",
        "--classes",
        "--threads",
        "1",
        "--out",
        str(out),
        cwd=tmp_path,
    )
    rows = {(row[0], row[1]): row for row in table_rows(out.read_text())}
    expected = [(name, impl) for name in ESTIMATORS for impl in ("ours", "class")]
    expected += [("gumbel", "torch"), ("concrete", "ours"), ("concrete", "torch")]
    expected += [
        (name, impl)
        for name in ("concrete", "concrete+log_prob")
        for impl in ("class", "class, log space", "torch.distributions")
    ]
    if importlib.util.find_spec("redge") is not None:
        expected += [(name, "redge pkg") for name in ESTIMATORS]
    for key in expected:
        assert key in rows, f"row {key} missing"
        ms, x_gumbel, peak, peak_ratio = (rows[key][i] for i in (2, 3, 6, 7))
        assert positive(ms) and positive(x_gumbel), rows[key]
        assert float(rows[key][-1]) >= 0, rows[key]  # CPU ms: may round to 0.000 at this size
        assert math.isfinite(float(peak)) and float(peak) >= 0, rows[key]
    for name in ESTIMATORS:  # a class's time over its kernel's
        assert positive(rows[(name, "class")][4]), rows[(name, "class")]


def test_torch_scaling(tmp_path):
    out = tmp_path / "scaling.md"
    run(
        "bench_estimators_torch.py",
        "--scaling",
        "--quick",
        "--repeats",
        "1",
        "--warmup",
        "0",
        "--threads",
        "1",
        "--out",
        str(out),
        cwd=tmp_path,
    )
    rows = table_rows(out.read_text())
    assert [row[0] for row in rows] == ["K", "2", "8", "64", "n_steps", "2", "3", "5"]  # headers, then points
    for row in rows:
        if row[0] not in ("K", "n_steps"):
            assert len(row) >= 5 and all(positive(cell) for cell in row[1:]), row
    assert out.with_suffix(".png").stat().st_size > 0


def test_jax_sizes_with_classes(tmp_path):
    pytest.importorskip("numpyro")  # the numpyro_ext classes import NumPyro
    out = tmp_path / "jax.md"
    class_rows = ["baseline_rng", "REDGE", "RelaxedOneHotCategorical+log_prob"]
    run(
        "bench_estimators_jax.py",
        "--sizes",
        "8x4x5",
        "--repeats",
        "1",
        "--no-isolate",
        "--estimators",
        "redge",
        "--classes",
        ",".join(class_rows),
        "--out",
        str(out),
        cwd=tmp_path,
    )
    rows = {row[1]: row for row in table_rows(out.read_text()) if row[0] == "8x4x5"}
    assert list(rows) == ["baseline", "redge", *class_rows]
    for row in rows.values():
        assert all(positive(row[i]) for i in (2, 3, 4)), row  # compile s, median ms, ratio
        assert float(row[-1]) >= 0, row  # CPU ms: may round to 0.00 at this size
    assert positive(rows["REDGE"][5]) and positive(rows["baseline_rng"][5])  # x kernel
