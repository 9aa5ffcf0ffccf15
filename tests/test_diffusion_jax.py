"""``numpyro_ext.diffusion``: the forward process and RDM's loss against hand computations, the
route-and-denoise sampler against the core's schedule (``relaxed_dists.diffusion.noisy_counts``),
guidance (``tilt``) toward a reward, guidance as SVI (``TraceMeanField_ELBO``), argument
errors, and the same routing decisions and traces as ``pyro_ext.diffusion``.

Float64 throughout (``tests/conftest.py`` enables JAX's x64), so equalities are exact or to
~1e-12. ``filterwarnings = error`` (pyproject): any warning fails a test.
"""

from __future__ import annotations

import doctest

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import pytest
from numpyro.infer import TraceMeanField_ELBO
from scipy import stats

from numpyro_ext import diffusion
from numpyro_ext.diffusion import Guidance, MaskedDiffusion, MultinomialDiffusion, ancestral_sample, sample, tilt
from numpyro_ext.distributions import OneHotCategorical
from relaxed_dists import diffusion as core
from relaxed_dists.diffusion import LOSS_WEIGHTS, SCHEDULES, loss_weight, noisy_counts, step_times

K, L, B = 4, 12, 6
MASK = K
# A correct implementation fails a seeded statistical test at level ALPHA for a fraction ALPHA of seeds.
ALPHA = 1e-4


def _count_of_token_0(x):
    return x[..., 0].sum(-1)


def _reward(x):
    return 3.0 * _count_of_token_0(x)


# One instance per estimator, shared by the tests: tilt compiles once per Guidance and shape.
GUIDANCES = {name: Guidance(_reward, name, n_opt=30) for name in ("redge", "reinmax", "gumbel")}


def _logits(seed: int, shape=(B, L, K)) -> jax.Array:
    """Continuous random logits: no ties among scores, so deterministic routing is unique."""
    return jax.random.normal(jax.random.key(seed), shape) * 2.0


def _puzzle(seed: int) -> tuple[jax.Array, jax.Array]:
    """``(x0, x_init)``: random clean tokens, and the same with row ``b`` keeping ``b`` pinned tokens
    (so every row has its own number of free positions, from ``L`` down to ``L - B + 1``)."""
    x0 = jax.random.randint(jax.random.key(seed), (B, L), 0, K)
    pinned = jnp.arange(L)[None, :] < jnp.arange(B)[:, None]
    return x0, jnp.where(pinned, x0, MASK)


def _fixed_denoiser(logits: jax.Array, calls: list | None = None):
    def denoiser(x_t, t):
        if calls is not None:
            calls.append((x_t, t))
        return logits

    return denoiser


# --- forward process and loss -----------------------------------------------------------------


@pytest.mark.statistical
@pytest.mark.parametrize("t", [0.1, 0.5, 0.9])
def test_q_sample_masks_free_tokens_at_rate_t(t):
    # 400 x 50 = 20,000 tokens, half of them pinned: the masked count of the 10,000 free ones is
    # Binomial(10,000, t); a two-sided binomial test at level ALPHA (seeded, deterministic).
    x0 = jax.random.randint(jax.random.key(0), (400, 50), 0, K)
    pinned = jax.random.bernoulli(jax.random.key(1), 0.5, x0.shape)
    x_t = MaskedDiffusion(K).q_sample(jax.random.key(2), x0, jnp.full(400, t), pinned=pinned)
    masked = np.asarray(x_t == MASK)
    assert not masked[np.asarray(pinned)].any()
    assert (np.asarray(x_t)[~masked] == np.asarray(x0)[~masked]).all()
    n_free = int((~pinned).sum())
    assert stats.binomtest(int(masked.sum()), n_free, t).pvalue > ALPHA


def test_q_sample_per_sequence_time_and_pinned_never_masked():
    x0, x_init = _puzzle(0)
    pinned = x_init != MASK
    diffusion_ = MaskedDiffusion(K)
    t = jnp.where(jnp.arange(B) % 2 == 0, 1.0, 1e-12)  # even rows: all free masked; odd: none (u >= 1e-12 here)
    x_t = diffusion_.q_sample(jax.random.key(3), x0, t, pinned=pinned)
    expected = jnp.where(pinned | (jnp.arange(B)[:, None] % 2 == 1), x0, MASK)
    np.testing.assert_array_equal(x_t, expected)


@pytest.mark.parametrize("weight", LOSS_WEIGHTS)
@pytest.mark.parametrize("with_pinned", [False, True])
def test_loss_equals_hand_computation(weight, with_pinned):
    x0, x_init = _puzzle(1)
    pinned = (x_init != MASK) if with_pinned else None
    logits = _logits(2)
    calls = []
    t = jnp.linspace(0.2, 0.9, B)
    loss = MaskedDiffusion(K, weight=weight).loss(
        jax.random.key(4), _fixed_denoiser(logits, calls), x0, t=t, pinned=pinned
    )
    ((x_t, t_seen),) = calls
    x_t, x0_np = np.asarray(x_t), np.asarray(x0)
    assert 0 < (x_t == MASK).sum() < x_t.size, "the case must mask some tokens and keep others"
    log_probs = np.asarray(jax.nn.log_softmax(logits, axis=-1))
    expected = 0.0
    for b in range(B):
        n_free = L if pinned is None else max(int((~np.asarray(pinned[b])).sum()), 1)
        nll = sum(-log_probs[b, n, x0_np[b, n]] for n in range(L) if x_t[b, n] == MASK)
        expected += float(loss_weight(float(t[b]), weight)) * nll / n_free
    np.testing.assert_allclose(float(loss), expected / B, rtol=1e-12)
    np.testing.assert_array_equal(t_seen, t)


def test_loss_draws_t_in_unit_interval_and_is_jittable():
    x0, _ = _puzzle(2)
    calls = []
    diffusion_ = MaskedDiffusion(K, weight="reciprocal")
    loss = diffusion_.loss(jax.random.key(5), _fixed_denoiser(_logits(3), calls), x0)
    ((_, t),) = calls
    assert t.shape == (B,) and bool(((t > 0) & (t <= 1)).all())
    jitted = jax.jit(lambda key, x0: diffusion_.loss(key, _fixed_denoiser(_logits(3)), x0))
    np.testing.assert_allclose(jitted(jax.random.key(5), x0), loss, rtol=1e-12)


# --- sampler ------------------------------------------------------------------------------------


def _assert_valid_trace(x_init, x, trace, n_steps, schedule):
    """No mask at the end, pinned tokens never change, and ``n_noisy`` after each step is the
    core's ``noisy_counts`` for each row's number of free positions."""
    pinned = np.asarray(x_init != MASK)
    n_free = (~pinned).sum(-1)
    assert not (np.asarray(x) == MASK).any()
    assert ((np.asarray(x) >= 0) & (np.asarray(x) < K)).all()
    assert len(trace) == n_steps
    for step in trace:
        np.testing.assert_array_equal(np.asarray(step["x"])[pinned], np.asarray(x_init)[pinned])
    n_noisy = np.stack([np.asarray(step["n_noisy"]) for step in trace], axis=-1)
    for b in range(len(n_free)):
        assert n_noisy[b].tolist() == noisy_counts(int(n_free[b]), n_steps, schedule), (b, n_free[b])
    np.testing.assert_array_equal(trace[-1]["x"], x)


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize(
    "routing,routing_noise,renoise,decode",
    [
        ("adaptive", 0.0, False, "argmax"),
        ("adaptive", 0.5, False, "sample"),
        ("adaptive", 0.0, True, "argmax"),
        ("random", 0.0, False, "sample"),
        ("random", 0.0, True, "argmax"),
    ],
)
def test_sample_follows_the_schedule(schedule, routing, routing_noise, renoise, decode, n_steps=5):
    _, x_init = _puzzle(3)
    calls = []
    x, trace = sample(
        jax.random.key(6),
        _fixed_denoiser(_logits(4), calls),
        x_init,
        n_classes=K,
        n_steps=n_steps,
        routing=routing,
        schedule=schedule,
        routing_noise=routing_noise,
        renoise=renoise,
        decode=decode,
        return_trace=True,
    )
    _assert_valid_trace(x_init, x, trace, n_steps, schedule)
    assert len(calls) == n_steps
    assert [float(t[0]) for _, t in calls] == list(step_times(n_steps)[:-1])


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_one_step_decodes_everything(schedule):
    test_sample_follows_the_schedule(schedule, "adaptive", 0.0, False, "argmax", n_steps=1)


def test_adaptive_routing_decodes_the_most_confident_positions():
    _, x_init = _puzzle(4)
    logits = _logits(5)
    x, trace = sample(jax.random.key(7), _fixed_denoiser(logits), x_init, n_classes=K, n_steps=4, return_trace=True)
    confidence = np.asarray(jax.nn.log_softmax(logits, -1).max(-1))
    first = np.asarray(trace[0]["x"])
    free = np.asarray(x_init == MASK)
    for b in range(B):
        decoded = free[b] & (first[b] != MASK)
        assert decoded.any() and (free[b] & ~decoded).any()
        assert confidence[b][decoded].min() > confidence[b][free[b] & ~decoded].max()
    np.testing.assert_array_equal(x, jnp.where(x_init == MASK, logits.argmax(-1), x_init))  # argmax decoding


def test_random_routing_ignores_confidence():
    # Adaptive routing decodes the top-k confident positions at the first step; random routing
    # must not always do so (with 6 rows of 12 to 7 free positions, chance agreement on every
    # row has probability < 1e-4).
    _, x_init = _puzzle(5)
    logits = _logits(6)
    first = {}
    for routing in ("adaptive", "random"):
        _, trace = sample(
            jax.random.key(8),
            _fixed_denoiser(logits),
            x_init,
            n_classes=K,
            n_steps=3,
            routing=routing,
            return_trace=True,
        )
        first[routing] = np.asarray(trace[0]["x"] != MASK)
    assert (first["adaptive"] != first["random"]).any()


def test_renoise_can_remask_decoded_tokens():
    # A denoiser that is confident about position 0 at t = 1 only: with renoise, its token is
    # re-masked later when other positions score higher; without, it stays.
    x_init = jnp.full((1, 4), MASK)

    def denoiser(x_t, t):
        logits = jnp.zeros((1, 4, K)).at[0, :, 1].set(jnp.arange(4.0))  # position n: token 1 at logit n
        return logits.at[0, 0, 0].set(jnp.where(t[0] == 1.0, 8.0, -8.0))  # position 0: token 0, then not

    runs = {}
    for renoise in (False, True):
        x, trace = sample(
            jax.random.key(9), denoiser, x_init, n_classes=K, n_steps=4, renoise=renoise, return_trace=True
        )
        _assert_valid_trace(x_init, x, trace, 4, "linear")
        runs[renoise] = [int(step["x"][0, 0]) for step in trace]
    assert runs[False][0] == 0 and all(v == 0 for v in runs[False])
    assert runs[True][0] == 0 and MASK in runs[True][1:]


def _rules_out_a_decoded_token(x_t, t):
    """Position 1 prefers token 0 at t = 1, then gives it log-probability -inf (as a Sudoku
    denoiser that masks out digits already in the row would): with renoise, the decoded token
    0 at position 1 is a candidate scored -inf, below or tied with the pinned position 0."""
    logits = jnp.zeros(x_t.shape + (K,)).at[..., 1, 0].set(5.0)
    return jnp.where(t[:, None, None] < 1.0, logits.at[..., 1, 0].set(-jnp.inf), logits)


def test_renoise_decodes_everything_even_when_a_score_is_minus_inf():
    x_init = jnp.array([[0, MASK, MASK]])
    x, trace = sample(
        jax.random.key(0), _rules_out_a_decoded_token, x_init, n_classes=K, n_steps=2, renoise=True, return_trace=True
    )
    _assert_valid_trace(x_init, x, trace, 2, "linear")


@pytest.mark.parametrize("use_guidance", [False, True])
def test_denoiser_called_once_per_step_and_its_output_carries_no_tangent(monkeypatch, use_guidance):
    # Under jax.jvp in the denoiser's parameter, what the sampler hands on (to tilt, to the
    # routing step) must be plain arrays: the output was wrapped in stop_gradient. Without it
    # they would be JVP tracers and this test fails.
    _, x_init = _puzzle(6)
    logits = _logits(7)
    seen, calls = [], []
    real_tilt, real_route = diffusion.tilt, diffusion._route

    def spy_tilt(key, prior_logits, guidance, *, x_t=None):
        seen.append(isinstance(prior_logits, jax.core.Tracer))
        return real_tilt(key, prior_logits, guidance, x_t=x_t)

    def spy_route(key, x, noisy, log_probs, *args, **kwargs):
        seen.append(isinstance(log_probs, jax.core.Tracer))
        return real_route(key, x, noisy, log_probs, *args, **kwargs)

    monkeypatch.setattr(diffusion, "tilt", spy_tilt)
    monkeypatch.setattr(diffusion, "_route", spy_route)
    guidance = GUIDANCES["reinmax"] if use_guidance else None

    def run(scale):
        denoiser = _fixed_denoiser(scale * logits, calls)
        x = sample(jax.random.key(10), denoiser, x_init, n_classes=K, n_steps=3, guidance=guidance)
        return jnp.sum(x).astype(jnp.float64)

    _, tangent = jax.jvp(run, (1.0,), (1.0,))
    assert len(calls) == 3
    assert seen and not any(seen), seen
    assert float(tangent) == 0.0


def test_sample_jits_whole_with_a_traceable_denoiser():
    _, x_init = _puzzle(7)
    logits = _logits(8)
    kwargs = dict(n_classes=K, n_steps=3, routing_noise=0.3)
    eager = sample(jax.random.key(11), _fixed_denoiser(logits), x_init, **kwargs)
    jitted = jax.jit(lambda key, x_init, logits: sample(key, _fixed_denoiser(logits), x_init, **kwargs))
    np.testing.assert_array_equal(jitted(jax.random.key(11), x_init, logits), eager)


# --- guidance ------------------------------------------------------------------------------------


@pytest.mark.parametrize("estimator", ["redge", "reinmax", "gumbel"])
def test_tilt_moves_the_argmax_toward_the_reward_and_keeps_fixed_positions(estimator):
    prior = jnp.broadcast_to(jnp.array([0.0, 1.0, 0.0, 0.0]), (B, L, K))  # prefers token 1
    x_t = jnp.where(jnp.arange(L) % 3 == 0, 2, MASK) * jnp.ones((B, 1), int)  # every third position fixed to 2
    phi = tilt(jax.random.key(12), prior, GUIDANCES[estimator], x_t=x_t)
    free = np.asarray(x_t == MASK)
    assert (np.asarray(phi.argmax(-1))[free] == 0).all()
    np.testing.assert_array_equal(np.asarray(phi)[~free], np.asarray(jax.nn.log_softmax(prior, -1))[~free])


@pytest.mark.parametrize("use_prior", [True, False])
def test_tilt_without_steps_returns_the_normalised_prior(use_prior):
    prior = _logits(9)
    phi = tilt(jax.random.key(13), prior, Guidance(_count_of_token_0, n_opt=0, use_prior=use_prior))
    expected = jax.nn.log_softmax(prior, -1) if use_prior else jnp.full_like(prior, -np.log(K))
    np.testing.assert_allclose(phi, expected, rtol=0, atol=1e-15)


def test_tilt_rows_are_independent_and_prior_gets_no_gradient():
    prior = _logits(10)
    guidance = GUIDANCES["reinmax"]
    key = jax.random.key(14)
    whole = tilt(key, prior, guidance)
    # a row's result depends on its own logits (and the shared noise draw) only
    changed = tilt(key, prior.at[0].add(5.0), guidance)
    np.testing.assert_allclose(changed[1:], whole[1:], rtol=1e-12)
    grad = jax.grad(lambda p: tilt(key, p, guidance).sum())(prior)
    assert float(jnp.abs(grad).max()) == 0.0


@pytest.mark.parametrize("estimator,hyper", [("redge", {}), ("gumbel", {"temperature": 0.5})])
def test_guidance_objective_is_the_tilted_svi_loss(estimator, hyper):
    # J(phi) / kappa is TraceMeanField_ELBO's loss for model x ~ Cat(l), factor(r(x) / kappa),
    # guide x ~ Estimator(phi): same value and same gradient in phi, given the same noise.
    kappa = 0.7
    prior, phi0 = _logits(11, (L, K)), _logits(12, (L, K))
    weights = jax.random.normal(jax.random.key(13), (K,))

    def reward(x):  # non-linear in x, batch dimensions pass through
        return (x @ weights).sum(-1) + 0.3 * x[..., 0].sum(-1) ** 2

    guidance = Guidance(
        reward, estimator, kl_weight=kappa, normalize=False, **hyper
    )  # the raw reward: exactly the ELBO

    def model():
        with numpyro.plate("cells", L):
            x = numpyro.sample("x", OneHotCategorical(logits=prior))
        numpyro.factor("reward", reward(x) / kappa)

    def guide():
        phi = numpyro.param("phi", phi0)
        with numpyro.plate("cells", L):
            numpyro.sample("x", guidance.distribution(phi))

    key = jax.random.key(15)
    # TraceMeanField_ELBO splits key into (model_seed, guide_seed); the seed handler gives the
    # guide's first sample site split(guide_seed)[1] (a plate without subsampling takes no key).
    # If NumPyro changes this plumbing the values differ below, before the gradients are compared.
    site_key = jax.random.split(jax.random.split(key)[1])[1]
    svi_loss = jax.jit(jax.value_and_grad(lambda phi: TraceMeanField_ELBO().loss(key, {"phi": phi}, model, guide)))
    objective = jax.jit(jax.value_and_grad(lambda phi: guidance.objective(site_key, phi, prior) / kappa))
    (value, grad), (svi_value, svi_grad) = objective(phi0), svi_loss(phi0)
    np.testing.assert_allclose(value, svi_value, rtol=1e-12)
    np.testing.assert_allclose(grad, svi_grad, rtol=1e-10, atol=1e-12)


def test_guided_sample_reaches_the_reward_and_keeps_pins():
    _, x_init = _puzzle(8)
    prior = jnp.broadcast_to(jnp.array([0.0, 2.0, 0.0, 0.0]), (B, L, K))
    guidance = GUIDANCES["redge"]
    calls = []
    x, trace = sample(
        jax.random.key(16),
        _fixed_denoiser(prior, calls),
        x_init,
        n_classes=K,
        n_steps=3,
        guidance=guidance,
        return_trace=True,
    )
    _assert_valid_trace(x_init, x, trace, 3, "linear")
    assert len(calls) == 3
    free = np.asarray(x_init == MASK)
    assert (np.asarray(x)[free] == 0).mean() > 0.9
    unguided = sample(jax.random.key(16), _fixed_denoiser(prior), x_init, n_classes=K, n_steps=3)
    assert (np.asarray(unguided)[free] == 1).all()


# --- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call,error,name",
    [
        (lambda: MaskedDiffusion(1), ValueError, "n_classes"),
        (lambda: MaskedDiffusion(K, weight="elbo"), ValueError, "weight"),
        (
            lambda: MaskedDiffusion(K).loss(jax.random.key(0), _fixed_denoiser(_logits(0)), jnp.full((B, L), MASK)),
            ValueError,
            "x0",
        ),
        (
            lambda: MaskedDiffusion(K).loss(jax.random.key(0), _fixed_denoiser(_logits(0)), jnp.zeros((B, L))),
            TypeError,
            "x0.dtype",
        ),
        (lambda: _sample(n_steps=0), ValueError, "n_steps"),
        (lambda: _sample(n_steps=2.0), TypeError, "n_steps"),
        (lambda: _sample(routing="greedy"), ValueError, "routing"),
        (lambda: _sample(schedule="exp"), ValueError, "schedule"),
        (lambda: _sample(decode="top_p"), ValueError, "decode"),
        (lambda: _sample(x_init=jnp.full((B, L), MASK + 1)), ValueError, "x_init"),
        (lambda: _sample(x_init=jnp.full((B, L), -1)), ValueError, "x_init"),
        (lambda: _sample(x_init=jnp.full((B, L), float(MASK))), TypeError, "x_init.dtype"),
        (lambda: _sample(logits=_logits(0, (B, L, K + 1))), ValueError, "denoiser(x_t, t).shape"),
        (lambda: Guidance(_count_of_token_0, n_opt=-1), ValueError, "n_opt"),
        (lambda: Guidance(_count_of_token_0, n_opt=1.5), ValueError, "n_opt"),
        (lambda: Guidance(_count_of_token_0, lr=0.0), ValueError, "lr"),
        (lambda: Guidance(_count_of_token_0, kl_weight=-1.0), ValueError, "kl_weight"),
        (lambda: Guidance(_count_of_token_0, n_samples=0), ValueError, "n_samples"),
        (lambda: Guidance(_count_of_token_0, "concrete"), ValueError, "estimator"),
        (lambda: Guidance(_count_of_token_0, "adam"), ValueError, "estimator"),
        (lambda: Guidance(_count_of_token_0, 3), TypeError, "estimator"),
        (lambda: Guidance(_count_of_token_0, "redge", temperature=0.5), TypeError, "temperature"),
        (lambda: Guidance(_count_of_token_0, "redge", t_1=2.0), ValueError, "t_1"),
    ],
)
def test_bad_arguments_name_the_parameter(call, error, name):
    with pytest.raises(error, match=f"{name.replace('(', '[(]').replace(')', '[)]')}"):
        call()


def _sample(*, x_init=None, logits=None, **kwargs):
    x_init = _puzzle(0)[1] if x_init is None else x_init
    denoiser = _fixed_denoiser(_logits(0) if logits is None else logits)
    return sample(jax.random.key(0), denoiser, x_init, **{"n_classes": K, "n_steps": 3, **kwargs})


def test_guidance_is_immutable_static_argument():
    guidance = Guidance(_count_of_token_0, n_opt=1)
    with pytest.raises(AttributeError, match="n_opt"):
        guidance.n_opt = 5
    assert hash(guidance) == hash(guidance) and guidance != Guidance(_count_of_token_0, n_opt=1)


def test_doctests():
    finder, runner = doctest.DocTestFinder(), doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    tests = finder.find(diffusion)
    assert sum(len(t.examples) for t in tests) >= 10
    for test in tests:
        runner.run(test)
    assert runner.failures == 0


# --- the torch backend makes the same decisions ---------------------------------------------------


torch = pytest.importorskip("torch")
from pyro_ext import diffusion as torch_diffusion  # noqa: E402


@pytest.mark.parametrize("renoise", [False, True])
@pytest.mark.parametrize("n_noisy_next", [0, 3, 6])
def test_same_routing_as_torch(renoise, n_noisy_next):
    # Deterministic routing (adaptive, no noise, argmax) on the same log-probabilities: the
    # same positions decoded, the same tokens; the half-decoded state exercises renoise.
    x0, x_init = _puzzle(9)
    x = jnp.where((jnp.arange(L) % 2 == 0) | (x_init != MASK), x0, MASK)  # some decoded, some noisy
    log_probs = jax.nn.log_softmax(_logits(14), -1)
    pinned = x_init != MASK
    n_next = jnp.minimum(n_noisy_next, (~pinned).sum(-1))
    noisy = x == MASK
    options = dict(routing="adaptive", routing_noise=0.0, renoise=renoise, decode="argmax")
    x_jax, noisy_jax = diffusion._route(jax.random.key(0), x, noisy, log_probs, pinned, n_next, **options)
    as_torch = lambda a: torch.from_numpy(np.array(a))  # a writable copy
    x_torch, noisy_torch = torch_diffusion._route(
        as_torch(x), as_torch(noisy), as_torch(log_probs), as_torch(pinned), as_torch(n_next), generator=None, **options
    )
    np.testing.assert_array_equal(np.asarray(x_jax), x_torch.numpy())
    np.testing.assert_array_equal(np.asarray(noisy_jax), noisy_torch.numpy())


def _both_traces(n_free: int, n_steps: int, schedule: str):
    """Both samplers on one row of 81 positions, the first ``81 - n_free`` pinned (one shape
    for every case: one compilation)."""
    logits = _logits(15, (1, 81, K))
    x_init = jnp.where(jnp.arange(81) < 81 - n_free, 0, MASK)[None, :]
    options = dict(n_classes=K, n_steps=n_steps, schedule=schedule, return_trace=True)
    x_jax, trace_jax = sample(jax.random.key(0), _fixed_denoiser(logits), x_init, **options)
    t_logits = torch.from_numpy(np.array(logits))  # writable copies
    x_torch, trace_torch = torch_diffusion.sample(
        lambda x_t, t: t_logits, torch.from_numpy(np.array(x_init)), **options
    )
    return (x_jax, trace_jax), (x_torch, trace_torch)


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("n_free,n_steps", [(12, 4), (12, 5), (81, 8), (17, 17)])
def test_same_sampler_trace_as_torch(schedule, n_free, n_steps):
    (x_jax, trace_jax), (x_torch, trace_torch) = _both_traces(n_free, n_steps, schedule)
    np.testing.assert_array_equal(np.asarray(x_jax), x_torch.numpy())
    for step_jax, step_torch in zip(trace_jax, trace_torch, strict=True):
        np.testing.assert_array_equal(np.asarray(step_jax["x"]), step_torch["x"].numpy())
    assert [int(s["n_noisy"][0]) for s in trace_jax] == noisy_counts(n_free, n_steps, schedule)


def test_torch_renoise_decodes_everything_even_when_a_score_is_minus_inf():
    def denoiser(x_t, t):
        logits = _rules_out_a_decoded_token(jnp.asarray(x_t.numpy()), jnp.asarray(t.numpy()))
        return torch.from_numpy(np.array(logits))

    x = torch_diffusion.sample(denoiser, torch.tensor([[0, MASK, MASK]]), n_classes=K, n_steps=2, renoise=True)
    assert not (x == MASK).any(), x


def test_torch_noisy_counts_match_the_core_where_float32_rounds_down():
    (_, trace_jax), (_, trace_torch) = _both_traces(22, 22, "linear")
    assert [int(s["n_noisy"][0]) for s in trace_jax] == noisy_counts(22, 22, "linear")
    assert [int(s["n_noisy"][0]) for s in trace_torch] == noisy_counts(22, 22, "linear")


# --- reward normalisation ------------------------------------------------------------------------


def _mixed_sign_reward(scale):
    weights = jax.random.normal(jax.random.key(3), (L, K))
    return lambda x: scale * ((x * weights).sum((-1, -2)) - jnp.square(x.sum(-2) - 1.25).sum(-1))


def test_normalized_objective_and_tilt_are_invariant_to_the_reward_scale():
    # Gumbel-ST only: REDGE's invariance is checked in torch, and each Guidance here costs a compile.
    prior, phi0 = jax.nn.log_softmax(_logits(1), -1), _logits(2)
    key = jax.random.key(7)  # the same estimator noise for every scale

    def grad(scale, normalize):
        guidance = Guidance(_mixed_sign_reward(scale), "gumbel", normalize=normalize)
        return jax.grad(lambda phi: guidance.objective(key, phi, prior).sum())(phi0)

    np.testing.assert_allclose(grad(10.0, True), grad(1.0, True), rtol=1e-10, atol=1e-12)
    assert not np.allclose(grad(10.0, False), grad(1.0, False))  # the raw reward's gradient does scale
    tilted = [tilt(jax.random.key(8), prior, Guidance(_mixed_sign_reward(s), "gumbel", n_opt=3)) for s in (1.0, 10.0)]
    np.testing.assert_allclose(tilted[1], tilted[0], rtol=1e-9, atol=1e-9)  # float64: the same Adam updates


@pytest.mark.parametrize("bad", ["yes", 1, None])
def test_normalize_rejects_non_booleans(bad):
    with pytest.raises(TypeError, match="normalize"):
        Guidance(_count_of_token_0, normalize=bad)


# --- multinomial noise and the vanilla (D3PM) baselines --------------------------------------


def _peaked(target: jax.Array, margin: jax.Array, calls: list | None = None):
    """A denoiser sure of ``target`` (``[..., L]`` tokens) with a per-position confidence
    ``margin`` (``[L]``); records the inputs it sees."""
    logits = jax.nn.one_hot(target, K) * margin[:, None]

    def denoiser(x_t, t):
        if calls is not None:
            calls.append(x_t)
        return jnp.broadcast_to(logits, x_t.shape + (K,))

    return denoiser


def _uniform_denoiser(x_t, t):
    return jnp.zeros(x_t.shape + (K,))


@pytest.mark.statistical
def test_multinomial_q_sample_follows_its_marginal_and_never_touches_pinned():
    n, t = 20_000, 0.4
    x0 = jax.random.randint(jax.random.key(5), (n, L), 0, K)
    pinned = jnp.zeros((n, L), dtype=bool).at[:, :3].set(True)
    x_t, noisy = MultinomialDiffusion(K).q_sample(
        jax.random.key(6), x0, jnp.full(n, t), pinned=pinned, return_noisy=True
    )
    x_t, noisy, x0 = np.asarray(x_t), np.asarray(noisy), np.asarray(x0)
    assert not noisy[:, :3].any() and (x_t[:, :3] == x0[:, :3]).all() and int(x_t.max()) < K
    assert (x_t[~noisy] == x0[~noisy]).all()
    # the noisy set at rate t, and (x0, x_t) pairs at q(x_t | x_0): alpha = 1e-3 each (the stated rate)
    assert stats.binomtest(int(noisy[:, 3:].sum()), n * (L - 3), t).pvalue > 1e-3
    observed = np.zeros((K, K))
    np.add.at(observed, (x0[:, 3:].reshape(-1), x_t[:, 3:].reshape(-1)), 1)
    expected = core.marginal(np.eye(K), t, "multinomial")[:, :K] * observed.sum(1, keepdims=True)
    assert stats.chi2.sf(((observed - expected) ** 2 / expected).sum(), K * (K - 1)) > 1e-3


@pytest.mark.parametrize("weight", LOSS_WEIGHTS)
def test_multinomial_loss_equals_hand_computation(weight):
    diffusion_ = MultinomialDiffusion(K, weight=weight)
    x0, x_init = _puzzle(1)
    pinned = x_init != MASK
    t = jnp.linspace(0.2, 0.9, B)
    logits = _logits(2)
    calls = []
    loss = diffusion_.loss(jax.random.key(4), _fixed_denoiser(logits, calls), x0, t=t, pinned=pinned)
    # the loss's draw, redone by hand: loss splits its key into (t key, forward key)
    x_t, noisy = diffusion_.q_sample(jax.random.split(jax.random.key(4))[1], x0, t, pinned=pinned, return_noisy=True)
    np.testing.assert_array_equal(calls[0][0], x_t)  # the denoiser saw that draw
    noisy, x0_np = np.asarray(noisy), np.asarray(x0)
    assert noisy.any() and (~noisy & ~np.asarray(pinned)).any() and int(np.asarray(x_t).max()) < K
    log_p = np.asarray(jax.nn.log_softmax(logits, -1))
    expected = [
        loss_weight(float(t[b]), weight)
        * sum(-log_p[b, n, x0_np[b, n]] for n in range(L) if noisy[b, n])
        / int((~np.asarray(pinned[b])).sum())
        for b in range(B)
    ]
    np.testing.assert_allclose(float(loss), np.mean(expected), rtol=1e-12)


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("routing", core.ROUTINGS)
def test_multinomial_sample_tracks_the_noisy_set_on_the_oracle_schedule(schedule, routing):
    n_steps = 5
    target, x_init = _puzzle(3)
    calls = []
    denoiser = _peaked(target[0], jnp.linspace(0.5, 3.0, L), calls)
    target = jnp.broadcast_to(target[0], (B, L))
    x_init = jnp.where(x_init == MASK, MASK, target)
    x, trace = sample(
        jax.random.key(1),
        denoiser,
        x_init,
        n_classes=K,
        n_steps=n_steps,
        noise="multinomial",
        routing=routing,
        schedule=schedule,
        return_trace=True,
    )
    assert len(calls) == n_steps and all(int(x_t.max()) < K for x_t in calls)  # never a mask
    pinned = np.asarray(x_init != MASK)
    previous = ~pinned
    for step in trace:
        noisy_step = np.asarray(step["noisy"])
        assert (np.asarray(step["x"])[pinned] == np.asarray(x_init)[pinned]).all() and not (noisy_step & pinned).any()
        assert not (noisy_step & ~previous).any()  # without renoise a decoded cell stays decoded
        previous = noisy_step
    n_free = (~pinned).sum(-1)
    for b in range(B):
        assert [int(step["n_noisy"][b]) for step in trace] == noisy_counts(int(n_free[b]), n_steps, schedule)
    np.testing.assert_array_equal(x, target)  # argmax decoding of a sure denoiser


def test_multinomial_guidance_tilts_only_the_noisy_positions():
    x_init = jnp.full((2, L), MASK).at[:, :2].set(1)
    x = sample(
        jax.random.key(0),
        _uniform_denoiser,
        x_init,
        n_classes=K,
        n_steps=3,
        noise="multinomial",
        guidance=GUIDANCES["reinmax"],
    )
    assert (x[:, :2] == 1).all() and bool((x[:, 2:] == 0).all())


@pytest.mark.statistical
@pytest.mark.parametrize("noise", core.NOISES)
def test_ancestral_step_follows_the_d3pm_posterior(noise):
    n, t, s = 20_000, 0.75, 0.5
    probs = jnp.array([0.1, 0.5, 0.3, 0.1])
    # one step of a 4-step sampler from t = 0.75, through the public function: start at t = 1
    # and read the second step's transition from the trace (the first step makes x_t)
    x, trace = ancestral_sample(
        jax.random.key(6),
        lambda x_t, tt: jnp.broadcast_to(jnp.log(probs), x_t.shape + (K,)),
        jnp.full((n, 1), MASK),
        n_classes=K,
        n_steps=4,
        noise=noise,
        return_trace=True,
    )
    x_t, x_s = np.asarray(trace[0]["x"][:, 0]), np.asarray(trace[1]["x"][:, 0])
    assert trace[0]["t"] == t and trace[1]["t"] == s and int(x.max()) < K
    expected = core.posterior(x_t, np.broadcast_to(np.asarray(probs), (n, K)), t, s, noise)
    for start in np.unique(x_t):  # chi-square per starting token at alpha = 1e-3 / 5 (Bonferroni)
        rows = x_t == start
        observed = np.bincount(x_s[rows], minlength=K + 1)
        exp = expected[rows].sum(0)
        keep = exp > 0
        assert observed[~keep].sum() == 0
        if keep.sum() > 1:
            assert stats.chisquare(observed[keep], exp[keep] * observed.sum() / exp[keep].sum()).pvalue > 2e-4


@pytest.mark.parametrize("noise", core.NOISES)
def test_ancestral_sample_keeps_pinned_and_leaves_no_mask(noise):
    x_init = jnp.full((3, L), MASK).at[:, :5].set(2)
    x = ancestral_sample(jax.random.key(0), _uniform_denoiser, x_init, n_classes=K, n_steps=3, noise=noise)
    assert (x[:, :5] == 2).all() and int(x.max()) < K
    for bad in (
        lambda: ancestral_sample(
            jax.random.key(0), _uniform_denoiser, x_init, n_classes=K, n_steps=3, noise="gaussian"
        ),
        lambda: sample(jax.random.key(0), _uniform_denoiser, x_init, n_classes=K, n_steps=3, noise="gaussian"),
    ):
        with pytest.raises(ValueError, match="noise"):
            bad()


@pytest.mark.parametrize("renoise", [False, True])
@pytest.mark.parametrize("schedule", SCHEDULES)
def test_same_multinomial_trace_as_torch(renoise, schedule):
    # Fixed logits, adaptive routing, argmax decoding: the noisy set after every step and the
    # tokens outside it are the same in both backends; the noise tokens inside it come from each
    # backend's own generator (and do not reach a denoiser that ignores its input).
    n_steps = 6
    _, x_init = _puzzle(11)
    logits = _logits(16)
    options = dict(
        n_classes=K, n_steps=n_steps, noise="multinomial", schedule=schedule, renoise=renoise, return_trace=True
    )
    x_jax, trace_jax = sample(jax.random.key(3), _fixed_denoiser(logits), x_init, **options)
    t_logits = torch.from_numpy(np.array(logits))
    x_torch, trace_torch = torch_diffusion.sample(
        lambda x_t, t: t_logits,
        torch.from_numpy(np.array(x_init)),
        generator=torch.Generator().manual_seed(3),
        **options,
    )
    np.testing.assert_array_equal(np.asarray(x_jax), x_torch.numpy())
    for step_jax, step_torch in zip(trace_jax, trace_torch, strict=True):
        noisy = np.asarray(step_jax["noisy"])
        np.testing.assert_array_equal(noisy, step_torch["noisy"].numpy())
        np.testing.assert_array_equal(np.asarray(step_jax["x"])[~noisy], step_torch["x"].numpy()[~noisy])
    n_free = np.asarray((x_init == MASK).sum(-1))
    for b in range(B):
        assert [int(step["n_noisy"][b]) for step in trace_jax] == noisy_counts(int(n_free[b]), n_steps, schedule)
