"""The NumPyro VAE and mixture examples: quick runs that write finite results, and a static check
that the model and guide are written once (only ``relax(...)`` differs between runs).

Each script runs in a fresh interpreter (its own warning filters and thread settings), with
``-W error`` so that a warning, such as SVI's about discrete latent sites, fails the test.
"""

import ast
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import numpyro_ext

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"

# Every numpyro_ext distribution class but the unrelaxed OneHotCategorical: none may appear in
# the example scripts, whose runs differ by relax(..., estimator=...) alone.
RELAXED_NAMES = {n for n in numpyro_ext.__all__ if n[0].isupper()} - {"OneHotCategorical"}

QUICK_RUNS = [
    # REINFORCE (TraceGraph_ELBO, plain guide) and one relaxed estimator: both code paths; the
    # other estimators differ only in the string given to relax, and each compile costs ~5-10 s.
    ("vae_numpyro.py", ["--estimators", "reinforce", "redge"], "vae_numpyro", ("| reinforce", "| redge")),
    ("mixture_numpyro.py", [], "mixture_numpyro", ("| exact", "| CAVI", "| SVI redge", "| SVI gumbel")),
]


@pytest.fixture(scope="module")
def quick_runs(tmp_path_factory):
    """Both quick runs, started together (mostly compilation, so two cores halve the wall time):
    ``{script: (process, out_dir)}``; each test waits for its own."""
    env = dict(os.environ, MPLBACKEND="Agg", JAX_PLATFORMS="cpu", PYTHONPATH=str(ROOT))
    runs = {}
    for script, args, _, _ in QUICK_RUNS:
        out_dir = tmp_path_factory.mktemp(script.removesuffix(".py"))
        command = [
            sys.executable,
            "-W",
            "error",
            str(EXAMPLES / script),
            "--quick",
            "--no-progress",
            "--out-dir",
            str(out_dir),
            *args,
        ]
        # Output to files, not pipes: nobody reads a pipe while the other run is awaited.
        with open(out_dir / "stdout.txt", "w") as stdout, open(out_dir / "stderr.txt", "w") as stderr:
            process = subprocess.Popen(command, cwd=out_dir, env=env, stdout=stdout, stderr=stderr)
        runs[script] = process, out_dir
    yield runs
    for process, _ in runs.values():
        if process.poll() is None:
            process.kill()
            process.wait()


def _functions(script: str) -> dict[str, ast.FunctionDef]:
    tree = ast.parse((EXAMPLES / script).read_text())
    return {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)}


def _names(node: ast.AST) -> set[str]:
    """Identifiers a piece of code mentions: names, attributes and imported aliases."""
    names = set()
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name):
            names.add(sub.id)
        elif isinstance(sub, ast.Attribute):
            names.add(sub.attr)
        elif isinstance(sub, ast.alias):
            names.add(sub.asname or sub.name.rsplit(".", 1)[-1])
    return names


@pytest.mark.parametrize("script", ["vae_numpyro.py", "mixture_numpyro.py"])
def test_model_and_guide_are_written_once(script):
    functions = _functions(script)
    for name in ("model", "guide"):
        used = _names(functions[name])
        assert "OneHotCategorical" in used, f"{script}:{name} should declare its assignments OneHotCategorical"
        assert not used & (RELAXED_NAMES | {"relax"}), f"{script}:{name} mentions {used & RELAXED_NAMES}"
    whole_file = _names(ast.parse((EXAMPLES / script).read_text()))
    assert not whole_file & RELAXED_NAMES, f"{script} uses relaxed classes {whole_file & RELAXED_NAMES}: use relax()"
    assert "relax" in whole_file


def _table_numbers(markdown: str, row_prefixes: tuple[str, ...]) -> list[float]:
    rows = [line for line in markdown.splitlines() if line.startswith(row_prefixes)]
    assert {p for p in row_prefixes if any(r.startswith(p) for r in rows)} == set(row_prefixes), rows
    cells = [cell for row in rows for cell in row.split("|")[2:]]
    return [float(v) for cell in cells for v in re.findall(r"[-+]?(?:\d+\.?\d*|nan|inf)", cell)]


@pytest.mark.parametrize("script,args,stem,rows", QUICK_RUNS, ids=[r[0] for r in QUICK_RUNS])
def test_quick_run_writes_finite_results(script, args, stem, rows, quick_runs):
    process, out_dir = quick_runs[script]
    process.wait(timeout=300)
    assert process.returncode == 0, (out_dir / "stderr.txt").read_text()[-4000:]
    markdown = (out_dir / f"{stem}.md").read_text()
    assert (out_dir / f"{stem}.png").stat().st_size > 1000
    numbers = _table_numbers(markdown, rows)
    assert numbers and all(math.isfinite(v) for v in numbers), numbers
