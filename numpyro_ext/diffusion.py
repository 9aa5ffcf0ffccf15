r"""Guided discrete diffusion in JAX: RDM's absorbing and multinomial diffusion (training loss and
route-and-denoise sampler), vanilla ancestral sampling as the baseline, and reward guidance of any denoiser through the relaxed estimators.

A *denoiser* is any callable ``denoiser(x_t, t) -> logits``: ``x_t`` an integer array of
tokens in ``0 .. n_classes`` (``n_classes`` is the mask token), ``t`` the diffusion time in
``(0, 1]`` per sequence, ``logits`` over the ``n_classes`` clean tokens. It may be a jitted
function, a Flax/Equinox module bound to its parameters or a plain function; the sampler calls
it once per step, wraps its output in :func:`jax.lax.stop_gradient`, and never differentiates it.

- :class:`MaskedDiffusion`: the absorbing forward process ``q_sample`` (each free token is
  masked with probability ``t``) and RDM's reweighted cross-entropy ``loss``;
  :class:`MultinomialDiffusion`: the same with uniform noise (a noisy token is drawn uniformly
  from the ``n_classes`` tokens, so ``x_t`` does not show which positions are noisy).
- :func:`ancestral_sample`: vanilla (D3PM-style) ancestral sampling, the baseline.
- :func:`sample`: ``n_steps`` denoiser calls from ``t = 1`` to ``t = 0``. Each step proposes
  a clean token for every noisy position, then *routes*: the ``n_decode`` positions with the
  highest scores are denoised, the rest stay (or, with ``renoise``, become) masked, where
  ``n_decode`` makes ``floor(n_free * fraction(t_next))`` positions noisy after the step
  (``relaxed_dists.diffusion``; the last step denoises everything). Scores: the proposal's
  log-probability (RDM's adaptive top-k; plus Gumbel noise times ``routing_noise``), or
  uniform noise (random-order unmasking).
- :class:`Guidance` and :func:`tilt`: reward guidance (Gourevitch et al. 2026, section on
  guidance). At each step the denoiser's logits ``l`` are replaced by free logits ``phi``
  that minimise, by ``n_opt`` Adam steps from ``phi = l``,

  .. math:: J(\phi) = \mathbb{E}_{\hat x \sim q_\phi}\big[-r(\hat x)\big]
            + \kappa\, \mathrm{KL}\big(\mathrm{Cat}(\phi)\,\|\,\mathrm{Cat}(l)\big),

  ``x_hat`` a hard sample of one of the library's estimator classes (REDGE, ReinMax,
  straight-through Gumbel, ...) at the free positions, and the fixed tokens elsewhere.
  ``J / kappa`` is the negative ELBO of the model ``x ~ OneHotCategorical(l)``,
  ``factor(r(x) / kappa)`` under the guide ``x ~ Estimator(phi)`` with the analytic KL
  (``TraceMeanField_ELBO``): guidance is SVI on a tilted posterior, through the same classes
  and ``kl_divergence`` registrations as :func:`numpyro_ext.relax.relax`.

Mirrors ``pyro_ext/diffusion.py`` name for name. The lines that differ: an explicit PRNG
``key`` leads every function that draws noise (``q_sample``, ``loss``, ``objective``,
``tilt``, ``sample``, ``ancestral_sample``), ``stop_gradient`` stands for ``no_grad``/``detach``, the inner loop of
:func:`tilt` is ``optax.adam`` in a :func:`jax.lax.scan` under :func:`jax.jit` (with the
:class:`Guidance` a static argument), and one routing step is a jitted function of fixed shapes.

>>> import jax, jax.numpy as jnp
>>> def denoiser(x_t, t):  # a toy: prefers token 1 everywhere
...     return jnp.broadcast_to(jnp.array([0.0, 2.0, 0.0]), x_t.shape + (3,))
>>> x = sample(jax.random.key(0), denoiser, jnp.full((4, 6), 3), n_classes=3, n_steps=3)
>>> x.shape, bool((x == 1).all())
((4, 6), True)

References:
    L. Zheng, J. Yuan, L. Yu, L. Kong. A Reparameterized Discrete Diffusion Model for Text
    Generation. 2023, arXiv 2302.05737.
    S. Gourevitch, A. Durmus, E. Moulines, J. Olsson, Y. Janati. Categorical
    Reparameterization with Denoising Diffusion models. 2026, arXiv 2601.00781.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax
from numpyro.distributions import kl_divergence

from relaxed_dists.checks import check_event_size, out_of_range
from relaxed_dists.diffusion import (
    DECODINGS,
    LOSS_WEIGHTS,
    NOISES,
    ROUTINGS,
    SCHEDULES,
    check_choice,
    check_guidance_args,
    check_n_diffusion_steps,
    check_normalize,
    check_routing_noise,
    guidance_hyper,
    multinomial_rates,
    noisy_count,
    step_times,
    unmask_probability,
)

from . import kl as _kl  # noqa: F401  (registers the estimator classes' KL)
from ._ops import sample_gumbel
from .distributions import OneHotCategorical
from .relax import ONE_HOT_CLASSES

__all__ = ["MaskedDiffusion", "MultinomialDiffusion", "Guidance", "tilt", "sample", "ancestral_sample"]

Denoiser = Callable[[jax.Array, jax.Array], jax.Array]


def _check_tokens(name: str, x: jax.Array, high: int) -> None:
    """Integer tokens in ``[0, high]``; the message names the argument and the range. The
    dtype is checked always, the values only on a concrete array (a tracer under ``jit``
    has none)."""
    if not jnp.issubdtype(x.dtype, jnp.integer):
        raise TypeError(out_of_range(f"{name}.dtype", x.dtype, "an integer dtype (token ids)"))
    if not isinstance(x, jax.core.Tracer) and x.size and (int(x.min()) < 0 or int(x.max()) > high):
        raise ValueError(out_of_range(name, f"values in [{int(x.min())}, {int(x.max())}]", f"token ids in [0, {high}]"))


class MaskedDiffusion:
    r"""Absorbing-state (masked) discrete diffusion over ``n_classes`` tokens, RDM style.

    The mask token is ``mask_id == n_classes``. At time ``t`` each free (non-pinned) token of
    ``x0`` is masked independently with probability ``t``; RDM's training loss is the
    cross-entropy of the clean tokens at the masked positions, weighted by ``lambda(t)``
    (``weight``: ``"linear"`` ``1 - t``, RDM's default; ``"reciprocal"`` ``1 / t``, the ELBO
    weight of this schedule; ``"none"``), per free position and averaged over sequences:

    .. math:: \mathcal{L} = \mathbb{E}_{t \sim U(0, 1],\, x_t \sim q(\cdot \mid x_0)}
              \Big[\frac{\lambda(t)}{n_\text{free}} \sum_{n:\, x_{t,n} = \text{mask}}
              -\log p_\theta(x_{0,n} \mid x_t, t)\Big]

    Both methods are pure functions of their arguments and jit as part of a training step
    (the denoiser closes over the parameters); ``x0``'s values are checked only outside ``jit``.

    Shapes:
        ``x0``: ``batch_shape + (L,)`` integer tokens in ``[0, n_classes)``; ``t``:
        ``batch_shape``; ``pinned``: ``batch_shape + (L,)`` booleans (never masked, not in
        the loss); the denoiser returns ``batch_shape + (L, n_classes)`` logits.

    >>> import jax, jax.numpy as jnp
    >>> diffusion = MaskedDiffusion(4)
    >>> x0 = jax.random.randint(jax.random.key(0), (2, 5), 0, 4)
    >>> diffusion.q_sample(jax.random.key(1), x0, jnp.ones(2)).tolist()  # t = 1: everything masked
    [[4, 4, 4, 4, 4], [4, 4, 4, 4, 4]]
    >>> diffusion.loss(jax.random.key(2), lambda x_t, t: jnp.zeros(x_t.shape + (4,)), x0).shape
    ()
    """

    noise = "absorbing"

    def __init__(self, n_classes: int, *, weight: str = "linear") -> None:
        check_event_size(int(n_classes), "n_classes")
        self.n_classes = int(n_classes)
        self.mask_id = self.n_classes
        self.weight = check_choice("weight", weight, LOSS_WEIGHTS)

    def loss_weight(self, t: jax.Array) -> jax.Array:
        """``lambda(t)`` (mirrors :func:`relaxed_dists.diffusion.loss_weight`)."""
        if self.weight == "linear":
            return 1.0 - t
        if self.weight == "reciprocal":
            return 1.0 / t
        return jnp.ones_like(t)

    def q_sample(self, key: jax.Array, x0: jax.Array, t, *, pinned=None) -> jax.Array:
        """``x_t``: each free token of ``x0`` replaced by ``mask_id`` with probability ``t``."""
        u = jax.random.uniform(key, x0.shape)
        masked = u < jnp.asarray(t)[..., None]
        if pinned is not None:
            masked = masked & ~pinned
        return jnp.where(masked, self.mask_id, x0)

    def loss(self, key: jax.Array, denoiser: Denoiser, x0: jax.Array, *, t=None, pinned=None) -> jax.Array:
        """RDM's reweighted cross-entropy (a scalar) on the noisy positions; ``t ~ U(0, 1]`` per
        sequence unless given."""
        _check_tokens("x0", x0, self.n_classes - 1)
        key_t, key_mask = jax.random.split(key)
        if t is None:
            t = 1.0 - jax.random.uniform(key_t, x0.shape[:-1])
        x_t, noisy = self._noised(key_mask, x0, t, pinned)
        log_probs = jax.nn.log_softmax(denoiser(x_t, t), axis=-1)
        nll = -jnp.take_along_axis(log_probs, x0[..., None], axis=-1)[..., 0]
        n_free = x0.shape[-1] if pinned is None else jnp.maximum((~pinned).sum(-1), 1)
        per_sequence = jnp.where(noisy, nll, 0.0).sum(-1) / n_free
        return (self.loss_weight(t) * per_sequence).mean()

    def _noised(self, key, x0, t, pinned):
        """``(x_t, noisy)``: the forward draw and which positions it made noisy."""
        x_t = self.q_sample(key, x0, t, pinned=pinned)
        return x_t, x_t == self.mask_id


class MultinomialDiffusion(MaskedDiffusion):
    r"""Multinomial (uniform) discrete diffusion over ``n_classes`` tokens, RDM style.

    At time ``t`` each free token of ``x0`` becomes noisy independently with probability ``t``,
    and a noisy token is drawn uniformly from the ``n_classes`` tokens, so
    ``q(x_t | x_0) = Cat((1 - t) x_0 + t / K)`` (``relaxed_dists.diffusion.marginal``). There is
    no mask token: ``x_t`` does not show which tokens are noisy (a noisy token equals ``x_0``
    with probability ``1 / K``). RDM's loss is the same reweighted cross-entropy as
    :class:`MaskedDiffusion`'s, on the noisy positions, which the forward process knows:

    .. math:: \mathcal{L} = \mathbb{E}_{t,\, b,\, x_t}
              \Big[\frac{\lambda(t)}{n_\text{free}} \sum_{n:\, b_n = 1}
              -\log p_\theta(x_{0,n} \mid x_t, t)\Big],\qquad b_n \sim \mathrm{Bernoulli}(t).

    A sibling class rather than a ``noise=`` flag on :class:`MaskedDiffusion`: "masked" names
    the absorbing process, and the two differ in what ``q_sample`` can return (the noisy set).
    Sample from a model trained with it by ``sample(..., noise="multinomial")``.

    Shapes: as :class:`MaskedDiffusion`; the denoiser sees tokens in ``[0, n_classes)`` only.

    >>> import jax, jax.numpy as jnp
    >>> diffusion = MultinomialDiffusion(4)
    >>> x0 = jax.random.randint(jax.random.key(0), (2, 5), 0, 4)
    >>> x_t, noisy = diffusion.q_sample(jax.random.key(1), x0, jnp.ones(2), return_noisy=True)
    >>> bool(noisy.all()), bool((x_t < 4).all())  # t = 1: every token is noise, none is a mask
    (True, True)
    """

    noise = "multinomial"

    def q_sample(self, key: jax.Array, x0: jax.Array, t, *, pinned=None, return_noisy: bool = False):
        """``x_t``: each free token of ``x0`` replaced, with probability ``t``, by a uniformly drawn
        token; with ``return_noisy``, ``(x_t, noisy)``, ``noisy`` the booleans of the replaced
        positions. ``key`` splits into the noisy-set key and the token key."""
        key_noisy, key_tokens = jax.random.split(key)
        noisy = jax.random.uniform(key_noisy, x0.shape) < jnp.asarray(t)[..., None]
        if pinned is not None:
            noisy = noisy & ~pinned
        tokens = jax.random.randint(key_tokens, x0.shape, 0, self.n_classes, dtype=x0.dtype)
        x_t = jnp.where(noisy, tokens, x0)
        return (x_t, noisy) if return_noisy else x_t

    def _noised(self, key, x0, t, pinned):
        return self.q_sample(key, x0, t, pinned=pinned, return_noisy=True)


class Guidance:
    r"""A reward and how to tilt a denoiser's logits toward it (see the module docstring).

    Args:
        reward: ``reward(x) -> r``, differentiable in the one-hot ``x`` of shape
            ``batch_shape + (L, K)``, returning ``batch_shape`` (extra leading sample
            dimensions pass through); traceable by JAX (it runs inside :func:`tilt`'s ``jit``).
        estimator: a name from :data:`relaxed_dists.registry.ESTIMATORS` other than
            ``"concrete"`` (the reward sees hard one-hots), or a distribution class (or any
            callable) taking ``logits=`` whose ``rsample(key, sample_shape)`` is one-hot.
        n_opt: Adam steps per diffusion step (0: no tilt). lr: Adam's step size.
        kl_weight: ``kappa``, the weight of ``KL(Cat(phi) || Cat(l))``.
        n_samples: estimator samples per Adam step (the reward is averaged over them).
        use_prior: ``False`` tilts uniform logits instead of the denoiser's (guidance
            without the prior: the reward and the KL to uniform alone).
        normalize: divide each sequence's reward, at every Adam step, by its detached mean
            absolute value over the ``n_samples`` draws (1 where that is 0), so that
            ``kl_weight`` and ``lr`` do not depend on the reward's scale: ``r`` and ``c r``
            (any ``c > 0``) give the same updates. ``False``: the raw reward, and ``J / kappa``
            is exactly the negative ELBO of the module docstring. A Python ``bool``.
        **hyper: the estimator's hyperparameters (``n_steps``, ``t_1``, ``temperature``).

    Defaults: REDGE ``n_steps=3, t_1=0.5`` (the REDGE authors' guidance code); ``n_opt=30,
    lr=0.3, kl_weight=0.003`` with ``normalize=True``: a sweep over ``n_opt`` in {10, 30},
    ``lr`` in {0.1, 0.3}, ``kl_weight`` in {0.003, ..., 0.1} on the 4x4 Sudoku demo's
    validation puzzles picks ``n_opt=30, lr=0.3``, where every ``kl_weight`` lies within 2
    binomial SE of the best; the smallest is kept because the sweep's argmax (0.03) failed
    the check on 4x4 Latin squares from uniform logits (so that check is not fully held
    out), at reward scales 0.1x, 1x and 10x: ``benchmarks/guidance_defaults.py``,
    ``benchmarks/results/guidance_defaults.md``. The authors' own knobs (``n_opt=10, lr=0.1,
    kl_weight=1``, raw reward) give 0% valid Latin squares there.

    Under ``jit``: a ``Guidance`` is a *static* argument of :func:`tilt` (``jax.jit(...,
    static_argnames="guidance")``), hashed and compared by identity (Python's default), so
    ``tilt`` compiles once per instance and input shape. It is therefore immutable: assigning
    an attribute raises ``AttributeError``; build a new ``Guidance`` to change a setting.
    Its numbers and ``hyper`` are compiled in as constants.
    """

    # set once in __init__ (through __dict__: __setattr__ refuses); declared for type checkers
    reward: Callable[[jax.Array], jax.Array]
    estimator: Callable[..., Any]
    hyper: dict[str, Any]
    n_opt: int
    lr: float
    kl_weight: float
    n_samples: int
    use_prior: bool
    normalize: bool

    def __init__(
        self,
        reward: Callable[[jax.Array], jax.Array],
        estimator="redge",
        *,
        n_opt: int = 30,
        lr: float = 0.3,
        kl_weight: float = 0.003,
        n_samples: int = 1,
        use_prior: bool = True,
        normalize: bool = True,
        **hyper,
    ) -> None:
        check_guidance_args(n_opt, lr, kl_weight, n_samples)
        normalize = check_normalize(normalize)
        if isinstance(estimator, str):
            hyper = guidance_hyper(estimator, hyper)
            estimator = ONE_HOT_CLASSES[estimator]
        elif not callable(estimator):
            raise TypeError(out_of_range("estimator", estimator, "an estimator name or a distribution class"))
        settings = {"reward": reward, "estimator": estimator, "hyper": hyper}
        settings.update(
            n_opt=n_opt, lr=lr, kl_weight=kl_weight, n_samples=n_samples, use_prior=use_prior, normalize=normalize
        )
        self.__dict__.update(settings)  # __setattr__ refuses: a static jit argument must not change

    def __setattr__(self, name: str, value) -> None:
        raise AttributeError(
            f"Guidance is immutable (a static argument of tilt's jit); build a new one instead of setting {name!r}"
        )

    def distribution(self, logits: jax.Array):
        """The guide ``q_phi``: the estimator's distribution at ``logits``."""
        return self.estimator(logits=logits, **self.hyper)

    def objective(self, key: jax.Array, phi: jax.Array, prior_logits: jax.Array, x_t=None) -> jax.Array:
        """``J(phi)`` per sequence (``batch_shape``): ``-E[r(x_hat)] + kl_weight * KL`` (``r``
        divided by its detached scale when ``normalize``), one draw
        of ``n_samples`` estimator samples from ``key``; positions where ``x_t`` holds a token are fixed."""
        free, context = _free_and_context(x_t, phi)
        q = self.distribution(phi)
        x_hat = jnp.where(free[..., None], q.rsample(key, (self.n_samples,)), context)
        kl = jnp.where(free, kl_divergence(q, OneHotCategorical(logits=prior_logits)), 0.0).sum(-1)
        r = self.reward(x_hat)
        r = r / _reward_scale(lax.stop_gradient(r)) if self.normalize else r
        return -r.mean(0) + self.kl_weight * kl


def _reward_scale(r: jax.Array) -> jax.Array:
    """``batch_shape``: the mean of ``|r|`` over the sample dimension ``0``, 1 where it is 0
    (all draws scored 0: nothing to rescale)."""
    scale = jnp.abs(r).mean(0)
    return jnp.where(scale > 0, scale, 1.0)


def _free_and_context(x_t, logits: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Which positions are free (``x_t == K``, or all when ``x_t`` is None), and the one-hot of
    the fixed tokens (zeros at the free positions)."""
    k = logits.shape[-1]
    if x_t is None:
        return jnp.ones(logits.shape[:-1], dtype=bool), jnp.zeros_like(logits)
    free = x_t == k
    return free, jax.nn.one_hot(x_t, k, dtype=logits.dtype)  # the mask id k is out of range: zeros


@functools.partial(jax.jit, static_argnames="guidance")
def tilt(key: jax.Array, prior_logits: jax.Array, guidance: Guidance, *, x_t=None) -> jax.Array:
    r"""Reward-tilted logits ``phi`` (``prior_logits.shape``): ``n_opt`` Adam steps
    (``optax.adam``) on :meth:`Guidance.objective` from ``phi = log_softmax(prior_logits)``,
    the sequences of the batch independently; positions fixed by ``x_t`` keep
    ``log_softmax(prior_logits)`` (also with ``use_prior=False``, so routing still scores them
    by the denoiser). No gradient flows to ``prior_logits`` (``stop_gradient``); Adam step ``i`` draws
    its estimator noise from the ``i``-th of ``jax.random.split(key, n_opt)``.

    Jitted, with ``guidance`` static (see :class:`Guidance`): one compilation per
    ``Guidance`` instance and input shape, the ``n_opt`` steps a :func:`jax.lax.scan`.

    >>> import jax, jax.numpy as jnp
    >>> reward = lambda x: x[..., 0].sum(-1)  # count of token 0
    >>> phi = tilt(jax.random.key(0), jnp.zeros((2, 5, 3)), Guidance(reward, "reinmax", n_opt=20))
    >>> phi.shape, bool((phi.argmax(-1) == 0).all())
    ((2, 5, 3), True)
    """
    log_prior = jax.nn.log_softmax(lax.stop_gradient(prior_logits), axis=-1)
    prior = log_prior if guidance.use_prior else jnp.full_like(log_prior, -math.log(log_prior.shape[-1]))
    optimizer = optax.adam(guidance.lr)
    grad = jax.grad(lambda phi, key: guidance.objective(key, phi, prior, x_t).sum())  # a sum: rows stay independent

    def adam_step(carry, key):
        phi, state = carry
        updates, state = optimizer.update(grad(phi, key), state, phi)
        return (optax.apply_updates(phi, updates), state), None

    (phi, _), _ = lax.scan(adam_step, (prior, optimizer.init(prior)), jax.random.split(key, guidance.n_opt))
    free, _ = _free_and_context(x_t, prior)
    return jnp.where(free[..., None], phi, log_prior)


@functools.partial(jax.jit, static_argnames=("routing", "routing_noise", "renoise", "decode"))
def _route(key, x, noisy, log_probs, pinned, n_noisy_next, *, routing, routing_noise, renoise, decode):
    """One route-and-denoise step: propose a token for every noisy position, then keep the
    ``n_candidates - n_noisy_next`` best-scored candidates decoded and the others noisy.
    Returns ``(tokens, noisy)``: the proposal at the decoded positions (the old token elsewhere)
    and the new noisy set; the caller writes the noise tokens there. Fixed shapes: the ranks
    come from a double ``argsort``, no boolean indexing."""
    key_decode, key_score = jax.random.split(key)
    gumbel = functools.partial(sample_gumbel, dtype=log_probs.dtype)
    proposal = (log_probs + gumbel(key_decode, log_probs.shape) if decode == "sample" else log_probs).argmax(-1)
    proposal = jnp.where(noisy, proposal, x)  # decoded tokens keep their value
    candidates = noisy | (~pinned if renoise else jnp.zeros_like(noisy))
    if routing == "random":
        score = gumbel(key_score, x.shape)
    else:
        score = jnp.take_along_axis(log_probs, proposal[..., None], axis=-1)[..., 0]
        score = score + routing_noise * gumbel(key_score, x.shape) if routing_noise else score
    score = jnp.maximum(score, jnp.finfo(score.dtype).min)  # a -inf candidate still ranks above non-candidates
    rank = jnp.where(candidates, score, -jnp.inf).argsort(-1, descending=True).argsort(-1)
    n_decode = candidates.sum(-1, keepdims=True) - n_noisy_next[..., None]
    decoded = candidates & (rank < n_decode)
    return jnp.where(decoded, proposal, x), candidates & ~decoded


def _noise_tokens(key, x, noisy, noise, n_classes):
    """``x`` with its ``noisy`` positions set to noise: the mask (absorbing; ``key`` unused) or
    fresh uniform tokens (multinomial, RDM's ``w ~ q_noise`` redrawn at every step)."""
    if noise == "absorbing":
        return jnp.where(noisy, n_classes, x)
    return jnp.where(noisy, jax.random.randint(key, x.shape, 0, n_classes, dtype=x.dtype), x)


def _call(denoiser, x, t, n_classes):
    """One denoiser call at time ``t`` (``stop_gradient``), its shape checked, as float32/float64 logits."""
    logits = lax.stop_gradient(denoiser(x, jnp.full(x.shape[:-1], t)))
    if logits.shape != x.shape + (n_classes,):
        raise ValueError(
            out_of_range(
                "denoiser(x_t, t).shape",
                tuple(logits.shape),
                f"x_t.shape + (n_classes,) = {tuple(x.shape) + (n_classes,)}",
            )
        )
    return logits if logits.dtype in (jnp.float32, jnp.float64) else logits.astype(jnp.float32)


def _noisy_count(n_free: jax.Array, t: float, schedule: str, length: int) -> jax.Array:
    """:func:`relaxed_dists.diffusion.noisy_count` (float64 NumPy) tabulated for every
    ``n_free`` in ``0 .. length`` and looked up: exact under ``jit`` and in float32."""
    return jnp.asarray(noisy_count(np.arange(length + 1), t, schedule).astype(np.int32))[n_free]


def sample(
    key: jax.Array,
    denoiser: Denoiser,
    x_init: jax.Array,
    *,
    n_classes: int,
    n_steps: int,
    noise: str = "absorbing",
    routing: str = "adaptive",
    schedule: str = "linear",
    routing_noise: float = 0.0,
    renoise: bool = False,
    decode: str = "argmax",
    guidance: Guidance | None = None,
    return_trace: bool = False,
):
    r"""Route-and-denoise sampling (RDM) of ``x_init``'s masked positions in ``n_steps`` denoiser calls.

    Args:
        key: a PRNG key; step ``s`` splits the ``s``-th of ``jax.random.split(key, n_steps)``
            into the guidance key (:func:`tilt`) and the routing and decoding key. Multinomial
            noise tokens come from a second stream, ``jax.random.split(jax.random.fold_in(key,
            1), n_steps + 1)`` (the initial tokens, then one key per step), so that absorbing
            runs draw exactly what they drew before multinomial noise existed.
        denoiser: ``denoiser(x_t, t) -> logits`` (module docstring); called exactly once per
            step, its output wrapped in ``jax.lax.stop_gradient``.
        x_init: ``batch_shape + (L,)`` integer tokens; ``n_classes`` (the mask) marks the
            positions to generate, every other position is pinned (a prompt, Sudoku clues)
            and never changes. Its dtype is checked always, its values only when it is a
            concrete array (not under ``jit``).
        noise: ``"absorbing"`` (noisy positions hold the mask) or ``"multinomial"`` (noisy
            positions hold uniformly drawn tokens, redrawn at every step; the sampler tracks
            which are noisy, as RDM's algorithm does, since ``x_t`` does not show it). It must be
            the noise the denoiser was trained with (:class:`MaskedDiffusion`,
            :class:`MultinomialDiffusion`).
        routing: ``"adaptive"`` (RDM: denoise the positions whose proposed token is most
            probable) or ``"random"`` (a uniformly random order, as ancestral absorbing sampling).
        schedule: ``"linear"`` or ``"cosine"``: how many positions stay noisy after each step.
        routing_noise: scale of Gumbel noise added to adaptive scores (0: deterministic top-k);
            a Python number (static in the jitted routing step).
        renoise: let routing re-mask decoded (not pinned) tokens whose score is low (RDM's
            full routing); otherwise decoded tokens stay.
        decode: ``"argmax"`` or ``"sample"`` the proposal from ``softmax(logits)``.
        guidance: tilt the logits of each step toward a reward (:class:`Guidance`, :func:`tilt`);
            the denoiser call count does not change.
        return_trace: also return a list with one dict per step: ``t`` (time after the step),
            ``x`` (tokens after it), ``noisy`` (``batch_shape + (L,)``, the noisy set after it) and
            ``n_noisy`` (``batch_shape`` noisy free positions).

    Returns:
        ``batch_shape + (L,)`` tokens without any mask (and the trace if asked).

    The steps run in a Python loop (the denoiser is any callable); each routing step and
    each :func:`tilt` is jitted. The whole of ``sample`` can also be jitted with ``denoiser``
    and the keyword arguments static, when the denoiser is traceable.
    """
    n_steps = check_n_diffusion_steps(n_steps)
    check_choice("noise", noise, NOISES)
    for name, value, allowed in (
        ("routing", routing, ROUTINGS),
        ("schedule", schedule, SCHEDULES),
        ("decode", decode, DECODINGS),
    ):
        check_choice(name, value, allowed)
    check_routing_noise(routing_noise)
    x_init = jnp.asarray(x_init)
    _check_tokens("x_init", x_init, n_classes)
    pinned = x_init != n_classes
    n_free = (~pinned).sum(-1)
    route = functools.partial(
        _route, routing=routing, routing_noise=float(routing_noise), renoise=renoise, decode=decode
    )
    key_init, *keys_noise = jax.random.split(jax.random.fold_in(key, 1), n_steps + 1)
    noisy = ~pinned
    x, trace, times = _noise_tokens(key_init, x_init, noisy, noise, n_classes), [], step_times(n_steps)
    for t, t_next, key_step, key_noise in zip(times[:-1], times[1:], jax.random.split(key, n_steps), keys_noise):
        key_tilt, key_route = jax.random.split(key_step)
        logits = _call(denoiser, x, t, n_classes)
        if guidance is not None:
            logits = tilt(key_tilt, logits, guidance, x_t=jnp.where(noisy, n_classes, x))
        n_noisy_next = _noisy_count(n_free, t_next, schedule, x.shape[-1])
        x, noisy = route(key_route, x, noisy, jax.nn.log_softmax(logits, axis=-1), pinned, n_noisy_next)
        x = _noise_tokens(key_noise, x, noisy, noise, n_classes)
        if return_trace:
            trace.append({"t": t_next, "x": x, "noisy": noisy, "n_noisy": noisy.sum(-1)})
    return (x, trace) if return_trace else x


def ancestral_sample(
    key: jax.Array,
    denoiser: Denoiser,
    x_init: jax.Array,
    *,
    n_classes: int,
    n_steps: int,
    noise: str = "absorbing",
    decode: str = "sample",
    guidance: Guidance | None = None,
    return_trace: bool = False,
):
    r"""Vanilla (D3PM-style) ancestral sampling, the baseline RDM's sampler is compared with, in
    ``n_steps`` denoiser calls on the grid ``t_s = s / n_steps``.

    Each step draws ``x_s ~ p(x_s | x_t) = sum_{x_0} q(x_s | x_t, x_0) p_theta(x_0 | x_t)``
    (:func:`relaxed_dists.diffusion.posterior`): with absorbing noise a masked position is
    unmasked with probability ``(t - s) / t``, to a token of ``p_theta``; with multinomial noise
    every free position is redrawn from Hoogeboom et al.'s posterior, decoded or not (there is
    no routing: which positions are clean is never decided). The last step (``s = 0``) leaves no
    mask.

    Args:
        key: a PRNG key, split into ``n_steps + 1``: the first draws the initial noise tokens
            (multinomial), and step ``s`` splits the ``s + 1``-th into the guidance key, the
            decoding key and the unmasking key.
        denoiser, x_init, n_classes, noise, guidance: as :func:`sample` (guidance tilts the
            logits at the positions still masked (absorbing) or at every free position
            (multinomial)).
        decode: ``"sample"`` (ancestral sampling proper) or ``"argmax"``: the unmasked token is
            ``p_theta``'s mode (absorbing) / ``x_s`` is the posterior's mode (multinomial).
        return_trace: one dict per step: ``t``, ``x`` and, for absorbing noise, ``n_noisy``.

    Returns:
        ``batch_shape + (L,)`` tokens without any mask (and the trace if asked).
    """
    n_steps = check_n_diffusion_steps(n_steps)
    check_choice("noise", noise, NOISES)
    check_choice("decode", decode, DECODINGS)
    x_init = jnp.asarray(x_init)
    _check_tokens("x_init", x_init, n_classes)
    pinned = x_init != n_classes
    key_init, *keys = jax.random.split(key, n_steps + 1)
    x, trace, times = _noise_tokens(key_init, x_init, ~pinned, noise, n_classes), [], step_times(n_steps)
    for t, s, key_step in zip(times[:-1], times[1:], keys):
        key_tilt, key_decode, key_move = jax.random.split(key_step, 3)
        logits = _call(denoiser, x, t, n_classes)
        free = (x == n_classes) if noise == "absorbing" else ~pinned
        if guidance is not None:
            logits = tilt(key_tilt, logits, guidance, x_t=jnp.where(free, n_classes, x))
        log_p = jax.nn.log_softmax(logits, axis=-1)
        if noise == "absorbing":
            token = (
                log_p + sample_gumbel(key_decode, log_p.shape, dtype=log_p.dtype) if decode == "sample" else log_p
            ).argmax(-1)
            move = jax.random.uniform(key_move, x.shape) < unmask_probability(t, s)
            x = jnp.where(free & move, token, x)
        else:
            a_ts, a_s = multinomial_rates(t, s)
            left = a_ts * jax.nn.one_hot(x, n_classes, dtype=log_p.dtype) + (1.0 - a_ts) / n_classes
            log_post = jnp.log(left) + jnp.log(a_s * jnp.exp(log_p) + (1.0 - a_s) / n_classes)
            noise_g = sample_gumbel(key_decode, log_post.shape, dtype=log_post.dtype)
            x = jnp.where(
                pinned, x, (log_post + noise_g if decode == "sample" else log_post).argmax(-1).astype(x.dtype)
            )
        if return_trace:
            trace.append({"t": s, "x": x, **({"n_noisy": (x == n_classes).sum(-1)} if noise == "absorbing" else {})})
    return (x, trace) if return_trace else x
