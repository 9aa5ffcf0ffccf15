"""README's code: the two ten-line examples run as written and take SVI steps, and the
README's test command is the one CI runs."""

import re
from pathlib import Path

import numpy as np

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()
BLOCKS = [b for b in re.findall(r"```python\n(.*?)```", README, flags=re.S) if "def model" in b]


def _block(backend):
    (block,) = [b for b in BLOCKS if f"from {backend}_ext import" in b]
    namespace = {}
    exec(compile(block, f"README.md ({backend} example)", "exec"), namespace)
    return namespace


def test_pyro_example_runs():
    import pyro
    import torch

    pyro.set_rng_seed(0)
    pyro.clear_param_store()
    ns = _block("pyro")
    x = torch.tensor([-4.1, 0.2, 3.9, -3.8, 4.2])
    losses = [ns["svi"].step(x) for _ in range(3)]
    assert np.isfinite(losses).all()


def test_numpyro_example_runs():
    import jax
    import jax.numpy as jnp

    ns = _block("numpyro")
    x = jnp.array([-4.1, 0.2, 3.9, -3.8, 4.2])
    state = ns["svi"].init(jax.random.PRNGKey(0), x)
    for _ in range(3):
        state, loss = ns["svi"].update(state, x)
        assert np.isfinite(float(loss))


def test_ci_runs_the_readme_test_command():
    ci = (Path(__file__).resolve().parents[1] / ".ci" / "run").read_text()
    assert "<!-- test-command -->" in README and "<!-- test-command -->" in ci
    command = README.split("<!-- test-command -->", 1)[1].split("```bash\n", 1)[1].split("\n", 1)[0]
    assert "pytest" in command and "pip install" in command


def test_docs_getting_started_repeats_the_readme_set_up():
    """The docs' getting-started page shows README's two set-up commands, character for character."""
    page = (Path(__file__).resolve().parents[1] / "docs" / "getting_started.md").read_text()
    commands = re.findall(r"```bash\n(.*?)\n```", README.split("## Ten lines per backend", 1)[0], flags=re.S)
    assert len(commands) == 2
    for command in commands:
        assert command in page
