"""Issue 16, "found on real tutorial models" (torch): the differentiable one-hot index
``take_one_hot`` and the ``Categorical`` error that points to it, the no-gradient check,
the warning for enumerated sites that ``relax`` skips, Concrete at a low temperature, and the
short error for a Concrete guide against an unrelaxed model."""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine

from pyro_ext import take_one_hot
from pyro_ext.relax import relax

# small t_1 / n_steps on purpose; the REDGE family's SampleLawWarning is tested in test_sample_law.py
pytestmark = pytest.mark.filterwarnings("ignore::relaxed_dists.sample_law.SampleLawWarning")

K, N = 3, 5


@pytest.fixture(autouse=True)
def _fresh_state():
    pyro.clear_param_store()
    pyro.set_rng_seed(0)


# --- take_one_hot and the Categorical error -----------------------------------------------


def test_take_one_hot_is_the_index_with_a_gradient():
    rest = (2, 4)
    table = torch.randn((K,) + rest, dtype=torch.float64)
    index = torch.tensor([[2, 0], [1, 1]])
    value = torch.nn.functional.one_hot(index, K).to(torch.float64).requires_grad_(True)
    out = take_one_hot(table, value)
    assert out.shape == index.shape + rest
    torch.testing.assert_close(out, table[index], rtol=0, atol=0)  # a one-hot picks one row exactly
    upstream = torch.randn(out.shape, dtype=torch.float64)
    (grad,) = torch.autograd.grad((out * upstream).sum(), value)
    # d out[b] / d value[b, k] = table[k]: the gradient is <upstream[b], table[k]> over rest
    expected = torch.einsum("ij...,k...->ijk", upstream, table)
    torch.testing.assert_close(grad, expected, rtol=1e-12, atol=1e-12)
    matrix = table[..., 0]  # a (K, 2) table: take_one_hot is value @ table
    torch.testing.assert_close(take_one_hot(matrix, value), value @ matrix, rtol=0, atol=0)


def test_take_one_hot_shape_and_int_table():
    value = torch.eye(K)[[1, 2]]
    assert take_one_hot(torch.arange(K), value).tolist() == [1.0, 2.0]  # an integer table is cast
    with pytest.raises(ValueError, match=r"value.shape=\(2, 3\), table.shape=\(4,\)"):
        take_one_hot(torch.zeros(4), value)


def test_categorical_error_gives_the_two_ways_out():
    def model():
        pyro.sample("c", dist.Categorical(logits=torch.zeros(K)))

    with pytest.raises(ValueError) as info:
        poutine.trace(relax(model)).get_trace()
    message = str(info.value)
    assert "site 'c'" in message and "OneHotCategorical(logits=...)" in message
    assert "take_one_hot(table, value)" in message and "value @ table" in message
    assert "config_enumerate" in message and "TraceEnum_ELBO" in message


# --- check_gradients: a relaxed value that gets no gradient --------------------------------

MEANS = torch.tensor([-2.0, 0.0, 2.0])
X = torch.tensor([-2.1, 0.2, 1.9, 2.2, -1.8])


def _mixture(use):
    def model(x):
        with pyro.plate("data", len(x)):
            z = pyro.sample("z", dist.OneHotCategorical(logits=torch.zeros(K)))
            pyro.sample("x", dist.Normal(use(z), 1.0), obs=x)

    return model


def _guide(x):
    logits = pyro.param("logits", torch.zeros(len(x), K))
    with pyro.plate("data", len(x)):
        pyro.sample("z", dist.OneHotCategorical(logits=logits))


@pytest.mark.parametrize("estimator", ["gumbel", "concrete"])
def test_check_gradients_warns_on_argmax_only(estimator):
    from pyro_ext.diagnostics import check_gradients
    from relaxed_dists.diagnostics import NoGradientWarning

    guide = relax(_guide, estimator=estimator, temperature=0.5)
    model = relax(_mixture(lambda z: MEANS[z.argmax(-1)]), estimator=estimator, temperature=0.5)
    with pytest.warns(NoGradientWarning, match=r"site\(s\) \['z'\].*take_one_hot"):
        assert check_gradients(model, guide, X) == {"z": 0.0}
    # the same model through take_one_hot: a gradient, no warning (warnings are errors here)
    model = relax(_mixture(lambda z: take_one_hot(MEANS, z)), estimator=estimator, temperature=0.5)
    norms = check_gradients(model, guide, X)
    assert list(norms) == ["z"] and norms["z"] > 0.1  # d/dz_k of -(x - mu_k)^2 / 2 is O(1) per point


# --- concrete at temperature 0.1 through relax: finite -------------------------------------


def test_relaxed_concrete_mixture_at_temperature_0_1_is_finite():
    """The NumPyro issue checked in torch: Pyro's replay hands the model the guide's very tensor,
    whose transform cache holds the pre-image, so ``log`` of an underflowed entry is never taken."""
    from pyro.infer import SVI, Trace_ELBO

    x = torch.cat([X, X + 0.1])
    spread = 4.0 * torch.randn(len(x), K, generator=torch.Generator().manual_seed(2))

    def guide(x):
        logits = pyro.param("logits", spread)
        with pyro.plate("data", len(x)):
            pyro.sample("z", dist.OneHotCategorical(logits=logits))

    model = relax(_mixture(lambda z: take_one_hot(MEANS, z)), estimator="concrete", temperature=0.1)
    guide = relax(guide, estimator="concrete", temperature=0.1)
    svi = SVI(model, guide, pyro.optim.Adam({"lr": 0.05}), Trace_ELBO())
    losses = torch.tensor([svi.step(x) for _ in range(30)])
    assert torch.isfinite(losses).all() and torch.isfinite(pyro.param("logits")).all()


# --- a Concrete guide against a hard relaxed model: a short error naming the site ----------


@pytest.mark.parametrize("estimator", ["st", "gumbel"])
def test_concrete_guide_against_hard_model_is_a_short_error(estimator):
    from pyro.infer import SVI, Trace_ELBO

    hyper = {"temperature": 0.5} if estimator == "gumbel" else {}
    model = relax(_mixture(lambda z: take_one_hot(MEANS, z)), estimator=estimator, **hyper)
    svi = SVI(model, relax(_guide, estimator="concrete", temperature=0.5), pyro.optim.Adam({"lr": 0.05}), Trace_ELBO())
    with pytest.raises(
        ValueError, match=r"site 'z' of 'model' is relaxed to .*'concrete' relaxes the values.*together"
    ) as info:
        svi.step(X)
    assert "tensor(" not in str(info.value)  # the host's message printed the whole value
