"""``pyro_ext.diffusion``: RDM's masked forward process and loss, the route-and-denoise
sampler (schedule, pinned positions, one denoiser call per step without gradient), and reward
guidance (tilt, and its identity with SVI on a tilted model)."""

import math

import numpy as np
import pyro
import pytest
import torch
from scipy import stats

from pyro_ext import REDGE, OneHotCategorical
from pyro_ext.diffusion import Guidance, MaskedDiffusion, MultinomialDiffusion, ancestral_sample, sample, tilt
from relaxed_dists import diffusion as core

# These tests use small t_1 / n_steps on purpose, to exercise shapes, gradients and mappings;
# the REDGE family's SampleLawWarning (issue 15, D1) is tested in test_sample_law.py.
pytestmark = pytest.mark.filterwarnings("ignore::relaxed_dists.sample_law.SampleLawWarning")

K, L = 4, 12


class Peaked:
    """A denoiser that is sure of ``target`` (``[..., L]`` tokens) with a per-position
    confidence ``margin`` (``[L]``); counts its calls and checks it is called without grad."""

    def __init__(self, target: torch.Tensor, margin: torch.Tensor) -> None:
        self.logits = torch.nn.functional.one_hot(target, K).double() * margin.unsqueeze(-1)
        self.calls = []

    def __call__(self, x_t, t):
        self.calls.append((x_t.clone(), t.clone(), torch.is_grad_enabled()))
        return self.logits.expand(*x_t.shape, K)


def _uniform_denoiser(x_t, t):
    return torch.zeros(*x_t.shape, K, dtype=torch.float64)


# --- forward process and loss ---------------------------------------------------------------


@pytest.mark.statistical
def test_q_sample_masks_at_rate_t_and_never_pinned():
    n, t = 20_000, 0.3
    gen = torch.Generator().manual_seed(0)
    x0 = torch.randint(0, K, (n, L), generator=gen)
    pinned = torch.zeros(n, L, dtype=torch.bool)
    pinned[:, :3] = True
    x_t = MaskedDiffusion(K).q_sample(x0, torch.full((n,), t), pinned=pinned, generator=gen)
    masked = x_t == K
    assert not masked[:, :3].any()
    assert torch.equal(x_t[~masked], x0[~masked])
    count = int(masked[:, 3:].sum())
    # two-sided binomial test at alpha = 1e-3 (the stated false-failure rate)
    assert stats.binomtest(count, n * (L - 3), t).pvalue > 1e-3


@pytest.mark.parametrize("weight", core.LOSS_WEIGHTS)
def test_loss_equals_hand_computation(weight):
    diffusion = MaskedDiffusion(K, weight=weight)
    x0 = torch.tensor([[0, 1, 2, 3], [3, 3, 1, 0]])
    t = torch.tensor([0.25, 0.75], dtype=torch.float64)
    gen_state = torch.Generator().manual_seed(3)
    x_t = diffusion.q_sample(x0, t, generator=torch.Generator().manual_seed(3))
    logits = torch.randn(2, 4, K, dtype=torch.float64, generator=gen_state)
    loss = diffusion.loss(lambda x, s: logits, x0, t=t, generator=torch.Generator().manual_seed(3))
    log_p = logits.log_softmax(-1).numpy()
    expected = []
    for b in range(2):
        nll = sum(-log_p[b, n, x0[b, n]] for n in range(4) if x_t[b, n] == K)
        expected.append(core.loss_weight(float(t[b]), weight) * nll / 4)
    assert loss.item() == pytest.approx(np.mean(expected), rel=1e-12)


def test_loss_trains_a_denoiser_and_ignores_pinned():
    diffusion = MaskedDiffusion(K, weight="reciprocal")
    x0 = torch.randint(0, K, (64, L), generator=torch.Generator().manual_seed(0))
    perfect = lambda x_t, t: 30.0 * torch.nn.functional.one_hot(x0, K).double()  # noqa: E731
    assert diffusion.loss(perfect, x0) < 1e-10
    pinned = torch.ones_like(x0, dtype=torch.bool)
    assert diffusion.loss(_uniform_denoiser, x0, pinned=pinned) == 0.0  # nothing is ever masked
    weight = torch.zeros(K, requires_grad=True)
    diffusion.loss(lambda x_t, t: weight.expand(*x_t.shape, K), x0).backward()
    assert weight.grad.abs().sum() > 0


# --- the sampler ----------------------------------------------------------------------------


@pytest.mark.parametrize("schedule", core.SCHEDULES)
@pytest.mark.parametrize("routing", core.ROUTINGS)
@pytest.mark.parametrize("renoise", [False, True])
def test_sample_follows_schedule_keeps_pinned_and_calls_once_per_step(schedule, routing, renoise):
    n_steps = 5
    gen = torch.Generator().manual_seed(1)
    target = torch.randint(0, K, (3, L), generator=gen)
    denoiser = Peaked(target, torch.linspace(0.5, 3.0, L, dtype=torch.float64))
    x_init = torch.full((3, L), K)
    x_init[1, :4] = target[1, :4]  # row 1: 4 clues, row 2: all pinned but two
    x_init[2, 2:] = target[2, 2:]
    x, trace = sample(
        denoiser,
        x_init,
        n_classes=K,
        n_steps=n_steps,
        routing=routing,
        schedule=schedule,
        renoise=renoise,
        decode="sample",
        generator=gen,
        return_trace=True,
    )
    assert len(denoiser.calls) == n_steps and not any(grad for *_, grad in denoiser.calls)
    assert [c[1][0].item() for c in denoiser.calls] == pytest.approx(core.step_times(n_steps)[:-1])
    assert not (x == K).any()
    pinned = x_init != K
    assert torch.equal(x[pinned], x_init[pinned])
    for step in trace:
        assert torch.equal(step["x"][pinned], x_init[pinned])
    for row, n_free in enumerate([L, L - 4, 2]):
        counts = [int(step["n_noisy"][row]) for step in trace]
        assert counts == core.noisy_counts(n_free, n_steps, schedule)


def test_adaptive_routing_denoises_the_most_confident_positions_first():
    margin = torch.tensor([5.0, 1.0, 3.0, 0.5, 4.0, 2.0], dtype=torch.float64)
    target = torch.tensor([[1, 2, 3, 0, 1, 2]])
    denoiser = Peaked(target, margin)
    _, trace = sample(denoiser, torch.full((1, 6), K), n_classes=K, n_steps=6, return_trace=True)
    order = [
        int(((prev != K) ^ (step["x"] != K)).nonzero()[0, 1])
        for prev, step in zip([torch.full((1, 6), K)] + [s["x"] for s in trace[:-1]], trace)
    ]
    assert order == torch.argsort(margin, descending=True).tolist()
    assert torch.equal(trace[-1]["x"], target)


@pytest.mark.statistical
def test_random_routing_picks_positions_uniformly():
    n = 4000
    denoiser = Peaked(torch.zeros(1, L, dtype=torch.long), torch.linspace(0.5, 3.0, L, dtype=torch.float64))
    _, trace = sample(
        denoiser,
        torch.full((n, L), K),
        n_classes=K,
        n_steps=L,
        routing="random",
        generator=torch.Generator().manual_seed(2),
        return_trace=True,
    )
    first = (trace[0]["x"] != K).float().argmax(-1)  # the one position decoded at step 1
    counts = torch.bincount(first, minlength=L).numpy()
    # chi-square goodness of fit to uniform at alpha = 1e-3 (the stated false-failure rate)
    assert stats.chisquare(counts).pvalue > 1e-3


def test_denoiser_gets_no_gradient_under_guidance():
    net = torch.nn.Linear(1, K, dtype=torch.float64)
    calls = []

    def denoiser(x_t, t):
        calls.append(torch.is_grad_enabled())
        return net(x_t.unsqueeze(-1).double())

    reward = lambda x: x[..., 0].sum(-1)  # noqa: E731
    x = sample(denoiser, torch.full((2, L), K), n_classes=K, n_steps=4, guidance=Guidance(reward, "redge", n_opt=3))
    assert calls == [False] * 4
    assert all(p.grad is None for p in net.parameters())
    assert not (x == K).any()


# --- guidance -------------------------------------------------------------------------------


def _count_zeros(x):
    return x[..., 0].sum(-1)


@pytest.mark.parametrize("estimator", ["st", "gumbel", "reinmax", "redge", "redge_cov", "reindge"])
def test_tilt_moves_toward_the_reward_and_keeps_fixed_positions(estimator):
    torch.manual_seed(0)
    prior = torch.randn(3, L, K, dtype=torch.float64)
    x_t = torch.full((3, L), K)
    x_t[:, :4] = 2
    phi = tilt(prior, Guidance(_count_zeros, estimator, n_opt=30, lr=0.2, kl_weight=0.1), x_t=x_t)
    assert torch.equal(phi[:, :4], prior.log_softmax(-1)[:, :4])
    free_probs = phi[:, 4:].softmax(-1)[..., 0]
    assert (free_probs > prior[:, 4:].softmax(-1)[..., 0]).all()


def test_tilt_without_steps_or_prior():
    prior = torch.randn(2, L, K, dtype=torch.float64)
    assert torch.equal(tilt(prior, Guidance(_count_zeros, n_opt=0)), prior.log_softmax(-1))
    phi = tilt(prior, Guidance(_count_zeros, n_opt=0, use_prior=False))
    assert torch.allclose(phi, torch.full_like(phi, -math.log(K)))
    x_t = torch.full((2, L), K)
    x_t[:, 0] = 1  # a fixed position keeps the denoiser's log-probabilities, prior or not
    phi = tilt(prior, Guidance(_count_zeros, n_opt=0, use_prior=False), x_t=x_t)
    assert torch.equal(phi[:, 0], prior.log_softmax(-1)[:, 0])
    assert torch.allclose(phi[:, 1:], torch.full_like(phi[:, 1:], -math.log(K)))


@pytest.mark.parametrize("kl_weight", [0.5, 2.0])
def test_guidance_objective_is_the_negative_elbo_of_the_tilted_model(kl_weight):
    """``J(phi) / kappa`` and ``TraceMeanField_ELBO`` of ``x ~ Cat(l)``, ``factor(r(x) / kappa)``
    with the guide ``x ~ REDGE(phi)`` have the same value and gradient on the same noise."""
    torch.manual_seed(0)
    batch, length = 3, 5
    prior = torch.randn(batch, length, K, dtype=torch.float64)
    phi = torch.randn(batch, length, K, dtype=torch.float64)
    weights = torch.randn(length, K, dtype=torch.float64)
    reward = lambda x: (x * weights).sum((-1, -2)) - (x.sum(-2) - 1.25).pow(2).sum(-1)  # noqa: E731
    guidance = Guidance(reward, "redge", kl_weight=kl_weight, normalize=False)  # the raw reward: exactly the ELBO

    def model():
        with pyro.plate("batch", batch, dim=-2), pyro.plate("pos", length, dim=-1):
            x = pyro.sample("x", OneHotCategorical(logits=prior))
        with pyro.plate("batch_", batch, dim=-1):
            pyro.factor("reward", reward(x) / kl_weight)

    def guide(phi):
        with pyro.plate("batch", batch, dim=-2), pyro.plate("pos", length, dim=-1):
            pyro.sample("x", REDGE(logits=phi, n_steps=3, t_1=0.5))

    phi_svi = phi.clone().requires_grad_(True)
    torch.manual_seed(5)
    elbo = pyro.infer.TraceMeanField_ELBO().differentiable_loss(model, lambda: guide(phi_svi))
    elbo.backward()
    phi_tilt = phi.clone().requires_grad_(True)
    torch.manual_seed(5)
    objective = guidance.objective(phi_tilt, prior.log_softmax(-1)).sum() / kl_weight
    objective.backward()
    assert objective.item() == pytest.approx(elbo.item(), rel=1e-12)
    torch.testing.assert_close(phi_tilt.grad, phi_svi.grad, rtol=1e-12, atol=1e-12)


# --- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"routing": "greedy"}, ValueError, "routing"),
        ({"schedule": "cubic"}, ValueError, "schedule"),
        ({"decode": "beam"}, ValueError, "decode"),
        ({"n_steps": 0}, ValueError, "n_steps"),
        ({"n_steps": 2.0}, TypeError, "n_steps"),
        ({"n_classes": 3}, ValueError, "x_init"),
        ({"routing_noise": -1.0}, ValueError, "routing_noise"),
        ({"routing_noise": math.nan}, ValueError, "routing_noise"),
        ({"noise": "gaussian"}, ValueError, "noise"),
    ],
)
def test_sample_rejects_bad_arguments(kwargs, error, match):
    args = {"n_classes": K, "n_steps": 3, **kwargs}
    with pytest.raises(error, match=match):
        sample(_uniform_denoiser, torch.full((2, L), K), **args)


def test_bad_inputs_name_the_culprit():
    with pytest.raises(ValueError, match=r"denoiser\(x_t, t\)\.shape"):
        sample(lambda x, t: torch.zeros(*x.shape, K + 1), torch.full((2, L), K), n_classes=K, n_steps=2)
    with pytest.raises(TypeError, match="x_init.dtype"):
        sample(_uniform_denoiser, torch.full((2, L), float(K)), n_classes=K, n_steps=2)
    with pytest.raises(ValueError, match="x0"):
        MaskedDiffusion(K).loss(_uniform_denoiser, torch.full((2, L), K))
    with pytest.raises(ValueError, match="weight"):
        MaskedDiffusion(K, weight="elbo")
    with pytest.raises(ValueError, match="n_classes"):
        MaskedDiffusion(1)
    with pytest.raises(ValueError, match="concrete"):
        Guidance(_count_zeros, "concrete")
    with pytest.raises(ValueError, match="lr"):
        Guidance(_count_zeros, lr=0.0)
    with pytest.raises(ValueError, match="n_opt"):
        Guidance(_count_zeros, n_opt=-1)
    with pytest.raises(TypeError, match="temperature"):
        Guidance(_count_zeros, "redge", temperature=0.5)


# --- reward normalisation ---------------------------------------------------------------------


def _mixed_sign_reward(scale):
    weights = torch.randn(L, K, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    return lambda x: scale * ((x * weights).sum((-1, -2)) - (x.sum(-2) - 1.25).pow(2).sum(-1))


@pytest.mark.parametrize("estimator", ["redge", "gumbel"])
def test_normalized_objective_and_tilt_are_invariant_to_the_reward_scale(estimator):
    prior = torch.randn(3, L, K, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    phi0 = torch.randn(3, L, K, dtype=torch.float64, generator=torch.Generator().manual_seed(2))

    def grad(scale, normalize):
        phi = phi0.clone().requires_grad_(True)
        torch.manual_seed(7)  # the same estimator noise for every scale
        Guidance(_mixed_sign_reward(scale), estimator, normalize=normalize).objective(
            phi, prior.log_softmax(-1)
        ).sum().backward()
        return phi.grad

    for scale in (10.0, 0.1):
        torch.testing.assert_close(grad(scale, True), grad(1.0, True), rtol=1e-10, atol=1e-12)
    assert not torch.allclose(grad(10.0, False), grad(1.0, False))  # the raw reward's gradient does scale
    tilted = []
    for scale in (1.0, 10.0):
        torch.manual_seed(8)
        tilted.append(tilt(prior, Guidance(_mixed_sign_reward(scale), estimator, n_opt=5)))
    torch.testing.assert_close(tilted[1], tilted[0], rtol=1e-9, atol=1e-9)  # float64: the same Adam updates


def test_normalize_rejects_non_booleans():
    for bad in ("yes", 1, None):
        with pytest.raises(TypeError, match="normalize"):
            Guidance(_count_zeros, normalize=bad)


# --- multinomial noise and the vanilla (D3PM) baselines --------------------------------------


@pytest.mark.statistical
def test_multinomial_q_sample_follows_its_marginal_and_never_touches_pinned():
    n, t = 20_000, 0.4
    gen = torch.Generator().manual_seed(5)
    x0 = torch.randint(0, K, (n, L), generator=gen)
    pinned = torch.zeros(n, L, dtype=torch.bool)
    pinned[:, :3] = True
    x_t, noisy = MultinomialDiffusion(K).q_sample(
        x0, torch.full((n,), t), pinned=pinned, generator=gen, return_noisy=True
    )
    assert not noisy[:, :3].any() and torch.equal(x_t[:, :3], x0[:, :3]) and int(x_t.max()) < K
    assert torch.equal(x_t[~noisy], x0[~noisy])
    # the noisy set at rate t, and (x0, x_t) pairs at q(x_t | x_0): alpha = 1e-3 each (the stated rate)
    assert stats.binomtest(int(noisy[:, 3:].sum()), n * (L - 3), t).pvalue > 1e-3
    free_x0, free_xt = x0[:, 3:].reshape(-1).numpy(), x_t[:, 3:].reshape(-1).numpy()
    observed = np.zeros((K, K))
    np.add.at(observed, (free_x0, free_xt), 1)
    expected = core.marginal(np.eye(K), t, "multinomial")[:, :K] * observed.sum(1, keepdims=True)
    chi2 = ((observed - expected) ** 2 / expected).sum()
    assert stats.chi2.sf(chi2, K * (K - 1)) > 1e-3


@pytest.mark.parametrize("weight", core.LOSS_WEIGHTS)
def test_multinomial_loss_equals_hand_computation(weight):
    diffusion = MultinomialDiffusion(K, weight=weight)
    x0 = torch.tensor([[0, 1, 2, 3], [3, 3, 1, 0]])
    t = torch.tensor([0.5, 0.75], dtype=torch.float64)
    x_t, noisy = diffusion.q_sample(x0, t, generator=torch.Generator().manual_seed(4), return_noisy=True)
    assert noisy.any() and (~noisy).any()  # the draw exercises both kinds of position
    logits = torch.randn(2, 4, K, dtype=torch.float64, generator=torch.Generator().manual_seed(9))
    seen = []
    loss = diffusion.loss(lambda x, s: seen.append(x) or logits, x0, t=t, generator=torch.Generator().manual_seed(4))
    assert torch.equal(seen[0], x_t)  # the denoiser saw the same draw
    log_p = logits.log_softmax(-1).numpy()
    expected = [
        core.loss_weight(float(t[b]), weight) * sum(-log_p[b, n, x0[b, n]] for n in range(4) if noisy[b, n]) / 4
        for b in range(2)
    ]
    assert loss.item() == pytest.approx(np.mean(expected), rel=1e-12)


@pytest.mark.parametrize("schedule", core.SCHEDULES)
@pytest.mark.parametrize("routing", core.ROUTINGS)
def test_multinomial_sample_tracks_the_noisy_set_on_the_oracle_schedule(schedule, routing):
    n_steps = 5
    gen = torch.Generator().manual_seed(1)
    target = torch.randint(0, K, (3, L), generator=gen)
    denoiser = Peaked(target, torch.linspace(0.5, 3.0, L, dtype=torch.float64))
    x_init = torch.full((3, L), K)
    x_init[1, :4] = target[1, :4]
    x_init[2, 2:] = target[2, 2:]
    x, trace = sample(
        denoiser,
        x_init,
        n_classes=K,
        n_steps=n_steps,
        noise="multinomial",
        routing=routing,
        schedule=schedule,
        generator=gen,
        return_trace=True,
    )
    assert len(denoiser.calls) == n_steps
    assert all(int(x_t.max()) < K for x_t, *_ in denoiser.calls)  # the denoiser never sees a mask
    pinned = x_init != K
    assert torch.equal(x[pinned], x_init[pinned]) and int(x.max()) < K
    previous = ~pinned
    for step in trace:
        assert torch.equal(step["x"][pinned], x_init[pinned]) and not (step["noisy"] & pinned).any()
        assert not (step["noisy"] & ~previous).any()  # without renoise a decoded cell stays decoded
        previous = step["noisy"]
    for row, n_free in enumerate([L, L - 4, 2]):
        assert [int(step["n_noisy"][row]) for step in trace] == core.noisy_counts(n_free, n_steps, schedule)
    assert torch.equal(x, target)  # argmax decoding of a sure denoiser


def test_multinomial_guidance_tilts_only_the_noisy_positions():
    reward = lambda x: x[..., 0].sum(-1)  # noqa: E731  (count of token 0)
    x_init = torch.full((2, L), K)
    x_init[:, :2] = 1
    torch.manual_seed(0)
    x = sample(
        _uniform_denoiser,
        x_init,
        n_classes=K,
        n_steps=3,
        noise="multinomial",
        guidance=Guidance(reward, "reinmax", n_opt=20),
        generator=torch.Generator().manual_seed(0),
    )
    assert torch.equal(x[:, :2], x_init[:, :2]) and bool((x[:, 2:] == 0).all())


@pytest.mark.statistical
@pytest.mark.parametrize("noise", core.NOISES)
def test_ancestral_step_follows_the_d3pm_posterior(noise):
    n, t, s = 20_000, 0.75, 0.5
    probs = torch.tensor([0.1, 0.5, 0.3, 0.1], dtype=torch.float64)
    gen = torch.Generator().manual_seed(6)
    # one step of a 4-step sampler from t = 0.75, through the public function: start at t = 1
    # and read the second step's transition from the trace (the first step makes x_t)
    x, trace = ancestral_sample(
        lambda x_t, tt: probs.log().expand(*x_t.shape, K),
        torch.full((n, 1), K),
        n_classes=K,
        n_steps=4,
        noise=noise,
        generator=gen,
        return_trace=True,
    )
    x_t, x_s = trace[0]["x"][:, 0].numpy(), trace[1]["x"][:, 0].numpy()
    assert trace[0]["t"] == t and trace[1]["t"] == s and int(x.max()) < K
    expected = core.posterior(x_t, np.broadcast_to(probs.numpy(), (n, K)), t, s, noise)
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
    x_init = torch.full((3, L), K)
    x_init[:, :5] = 2
    x = ancestral_sample(
        _uniform_denoiser, x_init, n_classes=K, n_steps=3, noise=noise, generator=torch.Generator().manual_seed(0)
    )
    assert torch.equal(x[:, :5], x_init[:, :5]) and int(x.max()) < K
    with pytest.raises(ValueError, match="noise"):
        ancestral_sample(_uniform_denoiser, x_init, n_classes=K, n_steps=3, noise="gaussian")


def test_core_posterior_is_normalised_and_ends_at_the_denoiser():
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(K), size=6)
    for noise in core.NOISES:
        x_t = rng.integers(0, K + (noise == "absorbing"), size=6)
        post = core.posterior(x_t, p, 0.6, 0.2, noise)
        assert np.allclose(post.sum(-1), 1.0)
        assert np.allclose(core.marginal(p, 0.3, noise).sum(-1), 1.0)
    masked = np.full(6, K)
    assert np.allclose(core.posterior(masked, p, 0.5, 0.0, "absorbing")[:, :K], p)  # s = 0: all unmasked, to p
    with pytest.raises(ValueError, match="noise"):
        core.posterior(masked, p, 0.5, 0.0, "gaussian")
    with pytest.raises(ValueError, match="mask"):
        core.posterior(masked, p, 0.5, 0.0, "multinomial")
